"""Tests for eqsnn.traces: V(t) and I(t) of a layer's neurons at given times.

- the traces equal the Diffrax reference's states (`eqsnn.reference.traces_diffrax`, an
  independent ODE integration from event to event) at sampled times;
- left-continuity: V = v_th at each output spike, the reset just after; an input's weight
  shows in I just after its time, not at it;
- gradients (EventProp or autodiff) match central finite differences; jit and vmap give
  the eager values; every engine gives the same traces; bad arguments raise naming them.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn.reference import traces_diffrax

T_MAX = 0.03
PARAMS = eqsnn.LIFParameters(v_reset=-0.2)  # a reset below rest: several spikes per neuron
W_IN = jnp.array([[2.5, 0.2, 1.0, 0.0, 0.3], [0.4, 2.6, 0.2, 0.5, 0.0], [0.0, 0.6, 2.2, 0.2, 0.1]])
W_REC = jnp.array(
    [
        [0.0, 0.5, -0.3, 1.2, 0.0],
        [0.3, 0.0, 0.4, 0.0, 1.1],
        [-0.5, 0.2, 0.0, 0.6, 0.6],
        [0.0, 0.0, 0.0, 0.0, -0.8],
        [0.2, 0.0, 0.0, -0.8, 0.0],
    ]
)
# Inputs at t = 0, a tie at 2 ms, an empty slot and one after T_MAX (both ignored).
SPIKES = eqsnn.Spikes(
    time=jnp.array([0.0, 1e-3, 2e-3, 2e-3, 6e-3, 0.0, 0.05]),
    idx=jnp.array([0, 0, 1, 2, 0, -1, 1]),
)
KEY = jax.random.PRNGKey(0)

# Tsit5 at rtol = atol = 1e-12 integrates each segment between events to ~1e-12; over the
# few dozen segments and the spike times (found by both to ~1e-15 s, slopes ~1e2 V/s) the
# states agree to ~1e-12 (measured: 7e-13). 1e-9 leaves three digits of margin and still
# catches any missed event or jump (those change V or I by ~0.1).
REFERENCE_ATOL = 1e-9


def feed_forward(**settings) -> eqsnn.LIF:
    layer = eqsnn.LIF(3, 5, n_spikes=20, t_max=T_MAX, params=PARAMS, key=KEY, **settings)
    return eqx.tree_at(lambda m: m.weights.input, layer, W_IN)


def recurrent(engine=None) -> eqsnn.RecurrentLIF:
    layer = eqsnn.RecurrentLIF(
        3, [3, 2], n_spikes=32, t_max=T_MAX, params=PARAMS, key=KEY,
        connectivity=eqsnn.Connectivity.FULL, engine=engine,
    )  # fmt: skip
    return eqx.tree_at(lambda m: (m.weights.input, m.weights.recurrent), layer, (W_IN, W_REC))


LAYERS = {"feed_forward": feed_forward, "recurrent": recurrent}


def _sample_times(out: eqsnn.Spikes, n: int = 40) -> jnp.ndarray:
    """Random times in [0, 1.1 T_MAX), at least 1e-9 s from every event (the states jump
    there, and the two simulators place the spikes ~1e-15 s apart)."""
    times = np.random.default_rng(0).uniform(0.0, 1.1 * T_MAX, n)
    events = np.concatenate([np.asarray(SPIKES.time), np.asarray(out.time)[out.valid]])
    assert np.min(np.abs(times[:, None] - events[None, :])) > 1e-9
    return jnp.asarray(np.sort(times))


@pytest.mark.parametrize("kind", LAYERS)
def test_traces_equal_the_diffrax_reference(kind):
    layer = LAYERS[kind]()
    out = layer(SPIKES)
    assert int(out.dropped) == 0 and int(out.count()) >= 6  # several spikes, none lost
    times = _sample_times(out)
    state = eqsnn.traces(layer, SPIKES, times)
    w_rec = W_REC if kind == "recurrent" else None
    ref = traces_diffrax(PARAMS, SPIKES, W_IN, times, T_MAX, recurrent_weights=w_rec)
    assert state.v.shape == state.i.shape == (times.size, 5)
    np.testing.assert_allclose(state.v, ref.v, rtol=0, atol=REFERENCE_ATOL)
    np.testing.assert_allclose(state.i, ref.i, rtol=0, atol=REFERENCE_ATOL)


@pytest.mark.parametrize("kind", LAYERS)
def test_left_continuous_at_spikes_and_inputs(kind):
    layer = LAYERS[kind]()
    out = layer(SPIKES)
    valid = np.asarray(out.valid)
    spike_time, neuron = out.time[valid], np.asarray(out.idx)[valid]
    at = eqsnn.traces(layer, SPIKES, spike_time)
    after = eqsnn.traces(layer, SPIKES, spike_time + 1e-12)
    rows = np.arange(spike_time.size)
    # At its spike the neuron is at threshold (the crossing solver's root, to rounding) ...
    np.testing.assert_allclose(at.v[rows, neuron], PARAMS.v_th, rtol=0, atol=1e-12)
    # ... and 1 ps later at the reset (V moves by at most ~1e2 V/s * 1e-12 s).
    np.testing.assert_allclose(after.v[rows, neuron], PARAMS.v_reset, rtol=0, atol=1e-9)
    # The input at 1 ms (input 0) is in I just after, not at 1 ms.
    jump = eqsnn.traces(layer, SPIKES, jnp.array([1e-3, 1e-3 + 1e-12]))
    np.testing.assert_allclose(jump.i[1] - jump.i[0], W_IN[0], rtol=0, atol=1e-9)
    # At t = 0 the neurons are at rest, although an input arrives then.
    rest = eqsnn.traces(layer, SPIKES, jnp.array([0.0]))
    np.testing.assert_array_equal(rest.v, np.full((1, 5), PARAMS.v_leak))
    np.testing.assert_array_equal(rest.i, np.zeros((1, 5)))


def _central_difference(f, x, eps):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


@pytest.mark.parametrize("kind", LAYERS)
def test_gradient_matches_finite_differences(kind):
    # The feed-forward layer with EventProp (reverse mode only), the recurrent one with
    # autodiff through the event loop.
    layer = feed_forward(adjoint=eqsnn.EventProp()) if kind == "feed_forward" else recurrent()
    times = _sample_times(layer(SPIKES), 25)

    @eqx.filter_jit
    def loss(layer, spikes):
        state = eqsnn.traces(layer, spikes, times)
        return jnp.sum(state.v**2) + jnp.sum(state.i)

    grad_layer, grad_spikes = eqx.filter_jit(eqx.filter_grad(lambda both: loss(*both)))(
        (layer, SPIKES)
    )

    def with_weight(w):
        weights = layer.weights.input.at[0, 1].set(w)
        return loss(eqx.tree_at(lambda m: m.weights.input, layer, weights), SPIKES)

    def with_time(t):
        return loss(layer, eqx.tree_at(lambda s: s.time, SPIKES, SPIKES.time.at[1].set(t)))

    # float64 central differences with eps = 1e-6 (a weight) / 1e-9 s (a time): truncation
    # (eps^2 times the third derivative) and rounding (1e-16 / eps) are both below 1e-6
    # relative here; no spike crosses a sampled time within eps (the traces jump there).
    fd_weight = _central_difference(with_weight, W_IN[0, 1], 1e-6)
    fd_time = _central_difference(with_time, SPIKES.time[1], 1e-9)
    np.testing.assert_allclose(grad_layer.weights.input[0, 1], fd_weight, rtol=1e-5)
    np.testing.assert_allclose(grad_spikes.time[1], fd_time, rtol=1e-5)


def test_jit_and_vmap_agree_with_eager():
    layer = feed_forward()
    times = jnp.linspace(0.0, T_MAX, 31)
    shifted = eqx.tree_at(lambda s: s.time, SPIKES, SPIKES.time + 3e-4)
    batch = jax.tree.map(lambda a, b: jnp.stack([a, b]), SPIKES, shifted)
    mapped = jax.vmap(lambda s: eqsnn.traces(layer, s, times))(batch)
    jitted = eqx.filter_jit(eqsnn.traces)(layer, shifted, times)
    for n, spikes in enumerate([SPIKES, shifted]):
        eager = eqsnn.traces(layer, spikes, times)
        np.testing.assert_allclose(mapped.v[n], eager.v, rtol=0, atol=1e-13)
        np.testing.assert_allclose(mapped.i[n], eager.i, rtol=0, atol=1e-13)
    np.testing.assert_allclose(jitted.v, eqsnn.traces(layer, shifted, times).v, atol=1e-13)


@pytest.mark.parametrize(
    "engine", [eqsnn.EventLoop(), eqsnn.IntervalScan(max_spikes_per_interval=4)], ids=repr
)
def test_every_engine_gives_the_same_traces(engine):
    # The engines agree on the spike times to rounding, so the traces agree too (away from
    # the spike times, where a rounding-size shift of a spike is a jump of the trace).
    times = _sample_times(feed_forward()(SPIKES))
    default = eqsnn.traces(feed_forward(), SPIKES, times)
    other = eqsnn.traces(feed_forward(engine=engine), SPIKES, times)
    np.testing.assert_allclose(other.v, default.v, rtol=0, atol=1e-11)
    np.testing.assert_allclose(other.i, default.i, rtol=0, atol=1e-11)


def test_bad_arguments():
    layer = feed_forward()
    with pytest.raises(ValueError, match="times"):
        eqsnn.traces(layer, SPIKES, jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="times"):
        eqsnn.traces(layer, SPIKES, jnp.array([1e-3, -1e-3]))
    with pytest.raises(ValueError, match="times"):
        eqsnn.traces(layer, SPIKES, jnp.array([jnp.nan]))
    with pytest.raises(TypeError, match="layer"):
        eqsnn.traces(eqx.nn.Sequential([layer]), SPIKES, jnp.array([1e-3]))
    with pytest.raises(ValueError, match="in_size"):  # the layer checks its input
        eqsnn.traces(
            layer, eqsnn.Spikes(time=jnp.array([1e-3]), idx=jnp.array([7])), jnp.array([0.0])
        )
