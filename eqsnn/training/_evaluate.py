"""Evaluation over a whole data set, batch by batch, without gradients."""

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh
from jaxtyping import PyTree

from ..datasets import Dataset
from ._mesh import check_mesh, shard_batch
from ._step import SampleLoss, per_sample

_per_sample_jit = eqx.filter_jit(per_sample)


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
        check_mesh("evaluate", mesh)
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
