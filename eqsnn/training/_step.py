"""One optimiser step, an epoch of them, and the batch-mean loss they differentiate."""

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

from .._overflow import reset_dropped_warnings
from ..datasets import Dataset
from ._mesh import BATCH_AXIS, check_mesh, shard_batch

SampleLoss: TypeAlias = Callable[[Any, Float[Array, " n_features"], Int[Array, ""]], Any]
"""`sample_loss(model, inputs, label) -> (loss, aux)` for one sample (no batch axis).

`loss` is a scalar; `aux` is a pytree of arrays (metrics such as accuracy or the spike
count, usually scalars) that the training functions average over the samples, entry by
entry. `inputs` are the features of one sample of a [`eqsnn.datasets.Dataset`][], `label`
its integer class. Put the network output's `dropped` (the spikes all its layers lost for
the sample) into `aux` to have [`eqsnn.training.train_epoch`][] count them."""


def per_sample(model, batch: Dataset, sample_loss: SampleLoss, mesh: Mesh | None):
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
    loss, aux = per_sample(model, batch, sample_loss, mesh)
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
        check_mesh("train_step", mesh)
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
