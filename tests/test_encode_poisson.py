"""Tests for eqsnn.encode.poisson_encode: rate statistics, the fixed buffer, transformations.

The statistical tests draw many samples with a fixed key, so they are deterministic; each
tolerance is five standard errors of the statistic under the Poisson model, so a correct
encoder fails them with probability below 1e-6 for any key.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn.encode import poisson_encode

T_MAX = 0.1
RATES = jnp.array([20.0, 100.0, 0.0, 50.0])  # Hz: means 2, 10, 0 and 5 spikes in T_MAX
M = 4000  # samples
KEY = jax.random.PRNGKey(0)


def _batch(n_slots, overflow=eqsnn.Overflow.COUNT, key=KEY):
    return poisson_encode(jnp.tile(RATES, (M, 1)), T_MAX, n_slots, key=key, overflow=overflow)


def _counts(spikes) -> np.ndarray:
    """Spikes per sample and input, shape (M, n_inputs)."""
    idx = np.asarray(spikes.idx)
    return np.stack([(idx == i).sum(axis=-1) for i in range(RATES.size)], axis=-1)


def test_counts_are_poisson_with_mean_rate_times_t_max():
    # 64 slots for a total mean of 17: P(more than 64 spikes) < 1e-15, so nothing is lost.
    spikes = _batch(64)
    assert int(np.sum(spikes.dropped)) == 0
    counts = _counts(spikes)
    mean = np.asarray(RATES) * T_MAX
    # Poisson: the count's variance is its mean; the sample variance's variance is about
    # (mean + 2 mean^2) / M.
    assert np.all(np.abs(counts.mean(0) - mean) <= 5 * np.sqrt(mean / M))
    assert np.all(np.abs(counts.var(0) - mean) <= 5 * np.sqrt((mean + 2 * mean**2) / M))
    assert np.all(counts[:, 2] == 0)  # a zero rate never spikes


def test_times_are_uniform_sorted_and_before_t_max():
    spikes = _batch(64)
    time, valid = np.asarray(spikes.time), np.asarray(spikes.valid)
    t = time[valid]
    assert np.all((t >= 0) & (t < T_MAX))
    assert np.all(np.isinf(time[~valid]))
    assert np.all(time[:, 1:] >= time[:, :-1])  # sorted, empty slots (inf) last
    # Uniform on [0, T_MAX): mean T_MAX / 2, standard deviation T_MAX / sqrt(12) per spike.
    assert abs(t.mean() - T_MAX / 2) < 5 * T_MAX / np.sqrt(12 * t.size)
    # ... in each fifth of the interval a fifth of the spikes (binomial, 5 sigma).
    share = np.histogram(t, bins=5, range=(0, T_MAX))[0] / t.size
    assert np.all(np.abs(share - 0.2) < 5 * np.sqrt(0.2 * 0.8 / t.size))


def test_spikes_beyond_the_slots_are_counted_in_dropped():
    spikes = _batch(4)  # total mean 17 spikes, 4 slots
    count, dropped = np.asarray(spikes.count()), np.asarray(spikes.dropped)
    assert np.all(count[dropped > 0] == 4)  # only a full buffer drops
    assert np.mean(dropped > 0) > 0.9
    total = count + dropped  # the number the process produced: Poisson, mean 17
    mean = float(jnp.sum(RATES)) * T_MAX
    assert abs(total.mean() - mean) < 5 * np.sqrt(mean / M)
    assert abs(total.var() - mean) < 5 * np.sqrt((mean + 2 * mean**2) / M)


COUNT = eqsnn.Overflow.COUNT


def test_overflow_policies():
    # 4 slots for a mean of 17 spikes (10x the rates for the error): the buffer overflows.
    eqsnn.reset_dropped_warnings()
    with pytest.warns(eqsnn.SpikesDroppedWarning, match="n_slots"):
        jax.block_until_ready(poisson_encode(10 * RATES, T_MAX, 4, key=KEY).time)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert int(poisson_encode(RATES, T_MAX, 4, key=KEY, overflow=COUNT).dropped) > 0
    with pytest.raises(Exception, match="n_slots"):
        jax.block_until_ready(
            poisson_encode(10 * RATES, T_MAX, 4, key=KEY, overflow=eqsnn.Overflow.ERROR).time
        )


def test_shapes_and_sources():
    spikes = poisson_encode(jnp.ones((2, 3, 5)), T_MAX, 7, key=KEY)
    assert spikes.time.shape == spikes.idx.shape == (2, 3, 7)
    assert spikes.dropped.shape == (2, 3)
    assert spikes.n_sources == 5
    assert spikes.idx.dtype == jnp.int32 and spikes.time.dtype == jnp.float64
    np.testing.assert_array_equal(spikes.current, np.zeros((2, 3, 7)))
    silent = poisson_encode(jnp.zeros(4), T_MAX, 4, key=KEY)
    np.testing.assert_array_equal(silent.idx, [-1] * 4)
    assert int(silent.dropped) == 0


# One compiled encoder (4 rates, 4 slots) under `jit`, shared by the tests that need one.
_jitted_encode = eqx.filter_jit(lambda r, k: poisson_encode(r, T_MAX, 4, key=k, overflow=COUNT))


def test_jit_and_vmap_agree_with_eager():
    keys = jax.random.split(KEY, 3)
    eager = [poisson_encode(RATES, T_MAX, 4, key=k, overflow=COUNT) for k in keys]
    mapped = jax.vmap(lambda k: poisson_encode(RATES, T_MAX, 4, key=k, overflow=COUNT))(keys)
    jitted = _jitted_encode
    for n, one in enumerate(eager):
        for field in ("time", "idx", "dropped"):
            np.testing.assert_array_equal(getattr(mapped, field)[n], getattr(one, field))
    np.testing.assert_array_equal(jitted(RATES, keys[1]).time, eager[1].time)
    # Another key, another draw.
    assert not np.array_equal(eager[0].time, eager[1].time)


def test_feeds_a_layer():
    spikes = poisson_encode(RATES, T_MAX, 4, key=KEY, overflow=COUNT)
    layer = eqsnn.LIF(4, 2, n_spikes=8, t_max=T_MAX, key=KEY, overflow=COUNT)
    out = layer(spikes)
    assert out.n_sources == 2
    assert int(out.dropped) >= int(spikes.dropped)  # the encoder's losses reach the output


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((jnp.array(5.0), T_MAX, 4), {}, ValueError, "rates"),
        ((jnp.array([5.0, -1.0]), T_MAX, 4), {}, ValueError, "rates"),
        ((jnp.array([jnp.nan]), T_MAX, 4), {}, ValueError, "rates"),
        ((jnp.array([jnp.inf]), T_MAX, 4), {}, ValueError, "rates"),
        ((RATES, 0.0, 4), {}, ValueError, "t_max"),
        ((RATES, T_MAX, 0), {}, ValueError, "n_slots"),
        ((RATES, T_MAX, 4.0), {}, ValueError, "n_slots"),
        ((RATES, T_MAX, 4), {"key": None}, TypeError, "key"),
        ((RATES, T_MAX, 4), {"key": jax.random.split(KEY, 2)}, TypeError, "key"),
        ((RATES, T_MAX, 4), {"overflow": "warn"}, TypeError, "overflow"),
    ],
)
def test_bad_arguments(args, kwargs, error, match):
    kwargs = {"key": KEY, **kwargs}
    with pytest.raises(error, match=match):
        poisson_encode(*args, **kwargs)


def test_bad_rates_under_jit_raise_at_run_time():
    # The compiled program of `test_jit_and_vmap_agree_with_eager` (one compilation less).
    with pytest.raises(Exception, match="rates"):
        jax.block_until_ready(_jitted_encode(jnp.array([1.0, -1.0, 5.0, 0.0]), KEY).time)
