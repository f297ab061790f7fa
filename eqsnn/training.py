r"""Training: one optimiser step and an evaluation, as small functions.

eqsnn has no trainer class. A training loop is a Python `for` over
[`eqsnn.datasets.batches`][] that calls [`eqsnn.training.train_step`][]; the model is any
Equinox module and the loss any function of one sample:

```python
def sample_loss(model, inputs, label):  # one sample, no batch axis
    ...
    return loss, aux  # a scalar, and a pytree of arrays to average (metrics)
```

The step averages `sample_loss` over the batch with `jax.vmap`, differentiates it with
`eqx.filter_value_and_grad` and applies an optax optimiser, all under one
`eqx.filter_jit`.

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

from collections.abc import Callable
from typing import Any, TypeAlias

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PyTree

from .datasets import Dataset

SampleLoss: TypeAlias = Callable[[Any, Float[Array, " n_features"], Int[Array, ""]], Any]
"""`sample_loss(model, inputs, label) -> (loss, aux)` for one sample (no batch axis).

`loss` is a scalar; `aux` is a pytree of arrays (metrics such as accuracy or the spike
count, usually scalars) that the training functions average over the samples, entry by
entry. `inputs` are the features of one sample of a [`eqsnn.datasets.Dataset`][], `label`
its integer class."""


def batch_loss(
    model: PyTree, batch: Dataset, sample_loss: SampleLoss
) -> tuple[Float[Array, ""], PyTree]:
    """Mean of `sample_loss` over a batch, with `jax.vmap`.

    **Arguments:**

    - `model`: the model (any pytree, usually an Equinox module); not batched.
    - `batch`: a [`eqsnn.datasets.Dataset`][] of samples.
    - `sample_loss`: see [`eqsnn.training.SampleLoss`][].

    **Returns:** `(loss, aux)`: the batch means of the sample losses and of `aux`.
    """
    per_sample = jax.vmap(sample_loss, in_axes=(None, 0, 0))
    loss, aux = per_sample(model, batch.inputs, batch.labels)
    return jnp.mean(loss), jax.tree.map(lambda a: jnp.mean(a, axis=0), aux)


@eqx.filter_jit
def train_step(
    model: PyTree,
    opt_state: optax.OptState,
    batch: Dataset,
    *,
    sample_loss: SampleLoss,
    optimiser: optax.GradientTransformation,
) -> tuple[PyTree, optax.OptState, Float[Array, ""], PyTree]:
    """One optimiser step on the batch-mean loss.

    The gradient is taken with respect to every floating-point array of `model`
    (`eqx.filter_value_and_grad`); static fields and integer arrays are left alone.
    `sample_loss` and `optimiser` are static (compiled into the step), so pass the same
    objects at every call: a new function object compiles the step anew.

    **Arguments:**

    - `model`: the model, e.g. a tuple of eqsnn layers or an `eqx.Module`.
    - `opt_state`: the optimiser state, `optimiser.init(eqx.filter(model, eqx.is_array))`.
    - `batch`: a [`eqsnn.datasets.Dataset`][] batch (e.g. from [`eqsnn.datasets.batches`][]).
    - `sample_loss`: see [`eqsnn.training.SampleLoss`][] (keyword-only).
    - `optimiser`: an `optax.GradientTransformation` (keyword-only).

    **Returns:** `(model, opt_state, loss, aux)`: the updated model and optimiser state,
    and the batch means of the loss and of `aux` *before* the update.
    """
    grad_fn = eqx.filter_value_and_grad(batch_loss, has_aux=True)
    (loss, aux), grads = grad_fn(model, batch, sample_loss)
    updates, opt_state = optimiser.update(grads, opt_state, eqx.filter(model, eqx.is_array))
    model = eqx.apply_updates(model, updates)
    return model, opt_state, loss, aux


def make_step(
    sample_loss: SampleLoss, optimiser: optax.GradientTransformation
) -> Callable[[PyTree, optax.OptState, Dataset], tuple[PyTree, optax.OptState, Array, PyTree]]:
    """[`eqsnn.training.train_step`][] with `sample_loss` and `optimiser` bound.

    **Returns:** `step(model, opt_state, batch) -> (model, opt_state, loss, aux)`.

    **Example:**

    ```python
    step = make_step(sample_loss, optax.adam(1e-3))
    model, opt_state, loss, aux = step(model, opt_state, batch)
    ```
    """

    def step(model, opt_state, batch):
        return train_step(model, opt_state, batch, sample_loss=sample_loss, optimiser=optimiser)

    return step


@eqx.filter_jit
def _per_sample(model, batch: Dataset, sample_loss: SampleLoss):
    return jax.vmap(sample_loss, in_axes=(None, 0, 0))(model, batch.inputs, batch.labels)


def evaluate(
    model: PyTree, dataset: Dataset, *, sample_loss: SampleLoss, batch_size: int = 256
) -> tuple[float, PyTree]:
    """Mean loss and mean `aux` over a whole data set, batch by batch, without gradients.

    Every call sees `batch_size` samples (one compiled shape): the last, incomplete batch
    is padded with samples from the start of the data set, which are left out of the means.

    **Arguments:**

    - `model`: the model.
    - `dataset`: a [`eqsnn.datasets.Dataset`][].
    - `sample_loss`: see [`eqsnn.training.SampleLoss`][] (keyword-only).
    - `batch_size`: samples per compiled call (positive int).

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
    parts = []
    for start in range(0, n, batch_size):
        values = _per_sample(
            model, dataset.take(np.arange(start, start + batch_size) % n), sample_loss
        )
        kept = min(batch_size, n - start)
        parts.append(jax.tree.map(lambda v, kept=kept: np.asarray(v)[:kept], values))
    loss, aux = jax.tree.map(lambda *v: _mean_over_samples(np.concatenate(v)), *parts)
    return loss, aux


def _mean_over_samples(values: np.ndarray):
    mean = np.mean(values, axis=0)
    return float(mean) if mean.ndim == 0 else mean
