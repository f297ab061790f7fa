"""The Diffrax reference's per-neuron parameters, refractory period and delays (issue 17).

Every check is against an independent fact: a closed-form LIF trajectory, the same
neuron simulated alone, or the same events written as shifted or extra input spikes.

Tolerances (float64, `rtol = atol = 1e-12` on the voltage, as in
`tests/test_diffrax_reference.py`): a crossing time is a voltage error over the slope
dV/dt, so `RTOL_TIME = 1e-10` bounds crossing times against closed forms and against runs
whose solver takes other steps (other neurons in the same solve change the adaptive step
sequence). Runs that present the solver with exactly the same events (zero delays vs no
delays, `t_ref = 0` vs no `t_ref`, a per-synapse matrix with equal entries vs per-source
delays, an arrival past `t_max` vs no input) are compared bit for bit. All networks have
at most 8 neurons, so the tests share one compilation with the other reference tests.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

from eqsnn import LIFParameters, Spikes  # noqa: E402
from eqsnn.reference import simulate_diffrax, traces_diffrax  # noqa: E402

RTOL_TIME = 1e-10
"""Relative accuracy of well-conditioned crossing times (see module docstring)."""


class _Params(NamedTuple):
    """A stand-in for `LIFParameters` with arrays (the reference reads attributes only)."""

    tau_syn: object = 5e-3
    tau_mem: object = 1e-2
    v_th: object = 1.0
    v_leak: object = 0.0
    v_reset: object = 0.0
    t_ref: object = 0.0


# tau_mem = 2 tau_syn: the membrane solution is a quadratic in z = exp(-t / tau_mem).
RATIO2 = _Params()


def _inputs(times, idx):
    return Spikes(jnp.asarray(times, jnp.float64), jnp.asarray(idx, jnp.int32))


def _crossing(params, u0, i0):
    """Time to threshold from V - v_leak = u0 and I = i0, for tau_mem = 2 tau_syn.

    V(t) - v_leak = (u0 - k i0) e^{-t/tau_mem} + k i0 e^{-t/tau_syn} with
    k = tau_syn / (tau_syn - tau_mem) = -1, i.e. (u0 + i0) z - i0 z^2 with
    z = e^{-t/tau_mem}. Setting it to theta = v_th - v_leak: i0 z^2 - (u0 + i0) z + theta
    = 0; the first crossing (z falls from 1) is the larger root. inf when there is none.
    """
    theta = params.v_th - params.v_leak
    disc = (u0 + i0) ** 2 - 4.0 * i0 * theta
    if disc < 0:
        return np.inf
    return -params.tau_mem * np.log(((u0 + i0) + np.sqrt(disc)) / (2.0 * i0))


def _assert_same(a: Spikes, b: Spikes):
    for field in ("time", "idx", "current", "dropped"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def _assert_close(a: Spikes, b: Spikes):
    np.testing.assert_array_equal(a.idx, b.idx)
    np.testing.assert_allclose(a.time, b.time, rtol=RTOL_TIME)
    np.testing.assert_allclose(a.current, b.current, rtol=1e-9)
    assert int(a.dropped) == int(b.dropped)


# --- per-neuron parameters -------------------------------------------------------------

PER_NEURON = _Params(
    tau_syn=np.array([5e-3, 4e-3, 3e-3, 6e-3]),
    tau_mem=np.array([1e-2, 4e-3, 9e-3, 8e-3]),  # neuron 1: tau_mem = tau_syn
    v_th=np.array([1.0, 0.5, 0.8, 0.3]),
    v_leak=np.array([0.0, -0.1, 0.1, -0.2]),
    v_reset=np.array([0.0, -0.5, 0.1, -0.2]),
    t_ref=np.array([0.0, 2e-3, 1e-3, 5e-4]),
)
PN_INPUTS = _inputs([1e-3, 4e-3, 9e-3, 1.5e-2], [0, 1, 0, 1])
PN_WEIGHTS = np.array([[8.0, 2.0, 5.0, 1.5], [6.0, 3.0, -1.0, 2.5]])


def _alone(params, k):
    return _Params(*(np.broadcast_to(getattr(params, f), (4,))[k] for f in _Params._fields))


def test_per_neuron_parameters_match_each_neuron_alone():
    out = simulate_diffrax(PER_NEURON, PN_INPUTS, PN_WEIGHTS, 40, 3e-2)
    assert out.count() >= 8 and set(out.idx.tolist()) == {-1, 0, 1, 2, 3}
    for k in range(4):
        alone = simulate_diffrax(
            _alone(PER_NEURON, k), PN_INPUTS, PN_WEIGHTS[:, k : k + 1], 40, 3e-2
        )
        mine = out.idx == k
        n = int(np.sum(mine))
        assert n == alone.count() >= 1
        np.testing.assert_allclose(out.time[mine], alone.time[:n], rtol=RTOL_TIME)
        np.testing.assert_allclose(out.current[mine], alone.current[:n], rtol=1e-9)


def test_scalar_and_broadcast_parameters_agree_exactly():
    """A scalar and the same value repeated per neuron give the same solve, bit for bit."""
    scalar = _Params(v_th=0.7, v_reset=-0.1)
    repeated = _Params(**{f: np.full(4, getattr(scalar, f)) for f in _Params._fields})
    _assert_same(
        simulate_diffrax(scalar, PN_INPUTS, PN_WEIGHTS, 20, 3e-2),
        simulate_diffrax(repeated, PN_INPUTS, PN_WEIGHTS, 20, 3e-2),
    )


def test_per_neuron_lif_parameters():
    """The same with `eqsnn.LIFParameters` once it takes arrays and `t_ref` (issue 17)."""
    try:
        params = LIFParameters(**{f: jnp.asarray(v) for f, v in PER_NEURON._asdict().items()})
    except (TypeError, ValueError) as error:
        pytest.skip(f"LIFParameters does not take per-neuron arrays yet: {error}")
    _assert_same(
        simulate_diffrax(params, PN_INPUTS, PN_WEIGHTS, 40, 3e-2),
        simulate_diffrax(PER_NEURON, PN_INPUTS, PN_WEIGHTS, 40, 3e-2),
    )


# --- refractory period -------------------------------------------------------------------


def _refractory_train(params, w0, w1, t_max):
    """Closed-form spike train of one neuron: input w0 at t = 0, input w1 half-way through
    the first refractory period; v_reset = v_leak, so every free stretch starts at u = 0.

    On [s, s + t_ref] V is held at v_reset while I decays, so after a release at r the
    current is A e^{-r/tau_syn} with A = w0 + w1 e^{t_1/tau_syn}, and the next spike is at
    r + _crossing(0, A e^{-r/tau_syn})."""
    first = _crossing(params, 0.0, w0)
    t_in1 = first + 0.5 * params.t_ref
    amplitude = w0 + w1 * np.exp(t_in1 / params.tau_syn)
    times = [first]
    while True:
        release = times[-1] + params.t_ref
        t = release + _crossing(params, 0.0, amplitude * np.exp(-release / params.tau_syn))
        if not t < t_max:
            break
        times.append(t)
    times = np.array(times)
    currents = np.where(np.arange(len(times)) == 0, w0, amplitude) * np.exp(-times / params.tau_syn)
    return times, currents, t_in1


REFRACTORY = RATIO2._replace(t_ref=3e-3)


def test_refractory_train_matches_closed_form():
    times, currents, t_in1 = _refractory_train(REFRACTORY, 20.0, 5.0, 5e-2)
    assert len(times) >= 3
    inputs, weights = _inputs([0.0, t_in1], [0, 1]), np.array([[20.0], [5.0]])
    out = simulate_diffrax(REFRACTORY, inputs, weights, 16, 5e-2)
    n = len(times)
    assert out.idx.tolist() == [0] * n + [-1] * (16 - n)
    np.testing.assert_allclose(out.time[:n], times, rtol=RTOL_TIME)
    np.testing.assert_allclose(out.current[:n], currents, rtol=1e-9)
    assert np.min(np.diff(out.time[:n])) > REFRACTORY.t_ref


def test_refractory_intervals_under_strong_drive():
    """Driven hard, a neuron fires at least t_ref apart; with t_ref = 0 much faster."""
    inputs = _inputs(np.arange(30) * 1e-3, np.zeros(30))
    weights = np.array([[4.0]])
    fast = simulate_diffrax(RATIO2, inputs, weights, 64, 3e-2)
    slow = simulate_diffrax(RATIO2._replace(t_ref=2e-3), inputs, weights, 64, 3e-2)
    assert np.min(np.diff(fast.time[: fast.count()])) < 2e-3
    assert np.min(np.diff(slow.time[: slow.count()])) >= 2e-3
    assert 1 <= slow.count() < fast.count()


def test_zero_refractory_period_is_todays_behaviour():
    """`t_ref = 0` (scalar or per neuron) and no `t_ref` attribute give the same spikes,
    bit for bit, recurrent connections included."""

    class NoRef(NamedTuple):
        tau_syn: float = 5e-3
        tau_mem: float = 1e-2
        v_th: float = 1.0
        v_leak: float = 0.0
        v_reset: float = 0.0

    w_rec = np.array([[0.0, 2.0, 0.0, -1.0], [1.0, 0.0, 0.5, 0.0], [0.0, 0.0, 0.0, 3.0], [0.5] * 4])
    old = simulate_diffrax(NoRef(), PN_INPUTS, PN_WEIGHTS, 40, 3e-2, recurrent_weights=w_rec)
    assert old.count() >= 8
    for t_ref in (0.0, np.zeros(4)):
        new = simulate_diffrax(
            RATIO2._replace(t_ref=t_ref), PN_INPUTS, PN_WEIGHTS, 40, 3e-2, recurrent_weights=w_rec
        )
        _assert_same(new, old)


def test_refractory_traces_hold_the_voltage_and_integrate_the_current():
    """Inside the refractory period V = v_reset exactly and I follows its inputs; a period
    that reaches past t_max still ends (the voltage then rises again, no threshold)."""
    w0, w1, t_max = 20.0, 5.0, 5e-2
    times, _, t_in1 = _refractory_train(REFRACTORY, w0, w1, t_max)
    inputs, weights = _inputs([0.0, t_in1], [0, 1]), np.array([[w0], [w1]])
    s = times[0]
    probe = np.array([s + 0.25 * REFRACTORY.t_ref, s + 0.75 * REFRACTORY.t_ref])
    state = traces_diffrax(REFRACTORY, inputs, weights, probe, t_max)
    assert state.v[:, 0].tolist() == [REFRACTORY.v_reset] * 2
    current = w0 * np.exp(-probe / REFRACTORY.tau_syn)
    current[1] += w1 * np.exp(-(probe[1] - t_in1) / REFRACTORY.tau_syn)
    np.testing.assert_allclose(state.i[:, 0], current, rtol=1e-10)
    # t_max just after the first spike: held until s + t_ref, then free from v_reset = 0.
    t_max = s + 1e-4
    after = s + REFRACTORY.t_ref + 1e-3
    state = traces_diffrax(REFRACTORY, inputs, weights, np.array([s + 2e-3, after]), t_max)
    assert float(state.v[0, 0]) == REFRACTORY.v_reset
    i_r = w0 * np.exp(-(s + REFRACTORY.t_ref) / REFRACTORY.tau_syn)
    z = np.exp(-1e-3 / REFRACTORY.tau_mem)  # u(t) = i_r (z - z^2) from u = 0 (k = -1)
    np.testing.assert_allclose(state.v[1, 0], i_r * (z - z**2), rtol=1e-9)


# --- delays ----------------------------------------------------------------------------

D_INPUTS = _inputs([1e-3, 2e-3, 2e-3, 7e-3], [0, 1, 2, 0])
D_WEIGHTS = np.array([[3.0, 1.0, 2.0], [1.5, 3.0, 0.5], [0.5, 0.5, 4.0]])
D_SOURCE = np.array([2e-3, 0.0, 5e-4])


def test_per_source_input_delay_shifts_the_input_times():
    shifted = _inputs(np.asarray(D_INPUTS.time) + D_SOURCE[np.asarray(D_INPUTS.idx)], D_INPUTS.idx)
    expected = simulate_diffrax(RATIO2, shifted, D_WEIGHTS, 16, 3e-2)
    out = simulate_diffrax(RATIO2, D_INPUTS, D_WEIGHTS, 16, 3e-2, input_delays=D_SOURCE)
    assert expected.count() >= 3
    _assert_same(out, expected)
    # the same delays written per synapse (every target of an input alike)
    per_synapse = np.repeat(D_SOURCE[:, None], 3, axis=1)
    _assert_same(
        simulate_diffrax(RATIO2, D_INPUTS, D_WEIGHTS, 16, 3e-2, input_delays=per_synapse), out
    )


def test_zero_delays_are_no_delays():
    w_rec = np.array([[0.0, 1.0, -0.5], [0.5, 0.0, 1.0], [1.0, 0.5, 0.0]])
    kwargs = {"recurrent_weights": w_rec}
    plain = simulate_diffrax(RATIO2, D_INPUTS, D_WEIGHTS, 32, 3e-2, **kwargs)
    assert plain.count() >= 5
    for shape_in, shape_rec in [((3,), (3,)), ((3, 3), (3, 3))]:
        out = simulate_diffrax(
            RATIO2, D_INPUTS, D_WEIGHTS, 32, 3e-2, **kwargs,
            input_delays=np.zeros(shape_in), recurrent_delays=np.zeros(shape_rec),
        )  # fmt: skip
        _assert_same(out, plain)


def test_per_synapse_input_delays_match_each_neuron_alone():
    """Input i reaches neuron k at t + D[i, k]: neuron k alone with inputs shifted by D[:, k]."""
    delays = np.array([[0.0, 1e-3, 3e-3], [2e-3, 0.0, 1e-3], [5e-4, 4e-3, 0.0]])
    out = simulate_diffrax(RATIO2, D_INPUTS, D_WEIGHTS, 16, 3e-2, input_delays=delays)
    idx = np.asarray(D_INPUTS.idx)
    for k in range(3):
        shifted = _inputs(np.asarray(D_INPUTS.time) + delays[idx, k], idx)
        alone = simulate_diffrax(RATIO2, shifted, D_WEIGHTS[:, k : k + 1], 16, 3e-2)
        mine = out.idx == k
        n = int(np.sum(mine))
        assert n == alone.count() >= 1
        np.testing.assert_allclose(out.time[mine], alone.time[:n], rtol=RTOL_TIME)
        np.testing.assert_allclose(out.current[mine], alone.current[:n], rtol=1e-9)


def test_arrival_at_or_after_t_max_is_ignored():
    t_max = 2e-2
    without = simulate_diffrax(RATIO2, _inputs([1e-3], [0]), D_WEIGHTS[:1], 8, t_max)
    for delay in (t_max - 1.5e-2, 1.0):  # arrives exactly at t_max, and long after
        out = simulate_diffrax(
            RATIO2, _inputs([1e-3, 1.5e-2], [0, 1]), D_WEIGHTS[:2], 8, t_max,
            input_delays=np.array([0.0, delay]),
        )  # fmt: skip
        _assert_same(out, without)


def test_recurrent_delay_is_an_input_spike_at_the_arrival():
    """Neuron 0 (driven) excites 1 and 2 through delays 2 ms and 5 ms: 1 and 2 spike as if
    an input arrived at s + D; each then follows the closed form from rest."""
    w, t_in = 6.0, 1e-3
    params = RATIO2._replace(v_reset=-1000.0)  # one spike each
    w_in = np.array([[w, 0.0, 0.0]])
    w_rec = np.array([[0.0, w, w], [0.0] * 3, [0.0] * 3])
    delays = np.array([[0.0, 2e-3, 5e-3], [0.0] * 3, [0.0] * 3])
    out = simulate_diffrax(
        params, _inputs([t_in], [0]), w_in, 4, 3e-2, recurrent_weights=w_rec,
        recurrent_delays=delays,
    )  # fmt: skip
    s = t_in + _crossing(params, 0.0, w)
    expected = [s, s + 2e-3 + _crossing(params, 0.0, w), s + 5e-3 + _crossing(params, 0.0, w)]
    assert out.idx.tolist() == [0, 1, 2, -1]
    np.testing.assert_allclose(out.time[:3], expected, rtol=RTOL_TIME)  # emission times
    # the same arrivals written as input spikes
    extra = _inputs([t_in, float(out.time[0]) + 2e-3, float(out.time[0]) + 5e-3], [0, 1, 2])
    as_inputs = simulate_diffrax(
        params, extra, np.vstack([w_in, w_rec[0] * np.eye(3)[1:]]), 4, 3e-2
    )
    _assert_close(out, as_inputs)
    # per-source delays: both targets at s + 2 ms
    out = simulate_diffrax(
        params, _inputs([t_in], [0]), w_in, 4, 3e-2, recurrent_weights=w_rec,
        recurrent_delays=np.array([2e-3, 0.0, 0.0]),
    )  # fmt: skip
    assert out.idx.tolist() == [0, 1, 2, -1] and out.time[1] == out.time[2]
    np.testing.assert_allclose(out.time[1], expected[1], rtol=RTOL_TIME)


def test_delayed_arrivals_in_traces():
    """Before the delayed arrival the current is 0; after it, w e^{-(t - t_a)/tau_syn}."""
    t_arrive = 1e-3 + 4e-3
    probe = np.array([t_arrive - 1e-4, t_arrive, t_arrive + 1e-3])
    state = traces_diffrax(
        RATIO2, _inputs([1e-3], [0]), np.array([[0.5]]), probe, 2e-2, input_delays=np.array([4e-3])
    )
    expected = np.where(probe > t_arrive, 0.5 * np.exp(-(probe - t_arrive) / 5e-3), 0.0)
    np.testing.assert_allclose(state.i[:, 0], expected, rtol=1e-10, atol=0)


# --- errors ------------------------------------------------------------------------------


W_REC = np.zeros((3, 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_delays": np.array([0.0, -1e-3, 0.0])}, r"must be finite and >= 0.*-0\.001"),
        ({"input_delays": np.array([0.0, np.inf, 0.0])}, "must be finite and >= 0"),
        ({"input_delays": np.zeros(4)}, r"must have shape \(3,\) .* got shape \(4,\)"),
        ({"input_delays": np.zeros((3, 2))}, r"\(3, 3\) \(per synapse\), got shape \(3, 2\)"),
        ({"recurrent_delays": np.zeros(3)}, "needs `recurrent_weights`"),
        ({"recurrent_weights": W_REC, "recurrent_delays": np.zeros(2)}, r"shape \(3,\)"),
        ({"recurrent_weights": W_REC, "recurrent_delays": -np.ones((3, 3))}, ">= 0"),
    ],
)
def test_bad_delays_raise(kwargs, message):
    name = "input_delays" if "input_delays" in kwargs else "recurrent_delays"
    with pytest.raises(ValueError, match=f"simulate_diffrax: `{name}` .*{message}"):
        simulate_diffrax(RATIO2, D_INPUTS, D_WEIGHTS, 4, 1e-2, **kwargs)


def test_bad_delays_raise_in_traces():
    with pytest.raises(ValueError, match="traces_diffrax: `input_delays` must be finite"):
        traces_diffrax(
            RATIO2, D_INPUTS, D_WEIGHTS, np.array([1e-3]), 1e-2, input_delays=-np.ones(3)
        )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("v_th", np.ones(4), r"must be a scalar or an array of shape \(3,\) .*got shape \(4,\)"),
        (
            "t_ref",
            np.array([0.0, -1e-3, 0.0]),
            r"must be >= 0 \(seconds\), got -0.001 for neuron 1",
        ),
        ("tau_mem", np.array([1e-2, 0.0, 1e-2]), "must be positive"),
        ("v_reset", np.array([0.0, 2.0, 0.0]), "must be below `v_th`"),
        ("v_leak", np.array([0.0, np.nan, 0.0]), "must be finite"),
    ],
)
def test_bad_per_neuron_parameters_raise(field, value, message):
    params = RATIO2._replace(**{field: value})
    with pytest.raises(ValueError, match=f"simulate_diffrax: `params.{field}` {message}"):
        simulate_diffrax(params, _inputs([1e-3], [0]), np.ones((1, 3)), 4, 1e-2)
