"""Data-parallel training (eqsnn.training with a `mesh`).

The 4-device checks run in a subprocess (tests/_sharding_worker.py) with
`XLA_FLAGS=--xla_force_host_platform_device_count=4`: the flag only takes effect before
JAX starts its backend, which this test session's conftest has done already."""

import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import optax
import pytest
from jax.sharding import Mesh

from eqsnn import datasets, training

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def four_devices() -> dict:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    env["JAX_PLATFORMS"] = "cpu"  # the forced devices are host (CPU) devices
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "_sharding_worker.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_sharded_step_equals_the_single_device_step(four_devices):
    r = four_devices
    assert r["n_devices"] == 4 and r["mesh_devices"] == 4 and r["dtype"] == "float64"
    # The same float64 operations per sample; only the order of the sums over the batch
    # (per device, then over devices) may differ: 1e-12 relative.
    assert r["weights_rel_diff"] <= 1e-12
    assert r["loss_rel_diff"] <= 1e-12
    assert r["evaluate_rel_diff"] <= 1e-12
    # Not vacuous: the network spikes and the step moved the weights.
    assert r["spikes"] > 0 and r["weights_changed"] > 1e-4 and np.isfinite(r["loss"])


def test_sharded_step_splits_the_batch_over_four_devices(four_devices):
    r = four_devices
    # 8 samples: two on each of the 4 devices, inputs and labels alike.
    assert r["batch_shards"] == [[0, 2, 5], [1, 2, 5], [2, 2, 5], [3, 2, 5]]
    assert r["labels_spec"] == "P('batch',)"
    # The updated weights: a full copy on each of the 4 devices.
    assert r["weights_devices"] == [4] and r["weights_replicated"]
    # The hidden layer is an eqsnn.HardwareLIF: its backend (eqsnn.hardware.SoftwareBackend
    # behind jax.pure_callback) runs one call per batch on one device, and one call per
    # device with that device's 2 samples when sharded, not all 8 on one device.
    assert r["backend_samples_single"] == [8]
    assert r["backend_samples_sharded"] == [2, 2, 2, 2]


def test_indivisible_batch_is_rejected_by_name(four_devices):
    message = four_devices["indivisible_error"]
    assert "batch of 6 samples" in message and "4 devices" in message


class _Linear(eqx.Module):
    weight: jax.Array

    def __call__(self, inputs):
        return inputs @ self.weight


def _linear_loss(model, inputs, label):
    # A cheap stand-in for a network: this test is about the training code path (the
    # 4-device test runs the event simulation).
    logits = model(inputs)
    return optax.softmax_cross_entropy_with_integer_labels(logits, label), logits


def test_one_device_mesh_equals_no_mesh():
    # The sharded code path (shard_map over a 1-device mesh) against the plain one.
    mesh = training.data_parallel_mesh(jax.devices()[:1])
    assert isinstance(mesh, Mesh) and mesh.axis_names == ("batch",) and mesh.size == 1
    data, optimiser = datasets.linear(jax.random.key(1), 4), optax.sgd(0.1)
    model = _Linear(jax.random.normal(jax.random.key(0), (5, 2), dtype=float))
    opt_state = optimiser.init(model)
    plain = training.make_step(_linear_loss, optimiser)(model, opt_state, data)
    model_r, opt_state_r = training.replicate((model, opt_state), mesh)
    sharded = training.make_step(_linear_loss, optimiser, mesh=mesh)(model_r, opt_state_r, data)
    for got, want in zip(jax.tree.leaves(sharded), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)  # same ops, float64
    assert np.any(plain[0].weight != model.weight)  # the step changed the weights


@pytest.mark.parametrize("bad", ["batch", Mesh(np.array(jax.devices()), ("data",))])
def test_bad_mesh_is_rejected(bad):
    with pytest.raises(ValueError, match="shard_batch: `mesh` must be a jax.sharding.Mesh"):
        training.shard_batch(datasets.linear(jax.random.key(1), 4), bad)


def test_empty_device_list_is_rejected():
    with pytest.raises(ValueError, match="data_parallel_mesh: `devices` is empty"):
        training.data_parallel_mesh([])
