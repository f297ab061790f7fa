"""Tests for eqsnn.encode: latency encoding of features and target spike times."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eqsnn import Spikes
from eqsnn.encode import spatio_temporal_encode, target_temporal_encode

T_LATE = 2.0e-2


def test_times_indices_sorted():
    spikes = spatio_temporal_encode(jnp.array([0.5, 0.25, 1.0, 0.0]), T_LATE)
    assert isinstance(spikes, Spikes)
    np.testing.assert_allclose(spikes.time, [0.0, 0.005, 0.01, 0.02], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(spikes.idx, [3, 1, 0, 2])
    np.testing.assert_array_equal(spikes.current, np.zeros(4))
    assert spikes.idx.dtype == jnp.int32 and spikes.time.dtype == jnp.float64


def test_bias_time():
    # The last feature is the bias: its value is ignored and its spike is at t_bias.
    spikes = spatio_temporal_encode(jnp.array([0.5, 0.25, 0.9]), T_LATE, t_bias=0.007)
    np.testing.assert_allclose(spikes.time, [0.005, 0.007, 0.01], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(spikes.idx, [1, 2, 0])


def test_duplication_same_neuron():
    spikes = spatio_temporal_encode(jnp.array([0.5, 0.25]), T_LATE, 3)
    np.testing.assert_allclose(spikes.time, [0.005] * 3 + [0.01] * 3, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(spikes.idx, [1, 1, 1, 0, 0, 0])


def test_duplication_separate_neurons():
    spikes = spatio_temporal_encode(jnp.array([0.5, 0.25]), T_LATE, 3, True)
    np.testing.assert_allclose(spikes.time, [0.005] * 3 + [0.01] * 3, rtol=0, atol=1e-15)
    # Copy j of feature i is neuron i * d + j.
    np.testing.assert_array_equal(spikes.idx, [3, 4, 5, 0, 1, 2])


def test_batch_vmap_and_jit_agree():
    inputs = jnp.array([[0.5, 0.25, 0.1], [0.0, 0.9, 0.3]])
    batched = spatio_temporal_encode(inputs, T_LATE, 2, True, t_bias=0.0)
    mapped = jax.vmap(lambda x: spatio_temporal_encode(x, T_LATE, 2, True, t_bias=0.0))(inputs)
    jitted = jax.jit(lambda x: spatio_temporal_encode(x, T_LATE, 2, True, t_bias=0.0))(inputs)
    for other in (mapped, jitted):
        np.testing.assert_array_equal(batched.time, other.time)
        np.testing.assert_array_equal(batched.idx, other.idx)
    assert batched.time.shape == (2, 6) and batched.dropped.shape == (2,)


_encode_jit = jax.jit(spatio_temporal_encode, static_argnums=(1, 2, 3))


@settings(max_examples=40, deadline=None)
@given(
    # No values below 1e-6: their times would be subnormal, which XLA flushes to zero.
    hnp.arrays(np.float64, 5, elements=st.just(0.0) | st.floats(1e-6, 1.0)),
    st.sampled_from([(None, False), (2, False), (3, True)]),
)
def test_encoding_invariants(values, duplication_mode):
    duplication, duplicate_neurons = duplication_mode
    spikes = _encode_jit(values, T_LATE, duplication, duplicate_neurons)
    time, idx = np.asarray(spikes.time), np.asarray(spikes.idx)
    d = duplication or 1
    assert time.shape == (values.size * d,)
    assert np.all(np.diff(time) >= 0)
    feature = idx // d if duplicate_neurons else idx
    np.testing.assert_allclose(time, values[feature] * T_LATE, rtol=1e-15, atol=0)
    counts = np.bincount(idx, minlength=values.size * (d if duplicate_neurons else 1))
    assert np.all(counts == (1 if duplicate_neurons else d))


def test_gradient_through_times():
    grad = jax.grad(lambda x: jnp.sum(spatio_temporal_encode(x, T_LATE).time))(
        jnp.array([0.3, 0.6])
    )
    np.testing.assert_allclose(grad, [T_LATE, T_LATE], rtol=1e-15)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((jnp.array(0.5), T_LATE), {}, "inputs"),
        ((jnp.array([0.5]), -1.0), {}, "t_late"),
        ((jnp.array([0.5]), T_LATE, 0), {}, "duplication"),
        ((jnp.array([0.5]), T_LATE, 2.0), {}, "duplication"),
    ],
)
def test_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        spatio_temporal_encode(*args, **kwargs)


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan")])
def test_out_of_range_values_raise(value):
    with pytest.raises(Exception, match=r"\[0, 1\]"):
        spatio_temporal_encode(jnp.array([0.5, value]), T_LATE)


def test_bias_value_is_not_range_checked():
    spikes = spatio_temporal_encode(jnp.array([0.5, 7.0]), T_LATE, t_bias=0.0)
    np.testing.assert_array_equal(spikes.idx, [1, 0])


def test_target_temporal_encode():
    single = target_temporal_encode(jnp.array(1), 3, 1e-3, 3e-3)
    np.testing.assert_array_equal(single, [3e-3, 1e-3, 3e-3])
    batch = target_temporal_encode(jnp.array([[0, 2]]), 3, 1e-3, 3e-3)
    assert batch.shape == (1, 2, 3)
    np.testing.assert_array_equal(batch[0], [[1e-3, 3e-3, 3e-3], [3e-3, 3e-3, 1e-3]])
    assert int(jnp.argmin(single)) == 1


def test_target_temporal_encode_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        target_temporal_encode(jnp.array(0), 0, 1e-3, 3e-3)
    with pytest.raises(ValueError, match="t_correct"):
        target_temporal_encode(jnp.array(0), 3, 3e-3, 1e-3)
    with pytest.raises(TypeError, match="labels"):
        target_temporal_encode(jnp.array(0.0), 3, 1e-3, 3e-3)
