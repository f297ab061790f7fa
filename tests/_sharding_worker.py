"""Run by tests/test_sharding.py in a fresh process with 4 forced host (CPU) devices:
XLA_FLAGS must be set before JAX starts its backend, and the test session's JAX has
started already. Prints one JSON object with the measurements the test checks."""

import json
import os
import sys

if "--xla_force_host_platform_device_count=4" not in os.environ.get("XLA_FLAGS", ""):
    sys.exit("run with XLA_FLAGS=--xla_force_host_platform_device_count=4")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")

import eqsnn  # noqa: E402
from eqsnn import datasets, training  # noqa: E402
from eqsnn.encode import spatio_temporal_encode  # noqa: E402
from eqsnn.hardware import SoftwareBackend  # noqa: E402
from eqsnn.loss import accuracy, ttfs_loss  # noqa: E402

PARAMS = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
T_MAX = 2e-2


def model(backend):
    """The hidden layer runs on a hardware backend (eqsnn's simulator behind
    `jax.pure_callback`); the output layer is a LIF on the window scan with EventProp."""
    k1, k2 = jax.random.split(jax.random.key(0))
    return (
        eqsnn.HardwareLIF(5, 6, 6, T_MAX, PARAMS, key=k1, mean=3.0, std=1.6, backend=backend),
        eqsnn.LIF(
            6,
            2,
            2,
            T_MAX,
            PARAMS,
            key=k2,
            mean=0.5,
            std=0.8,
            engine=eqsnn.WindowScan(max_spikes_per_neuron=1),
            adjoint=eqsnn.EventProp(),
        ),  # fmt: skip
    )


def sample_loss(network, inputs, label):
    spikes = spatio_temporal_encode(inputs, 1e-2)
    for layer in network:
        spikes = layer(spikes)
    loss = ttfs_loss(spikes, label, 2, t_max=T_MAX, tau_mem=5e-3)
    return loss, {"accuracy": accuracy(spikes, label, 2), "spikes": spikes.count()}


class CountingBackend(SoftwareBackend):
    """eqsnn's simulator as a hardware backend, recording the samples of every call."""

    def __init__(self):
        super().__init__()
        self.samples: list[int] = []

    def run(self, weights, input_time, input_idx, **kwargs):
        self.samples.append(int(np.shape(input_time)[0]))
        return super().run(weights, input_time, input_idx, **kwargs)


def max_relative_difference(a, b) -> float:
    pairs = zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y)) / np.maximum(np.abs(y), 1e-300)))
        for x, y in pairs
    )


def main() -> dict:
    data = datasets.linear(jax.random.key(1), 8)
    mesh = training.data_parallel_mesh()
    backend = CountingBackend()
    net, optimiser = model(backend), optax.sgd(0.1)
    opt_state = optimiser.init(eqx.filter(net, eqx.is_array))
    args = dict(sample_loss=sample_loss, optimiser=optimiser)

    single = training.train_step(net, opt_state, data, **args)
    jax.block_until_ready(single)
    single_calls, backend.samples[:] = list(backend.samples), []
    net_r, opt_state_r = training.replicate((net, opt_state), mesh)
    sharded = training.train_step(net_r, opt_state_r, data, **args, mesh=mesh)
    jax.block_until_ready(sharded)
    sharded_calls = sorted(backend.samples)
    arrays = [eqx.filter(out[0], eqx.is_array) for out in (single, sharded)]
    batch = training.shard_batch(data, mesh)
    out_shardings = [leaf.sharding for leaf in jax.tree.leaves(arrays[1])]
    try:
        training.shard_batch(data.take(np.arange(6)), mesh)
        indivisible = ""
    except ValueError as error:
        indivisible = str(error)
    # Batches of 6: one full and one padded (2 samples + 4 from the start) without a mesh;
    # rounded up to 8 with it, whose 2 samples per device reuse the training step's
    # compiled backend simulation (batches of 3 compiled two more).
    eval_single = training.evaluate(net, data, sample_loss=sample_loss, batch_size=6)
    eval_sharded = training.evaluate(net, data, sample_loss=sample_loss, batch_size=6, mesh=mesh)
    return {
        "n_devices": len(jax.devices()),
        "mesh_devices": mesh.size,
        "dtype": str(single[2].dtype),
        "weights_rel_diff": max_relative_difference(arrays[1], arrays[0]),
        "weights_changed": max_relative_difference(arrays[0], eqx.filter(net, eqx.is_array)),
        "loss_rel_diff": max_relative_difference(sharded[2:], single[2:]),
        "loss": float(single[2]),
        "spikes": float(single[3]["spikes"]),
        "weights_devices": sorted({len(s.device_set) for s in out_shardings}),
        "weights_replicated": all(s.is_fully_replicated for s in out_shardings),
        "batch_shards": sorted(
            (shard.device.id, *shard.data.shape) for shard in batch.inputs.addressable_shards
        ),
        "labels_spec": str(batch.labels.sharding.spec),
        "backend_samples_single": single_calls,
        "backend_samples_sharded": sharded_calls,
        "indivisible_error": indivisible,
        "evaluate_rel_diff": max_relative_difference(eval_sharded, eval_single),
    }


if __name__ == "__main__":
    print(json.dumps(main()))
