r"""Training: one optimiser step and an evaluation, as small functions.

eqsnn has no trainer class. A training loop is a Python `for` over
[`eqsnn.datasets.batches`][] that calls [`eqsnn.training.train_step`][] (or
[`eqsnn.training.train_epoch`][], one pass with the epoch's totals, lost spikes included);
the model is any Equinox module and the loss any function of one sample:

```python
def sample_loss(model, inputs, label):  # one sample, no batch axis
    ...
    return loss, aux  # a scalar, and a pytree of arrays to average (metrics)
```

The step averages `sample_loss` over the batch with `jax.vmap`, differentiates it with
`eqx.filter_value_and_grad` and applies an optax optimiser, all under one
`eqx.filter_jit`.

Data-parallel training over several devices (and hosts) takes one more argument, a
[`jax.sharding.Mesh`](https://docs.jax.dev/en/latest/sharding.html) from
[`eqsnn.training.data_parallel_mesh`][]: the batch is split over the devices, the model
and optimiser state are replicated, and the gradient is averaged over the devices by
JAX; see [Multiple devices and hosts](../howto/multi_device.md).

**Example:**

```python
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
import eqsnn
from eqsnn import datasets, training

params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
key_hidden, key_out = jax.random.split(jax.random.key(0))
model = (
    eqsnn.LIF(5, 20, 20, 2e-2, params, key=key_hidden, mean=3.0, std=1.6),
    eqsnn.LIF(20, 2, 2, 2e-2, params, key=key_out, mean=0.5, std=0.8),
)


def sample_loss(model, inputs, label):
    spikes = eqsnn.encode.spatio_temporal_encode(inputs, 1e-2, t_bias=0.0)
    for layer in model:
        spikes = layer(spikes)
    loss = eqsnn.loss.ttfs_loss(spikes, label, 2, t_max=2e-2, tau_mem=1e-2)
    return loss, eqsnn.loss.accuracy(spikes, label, 2)


optimiser = optax.adam(1e-3)
opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
train = datasets.linear(jax.random.key(1), 64)
for batch in datasets.batches(train, 32, key=jax.random.key(2)):
    model, opt_state, loss, acc = training.train_step(
        model, opt_state, batch, sample_loss=sample_loss, optimiser=optimiser
    )
loss, acc = training.evaluate(model, train, sample_loss=sample_loss, batch_size=32)
```
"""

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, TypeAlias

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import Array, Float, Int, PyTree

from ._overflow import reset_dropped_warnings
from .datasets import Dataset

SampleLoss: TypeAlias = Callable[[Any, Float[Array, " n_features"], Int[Array, ""]], Any]
"""`sample_loss(model, inputs, label) -> (loss, aux)` for one sample (no batch axis).

`loss` is a scalar; `aux` is a pytree of arrays (metrics such as accuracy or the spike
count, usually scalars) that the training functions average over the samples, entry by
entry. `inputs` are the features of one sample of a [`eqsnn.datasets.Dataset`][], `label`
its integer class. Put the network output's `dropped` (the spikes all its layers lost for
the sample) into `aux` to have [`eqsnn.training.train_epoch`][] count them."""


BATCH_AXIS = "batch"
"""Name of the mesh axis that [`eqsnn.training.data_parallel_mesh`][] splits the batch
over (`jax.sharding.PartitionSpec("batch")`)."""


def data_parallel_mesh(devices: list[jax.Device] | None = None) -> Mesh:
    """A one-axis `jax.sharding.Mesh` for data-parallel training.

    The mesh has one axis, `"batch"` ([`eqsnn.training.BATCH_AXIS`][]): the functions of
    `eqsnn.training` that take a `mesh` split the batch over it and replicate the model.
    With several processes (after `jax.distributed.initialize`), the default mesh spans
    the devices of every process, and each process supplies its own part of the batch
    (see [`eqsnn.training.shard_batch`][]).

    **Arguments:**

    - `devices`: the devices, in order; default `jax.devices()` (every device of every
      process). E.g. `jax.devices()[:2]` for the first two.

    **Returns:** a `jax.sharding.Mesh` with axis `"batch"` of size `len(devices)`.

    **Example:**

    ```python
    mesh = data_parallel_mesh()  # all devices
    model, opt_state = replicate((model, opt_state), mesh)
    step = make_step(sample_loss, optimiser, mesh=mesh)
    ```
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_parallel_mesh: `devices` is empty.")
    return Mesh(np.array(devices), (BATCH_AXIS,))


def _check_mesh(name: str, mesh) -> None:
    if not isinstance(mesh, Mesh) or mesh.axis_names != (BATCH_AXIS,):
        raise ValueError(
            f"{name}: `mesh` must be a jax.sharding.Mesh with the one axis "
            f"{BATCH_AXIS!r} (see eqsnn.training.data_parallel_mesh), got {mesh!r}."
        )


def replicate(tree: PyTree, mesh: Mesh) -> PyTree:
    """Put every array of `tree` on every device of `mesh` (a full copy on each).

    Call it once on the model and the optimiser state before data-parallel training;
    the sharded [`eqsnn.training.train_step`][] keeps them replicated. With several
    processes, every process must pass the same values (e.g. the same initialisation
    key).

    **Arguments:**

    - `tree`: any pytree (model, optimiser state); non-array leaves are left alone.
    - `mesh`: from [`eqsnn.training.data_parallel_mesh`][].

    **Returns:** `tree` with every JAX or NumPy array replicated over `mesh`.
    """
    _check_mesh("replicate", mesh)
    sharding = NamedSharding(mesh, P())
    if not mesh.is_multi_process:
        return eqx.filter_shard(tree, sharding)

    def put(x):  # host copy on every process -> one global, replicated array
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(lambda x: put(x) if eqx.is_array(x) else x, tree)


def shard_batch(batch: Dataset, mesh: Mesh) -> Dataset:
    """Split a batch over the devices of `mesh`, sample by sample.

    Device `i` of `d` gets samples `i*n/d` to `(i+1)*n/d - 1`. With several processes,
    `batch` is this process's part of the global batch (each process loads its own
    samples) and the result is the global batch: the processes' parts in process order.
    The batch size must be divisible by the number of devices (no padding: a padded
    sample would change the mean loss).

    **Arguments:**

    - `batch`: a [`eqsnn.datasets.Dataset`][] (this process's samples).
    - `mesh`: from [`eqsnn.training.data_parallel_mesh`][].

    **Returns:** the batch as a `Dataset` whose arrays are sharded along
    `PartitionSpec("batch")`. A batch already sharded so is returned as it is.

    **Raises:** `ValueError` if the number of samples is not divisible by the number of
    (this process's) devices of `mesh`.
    """
    _check_mesh("shard_batch", mesh)
    sharding = NamedSharding(mesh, P(BATCH_AXIS))
    arrays = (batch.inputs, batch.labels)
    if all(getattr(a, "sharding", None) == sharding for a in arrays):
        return batch
    n, n_devices = len(batch), len(mesh.local_devices)
    if n % n_devices:
        where = "this process's " if mesh.is_multi_process else ""
        raise ValueError(
            f"shard_batch: a batch of {n} samples does not split evenly over the "
            f"{n_devices} {where}devices of `mesh`; use a batch size divisible by {n_devices}."
        )
    if mesh.is_multi_process:
        inputs, labels = (
            jax.make_array_from_process_local_data(sharding, np.asarray(a)) for a in arrays
        )
    else:
        inputs, labels = jax.device_put(arrays, sharding)
    return eqx.tree_at(lambda b: (b.inputs, b.labels), batch, (inputs, labels))


def _per_sample(model, batch: Dataset, sample_loss: SampleLoss, mesh: Mesh | None):
    """`sample_loss` of every sample; with `mesh`, each device maps over its own shard."""
    if mesh is None:
        return jax.vmap(sample_loss, in_axes=(None, 0, 0))(model, batch.inputs, batch.labels)
    if not hasattr(jax, "shard_map"):
        raise RuntimeError(
            f"eqsnn.training: `mesh` needs `jax.shard_map`, which JAX {jax.__version__} does "
            "not have; upgrade JAX or pass mesh=None."
        )
    arrays, static = eqx.partition(model, eqx.is_array)

    def local(arrays, inputs, labels):  # runs on one device, on its samples only
        per_sample = jax.vmap(sample_loss, in_axes=(None, 0, 0))
        return per_sample(eqx.combine(arrays, static), inputs, labels)

    # shard_map rather than sharding annotations alone: every device runs the event
    # simulation on its own samples, and a host callback inside `sample_loss` (a hardware
    # backend) is called once per device with that device's samples. Under plain `jit`,
    # XLA would gather the whole batch onto one device for a callback. `check_vma=False`:
    # the layers' `lax.cond`s and `eqx.error_if`s mix replicated weights with per-device
    # samples, which the varying-axes type check rejects; the transpose still sums the
    # per-device gradients of the replicated `arrays` (tests/test_sharding.py).
    mapped = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), P(BATCH_AXIS), P(BATCH_AXIS)),
        out_specs=P(BATCH_AXIS),
        check_vma=False,
    )
    return mapped(arrays, batch.inputs, batch.labels)


def batch_loss(
    model: PyTree, batch: Dataset, sample_loss: SampleLoss, mesh: Mesh | None = None
) -> tuple[Float[Array, ""], PyTree]:
    """Mean of `sample_loss` over a batch, with `jax.vmap`.

    **Arguments:**

    - `model`: the model (any pytree, usually an Equinox module); not batched.
    - `batch`: a [`eqsnn.datasets.Dataset`][] of samples.
    - `sample_loss`: see [`eqsnn.training.SampleLoss`][].
    - `mesh`: `None` (one device), or a mesh from
      [`eqsnn.training.data_parallel_mesh`][]: each device then maps `sample_loss` over
      its shard of the batch (`jax.shard_map`), and the means (and, under `jax.grad`, the
      gradient with respect to the replicated `model`) are reduced over the devices.

    **Returns:** `(loss, aux)`: the batch means of the sample losses and of `aux`.
    """
    loss, aux = _per_sample(model, batch, sample_loss, mesh)
    return jnp.mean(loss), jax.tree.map(lambda a: jnp.mean(a, axis=0), aux)


@eqx.filter_jit
def _train_step(model, opt_state, batch, sample_loss, optimiser, mesh):
    if mesh is not None:  # Equinox's data-parallel pattern: constrain inputs and outputs
        model, opt_state = eqx.filter_shard((model, opt_state), NamedSharding(mesh, P()))
        batch = eqx.filter_shard(batch, NamedSharding(mesh, P(BATCH_AXIS)))
    grad_fn = eqx.filter_value_and_grad(batch_loss, has_aux=True)
    (loss, aux), grads = grad_fn(model, batch, sample_loss, mesh)
    updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    if mesh is not None:
        model, opt_state = eqx.filter_shard((model, opt_state), NamedSharding(mesh, P()))
    return model, opt_state, loss, aux


def train_step(
    model: PyTree,
    opt_state: optax.OptState,
    batch: Dataset,
    *,
    sample_loss: SampleLoss,
    optimiser: optax.GradientTransformation,
    mesh: Mesh | None = None,
) -> tuple[PyTree, optax.OptState, Float[Array, ""], PyTree]:
    """One optimiser step on the batch-mean loss.

    The gradient is taken with respect to every floating-point array of `model`
    (`eqx.filter_value_and_grad`); static fields and integer arrays are left alone.
    `sample_loss` and `optimiser` are static (compiled into the step), so pass the same
    objects at every call: a new function object compiles the step anew.

    With a `mesh`, the step is data-parallel: the batch is split over the devices
    ([`eqsnn.training.shard_batch`][]; its size must be divisible by the number of
    devices), every device computes the losses and gradients of its samples, and the
    gradient is averaged over the devices before the (replicated) update. The result
    equals the one-device step up to the order of the floating-point sums. Replicate
    `model` and `opt_state` once beforehand with [`eqsnn.training.replicate`][].

    **Arguments:**

    - `model`: the model, e.g. a tuple of eqsnn layers or an `eqx.Module`.
    - `opt_state`: the optimiser state, `optimiser.init(eqx.filter(model, eqx.is_array))`.
    - `batch`: a [`eqsnn.datasets.Dataset`][] batch (e.g. from [`eqsnn.datasets.batches`][]).
    - `sample_loss`: see [`eqsnn.training.SampleLoss`][] (keyword-only).
    - `optimiser`: an `optax.GradientTransformation` (keyword-only).
    - `mesh`: `None` (one device) or a mesh from [`eqsnn.training.data_parallel_mesh`][]
      (keyword-only).

    **Returns:** `(model, opt_state, loss, aux)`: the updated model and optimiser state,
    and the batch means of the loss and of `aux` *before* the update.
    """
    if mesh is not None:
        _check_mesh("train_step", mesh)
        batch = shard_batch(batch, mesh)
    return _train_step(model, opt_state, batch, sample_loss, optimiser, mesh)


def make_step(
    sample_loss: SampleLoss,
    optimiser: optax.GradientTransformation,
    *,
    mesh: Mesh | None = None,
) -> Callable[[PyTree, optax.OptState, Dataset], tuple[PyTree, optax.OptState, Array, PyTree]]:
    """[`eqsnn.training.train_step`][] with `sample_loss`, `optimiser` and `mesh` bound.

    **Returns:** `step(model, opt_state, batch) -> (model, opt_state, loss, aux)`.

    **Example:**

    ```python
    step = make_step(sample_loss, optax.adam(1e-3))
    model, opt_state, loss, aux = step(model, opt_state, batch)
    ```
    """

    def step(model, opt_state, batch):
        return train_step(
            model, opt_state, batch, sample_loss=sample_loss, optimiser=optimiser, mesh=mesh
        )

    return step


class Epoch(NamedTuple):
    """What [`eqsnn.training.train_epoch`][] returns."""

    model: PyTree
    opt_state: optax.OptState
    loss: float
    """Mean training loss over the epoch's samples (each taken before its step's update)."""
    aux: PyTree
    """Mean of `aux` over the epoch's samples (scalars as Python floats)."""
    samples: int
    """Number of samples the epoch trained on."""
    dropped: int | None
    """Spikes lost over the epoch's samples, summed (`None` without a `dropped` function)."""


def train_epoch(
    model: PyTree,
    opt_state: optax.OptState,
    batches: Iterable[Dataset],
    *,
    sample_loss: SampleLoss,
    optimiser: optax.GradientTransformation,
    dropped: Callable[[PyTree], Array] | None = None,
    mesh: Mesh | None = None,
) -> Epoch:
    """One pass of [`eqsnn.training.train_step`][] over `batches`, with the epoch's totals.

    Every layer adds the spikes it lost to its input's `dropped`, so the `dropped` of a
    network's output counts what all its layers lost for a sample. Return it in `aux`
    from `sample_loss` and say where with `dropped`: the epoch then reports their sum.
    The epoch starts with [`eqsnn.reset_dropped_warnings`][], so a layer that loses
    spikes warns once per epoch.

    **Arguments:** `model`, `opt_state`, `sample_loss`, `optimiser`, `mesh` as for
    [`eqsnn.training.train_step`][], and

    - `batches`: the epoch's batches, e.g. [`eqsnn.datasets.batches`][].
    - `dropped`: `dropped(aux) -> array` picks the lost-spike count out of `aux` (it is
      given a step's batch means), e.g. `lambda aux: aux.dropped` for a `sample_loss`
      that returns `Metrics(..., dropped=out.dropped)` (keyword-only; default `None`:
      not counted).

    **Returns:** an [`eqsnn.training.Epoch`][] with the updated model and optimiser
    state, the epoch's mean loss and `aux`, its number of samples and the lost spikes.

    **Example:**

    ```python
    epoch = train_epoch(
        model,
        opt_state,
        datasets.batches(train, 32, key=key),
        sample_loss=sample_loss,
        optimiser=optimiser,
        dropped=lambda aux: aux.dropped,
    )
    print(epoch.loss, epoch.dropped)
    ```
    """
    reset_dropped_warnings()
    sums, samples, lost = None, 0, 0.0
    for batch in batches:
        model, opt_state, loss, aux = train_step(
            model, opt_state, batch, sample_loss=sample_loss, optimiser=optimiser, mesh=mesh
        )
        n = len(batch)
        means = jax.tree.map(lambda v, n=n: np.asarray(v, np.float64) * n, (loss, aux))
        sums = means if sums is None else jax.tree.map(np.add, sums, means)
        lost += 0.0 if dropped is None else float(np.sum(dropped(aux))) * n
        samples += n
    if sums is None:
        raise ValueError("train_epoch: `batches` is empty.")
    loss, aux = jax.tree.map(lambda v: _as_float(v / samples), sums)
    return Epoch(model, opt_state, loss, aux, samples, None if dropped is None else round(lost))


def _as_float(value: np.ndarray):
    return float(value) if value.ndim == 0 else value


_per_sample_jit = eqx.filter_jit(_per_sample)


def evaluate(
    model: PyTree,
    dataset: Dataset,
    *,
    sample_loss: SampleLoss,
    batch_size: int = 256,
    mesh: Mesh | None = None,
) -> tuple[float, PyTree]:
    """Mean loss and mean `aux` over a whole data set, batch by batch, without gradients.

    Every call sees `batch_size` samples (one compiled shape): the last, incomplete batch
    is padded with samples from the start of the data set, which are left out of the means.

    **Arguments:**

    - `model`: the model.
    - `dataset`: a [`eqsnn.datasets.Dataset`][].
    - `sample_loss`: see [`eqsnn.training.SampleLoss`][] (keyword-only).
    - `batch_size`: samples per compiled call (positive int). With a `mesh` it is rounded
      up to a multiple of the number of devices (padded as above).
    - `mesh`: `None` (one device) or a mesh from [`eqsnn.training.data_parallel_mesh`][]
      (keyword-only; single process only): each batch is split over the devices.

    **Returns:** `(loss, aux)` averaged over the samples: the loss and every scalar of `aux`
    as a Python float, non-scalar entries of `aux` as NumPy arrays (averaged entry by
    entry); `aux` keeps its pytree structure.

    **Example:**

    ```python
    loss, aux = evaluate(model, test, sample_loss=sample_loss)
    ```
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"evaluate: `batch_size` must be a positive int, got {batch_size!r}.")
    n = len(dataset)
    if n == 0:
        raise ValueError("evaluate: `dataset` is empty.")
    batch_size = min(batch_size, n)
    if mesh is not None:
        _check_mesh("evaluate", mesh)
        if mesh.is_multi_process:
            raise ValueError(
                "evaluate: `mesh` spans several processes; evaluate without a mesh in each "
                "process (the replicated model is local to every process)."
            )
        batch_size = -(-batch_size // mesh.size) * mesh.size
    parts = []
    for start in range(0, n, batch_size):
        batch = dataset.take(np.arange(start, start + batch_size) % n)
        if mesh is not None:
            batch = shard_batch(batch, mesh)
        values = _per_sample_jit(model, batch, sample_loss, mesh)
        kept = min(batch_size, n - start)
        parts.append(jax.tree.map(lambda v, kept=kept: np.asarray(v)[:kept], values))
    loss, aux = jax.tree.map(lambda *v: _mean_over_samples(np.concatenate(v)), *parts)
    return loss, aux


def _mean_over_samples(values: np.ndarray):
    mean = np.mean(values, axis=0)
    return float(mean) if mean.ndim == 0 else mean
