"""Tests for eqsnn.loss: values on hand-computed cases and finite gradients for silences."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqsnn import Spikes
from eqsnn.loss import (
    accuracy,
    first_spike_times,
    mse_loss,
    predict,
    spike_count_regulariser,
    target_time_loss,
    ttfs_loss,
)

T_MAX = 4.0e-3
TAU = 1.0e-3
INF = float("inf")


def _spikes(times, idx) -> Spikes:
    return Spikes(jnp.array(times, dtype=jnp.float64), jnp.array(idx, dtype=jnp.int32))


# Neuron 0 spikes at 2 ms and 1 ms, neuron 1 only at/after t_max, neuron 2 has index 5
# spiking (ignored: beyond n_neurons), plus two empty slots holding +inf as layers write.
LAYER_OUTPUT = _spikes([1e-3, 2e-3, 4e-3, 5e-4, INF, INF], [0, 0, 1, 5, -1, -1])


def test_first_spike_times_values():
    times = first_spike_times(LAYER_OUTPUT, 3, t_max=T_MAX)
    np.testing.assert_array_equal(times, [1e-3, T_MAX, T_MAX])
    batched = first_spike_times(
        Spikes(LAYER_OUTPUT.time[None], LAYER_OUTPUT.idx[None]), 3, t_max=T_MAX
    )
    np.testing.assert_array_equal(batched, times[None])


def test_mse_loss_value_and_gradient():
    target = jnp.array([2e-3, 1e-3, 3e-3])
    loss = mse_loss(LAYER_OUTPUT, target, t_max=T_MAX, tau_mem=TAU)
    # ((1 - 2)^2 + (4 - 1)^2 + (4 - 3)^2) ms^2 / (1 ms)^2 = 11
    np.testing.assert_allclose(loss, 11.0, rtol=1e-12)

    def f(time):
        return mse_loss(Spikes(time, LAYER_OUTPUT.idx), target, t_max=T_MAX, tau_mem=TAU)

    grad = jax.jit(jax.grad(f))(LAYER_OUTPUT.time)
    # Only the first spike of neuron 0 moves the loss: d/dt (t - 2e-3)^2 / tau^2.
    expected = np.zeros(6)
    expected[0] = 2 * (1e-3 - 2e-3) / TAU**2
    np.testing.assert_allclose(grad, expected, rtol=1e-12)


def test_target_time_loss_value():
    target = jnp.array([1e-3, 2e-3])
    loss = target_time_loss(LAYER_OUTPUT, target, t_max=T_MAX, tau_mem=TAU)
    # Neuron 0 on target: -log 2; neuron 1 silent at 4 ms, 2 ms late: -log(1 + e^-2).
    np.testing.assert_allclose(loss, -math.log(2) - math.log1p(math.exp(-2)), rtol=1e-12)


def test_ttfs_loss_value_and_gradient():
    spikes = _spikes([1e-3, 2e-3, INF], [0, 1, -1])
    loss = ttfs_loss(spikes, jnp.array(0), 3, t_max=T_MAX, tau_mem=TAU, temperature=0.5)
    # logits -t / (0.5 ms): -2, -4, -8 (neuron 2 silent at t_max = 4 ms)
    expected = math.log(math.exp(-2) + math.exp(-4) + math.exp(-8)) - (-2)
    np.testing.assert_allclose(loss, expected, rtol=1e-12)

    def f(time):
        return ttfs_loss(Spikes(time, spikes.idx), jnp.array(0), 3, t_max=T_MAX, tau_mem=TAU)

    grad = jax.jit(jax.grad(f))(spikes.time)
    p = jax.nn.softmax(jnp.array([-1.0, -2.0, -4.0]))
    np.testing.assert_allclose(grad, [(1 - p[0]) / TAU, -p[1] / TAU, 0.0], rtol=1e-12)


def test_spike_count_regulariser():
    spikes = _spikes([1e-3, 2e-3, 3e-3, 5e-3, INF], [0, 0, 0, 1, -1])
    np.testing.assert_allclose(spike_count_regulariser(spikes, 2, 1), (4 + 0) / 2)
    np.testing.assert_allclose(spike_count_regulariser(spikes, 2, 1, t_max=T_MAX), (4 + 1) / 2)
    grad = jax.grad(lambda t: spike_count_regulariser(Spikes(t, spikes.idx), 2, 1))(spikes.time)
    np.testing.assert_array_equal(grad, np.zeros(5))


def test_predict_and_accuracy():
    batch = Spikes(
        jnp.array(
            [
                [2e-3, 1e-3, INF],  # neuron 1 first
                [1e-3, 1e-3, INF],  # tie
                [INF, INF, INF],  # silent
                [5e-3, 3e-3, INF],  # neuron 1 first, at 3 ms
            ]
        ),
        jnp.array([[0, 1, -1], [0, 1, -1], [-1, -1, -1], [0, 1, -1]], dtype=jnp.int32),
    )
    np.testing.assert_array_equal(predict(batch, 2), [1, -1, -1, 1])
    labels = jnp.array([1, 0, 0, 1])
    acc = jax.vmap(accuracy, in_axes=(0, 0, None))(batch, labels, 2)
    np.testing.assert_array_equal(acc, [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(accuracy(batch, labels, 2), acc)
    # With t_max = 2.5 ms, the 3 ms spike no longer counts: sample 3 is undecided.
    np.testing.assert_array_equal(predict(batch, 2, t_max=2.5e-3), [1, -1, -1, -1])


def _all_losses(time, idx):
    spikes = Spikes(time, idx)
    target = jnp.array([1e-3, 3e-3, 3e-3])
    kwargs = {"t_max": T_MAX, "tau_mem": TAU}
    return (
        mse_loss(spikes, target, **kwargs)
        + target_time_loss(spikes, target, **kwargs)
        + ttfs_loss(spikes, jnp.array(2), 3, **kwargs)
        + jnp.sum(first_spike_times(spikes, 3, t_max=T_MAX))
    )


def test_silent_outputs_have_finite_zero_gradients():
    # All outputs silent: every slot empty with time +inf, or valid but at/after t_max.
    time = jnp.array([INF, INF, 4e-3, INF])
    idx = jnp.array([-1, -1, 0, 2], dtype=jnp.int32)
    value, grad = jax.jit(jax.value_and_grad(_all_losses))(time, idx)
    assert np.isfinite(value)
    np.testing.assert_array_equal(grad, np.zeros(4))
    # Batched and jitted.
    batched = jax.jit(jax.vmap(jax.grad(_all_losses)))(
        jnp.stack([time, LAYER_OUTPUT.time[:4]]), jnp.stack([idx, LAYER_OUTPUT.idx[:4]])
    )
    assert np.all(np.isfinite(batched))


@jax.jit
def _ttfs(time, label):
    return ttfs_loss(Spikes(time, jnp.arange(3)), label, 3, t_max=T_MAX, tau_mem=TAU)


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.9e-3), min_size=3, max_size=3),
    st.floats(-1.0e-3, 1.0e-3),
    st.integers(0, 2),
)
def test_ttfs_loss_depends_on_time_differences_only(times, shift, label):
    # All spikes stay in [0, t_max): shifting them all leaves the loss unchanged.
    time = jnp.array(times) + 1.0e-3
    label = jnp.array(label)
    np.testing.assert_allclose(_ttfs(time, label), _ttfs(time + shift, label), rtol=1e-9)
    assert float(_ttfs(time, label)) >= 0.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: first_spike_times(LAYER_OUTPUT, 0, t_max=T_MAX), "n_neurons"),
        (lambda: first_spike_times(LAYER_OUTPUT, 2, t_max=-1.0), "t_max"),
        (lambda: mse_loss(LAYER_OUTPUT, jnp.zeros(2), t_max=T_MAX, tau_mem=0.0), "tau_mem"),
        (
            lambda: ttfs_loss(LAYER_OUTPUT, 0, 2, t_max=T_MAX, tau_mem=TAU, temperature=0.0),
            "temperature",
        ),
        (lambda: spike_count_regulariser(LAYER_OUTPUT, 1.5, 1), "n_neurons"),
        (lambda: predict(LAYER_OUTPUT, 0), "n_classes"),
    ],
)
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()
