"""Data-parallel training: the one-axis mesh, replicated models and sharded batches."""

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from jaxtyping import PyTree

from ..datasets import Dataset

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


def check_mesh(name: str, mesh) -> None:
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
    check_mesh("replicate", mesh)
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
    check_mesh("shard_batch", mesh)
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
