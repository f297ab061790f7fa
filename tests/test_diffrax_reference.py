"""Tests of the Diffrax reference simulator against closed-form LIF solutions.

All tests run in float64 with the default tolerances (`rtol = atol = 1e-12`). A crossing
time error is a voltage error divided by the slope dV/dt at the crossing; with the
voltage accurate to ~1e-12 and slopes of order 1/tau, 1e-10 relative is a safe bound.
All networks have at most 8 neurons, so every test shares one compilation.
"""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

jax.config.update("jax_enable_x64", True)

import eqsnn  # noqa: E402
import eqsnn.reference._crossing as crossing  # noqa: E402
from eqsnn import LIFParameters, Spikes  # noqa: E402
from eqsnn.reference import lif_vector_field, simulate_diffrax  # noqa: E402

RTOL_TIME = 1e-10
"""Relative accuracy of well-conditioned crossing times (see module docstring)."""

# tau_mem = 2 tau_syn, so the membrane solution is a quadratic in z = exp(-t / tau_mem).
PARAMS = LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.5, v_leak=-0.1, v_reset=-1000.0)


def _inputs(times, idx):
    return Spikes(jnp.asarray(times, jnp.float64), jnp.asarray(idx, jnp.int32))


def _first_crossing_ratio2(params, u0, i0):
    """Time to threshold for tau_mem = 2 tau_syn, from V - v_leak = u0 and I = i0.

    With k = tau_syn / (tau_syn - tau_mem) = -1 and z = exp(-t / tau_mem),
    V - v_leak = (u0 - k i0) z + k i0 z^2 = (u0 + i0) z - i0 z^2. Setting it to
    theta = v_th - v_leak gives i0 z^2 - (u0 + i0) z + theta = 0; the first crossing is
    the larger root. Returns inf when there is none.
    """
    theta = params.v_th - params.v_leak
    disc = (u0 + i0) ** 2 - 4.0 * i0 * theta
    if disc < 0:
        return np.inf
    z = ((u0 + i0) + np.sqrt(disc)) / (2.0 * i0)
    return -params.tau_mem * np.log(z)


def test_single_spike_matches_quadratic():
    t_in, w = 1e-3, 3.0
    out = simulate_diffrax(PARAMS, _inputs([t_in], [0]), jnp.array([[w]]), 3, 5e-2)
    expected = t_in + _first_crossing_ratio2(PARAMS, 0.0, w)
    assert out.idx.tolist() == [0, -1, -1]
    assert out.time.dtype == jnp.float64
    assert abs(float(out.time[0]) - expected) <= RTOL_TIME * expected
    expected_current = w * np.exp(-(expected - t_in) / PARAMS.tau_syn)
    np.testing.assert_allclose(out.current[0], expected_current, rtol=1e-10)
    assert out.time[1:].tolist() == [np.inf, np.inf] and out.current[1:].tolist() == [0, 0]
    assert int(out.dropped) == 0


# Grazing: tau_mem = 2 tau_syn, V0 = 0, I0 = 4 (1 + eps) peaks at 1 + eps at t = 2 ln 2.
GRAZE = LIFParameters(tau_syn=1.0, tau_mem=2.0, v_th=1.0, v_leak=0.0, v_reset=-1000.0)


# 1e-5 and 1e-6 are regressions: the LIF's Newton root find started at a step end where
# V - v_th is nearly tangent, ran out of iterations and `simulate_diffrax` raised a
# RuntimeError (such solves are now repeated by bisection).
@pytest.mark.parametrize("overshoot", [2.5e-5, 1e-5, 1e-6, 1e-8])
def test_grazing_peak_is_detected(overshoot):
    w = 4.0 * (1.0 + overshoot)
    out = simulate_diffrax(GRAZE, _inputs([0.0], [0]), jnp.array([[w]]), 2, 10.0)
    expected = _first_crossing_ratio2(GRAZE, 0.0, w)
    assert out.idx.tolist() == [0, -1]
    # Near tangency the crossing is ill-conditioned: a voltage error dV moves the crossing
    # by dV / (dV/dt), and dV/dt ~ sqrt(overshoot) there. We allow dV = 1e-9 (1e3 atol).
    z = np.exp(-expected / GRAZE.tau_mem)
    slope = (-(w * z) + 2.0 * w * z**2) / GRAZE.tau_mem  # d/dt of w z - w z^2
    assert abs(float(out.time[0]) - expected) <= 1e-9 / abs(slope)


def test_grazing_needs_the_hidden_peak_check(monkeypatch):
    """With a 1e-8 overshoot the step ends miss the peak; the closed-form check finds it."""
    w = 4.0 * (1.0 + 1e-8)
    monkeypatch.setattr(crossing, "_first_hidden_peak", lambda seg, consts: None)
    out = simulate_diffrax(GRAZE, _inputs([0.0], [0]), jnp.array([[w]]), 2, 10.0)
    assert out.idx.tolist() == [-1, -1]


@pytest.mark.parametrize("undershoot", [2.5e-5, 1e-8])
def test_just_below_threshold_is_silent(undershoot):
    w = 4.0 * (1.0 - undershoot)
    out = simulate_diffrax(GRAZE, _inputs([0.0], [0]), jnp.array([[w]]), 2, 10.0)
    assert out.idx.tolist() == [-1, -1]
    assert int(out.dropped) == 0


def _regular_train(params, i0, t_max):
    """Spike times and currents for v_reset = v_leak and one input of weight i0 at t=0."""
    times, currents, t = [], [], 0.0
    while True:
        current = i0 * np.exp(-t / params.tau_syn)
        t = t + _first_crossing_ratio2(params, 0.0, current)
        if not t < t_max:
            return np.array(times), np.array(currents)
        times.append(t)
        currents.append(i0 * np.exp(-t / params.tau_syn))


MULTI = LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_leak=0.0, v_reset=0.0)


def test_multiple_spikes_match_closed_form():
    times, currents = _regular_train(MULTI, 20.0, 5e-2)
    assert len(times) >= 5
    out = simulate_diffrax(MULTI, _inputs([0.0], [0]), jnp.array([[20.0]]), 16, 5e-2)
    n = len(times)
    assert out.idx.tolist() == [0] * n + [-1] * (16 - n)
    np.testing.assert_allclose(out.time[:n], times, rtol=RTOL_TIME)
    np.testing.assert_allclose(np.diff(out.time[:n]), np.diff(times), rtol=RTOL_TIME)
    np.testing.assert_allclose(out.current[:n], currents, rtol=RTOL_TIME)
    assert int(out.dropped) == 0


def test_dropped_counts_every_spike_before_t_max():
    times, _ = _regular_train(MULTI, 20.0, 5e-2)
    out = simulate_diffrax(MULTI, _inputs([0.0], [0]), jnp.array([[20.0]]), 2, 5e-2)
    assert out.idx.tolist() == [0, 0]
    assert int(out.dropped) == len(times) - 2
    np.testing.assert_allclose(out.time, times[:2], rtol=RTOL_TIME)


def test_recurrent_chain():
    """Neuron 1 gets no input; it spikes only through neuron 0's recurrent weight."""
    w0, w1, t_in = 3.0, 4.0, 1e-3
    w_in = jnp.array([[w0, 0.0]])
    w_rec = jnp.array([[0.0, w1], [0.0, 0.0]])
    inputs = _inputs([t_in], [0])
    feed_forward = simulate_diffrax(PARAMS, inputs, w_in, 4, 5e-2)
    assert feed_forward.idx.tolist() == [0, -1, -1, -1]
    out = simulate_diffrax(PARAMS, inputs, w_in, 4, 5e-2, recurrent_weights=w_rec)
    t0 = t_in + _first_crossing_ratio2(PARAMS, 0.0, w0)
    t1 = t0 + _first_crossing_ratio2(PARAMS, 0.0, w1)
    assert out.idx.tolist() == [0, 1, -1, -1]
    np.testing.assert_allclose(out.time[:2], [t0, t1], rtol=RTOL_TIME)
    np.testing.assert_allclose(out.current[1], w1 * np.exp(-(t1 - t0) / PARAMS.tau_syn), rtol=1e-9)


def test_simultaneous_crossings_all_spike():
    out = simulate_diffrax(PARAMS, _inputs([1e-3], [0]), jnp.array([[3.0, 0.1, 3.0]]), 4, 5e-2)
    assert out.idx.tolist() == [0, 2, -1, -1]
    assert out.time[0] == out.time[1]


def test_unsorted_padded_and_late_inputs_are_ignored():
    w_in = jnp.array([[3.0, 1.0], [1.0, 3.0]])
    t_max = 2e-2
    clean = simulate_diffrax(PARAMS, _inputs([1e-3, 3e-3], [0, 1]), w_in, 4, t_max)
    messy = _inputs([3e-3, np.nan, 1e-3, t_max, 7.0, 2.5e-2], [1, -1, 0, 0, -1, 1])
    out = simulate_diffrax(PARAMS, messy, w_in, 4, t_max)
    assert clean.count() >= 2
    for field in ("time", "idx", "current", "dropped"):
        np.testing.assert_array_equal(getattr(out, field), getattr(clean, field))


def test_equal_time_constants():
    """tau_mem = tau_syn = tau: V - v_leak = w (t / tau) exp(-t / tau), a Lambert W root."""
    params = LIFParameters(tau_syn=5e-3, tau_mem=5e-3, v_th=0.3, v_leak=0.0, v_reset=-1000.0)
    w, t_in = 1.5, 2e-3
    out = simulate_diffrax(params, _inputs([t_in], [0]), jnp.array([[w]]), 2, 5e-2)
    x = -scipy.special.lambertw(-params.v_th / w, 0).real  # x e^{-x} = v_th / w, x < 1
    expected = t_in + params.tau_mem * x
    assert out.idx.tolist() == [0, -1]
    np.testing.assert_allclose(out.time[0], expected, rtol=RTOL_TIME)


def test_lif_vector_field_with_diffrax():
    params = LIFParameters(tau_syn=1.0, tau_mem=2.0, v_leak=0.0)
    dv, di = lif_vector_field(0.0, (jnp.array([0.5]), jnp.array([2.0])), params)
    np.testing.assert_allclose([dv[0], di[0]], [(2.0 - 0.5) / 2.0, -2.0])
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lif_vector_field),
        diffrax.Tsit5(),
        0.0,
        1.0,
        0.1,
        (jnp.zeros(1), jnp.ones(1)),
        args=params,
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12),
    )
    z = np.exp(-0.5)  # exp(-t / tau_mem) at t = 1; V = z - z^2 for I0 = 1, k = -1.
    np.testing.assert_allclose(sol.ys[0][0, 0], z - z**2, rtol=1e-10)


def test_bad_arguments_raise():
    inputs = _inputs([1e-3], [0])
    w_in = jnp.array([[1.0]])
    with pytest.raises(ValueError, match="n_spikes"):
        simulate_diffrax(PARAMS, inputs, w_in, 0, 1e-2)
    with pytest.raises(ValueError, match="t_max"):
        simulate_diffrax(PARAMS, inputs, w_in, 2, -1.0)
    with pytest.raises(ValueError, match="recurrent_weights"):
        simulate_diffrax(PARAMS, inputs, w_in, 2, 1e-2, recurrent_weights=jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="input `idx`"):
        simulate_diffrax(PARAMS, _inputs([1e-3], [3]), w_in, 2, 1e-2)
    with pytest.raises(ValueError, match=">= 0"):
        simulate_diffrax(PARAMS, _inputs([-1e-3], [0]), w_in, 2, 1e-2)
    with pytest.raises(ValueError, match="jax_enable_x64"):
        simulate_diffrax(PARAMS, inputs, w_in.astype(jnp.float32), 2, 1e-2)


# Strong all-to-all excitation: the first spike drives every other neuron across threshold
# within nanoseconds, on slopes of ~1e7 V/s, where one ulp of time (~4e-19 s at 4 ms) moves
# V by more than `atol = 1e-12`. The root finder's tolerance used to demand that anyway
# ("maximum number of steps was reached in the nonlinear solver"). `v_reset = -1e6` keeps
# each neuron to one spike, so the cascade ends.


def _all_to_all(w_rec, v_reset, n=8, n_spikes=8, t_max=2e-2):
    params = LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6, v_reset=v_reset)
    w_in = jnp.asarray(np.random.default_rng(0).uniform(0.5, 2.0, (2, n)))
    layer = eqsnn.RecurrentLIF(
        2, [n], n_spikes, t_max, params, key=jax.random.PRNGKey(0),
        connectivity=eqsnn.Connectivity.FULL,
    )  # fmt: skip
    layer = eqx.tree_at(
        lambda m: (m.weights.input, m.weights.recurrent), layer, (w_in, jnp.full((n, n), w_rec))
    )
    return layer, _inputs([1e-3, 2e-3], [0, 1])


def test_strong_all_to_all_excitation_matches_recurrent_lif():
    """Spike times as accurate as the first crossing (RTOL_TIME); the nanosecond intervals of
    the cascade to a few ulps of t: each crossing is located to <= 16 ulps (the root
    finder's floor, `_ROOT_ULPS`), so 32 ulps bounds an interval (<= 4 measured)."""
    layer, inputs = _all_to_all(1e4, v_reset=-1e6)
    ref = simulate_diffrax(
        layer.params, inputs, layer.weights.input, layer.n_spikes, layer.t_max,
        recurrent_weights=layer.weights.recurrent,
    )  # fmt: skip
    out = layer(inputs)
    assert sorted(ref.idx.tolist()) == list(range(8))  # every neuron spikes, once
    np.testing.assert_array_equal(out.idx, ref.idx)
    assert int(ref.dropped) == int(out.dropped) == 0
    np.testing.assert_allclose(out.time, ref.time, rtol=RTOL_TIME)
    intervals, ref_intervals = np.diff(out.time), np.diff(ref.time)
    assert np.max(ref_intervals) < 1e-7  # the cascade: slopes of ~1e7 V/s
    ulp = np.finfo(np.float64).eps * float(ref.time[-1])
    assert np.max(np.abs(intervals - ref_intervals)) <= 32 * ulp
    np.testing.assert_allclose(out.current, ref.current, rtol=1e-9)


def test_runaway_excitation_raises():
    """With `v_reset = 0` the same excitation never stops: the rate grows exponentially and
    the spikes before `t_max` are countless, so the reference refuses instead of running on."""
    layer, inputs = _all_to_all(2.0, v_reset=0.0, n=4)
    with pytest.raises(RuntimeError, match="max_simulated_spikes`=200 .*runs away"):
        simulate_diffrax(
            layer.params, inputs, layer.weights.input, 40, layer.t_max,
            recurrent_weights=layer.weights.recurrent, max_simulated_spikes=200,
        )  # fmt: skip
    with pytest.raises(ValueError, match="max_simulated_spikes"):
        simulate_diffrax(layer.params, inputs, layer.weights.input, 4, 1e-2, max_simulated_spikes=0)
