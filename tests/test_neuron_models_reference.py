"""The ALIF and IF neuron models against the Diffrax reference.

`eqsnn.reference.simulate_diffrax` integrates each model's ODE numerically (Tsit5, PID
step control with rtol = atol = 1e-12) and locates the crossings with Diffrax's event
root finder; the layers use the closed forms of `eqsnn.neurons`. For each model:
feed-forward layers with constant parameters, a layered recurrent layer with per-neuron
parameters and per-synapse delays, and a peak of the distance to threshold 1e-9 above
and below it.

**Tolerance.** A crossing time error is a voltage error over the slope of the distance
to threshold at the crossing, so each spike time may differ by `V_TOL / slope` (the
slope computed from the spike's current and, for the ALIF, the adaptation left by the
neuron's earlier spikes; 20-400 V/s here, so about 1e-12-1e-11 s, 1e-10-1e-9 relative).
`V_TOL` = 1e-9 bounds the reference's global voltage error: the step size controller
holds each step's local error to ~atol + rtol |y| ~ 1e-12, and one simulation takes ~1000
accepted steps (57 solves), whose errors add up (the ALIF's adaptation and the currents
carry them from event to event). Measured: up to 1.3e-10 V (1.1e-12 s late) in the
recurrent ALIF layer, while the layer is within 3e-17 s of an 80-bit closed-form
simulation of the same network. The root finder stops within atol = 1e-12 of threshold.

Compilation dominates: every feed-forward layer of one model shares one compiled program
(same shapes and float parameters; the grazing cases too), and every reference call of
one model shares one (networks of <= 8 neurons).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq

jax.config.update("jax_enable_x64", True)

import eqsnn  # noqa: E402
from eqsnn.reference import simulate_diffrax  # noqa: E402

V_TOL = 1e-9
"""Voltage accuracy of the reference at a crossing (see the module docstring)."""

N_IN, N_OUT, T_MAX = 3, 4, 0.08
N_SLOTS, N_SPIKES, BUDGET = 16, 64, 14

# Time constants pairwise distinct (tau_adapt the slowest), beta > 0.
ALIF = eqsnn.ALIFParameters(
    tau_syn=5e-3, tau_mem=1e-2, v_th=0.5, v_leak=-0.1, v_reset=-0.2, tau_adapt=3e-2, beta=0.2
)
IF = eqsnn.IFParameters(tau_syn=3e-3, tau_mem=1e-2, v_th=0.5, v_init=-0.1, v_reset=-0.2)
MODELS = {"alif": ALIF, "if": IF}
MEAN = {"alif": 1.4, "if": 0.9}  # input weights that make neurons fire several times


@eqx.filter_jit
def _run(layer, spikes):
    return layer(spikes)


def _inputs(seed, n=N_SLOTS):
    """`n` input spikes uniform in [0, 50 ms) on random inputs, the first slot empty."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, N_IN, n)
    idx[0] = -1
    return eqsnn.Spikes(
        time=jnp.asarray(rng.uniform(0.0, 0.05, n)), idx=jnp.asarray(idx, jnp.int32)
    )


def _layer(params, seed, mean, delays=None):
    return eqsnn.LIF(
        N_IN, N_OUT, N_SPIKES, T_MAX, params, key=jax.random.key(seed), mean=mean, std=0.4,
        delays=delays, engine=eqsnn.WindowScan(max_spikes_per_neuron=BUDGET),
        overflow=eqsnn.Overflow.COUNT,
    )  # fmt: skip


def _per_neuron(params, n):
    return {
        name: np.broadcast_to(np.asarray(getattr(params, name), np.float64), (n,))
        for name in params._FIELDS
    }


def _slopes(params, spikes, n):
    """Rate of change of the distance to threshold at each spike, from its current: IF
    I / tau_mem; ALIF (v_leak - V + I) / tau_mem + a / tau_adapt at V = v_th + a, with
    a = beta * sum exp(-(s - s') / tau_adapt) over the neuron's earlier spikes s'."""
    p = _per_neuron(params, n)
    count = int(spikes.count())
    times, idx = np.asarray(spikes.time[:count]), np.asarray(spikes.idx[:count])
    current = np.asarray(spikes.current[:count])
    slopes = np.empty(count)
    for k, (s, m, i) in enumerate(zip(times, idx, current, strict=True)):
        if "beta" not in p:
            slopes[k] = i / p["tau_mem"][m]
            continue
        earlier = times[:k][idx[:k] == m]
        a = p["beta"][m] * np.sum(np.exp(-(s - earlier) / p["tau_adapt"][m]))
        v = p["v_th"][m] + a
        slopes[k] = (p["v_leak"][m] - v + i) / p["tau_mem"][m] + a / p["tau_adapt"][m]
    return slopes


def _assert_matches(out, ref, params, n):
    """Same spikes (neurons, times within V_TOL / slope, currents); returns the count."""
    count = int(ref.count())
    assert int(out.count()) == count and int(out.dropped) == 0 and int(ref.dropped) == 0
    np.testing.assert_array_equal(out.idx, ref.idx)
    slopes = _slopes(params, ref, n)
    assert np.all(slopes > 0)  # crossings from below
    error = np.abs(np.asarray(out.time[:count]) - np.asarray(ref.time[:count]))
    assert np.all(error <= V_TOL / slopes), (error * slopes).max()
    # dI/dt = -I / tau_syn: a time error moves the current by at most |I| error / tau_syn.
    np.testing.assert_allclose(out.current[:count], ref.current[:count], rtol=1e-8, atol=1e-10)
    assert not np.any(np.isnan(np.asarray(out.time))) and not np.any(np.isnan(out.current))
    return count


def _bursts(out, count, n):
    return np.bincount(np.asarray(out.idx[:count]), minlength=n)


@pytest.mark.parametrize("model", MODELS)
def test_feedforward_matches_reference(model):
    params = MODELS[model]
    for seed in (0, 1):
        layer, spikes = _layer(params, seed, MEAN[model]), _inputs(seed)
        out = _run(layer, spikes)
        ref = simulate_diffrax(params, spikes, layer.weights.input, N_SPIKES, T_MAX)
        count = _assert_matches(out, ref, params, N_OUT)
        assert count >= 12 and np.sum(_bursts(out, count, N_OUT) >= 3) >= 2


def _varied(model, n, rng):
    """The model's parameters, one value per neuron (arrays: traced, not compiled in)."""
    base = _per_neuron(MODELS[model], n)
    scale = {"tau_syn": 0.3, "tau_mem": 0.3, "tau_adapt": 0.3, "v_th": 0.2, "beta": 0.5}
    return type(MODELS[model])(
        **{
            name: jnp.asarray(value * (1.0 + scale.get(name, 0.0) * rng.uniform(-1, 1, n)))
            for name, value in base.items()
        }
    )


@pytest.mark.parametrize("model", MODELS)
def test_layered_recurrent_with_per_neuron_parameters_and_delays_matches_reference(model):
    # Populations 3 -> 2 (the second one sees only the first one's spikes), every neuron
    # with its own parameters, per-synapse input delays. (One compilation per model: the
    # features share this test; the reference's delays and recurrent arrivals are the
    # LIF's, tested in test_reference_features.py.)
    rng = np.random.default_rng(7)
    params = _varied(model, 5, rng)
    layer = eqsnn.RecurrentLIF(
        N_IN, (3, 2), N_SPIKES, T_MAX, params, key=jax.random.key(5),
        mean=[MEAN[model], 1.2 * MEAN[model]], std=0.4, delays=rng.uniform(0, 5e-3, (N_IN, 5)),
        engine=eqsnn.WindowScan(max_spikes_per_neuron=BUDGET), overflow=eqsnn.Overflow.COUNT,
    )  # fmt: skip
    spikes = _inputs(5)
    out = _run(layer, spikes)
    weights = layer.effective_weights()
    ref = simulate_diffrax(
        params, spikes, weights.input, N_SPIKES, T_MAX,
        recurrent_weights=weights.recurrent, input_delays=weights.delays,
    )  # fmt: skip
    count = _assert_matches(out, ref, params, 5)
    bursts = _bursts(out, count, 5)
    assert np.sum(bursts[:3] >= 3) >= 2 and np.sum(bursts[3:] >= 3) >= 1


# Grazing. The distance to threshold peaks at DELTA above or below 0: the layer (closed
# form) and the reference (its hidden-peak check and the ODE) must agree: a spike, or none.
DELTA = 1e-9


def _alif_flow(u, i, a, t):
    """ALIF `(V - v_leak, I, a)` a time `t` after `(u, i, a)`, tau_mem != tau_syn."""
    p = ALIF
    k = p.tau_syn / (p.tau_syn - p.tau_mem)
    u_t = (u - k * i) * np.exp(-t / p.tau_mem) + k * i * np.exp(-t / p.tau_syn)
    return u_t, i * np.exp(-t / p.tau_syn), a * np.exp(-t / p.tau_adapt)


def _alif_gap(x, t):
    u, _, a = _alif_flow(*x, t)
    return u - (ALIF.v_th - ALIF.v_leak) - a


def _alif_gap_rate(x, t):
    u, i, a = x
    k = ALIF.tau_syn / (ALIF.tau_syn - ALIF.tau_mem)
    du = -(u - k * i) / ALIF.tau_mem * np.exp(-t / ALIF.tau_mem)
    du -= k * i / ALIF.tau_syn * np.exp(-t / ALIF.tau_syn)
    return du + a / ALIF.tau_adapt * np.exp(-t / ALIF.tau_adapt)


W0, T2 = 3.0, 1e-2


def _alif_graze(delta):
    """Input 0 (weight W0) at t = 0 fires the neuron once, at s1 (a -> beta); input 1 at T2
    with the returned weight makes V - v_th - a peak at `delta`, the adaptation still
    high. Returns the weight, s1, and the (first) crossing time and its slope for
    delta > 0 (from the closed form, to ~1e-16)."""
    rtol = 8.9e-16
    s1 = brentq(lambda t: _alif_gap((0.0, W0, 0.0), t), 0.0, 4e-3, xtol=1e-300, rtol=rtol)
    reset = (ALIF.v_reset - ALIF.v_leak, W0 * np.exp(-s1 / ALIF.tau_syn), ALIF.beta)
    u2, i2, a2 = _alif_flow(*reset, T2 - s1)

    def peak(w):
        x = (u2, i2 + w, a2)
        grid = np.linspace(0.0, 0.03, 3001)
        rate = _alif_gap_rate(x, grid)
        j = np.flatnonzero((rate[:-1] > 0) & (rate[1:] <= 0))[0]
        t = brentq(lambda t: _alif_gap_rate(x, t), grid[j], grid[j + 1], xtol=1e-300, rtol=rtol)
        return x, t, _alif_gap(x, t)

    w = brentq(lambda w: peak(w)[2] - delta, 0.5, 5.0, xtol=1e-300, rtol=rtol)
    x, t_peak, _ = peak(w)
    if delta <= 0:
        return w, s1, None, None
    t = brentq(lambda t: _alif_gap(x, t), 0.0, t_peak, xtol=1e-300, rtol=rtol)
    return w, s1, T2 + t, _alif_gap_rate(x, t)


def _if_graze(delta):
    """One input at t = 0 whose weight brings V towards v_th + delta: it crosses (late,
    slowly) for delta > 0 and never for delta < 0. Returns the weight, the crossing time
    and its slope."""
    p = IF
    w = (p.v_th - p.v_init + delta) * p.tau_mem / p.tau_syn
    if delta <= 0:
        return w, None, None
    t = -p.tau_syn * np.log(delta / (w * p.tau_syn / p.tau_mem))
    return w, t, delta / p.tau_syn


def _graze_case(model, delta):
    """Weights and inputs in the shapes of the feed-forward tests (one compilation); only
    neuron 0 gets inputs. Returns the layer's input weights, spikes and expected spikes."""
    w = np.zeros((N_IN, N_OUT))
    time, idx = np.zeros(N_SLOTS), np.full(N_SLOTS, -1)
    if model == "alif":
        w2, s1, t, slope = _alif_graze(delta)
        w[0, 0], w[1, 0] = W0, w2
        time[:2], idx[:2] = (0.0, T2), (0, 1)
        expected = [(s1, None)] + ([(t, slope)] if t is not None else [])
    else:
        w0, t, slope = _if_graze(delta)
        w[0, 0], idx[0] = w0, 0
        expected = [(t, slope)] if t is not None else []
    spikes = eqsnn.Spikes(time=jnp.asarray(time), idx=jnp.asarray(idx, jnp.int32))
    return jnp.asarray(w), spikes, expected


@pytest.mark.parametrize("delta", [DELTA, -DELTA], ids=["above", "below"])
@pytest.mark.parametrize("model", MODELS)
def test_grazing_peak(model, delta):
    params = MODELS[model]
    w, spikes, expected = _graze_case(model, delta)
    layer = eqx.tree_at(lambda m: m.weights.input, _layer(params, 0, MEAN[model]), w)
    out = _run(layer, spikes)
    ref = simulate_diffrax(params, spikes, w, N_SPIKES, T_MAX)
    assert not np.any(np.isnan(np.asarray(out.time))) and not np.any(np.isnan(out.current))
    for spikes_ in (out, ref):
        assert int(spikes_.count()) == len(expected), spikes_.time[:3]
        assert np.all(np.asarray(spikes_.idx[: len(expected)]) == 0)
    for k, (t, slope) in enumerate(expected):
        # The closed form of the test is exact to ~1e-16 V: the layer's rounding and the
        # reference's V_TOL over the (small) slope at the crossing.
        tol = 1e-12 if slope is None else V_TOL / slope
        assert abs(float(out.time[k]) - t) <= tol, (float(out.time[k]), t)
        assert abs(float(ref.time[k]) - t) <= tol, (float(ref.time[k]), t)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class _Other(eqsnn.neurons.AbstractNeuronModel):
    """A neuron model the reference does not know (its methods are never called)."""

    tau_syn: float = 5e-3
    _FIELDS = ("tau_syn",)
    _DEFAULTS = (5e-3,)

    initial_state = flow = receive = fire = gap = gap_terms = current = None


def test_unknown_model_is_a_type_error():
    spikes, w = _inputs(0), jnp.ones((N_IN, 2))
    with pytest.raises(TypeError, match="simulate_diffrax: `params` must be .*got _Other"):
        simulate_diffrax(_Other(), spikes, w, 4, T_MAX)
    with pytest.raises(TypeError, match="`params` must be .*without `tau_syn`"):
        simulate_diffrax(object(), spikes, w, 4, T_MAX)
    with pytest.raises(TypeError, match="traces_diffrax: `params` must be eqsnn.LIFParameters"):
        eqsnn.reference.traces_diffrax(ALIF, spikes, w, jnp.zeros(1), T_MAX)
