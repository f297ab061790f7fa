"""RecurrentLIF: the global event loop against feed-forward LIF stacks, the Diffrax reference
and finite differences; connectivity masks under training; ties; bad input.

Tolerances (float64):
- layered vs `Sequential([LIF, LIF])`: both are closed-form simulations of the same events,
  differing only in how often states are re-evolved (a few ulps each) and in the solver's
  bracket: spike times agree to 1e-12 relative, gradients to 1e-9 relative.
- vs `simulate_diffrax` (rtol = atol = 1e-12): crossing times are voltage errors divided by
  the slope, amplified along chains of recurrent spikes: 1e-9 relative.
- central finite differences with step h = 1e-6 (relative): truncation ~h^2 and rounding
  ~1e-16/h on losses of order 1e-2 s: 1e-5 relative on gradient components.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eqsnn import (
    LIF,
    Connectivity,
    ConnectivityMask,
    InputWeights,
    LIFParameters,
    Overflow,
    RecurrentLIF,
    RecurrentWeights,
    Spikes,
    WindowScan,
)
from eqsnn._engine.event_loop import EventKind, trajectory, transition_without_recurrence
from eqsnn.reference import simulate_diffrax
from eqsnn.solvers import default_solver

T_MAX = 0.05
ONE_SPIKE = LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
MULTI_SPIKE = LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=0.0)
# A ratio without a closed-form root: exercises BracketedSolver.
MULTI_GENERIC = LIFParameters(tau_syn=4e-3, tau_mem=7e-3, v_th=1.0, v_leak=-0.1, v_reset=-0.2)


def _inputs(seed, in_size, n_in, t_late=0.02):
    rng = np.random.default_rng(seed)
    return Spikes(
        time=jnp.asarray(rng.uniform(0.0, t_late, n_in)),
        idx=jnp.asarray(rng.integers(0, in_size, n_in), jnp.int32),
    )


def _with_weights(layer, w_in, w_rec):
    return eqx.tree_at(lambda m: m.weights, layer, RecurrentWeights(w_in, w_rec))


def _time_loss(spikes, n):
    """Order-invariant smooth loss of all valid spike times (distinct weight per neuron)."""
    coef = 1.0 + jnp.arange(n, dtype=spikes.time.dtype) / n
    valid = spikes.idx >= 0
    return jnp.sum(jnp.where(valid, spikes.time * coef[jnp.maximum(spikes.idx, 0)], 0.0))


# Every test calls these two jitted functions, so that one compilation serves all tests of
# the same layer configuration (weights and input times are traced).


@eqx.filter_jit
@eqx.filter_value_and_grad(has_aux=True)
def _recurrent_value_and_grad(diff, idx):
    model, times = diff
    spikes = model(Spikes(times, idx))
    return _time_loss(spikes, model.size), spikes


@eqx.filter_jit
@eqx.filter_value_and_grad(has_aux=True)
def _stack_value_and_grad(diff, idx):
    model, times = diff
    hidden, out = model[0].out_size, model[1].out_size
    h = model[0](Spikes(times, idx))
    o = model[1](h)
    o_shifted = Spikes(o.time, jnp.where(o.idx >= 0, o.idx + hidden, -1), o.current)
    return _time_loss(h, hidden + out) + _time_loss(o_shifted, hidden + out), (h, o)


# --- (a) layered RecurrentLIF == Sequential of LIF layers ---------------------------------

IN_SIZE, HIDDEN, OUT, N_INPUTS = 4, 6, 3, 10


def _layered(params, mean, budget):
    layer = RecurrentLIF(
        IN_SIZE, [HIDDEN, OUT], budget, T_MAX, params,
        key=jax.random.PRNGKey(3), mean=mean, std=0.5,
    )  # fmt: skip
    return layer, _inputs(1, IN_SIZE, N_INPUTS)


def _stack(layer, per_neuron):
    def lif(n_in, n_out, w):
        lif = LIF(
            n_in, n_out, layer.n_spikes, T_MAX, layer.params,
            key=jax.random.PRNGKey(0), engine=WindowScan(max_spikes_per_neuron=per_neuron),
        )  # fmt: skip
        return eqx.tree_at(lambda m: m.weights.input, lif, w)

    return eqx.nn.Sequential(
        [
            lif(IN_SIZE, HIDDEN, layer.weights.input[:, :HIDDEN]),
            lif(HIDDEN, OUT, layer.weights.recurrent[:HIDDEN, HIDDEN:]),
        ]
    )


@pytest.mark.parametrize(
    ("params", "per_neuron", "mean", "budget"),
    [(ONE_SPIKE, 1, [1.2, 1.5], 24), (MULTI_SPIKE, 8, [1.2, 0.8], 48)],
    ids=["one-spike", "multi-spike"],
)
def test_layered_matches_sequential_lif(params, per_neuron, mean, budget):
    layer, inputs = _layered(params, mean, budget)
    stack = _stack(layer, per_neuron)
    (_, spikes), (g_rec, gt_rec) = _recurrent_value_and_grad((layer, inputs.time), inputs.idx)
    (_, (hidden_ref, out_ref)), (g_seq, gt_seq) = _stack_value_and_grad(
        (stack, inputs.time), inputs.idx
    )
    assert int(spikes.dropped) == 0 and int(out_ref.dropped) == int(hidden_ref.dropped) == 0
    for k, ref in ((0, hidden_ref), (1, out_ref)):
        got = layer.population_spikes(spikes, k)
        assert int(ref.count()) >= 3  # the test exercises both populations
        np.testing.assert_array_equal(got.idx, ref.idx)
        valid = ref.idx >= 0
        np.testing.assert_allclose(got.time[valid], ref.time[valid], rtol=1e-12)
        np.testing.assert_allclose(got.current[valid], ref.current[valid], rtol=1e-11)
    if params is MULTI_SPIKE:
        assert int(jnp.max(jnp.bincount(spikes.idx[spikes.idx >= 0]))) >= 3

    scale = float(jnp.max(jnp.abs(g_rec.weights.input)))
    np.testing.assert_allclose(
        g_rec.weights.input[:, :HIDDEN], g_seq[0].weights.input, rtol=1e-9, atol=1e-12 * scale
    )
    np.testing.assert_allclose(
        g_rec.weights.recurrent[:HIDDEN, HIDDEN:], g_seq[1].weights.input,
        rtol=1e-9, atol=1e-12 * scale,
    )  # fmt: skip
    np.testing.assert_allclose(gt_rec, gt_seq, rtol=1e-9, atol=1e-12 * float(jnp.max(gt_seq)))
    # Weights outside the layered mask get exactly zero gradient.
    assert bool(jnp.all(g_rec.weights.input[:, HIDDEN:] == 0))
    assert bool(jnp.all(g_rec.weights.recurrent[HIDDEN:] == 0))
    assert bool(jnp.all(g_rec.weights.recurrent[:, :HIDDEN] == 0))


# --- (b) genuine recurrence vs the Diffrax reference and finite differences --------------

# One configuration for (b), (e) and the overflow test: 3 inputs, 6 fully connected
# neurons (8 input slots), a generic time-constant ratio, multi-spike. The Diffrax
# reference pads to 8 neurons, so it compiles once for all of them too.
DENSE_IN, DENSE_N, DENSE_SLOTS, DENSE_BUDGET = 3, 6, 8, 40


def _dense(w_in, w_rec):
    layer = RecurrentLIF(
        DENSE_IN, [DENSE_N], DENSE_BUDGET, T_MAX, MULTI_GENERIC,
        key=jax.random.PRNGKey(0), connectivity=Connectivity.FULL,
    )  # fmt: skip
    return _with_weights(layer, jnp.asarray(w_in), jnp.asarray(w_rec))


def _random_dense(seed):
    rng = np.random.default_rng(seed)
    w_in = rng.normal(1.5, 0.7, (DENSE_IN, DENSE_N))
    w_rec = rng.normal(0.0, 0.6, (DENSE_N, DENSE_N))
    return _dense(w_in, w_rec), _inputs(seed, DENSE_IN, DENSE_SLOTS)


def _reference(layer, inputs, n_spikes=DENSE_BUDGET):
    return simulate_diffrax(
        layer.params, inputs, layer.weights.input, n_spikes, T_MAX,
        recurrent_weights=layer.weights.recurrent,
    )  # fmt: skip


def test_dense_recurrence_matches_diffrax():
    layer, inputs = _random_dense(0)
    (_, spikes), _ = _recurrent_value_and_grad((layer, inputs.time), inputs.idx)
    ref = _reference(layer, inputs)
    assert int(ref.count()) >= 15 and int(ref.dropped) == int(spikes.dropped) == 0
    np.testing.assert_array_equal(spikes.idx, ref.idx)
    valid = ref.idx >= 0
    np.testing.assert_allclose(spikes.time[valid], ref.time[valid], rtol=1e-9)
    np.testing.assert_allclose(spikes.current[valid], ref.current[valid], rtol=1e-8, atol=1e-10)
    # Neurons spike repeatedly, and the network is driven by recurrence: without the
    # recurrent weights the spike train differs.
    assert int(jnp.max(jnp.bincount(spikes.idx[valid]))) >= 3
    silent = _dense(layer.weights.input, jnp.zeros((DENSE_N, DENSE_N)))
    (_, ff), _ = _recurrent_value_and_grad((silent, inputs.time), inputs.idx)
    assert int(ff.count()) != int(spikes.count()) or bool(jnp.any(ff.idx != spikes.idx))


def _central_differences(layer, inputs, flat, unflatten, steps):
    def loss(x):
        model, times = unflatten(x)
        (value, spikes), _ = _recurrent_value_and_grad((model, times), inputs.idx)
        return float(value), np.asarray(spikes.idx)

    _, idx0 = loss(flat)
    grad = np.zeros_like(flat)
    for k, h in enumerate(steps):
        e = np.zeros_like(flat)
        e[k] = h
        (up, idx_up), (down, idx_down) = loss(flat + e), loss(flat - e)
        # The same spikes must happen on both sides, or the difference is meaningless.
        assert np.array_equal(idx_up, idx0) and np.array_equal(idx_down, idx0)
        grad[k] = (up - down) / (2 * h)
    return grad


def test_dense_recurrence_gradients_match_finite_differences():
    layer, inputs = _random_dense(0)
    diff = (layer, inputs.time)
    _, grads = _recurrent_value_and_grad(diff, inputs.idx)
    leaves, treedef = jax.tree.flatten((layer.weights, inputs.time))
    sizes = [leaf.size for leaf in leaves]
    flat = np.concatenate([np.asarray(leaf).ravel() for leaf in leaves])

    def unflatten(x):
        parts = np.split(x, np.cumsum(sizes)[:-1])
        new = [jnp.asarray(p.reshape(leaf.shape)) for p, leaf in zip(parts, leaves, strict=True)]
        weights, times = jax.tree.unflatten(treedef, new)
        return eqx.tree_at(lambda m: m.weights, layer, weights), times

    # Relative steps: 1e-6 for weights (O(1)), 1e-6 * t_max for input times.
    steps = np.concatenate([np.full(s, 1e-6) for s in sizes[:-1]] + [np.full(sizes[-1], 5e-8)])
    fd = _central_differences(layer, inputs, flat, unflatten, steps)
    g_layer, g_times = grads
    auto = np.concatenate(
        [np.asarray(g_layer.weights.input).ravel(), np.asarray(g_layer.weights.recurrent).ravel()]
        + [np.asarray(g_times)]
    )
    assert np.count_nonzero(auto) > 0.6 * auto.size
    np.testing.assert_allclose(auto, fd, rtol=1e-5, atol=1e-5 * np.max(np.abs(fd)))


def test_allowed_zero_weights_get_their_gradient():
    """A weight that the mask allows but whose value is zero still moves the crossings it
    reaches: autodiff must see it (the loop re-solves every neuron an event may reach, not
    only those with a non-zero jump). Inputs reach both populations of a [5, 4] layer with
    0 -> 1; the initialiser leaves the input block of population 1 at zero."""
    w_in = np.ones((IN_SIZE, 9), bool)
    w_rec = np.zeros((9, 9), bool)
    w_rec[:5, 5:] = True
    layer = RecurrentLIF(
        IN_SIZE, [5, 4], 48, T_MAX, MULTI_SPIKE, key=jax.random.PRNGKey(4), mean=[1.2, 0.8],
        std=0.6, connectivity=ConnectivityMask(w_in, w_rec),
    )  # fmt: skip
    inputs = _inputs(1, IN_SIZE, N_INPUTS)
    assert bool(jnp.all(layer.weights.input[:, 5:] == 0))
    (_, spikes), (grads, _) = _recurrent_value_and_grad((layer, inputs.time), inputs.idx)
    assert int(spikes.dropped) == 0 and int(layer.population_spikes(spikes, 1).count()) >= 3
    flat = np.asarray(layer.weights.input[:, 5:]).ravel()

    def unflatten(x):
        w = layer.weights.input.at[:, 5:].set(jnp.asarray(x.reshape(IN_SIZE, 4)))
        return eqx.tree_at(lambda m: m.weights.input, layer, w), inputs.time

    fd = _central_differences(layer, inputs, flat, unflatten, np.full(flat.size, 1e-6))
    auto = np.asarray(grads.weights.input[:, 5:]).ravel()
    assert np.count_nonzero(fd) > 0.5 * fd.size
    np.testing.assert_allclose(auto, fd, rtol=1e-5, atol=1e-5 * np.max(np.abs(fd)))


# --- (e) simultaneous crossings ----------------------------------------------------------


def test_simultaneous_crossings_are_all_emitted():
    """Neurons 0 and 1 are twins that inhibit each other: each time they cross threshold
    together, both spike (the inhibition arrives at the instant of the crossing, when the
    voltage is already at threshold), as in the Diffrax reference."""
    rng = np.random.default_rng(6)
    w_in = rng.normal(1.5, 0.5, (DENSE_IN, DENSE_N))
    w_in[:, 1] = w_in[:, 0]
    w_rec = rng.normal(0.0, 0.3, (DENSE_N, DENSE_N))
    w_rec[:, 1] = w_rec[:, 0]
    w_rec[1, 1] = w_rec[0, 0]
    w_rec[0, 1] = w_rec[1, 0] = -3.0
    layer, inputs = _dense(w_in, w_rec), _inputs(6, DENSE_IN, DENSE_SLOTS)
    (_, spikes), _ = _recurrent_value_and_grad((layer, inputs.time), inputs.idx)
    t0 = spikes.time[spikes.idx == 0]
    t1 = spikes.time[spikes.idx == 1]
    assert t0.size >= 2
    np.testing.assert_array_equal(t0, t1)  # bitwise the same times
    ref = _reference(layer, inputs)
    np.testing.assert_array_equal(spikes.idx, ref.idx)
    valid = ref.idx >= 0
    np.testing.assert_allclose(spikes.time[valid], ref.time[valid], rtol=1e-9)
    # Each twin records its own current from just before the jumps of that instant.
    np.testing.assert_array_equal(spikes.current[spikes.idx == 0], spikes.current[spikes.idx == 1])


def test_event_trace_of_a_feed_forward_loop():
    """`trajectory` without recurrence: one event per step in time order, twin spikes as
    two consecutive events at the same time (lowest index first), padding at the end."""
    w_in = jnp.full((DENSE_IN, DENSE_N), 6.0).at[:, 2:].set(0.0)
    inputs = Spikes(jnp.array([1e-3, 3e-2]), jnp.array([0, -1]))
    final, events = jax.jit(
        lambda w, x: trajectory(
            InputWeights(w),
            x,
            6,
            params=MULTI_GENERIC,
            solver=default_solver(MULTI_GENERIC),
            transition=transition_without_recurrence,
            t_max=T_MAX,
        )  # fmt: skip
    )(w_in, inputs)
    is_input, spikes = events.kind == EventKind.INPUT, events.kind == EventKind.SPIKE
    padding = events.kind == EventKind.NONE
    assert bool(is_input[0]) and events.idx[0] == 0 and events.time[0] == 1e-3
    assert events.idx[spikes].tolist()[:2] == [0, 1]
    assert events.time[spikes][0] == events.time[spikes][1] > 1e-3
    assert events.current[spikes][0] == events.current[spikes][1] > 0
    assert bool(jnp.all(jnp.diff(events.time[~padding]) >= 0))
    # Once nothing is left before t_max the steps are padding: time inf, idx -1.
    assert bool(padding[-1]) and events.idx[-1] == -1 and events.time[-1] == jnp.inf
    assert int(final.input_head) == 1


# --- overflow ------------------------------------------------------------------------------


def test_dropped_spikes_are_counted():
    rng = np.random.default_rng(0)
    layer = _dense(rng.normal(2.5, 0.7, (DENSE_IN, DENSE_N)), rng.normal(0.0, 0.6, (6, 6)))
    inputs = _inputs(0, DENSE_IN, DENSE_SLOTS)
    (_, spikes), _ = _recurrent_value_and_grad((layer, inputs.time), inputs.idx)
    ref = _reference(layer, inputs)
    assert int(ref.dropped) > 0
    # The kept spikes are the earliest ones; the count is a lower bound, and not zero.
    np.testing.assert_array_equal(spikes.idx, ref.idx)
    np.testing.assert_allclose(spikes.time, ref.time, rtol=1e-9)
    assert 0 < int(spikes.dropped) <= int(ref.dropped)


def test_overflow_error_raises():
    layer = RecurrentLIF(
        1, [1], 2, T_MAX, MULTI_SPIKE, key=jax.random.PRNGKey(0), mean=20.0, std=0.0,
        overflow=Overflow.ERROR,
    )  # fmt: skip
    inputs = Spikes(jnp.array([1e-3]), jnp.array([0]))
    with pytest.raises(Exception, match="more spikes than the buffer holds"):
        jax.block_until_ready(eqx.filter_jit(layer.__call__)(inputs))


# --- (c) masks under training ------------------------------------------------------------


# optax.adam needs standard promotion; so does the LIF comparison, which compiles the same
# layered configuration (the jit cache is per promotion mode).
@pytest.mark.standard_promotion
def test_masked_weights_stay_zero_under_adam():
    layer, inputs = _layered(ONE_SPIKE, [1.2, 1.5], 24)
    mask = layer.mask
    optimiser = optax.adam(1e-2)

    @eqx.filter_jit  # one program, not optax's operations one by one
    def adam_step(model, state, grads):
        updates, state = optimiser.update(grads, state, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, updates), state

    state = optimiser.init(eqx.filter(layer, eqx.is_inexact_array))
    model = layer
    for _ in range(3):
        _, (grads, _) = _recurrent_value_and_grad((model, inputs.time), inputs.idx)
        assert np.all(np.asarray(grads.weights.input)[~mask.input] == 0)
        assert np.all(np.asarray(grads.weights.recurrent)[~mask.recurrent] == 0)
        model, state = adam_step(model, state, grads)
    assert bool(jnp.all(model.weights.input[~mask.input] == 0))
    assert bool(jnp.all(model.weights.recurrent[~mask.recurrent] == 0))
    assert bool(jnp.any(model.weights.input[mask.input] != layer.weights.input[mask.input]))
    assert bool(
        jnp.any(model.weights.recurrent[mask.recurrent] != layer.weights.recurrent[mask.recurrent])
    )
    # A weight outside the mask, set by hand, has no effect on the simulation.
    tampered = _with_weights(
        layer,
        jnp.where(mask.input, layer.weights.input, 5.0),
        jnp.where(mask.recurrent, layer.weights.recurrent, 5.0),
    )
    (_, a), _ = _recurrent_value_and_grad((layer, inputs.time), inputs.idx)
    (_, b), _ = _recurrent_value_and_grad((tampered, inputs.time), inputs.idx)
    assert all(
        bool(jnp.all(x == y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


def test_connectivity_masks_and_initialisation():
    key = jax.random.PRNGKey(0)
    layered = RecurrentLIF(3, [4, 2, 2], 8, T_MAX, key=key, mean=[1.0, 2.0, 3.0], std=0.0)
    w = layered.weights
    assert w.input.shape == (3, 8) and w.recurrent.shape == (8, 8)
    assert bool(jnp.all(w.input[:, :4] == 1.0)) and bool(jnp.all(w.input[:, 4:] == 0.0))
    assert bool(jnp.all(w.recurrent[:4, 4:6] == 2.0)) and bool(jnp.all(w.recurrent[4:6, 6:] == 3.0))
    assert int(jnp.count_nonzero(w.recurrent)) == 4 * 2 + 2 * 2
    np.testing.assert_array_equal(layered.mask.recurrent, np.asarray(w.recurrent != 0))
    assert [layered.population(k) for k in (0, 1, -1)] == [range(4), range(4, 6), range(6, 8)]

    full = RecurrentLIF(3, [4, 2, 2], 8, T_MAX, key=key, connectivity=Connectivity.FULL)
    assert bool(np.all(full.mask.input)) and bool(np.all(full.mask.recurrent))
    # Initialisation does not depend on the connectivity (only masked entries are zeroed).
    np.testing.assert_array_equal(full.weights.recurrent, RecurrentLIF(
        3, [4, 2, 2], 8, T_MAX, key=key).weights.recurrent)  # fmt: skip

    custom = ConnectivityMask(np.ones((3, 8), bool), ~np.eye(8, dtype=bool))
    no_self = RecurrentLIF(3, [8], 8, T_MAX, key=key, connectivity=custom)
    assert no_self.mask == custom and hash(no_self.mask) == hash(custom)
    assert bool(jnp.all(jnp.diag(no_self.effective_weights().recurrent) == 0))
    duplicated = RecurrentLIF(4, [3], 8, T_MAX, key=key, duplication=2)
    np.testing.assert_array_equal(duplicated.weights.input[0], duplicated.weights.input[1])


def test_population_spikes_are_local_and_sorted():
    layer = RecurrentLIF(2, [3, 2], 5, T_MAX, key=jax.random.PRNGKey(0))
    spikes = Spikes(
        time=jnp.array([[1.0, 2.0, 3.0, 4.0, jnp.inf]]) * 1e-3,
        idx=jnp.array([[3, 0, 4, 2, -1]]),
        dropped=jnp.array([7]),
    )
    out = layer.population_spikes(spikes, -1)
    assert out.idx.tolist() == [[0, 1, -1, -1, -1]]
    assert out.time[0, :2].tolist() == [1e-3, 3e-3] and int(out.dropped[0]) == 7
    assert layer.population_spikes(spikes, 0).idx.tolist() == [[0, 2, -1, -1, -1]]


# --- jit / vmap ------------------------------------------------------------------------------


def test_vmap_matches_single_samples():
    layer, _ = _layered(ONE_SPIKE, [1.2, 1.5], 24)
    batch = [_inputs(seed, IN_SIZE, N_INPUTS) for seed in range(3)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batch)
    out = eqx.filter_jit(jax.vmap(layer))(stacked)
    for k, sample in enumerate(batch):
        (_, single), _ = _recurrent_value_and_grad((layer, sample.time), sample.idx)
        np.testing.assert_array_equal(out.idx[k], single.idx)
        np.testing.assert_allclose(out.time[k], single.time, rtol=1e-15)


# --- (d) bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"layers": []}, ValueError, "layers"),
        ({"layers": 5}, ValueError, "layers"),
        ({"layers": [3, 0]}, ValueError, "layers"),
        ({"mean": [1.0, 2.0, 3.0]}, ValueError, "mean"),
        ({"std": "wide"}, ValueError, "std"),
        ({"connectivity": "full"}, TypeError, "connectivity"),
        (
            {"connectivity": ConnectivityMask(np.ones((2, 5), bool), np.ones((5, 5), bool))},
            ValueError,
            "connectivity",
        ),  # fmt: skip
        ({"duplication": 2}, ValueError, "multiple of `duplication`"),
        ({"overflow": "error"}, TypeError, "overflow"),
        ({"n_spikes": 0}, ValueError, "n_spikes"),
        ({"t_max": -1.0}, ValueError, "t_max"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    arguments = {"in_size": 3, "layers": [2, 2], "n_spikes": 4, "t_max": T_MAX} | kwargs
    with pytest.raises(error, match=match):
        RecurrentLIF(**arguments, key=jax.random.PRNGKey(0))


def test_bad_masks_raise():
    with pytest.raises(TypeError, match="boolean"):
        ConnectivityMask(np.ones((2, 3)), np.ones((3, 3), bool))
    with pytest.raises(ValueError, match="shape"):
        ConnectivityMask(np.ones((2, 3), bool), np.ones((3, 4), bool))
    layer = RecurrentLIF(2, [3], 4, T_MAX, key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="population index"):
        layer.population(1)


def test_bad_input_spikes_raise():
    layer, inputs = _random_dense(0)
    batched = Spikes(inputs.time[None], inputs.idx[None])
    with pytest.raises(ValueError, match="one sample"):
        layer(batched)
    with pytest.raises(Exception, match="input spike indices"):
        _recurrent_value_and_grad((layer, inputs.time), inputs.idx.at[0].set(DENSE_IN))
    with pytest.raises(Exception, match="non-negative"):
        _recurrent_value_and_grad((layer, inputs.time.at[0].set(-1.0)), inputs.idx)
