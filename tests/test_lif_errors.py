"""Bad input and overflow of the feed-forward `eqsnn.LIF` layer (issue 2).

Static misuse raises `ValueError`/`TypeError` naming the argument and the value; checks of
values under `jit` raise `eqx.EquinoxRuntimeError` through `eqx.error_if`. Spikes that do
not fit a budget are counted in `dropped`, compared with the Diffrax reference's count.

Spike times are compared with `simulate_diffrax` (rtol = atol = 1e-12 on the voltage) to
1e-9 relative, as in test_lif.py. All layers here share one small shape, so that each
configuration compiles once.
"""

import functools
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqsnn import LIF, EventLoop, IntervalScan, LIFParameters, Overflow, Spikes, WindowScan
from eqsnn.reference import simulate_diffrax

T_MAX = 0.05
RTOL_DIFFRAX = 1e-9
"""Spike times vs the Diffrax reference (see test_lif.py)."""

# Two inputs (given out of order), three neurons. True spikes (ms), by neuron:
# 0: 2.58, 5.07 | 8.37, 9.69, 11.5, 14.9;  1: 3.37 | 8.30, 11.3;  2: 10.6 (10 in all;
# "|" is the second input at 8 ms).
PARAMS = LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.5, v_leak=0.0, v_reset=0.0)
INPUTS = Spikes(jnp.array([8e-3, 1e-3]), jnp.array([1, 0]))
WEIGHTS = jnp.array([[4.0, 3.0, 1.0], [4.0, 2.0, 1.5]])
IN_SIZE, OUT_SIZE, N_SPIKES, N_TRUE = 2, 3, 16, 10


def _layer(per_interval=4, n_spikes=N_SPIKES, overflow=Overflow.COUNT):
    layer = LIF(
        IN_SIZE, OUT_SIZE, n_spikes, T_MAX, PARAMS, key=jax.random.PRNGKey(0),
        engine=IntervalScan(max_spikes_per_interval=per_interval), overflow=overflow,
    )  # fmt: skip
    return eqx.tree_at(lambda m: m.weights.input, layer, WEIGHTS)


@eqx.filter_jit
def _simulate(layer, spikes):
    return layer(spikes)


@functools.cache
def _reference(n_spikes=N_SPIKES):
    return simulate_diffrax(PARAMS, INPUTS, WEIGHTS, n_spikes, T_MAX)


def _sorted_pairs(out):
    valid = np.asarray(out.idx) >= 0
    time, idx = np.asarray(out.time)[valid], np.asarray(out.idx)[valid]
    order = np.lexsort((idx, time))
    return time[order], idx[order]


def _assert_same_spikes(out, ref):
    t, i = _sorted_pairs(out)
    t_ref, i_ref = _sorted_pairs(ref)
    assert i.tolist() == i_ref.tolist()
    np.testing.assert_allclose(t, t_ref, rtol=RTOL_DIFFRAX, atol=0)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("time", [jnp.nan, -1e-3])
def test_bad_input_times_raise(time):
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"non-negative and not NaN"):
        _simulate(_layer(), Spikes(INPUTS.time.at[1].set(time), INPUTS.idx))


def test_bad_times_in_empty_slots_are_accepted():
    idx = INPUTS.idx.at[0].set(-1)
    expected = _simulate(_layer(), Spikes(INPUTS.time.at[0].set(0.0), idx))
    assert int(expected.count()) > 0
    for time in (jnp.nan, -1e-3):
        out = _simulate(_layer(), Spikes(INPUTS.time.at[0].set(time), idx))
        assert np.array_equal(out.time, expected.time)
        assert np.array_equal(out.idx, expected.idx)


@pytest.mark.parametrize("bad_idx", [IN_SIZE, IN_SIZE + 3, -2])
def test_bad_input_indices_raise(bad_idx):
    with pytest.raises(eqx.EquinoxRuntimeError, match=re.escape(f"[-1, in_size={IN_SIZE})")):
        _simulate(_layer(), Spikes(INPUTS.time, INPUTS.idx.at[1].set(bad_idx)))


def test_mismatched_spike_arrays_raise():
    with pytest.raises(ValueError, match=r"`time` and `idx` must have the same shape"):
        Spikes(time=jnp.zeros(3), idx=jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match=r"`current` must have the same shape"):
        Spikes(time=jnp.zeros(3), idx=jnp.zeros(3, jnp.int32), current=jnp.zeros(4))
    with pytest.raises(TypeError, match=r"`idx` must hold integers"):
        Spikes(time=jnp.zeros(3), idx=jnp.zeros(3))


def test_batched_spikes_without_vmap_raise():
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), INPUTS)
    with pytest.raises(ValueError, match=r"use jax.vmap"):
        eqx.filter_eval_shape(_layer(), batch)


@pytest.mark.parametrize("shape", [(IN_SIZE, OUT_SIZE + 1), (IN_SIZE - 1, OUT_SIZE)])
def test_wrong_weight_shape_raises_on_call(shape):
    bad = eqx.tree_at(lambda m: m.weights.input, _layer(), jnp.ones(shape))
    with pytest.raises(ValueError, match=r"weights.input"):
        eqx.filter_eval_shape(bad, INPUTS)  # traces only: a static shape check suffices


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_spikes": 0}, ValueError, r"`n_spikes` must be an int >= 1, got 0"),
        ({"n_spikes": 2.5}, ValueError, r"`n_spikes` must be an int >= 1, got 2.5"),
        ({"in_size": 0}, ValueError, r"`in_size` must be an int >= 1, got 0"),
        ({"out_size": -1}, ValueError, r"`out_size` must be an int >= 1, got -1"),
        ({"t_max": 0.0}, ValueError, r"`t_max` must be positive.*got 0.0"),
        ({"t_max": -1.0}, ValueError, r"`t_max` must be positive.*got -1.0"),
        ({"t_max": float("nan")}, ValueError, r"`t_max` must be positive.*got nan"),
        ({"t_max": float("inf")}, ValueError, r"`t_max` must be positive.*got inf"),
        ({"engine": "interval"}, TypeError, r"^LIF: `engine` must be an eqsnn engine"),
        ({"adjoint": "eventprop"}, TypeError, r"^LIF: `adjoint` must be eqsnn.AutoDiff\(\)"),
        ({"duplication": 4}, ValueError, r"`in_size` \(6\) must be a multiple"),
        ({"overflow": "error"}, TypeError, r"`overflow` must be an eqsnn.Overflow"),
        ({"params": {"v_th": 1.0}}, TypeError, r"`params` must be an eqsnn.LIFParameters"),
    ],
)
def test_bad_constructor_arguments_raise(kwargs, error, match):
    args = {"in_size": 6, "out_size": 5, "n_spikes": 4, "t_max": T_MAX, **kwargs}
    with pytest.raises(error, match=match):
        LIF(**args, key=jax.random.PRNGKey(0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        *[({field: float("nan")}, rf"`{field}` must be finite, got nan") for field in
          ("tau_syn", "tau_mem", "v_th", "v_leak", "v_reset")],
        ({"tau_syn": 0.0}, r"`tau_syn` must be positive \(seconds\), got 0.0"),
        ({"tau_mem": -1e-3}, r"`tau_mem` must be positive \(seconds\), got -0.001"),
        ({"v_th": 0.1, "v_leak": 0.1}, r"`v_th` must be greater than `v_leak`.*v_th=0.1"),
        ({"v_reset": 0.6}, r"`v_reset` must be below `v_th`.*v_reset=0.6"),
        ({"v_reset": 1.0}, r"`v_reset` must be below `v_th`.*v_reset=1.0"),
    ],
)  # fmt: skip
def test_bad_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LIFParameters(**kwargs)


# --- overflow ---------------------------------------------------------------------------------


def test_enough_room_matches_diffrax():
    out, ref = _simulate(_layer(), INPUTS), _reference()
    assert int(ref.count()) == N_TRUE and int(ref.dropped) == 0
    assert int(out.dropped) == 0
    _assert_same_spikes(out, ref)


def test_dropped_counts_the_exact_excess():
    n_small = 6
    out = _simulate(_layer(n_spikes=n_small), INPUTS)
    ref = _reference(n_small)
    assert int(out.dropped) == int(ref.dropped) == N_TRUE - n_small
    # The earliest n_small spikes (of all neurons together) are kept.
    assert int(out.count()) == n_small
    _assert_same_spikes(out, ref)
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"more spikes than the buffer holds"):
        _simulate(_layer(n_spikes=n_small, overflow=Overflow.ERROR), INPUTS)


def test_exceeding_max_spikes_per_interval_is_reported():
    # Neuron 0 spikes 4 times after the second input: 2 per interval do not suffice.
    out, ref = _simulate(_layer(per_interval=2), INPUTS), _reference()
    assert int(out.dropped) > 0
    # The spikes before the first lost one (neuron 0 at 11.5 ms) are the true ones.
    head = 8
    assert float(ref.time[head - 1]) < 11.5e-3 < float(ref.time[head])
    _assert_same_spikes(
        Spikes(out.time[:head], out.idx[:head]), Spikes(ref.time[:head], ref.idx[:head])
    )


def test_exceeding_max_spikes_per_interval_counts_exactly():
    # The interval scan counts every crossing beyond the budget and resets the neuron
    # at it, so that neuron's later spikes stay true (neuron 0 loses 2 of its 4 spikes in
    # the second interval).
    out = _simulate(_layer(per_interval=2), INPUTS)
    t, _ = _sorted_pairs(out)
    t_ref, _ = _sorted_pairs(_reference())
    # Every emitted spike is a true spike, and emitted + dropped = all true spikes.
    assert all(np.min(np.abs(t_ref - s)) <= RTOL_DIFFRAX * s for s in t)
    assert len(t) + int(out.dropped) == len(t_ref) and int(out.dropped) == 2


@pytest.mark.parametrize(
    "engine", [WindowScan(max_spikes_per_neuron=4), IntervalScan(), EventLoop()], ids=repr
)
def test_an_empty_input_buffer_gives_no_spikes_and_zero_gradients(engine):
    # A buffer of zero slots (e.g. a silent upstream layer sliced to nothing) is valid input.
    layer = LIF(
        IN_SIZE, OUT_SIZE, N_SPIKES, T_MAX, PARAMS, key=jax.random.PRNGKey(0), engine=engine
    )
    layer = eqx.tree_at(lambda m: m.weights.input, layer, WEIGHTS)
    empty = Spikes(jnp.zeros((0,)), jnp.zeros((0,), jnp.int32))

    def loss(layer, time):
        out = layer(Spikes(time, empty.idx))
        return jnp.sum(jnp.where(out.idx >= 0, out.time, 0.0)) + jnp.sum(out.current), out

    # The spikes come with the gradient (one program; a plain call would compile another).
    (_, out), (grad_layer, grad_time) = eqx.filter_value_and_grad(
        lambda lt: loss(*lt), has_aux=True
    )((layer, empty.time))
    assert int(out.count()) == 0 and int(out.dropped) == 0
    assert grad_time.shape == (0,)
    np.testing.assert_array_equal(grad_layer.weights.input, np.zeros((IN_SIZE, OUT_SIZE)))
