"""Acceptance tests of the feed-forward `eqsnn.LIF` layer (issue 2).

Families: spike times against the Diffrax reference over several `tau_mem / tau_syn`
ratios, in the multi-spike and the one-spike regime; spike-time and loss gradients against
central finite differences; finiteness of gradients in degenerate cases; `vmap`/`jit`
invariance and compile counts; input handling (order, empty slots); `Sequential` stacks;
simultaneous crossings; overflow accounting.

Tolerances (float64):
- vs `simulate_diffrax` (rtol = atol = 1e-12 on the voltage): a crossing-time error is a
  voltage error divided by the slope at the crossing, carried along the chain of resets of
  one neuron: 1e-9 relative on spike times and on the currents at the spikes (measured:
  <= 6e-13 on times, <= 3e-12 on currents).
- central finite differences, steps h_w = 1e-6 on weights (~1) and h_t = 1e-8 s on input
  times (~1e-2 s). Truncation is h^2 / 6 times the third derivative, large for
  near-grazing spikes (the ratio-1 layer: error 4e-6 of the largest entry at h_w = 1e-5,
  falling as h^2); rounding is ~1e-17 s / h, i.e. <= 1e-9 of derivatives of order 1e-3 s
  (weights) and 1 (times). Allowed: 1e-5 relative plus 1e-7 of the largest entry
  (measured: <= 5e-8 of the largest entry).

Every test of one layer configuration calls the same few jitted functions (`_simulate`,
`_jacobian`), so that each configuration compiles once; layers have <= 8 neurons so that
all `simulate_diffrax` calls share one compilation.
"""

import functools
import re
import textwrap
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn import LIF, IntervalScan, LIFParameters, Spikes
from eqsnn.reference import simulate_diffrax

T_MAX = 0.05
TAU_SYN = 5e-3
IN_SIZE, OUT_SIZE, N_INPUTS, N_SPIKES = 6, 5, 10, 40
PER_INTERVAL = 4

RTOL_DIFFRAX = 1e-9
"""Spike times vs the Diffrax reference (see the module docstring)."""
H_WEIGHT, H_TIME = 1e-6, 1e-8
"""Central finite-difference steps for weights (volt-like units) and input times (s)."""
RTOL_FD, ATOL_FD = 1e-5, 1e-7
"""Finite differences: relative tolerance, and absolute tolerance relative to the largest
entry of the compared array (see the module docstring)."""

# name: (tau_mem / tau_syn, v_reset, weight scale, max_spikes_per_interval). The weight
# scale is chosen per ratio so that every neuron spikes at least twice, some neurons spike
# several times between two inputs, and no neuron needs more than 3 of its 4 slots.
CASES = {
    "ratio-2": (2.0, -0.1, 1.1, PER_INTERVAL),
    "ratio-1": (1.0, -0.1, 0.7, PER_INTERVAL),
    "ratio-1+1e-6": (1.0 + 1e-6, -0.1, 0.7, PER_INTERVAL),
    "ratio-1-1e-6": (1.0 - 1e-6, -0.1, 0.7, PER_INTERVAL),
    "ratio-1.5": (1.5, -0.1, 0.9, PER_INTERVAL),
    "ratio-0.5": (0.5, -0.1, 0.5, PER_INTERVAL),
    "one-spike": (2.0, -1000.0, 1.1, 1),
}
GRADIENT_CASES = ["ratio-2", "ratio-1", "ratio-1.5"]


def _params(ratio, v_reset):
    return LIFParameters(
        tau_syn=TAU_SYN, tau_mem=ratio * TAU_SYN, v_th=0.5, v_leak=-0.2, v_reset=v_reset
    )


def _with_weights(layer, w):
    return eqx.tree_at(lambda m: m.weights.input, layer, w)


def _random_inputs(seed=0, n=N_INPUTS, in_size=IN_SIZE, t_late=0.03):
    rng = np.random.default_rng(seed)
    return Spikes(
        time=jnp.asarray(rng.uniform(0.0, t_late, n)),
        idx=jnp.asarray(rng.integers(0, in_size, n), jnp.int32),
    )


def _random_weights(scale, seed=0, shape=(IN_SIZE, OUT_SIZE)):
    rng = np.random.default_rng(seed + 1000)
    return jnp.asarray(scale * (1.0 + 0.5 * rng.standard_normal(shape)))


@functools.cache
def _case(name):
    """The layer and input spikes of a named configuration."""
    ratio, v_reset, scale, per_interval = CASES[name]
    layer = LIF(
        IN_SIZE, OUT_SIZE, N_SPIKES, T_MAX, _params(ratio, v_reset),
        key=jax.random.PRNGKey(0), engine=IntervalScan(max_spikes_per_interval=per_interval),
    )  # fmt: skip
    return _with_weights(layer, _random_weights(scale)), _random_inputs()


@functools.cache
def _reference(name):
    layer, spikes = _case(name)
    return simulate_diffrax(layer.params, spikes, layer.weights.input, N_SPIKES, T_MAX)


def _time_loss(out):
    """Order-invariant smooth loss of all valid spike times (distinct weight per neuron)."""
    coef = 1.0 + jnp.arange(OUT_SIZE, dtype=out.time.dtype) / OUT_SIZE
    return jnp.sum(jnp.where(out.idx >= 0, out.time * coef[jnp.maximum(out.idx, 0)], 0.0))


def _naive_loss(out):
    """A loss written naively on all output times: the masked branch is inf**2 on empty
    slots, so a NaN cotangent reaches the layer's output there and must not leak."""
    return jnp.sum(jnp.where(out.idx >= 0, (out.time - T_MAX) ** 2, 0.0))


@eqx.filter_jit
def _simulate(layer, spikes):
    return layer(spikes)


@eqx.filter_jit
def _jacobian(layer, spikes):
    """Jacobians of (all output times, time loss, naive loss) w.r.t. (weights, input times)."""

    def outputs(w, t):
        out = _with_weights(layer, w)(Spikes(t, spikes.idx))
        return jnp.concatenate([out.time, jnp.stack([_time_loss(out), _naive_loss(out)])])

    return jax.jacrev(outputs, argnums=(0, 1))(layer.weights.input, spikes.time)


def _sorted_pairs(out):
    """Valid spikes as arrays (time, idx), ordered by (time, idx)."""
    valid = np.asarray(out.idx) >= 0
    time, idx = np.asarray(out.time)[valid], np.asarray(out.idx)[valid]
    order = np.lexsort((idx, time))
    return time[order], idx[order]


def _sorted_currents(out):
    valid = np.asarray(out.idx) >= 0
    order = np.lexsort((np.asarray(out.idx)[valid], np.asarray(out.time)[valid]))
    return np.asarray(out.current)[valid][order]


def _max_spikes_in_one_interval(out, spikes):
    """Largest number of spikes of one neuron between two consecutive valid inputs."""
    edges = np.sort(np.asarray(spikes.time)[np.asarray(spikes.idx) >= 0])
    time, idx = _sorted_pairs(out)
    interval = np.searchsorted(edges, time, side="right")
    return max(np.bincount(interval[idx == n]).max() for n in np.unique(idx))


def _assert_same_spikes(out, ref, rtol=RTOL_DIFFRAX):
    """Same count and indices, times within `rtol`; returns the max relative time error."""
    t, i = _sorted_pairs(out)
    t_ref, i_ref = _sorted_pairs(ref)
    assert i.tolist() == i_ref.tolist()
    err = float(np.max(np.abs(t - t_ref) / t_ref, initial=0.0))
    assert err <= rtol, err
    return err


# --- 1. spike times against the Diffrax reference -------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_spike_times_match_diffrax(name):
    layer, spikes = _case(name)
    out, ref = _simulate(layer, spikes), _reference(name)
    assert int(out.dropped) == 0 and int(ref.dropped) == 0
    _assert_same_spikes(out, ref)
    # Output contract: time-sorted, local indices, padded with (idx -1, time inf, current 0).
    valid = np.asarray(out.idx) >= 0
    n_valid = int(valid.sum())
    assert valid[:n_valid].all() and not valid[n_valid:].any()
    assert np.all(np.diff(np.asarray(out.time)[:n_valid]) >= 0)
    assert np.all(np.asarray(out.idx)[valid] < OUT_SIZE)
    assert np.all(np.isinf(np.asarray(out.time)[~valid]))
    assert np.all(np.asarray(out.current)[~valid] == 0)
    # The synaptic current at each spike: I(t) changes by I / tau_syn * dt, so the same
    # relative tolerance as for the times applies (with an absolute floor of 1e-12).
    np.testing.assert_allclose(
        _sorted_currents(out), _sorted_currents(ref), rtol=RTOL_DIFFRAX, atol=1e-12
    )
    t, i = _sorted_pairs(out)
    # The configuration is not vacuous.
    counts = np.bincount(i, minlength=OUT_SIZE)
    if name == "one-spike":
        assert counts.max() == 1 and counts.sum() >= 3
    else:
        assert counts.min() >= 2, counts
        per_interval = _max_spikes_in_one_interval(out, spikes)
        assert 2 <= per_interval < layer.max_spikes_per_interval, per_interval


# --- 2. gradients ---------------------------------------------------------------------------------


def _outputs_np(layer, spikes):
    out = _simulate(layer, spikes)
    values = np.concatenate([np.asarray(out.time), [_time_loss(out), _naive_loss(out)]])
    return values, np.asarray(out.idx)


def _central_differences(layer, spikes):
    """Central differences of (output times, losses) w.r.t. each weight and input time."""
    base_idx = np.asarray(_simulate(layer, spikes).idx)
    w = layer.weights.input

    def diff(plus, minus, h):
        (f_plus, idx_plus), (f_minus, idx_minus) = plus, minus
        # The perturbation must not change which spike sits in which slot.
        assert np.array_equal(idx_plus, base_idx) and np.array_equal(idx_minus, base_idx)
        # Rows of empty slots (time inf on both sides) stay zero.
        rows = np.concatenate([base_idx >= 0, [True, True]])
        out = np.zeros(rows.shape)
        out[rows] = (f_plus[rows] - f_minus[rows]) / (2 * h)
        return out

    jac_w = np.zeros((N_SPIKES + 2, *w.shape))
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            plus = _outputs_np(_with_weights(layer, w.at[a, b].add(H_WEIGHT)), spikes)
            minus = _outputs_np(_with_weights(layer, w.at[a, b].add(-H_WEIGHT)), spikes)
            jac_w[:, a, b] = diff(plus, minus, H_WEIGHT)
    jac_t = np.zeros((N_SPIKES + 2, spikes.n_slots))
    for k in range(spikes.n_slots):
        shifted = [Spikes(spikes.time.at[k].add(s * H_TIME), spikes.idx) for s in (1, -1)]
        plus, minus = (_outputs_np(layer, s) for s in shifted)
        jac_t[:, k] = diff(plus, minus, H_TIME)
    return jac_w, jac_t


def _assert_close_fd(jac, fd):
    scale = np.max(np.abs(fd))
    assert scale > 0
    np.testing.assert_allclose(jac, fd, rtol=RTOL_FD, atol=ATOL_FD * scale)
    return float(np.max(np.abs(jac - fd)) / scale)


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_gradients_match_finite_differences(name):
    layer, spikes = _case(name)
    jac_w, jac_t = (np.asarray(j) for j in _jacobian(layer, spikes))
    fd_w, fd_t = _central_differences(layer, spikes)
    n_valid = int(_simulate(layer, spikes).count())
    for rows in (slice(0, n_valid), slice(N_SPIKES, N_SPIKES + 2)):  # spike times, losses
        _assert_close_fd(jac_w[rows], fd_w[rows])
        _assert_close_fd(jac_t[rows], fd_t[rows])
    # Empty output slots (time inf) have exactly zero gradients.
    assert np.all(jac_w[n_valid:N_SPIKES] == 0) and np.all(jac_t[n_valid:N_SPIKES] == 0)
    # Every spike time depends on some weight and some input time.
    assert np.all(np.any(jac_w[:n_valid] != 0, axis=(1, 2)))
    assert np.all(np.any(jac_t[:n_valid] != 0, axis=1))


def _degenerate_inputs(name):
    layer, spikes = _case(name)
    w = layer.weights.input
    at_t_max = Spikes(spikes.time.at[3].set(T_MAX), spikes.idx)
    empty = Spikes(jnp.zeros(N_INPUTS), jnp.full(N_INPUTS, -1, jnp.int32))
    return {
        "silent": (_with_weights(layer, -jnp.abs(w)), spikes),
        "zero-weights": (_with_weights(layer, jnp.zeros_like(w)), spikes),
        "input-at-t_max": (layer, at_t_max),
        "empty-input": (layer, empty),
    }


@pytest.mark.parametrize("name", GRADIENT_CASES)
def test_gradients_finite_in_degenerate_cases(name):
    for case, (layer, spikes) in _degenerate_inputs(name).items():
        jac_w, jac_t = (np.asarray(j) for j in _jacobian(layer, spikes))
        assert np.all(np.isfinite(jac_w)) and np.all(np.isfinite(jac_t)), case
        out = _simulate(layer, spikes)
        if case == "input-at-t_max":
            # The spike at t_max is ignored: same output as without it, zero gradient.
            without = Spikes(spikes.time, spikes.idx.at[3].set(-1))
            assert np.array_equal(out.time, _simulate(layer, without).time)
            assert np.all(jac_t[:, 3] == 0)
            assert int(out.count()) > 0
        else:
            assert int(out.count()) == 0, case
            assert np.all(jac_w == 0) and np.all(jac_t == 0), case


def _coincident(name):
    """The case's inputs with slot 5 moved to the time of slot 1 (a different input)."""
    layer, spikes = _case(name)
    assert int(spikes.idx[1]) != int(spikes.idx[5])
    return layer, Spikes(spikes.time.at[5].set(spikes.time[1]), spikes.idx)


def test_coincident_input_spikes_match_diffrax():
    layer, spikes = _coincident("ratio-2")
    out = _simulate(layer, spikes)
    ref = simulate_diffrax(layer.params, spikes, layer.weights.input, N_SPIKES, T_MAX)
    assert int(out.dropped) == 0 and int(ref.dropped) == 0
    _assert_same_spikes(out, ref)


def test_gradients_at_coincident_input_times():
    layer, spikes = _coincident("ratio-2")
    _, jac_t = (np.asarray(j) for j in _jacobian(layer, spikes))
    _, fd_t = _central_differences(layer, spikes)
    n_valid = int(_simulate(layer, spikes).count())
    rows = np.r_[0:n_valid, N_SPIKES, N_SPIKES + 1]
    _assert_close_fd(jac_t[rows][:, [1, 5]], fd_t[rows][:, [1, 5]])


# --- 3. vmap and jit ------------------------------------------------------------------------------


@eqx.filter_jit
@functools.partial(eqx.filter_vmap, in_axes=(None, 0))
def _simulate_batch(layer, spikes):
    return layer(spikes)


def test_vmap_matches_python_loop():
    layer, _ = _case("ratio-1.5")  # the bracketed solver, whose while-loop vmap batches
    samples = [_random_inputs(seed) for seed in range(4)]
    batch = jax.tree.map(lambda *x: jnp.stack(x), *samples)
    out = _simulate_batch(layer, batch)
    assert out.time.shape == (4, N_SPIKES) and out.dropped.shape == (4,)
    for b, sample in enumerate(samples):
        single = _simulate(layer, sample)
        assert int(single.count()) > 0
        assert np.array_equal(out.idx[b], single.idx)
        assert np.array_equal(out.dropped[b], single.dropped)
        # Batched while-loops keep iterating converged lanes, which may move a root by an
        # ulp: 1e-15 relative on times (~1e-17 s). The current I exp(-dt / tau_syn) then
        # moves by ~1e-17 s / tau_syn = 2e-15 relative: allow 1e-14.
        np.testing.assert_allclose(out.time[b], single.time, rtol=1e-15, atol=0)
        np.testing.assert_allclose(out.current[b], single.current, rtol=1e-14, atol=0)


_TRACES = []


@eqx.filter_jit
def _counted(layer, spikes):
    _TRACES.append(spikes.n_slots)  # a Python side effect: runs once per trace
    return layer(spikes)


def test_filter_jit_compiles_once_per_shape():
    params = _params(2.0, -1000.0)
    layer = LIF(3, 2, 4, T_MAX, params, key=jax.random.PRNGKey(0), mean=3.0, std=0.5)
    spikes = Spikes(jnp.array([1e-3, 2e-3, 5e-3]), jnp.array([0, 1, 2]))
    first = _counted(layer, spikes)
    assert int(first.count()) > 0
    other_values = Spikes(jnp.array([4e-3, 1e-3, 3e-3]), jnp.array([2, -1, 0]))
    _counted(layer, other_values)
    _counted(_with_weights(layer, 2.0 * layer.weights.input), spikes)
    # A freshly initialised layer of the same configuration hits the same compilation.
    _counted(LIF(3, 2, 4, T_MAX, params, key=jax.random.PRNGKey(1)), spikes)
    assert _TRACES == [3]
    _counted(layer, Spikes(jnp.array([1e-3, 2e-3]), jnp.array([0, 1])))
    assert _TRACES == [3, 2]
    _counted(layer, Spikes(jnp.array([5e-3, 1e-3]), jnp.array([1, 1])))
    assert _TRACES == [3, 2]


# --- 4. input handling ----------------------------------------------------------------------------


def test_unsorted_inputs_give_the_same_output():
    layer, spikes = _case("ratio-1.5")
    expected = _simulate(layer, spikes)
    for seed in range(3):
        perm = np.random.default_rng(seed).permutation(N_INPUTS)
        out = _simulate(layer, Spikes(spikes.time[perm], spikes.idx[perm]))
        # Sorting is exact (distinct times): the simulation is the same, bit for bit.
        assert np.array_equal(out.time, expected.time)
        assert np.array_equal(out.idx, expected.idx)
        assert np.array_equal(out.current, expected.current)


def test_empty_slot_times_are_ignored():
    layer, spikes = _case("ratio-1.5")
    empty = np.array([2, 7])
    idx = spikes.idx.at[empty].set(-1)
    outputs = []
    for garbage in (0.0, jnp.nan, -1.0, jnp.inf, 1e-3):
        time = spikes.time.at[empty].set(garbage)
        outputs.append(_simulate(layer, Spikes(time, idx)))
        jac_w, jac_t = (np.asarray(j) for j in _jacobian(layer, Spikes(time, idx)))
        assert np.all(np.isfinite(jac_w)) and np.all(np.isfinite(jac_t)), garbage
        assert np.all(jac_t[:, empty] == 0), garbage
    for out in outputs[1:]:
        assert np.array_equal(out.time, outputs[0].time)
        assert np.array_equal(out.idx, outputs[0].idx)
    assert int(outputs[0].count()) > 0
    # ... and the result is the reference's for the valid slots only.
    keep = np.setdiff1d(np.arange(N_INPUTS), empty)
    ref = simulate_diffrax(
        layer.params, Spikes(spikes.time[keep], spikes.idx[keep]), layer.weights.input,
        N_SPIKES, T_MAX,
    )  # fmt: skip
    _assert_same_spikes(outputs[0], ref)


# --- 5. Sequential --------------------------------------------------------------------------------

HIDDEN, OUT_2 = 5, 3


def _stack():
    params = _params(2.0, -1000.0)
    first = LIF(IN_SIZE, HIDDEN, HIDDEN, T_MAX, params, key=jax.random.PRNGKey(0))
    second = LIF(HIDDEN, OUT_2, OUT_2, T_MAX, params, key=jax.random.PRNGKey(0))
    return eqx.nn.Sequential(
        [
            _with_weights(first, _random_weights(1.0, seed=1, shape=(IN_SIZE, HIDDEN))),
            _with_weights(second, _random_weights(0.8, seed=2, shape=(HIDDEN, OUT_2))),
        ]
    )


@eqx.filter_jit
@eqx.filter_value_and_grad(has_aux=True)
def _stack_loss(model, spikes):
    out = model(spikes)
    coef = 1.0 + jnp.arange(OUT_2, dtype=out.time.dtype)
    return jnp.sum(jnp.where(out.idx >= 0, out.time * coef[jnp.maximum(out.idx, 0)], 0.0)), (
        model[0](spikes),
        out,
    )


def test_sequential_gradients_reach_the_first_layer():
    model, spikes = _stack(), _random_inputs()
    (_, (hidden, out)), grads = _stack_loss(model, spikes)
    assert int(hidden.count()) >= 3 and int(out.count()) >= 2
    g = np.asarray(grads[0].weights.input)
    assert np.all(np.isfinite(g)) and np.count_nonzero(g) >= 5
    w = model[0].weights.input
    fd = np.zeros(w.shape)
    for a in range(w.shape[0]):
        for b in range(w.shape[1]):
            values = []
            for s in (1, -1):
                shifted = eqx.tree_at(
                    lambda m: m[0].weights.input, model, w.at[a, b].add(s * H_WEIGHT)
                )
                (value, (_, out_s)), _ = _stack_loss(shifted, spikes)
                assert np.array_equal(out_s.idx, out.idx)
                values.append(float(value))
            fd[a, b] = (values[0] - values[1]) / (2 * H_WEIGHT)
    _assert_close_fd(g, fd)


# --- 8. simultaneous crossings --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ratio-2", "ratio-1.5"])
def test_identical_neurons_spike_together(name):
    layer, spikes = _case(name)
    w = layer.weights.input
    twin = _with_weights(layer, w.at[:, 1].set(w[:, 0]))
    out = _simulate(twin, spikes)
    idx, time = np.asarray(out.idx), np.asarray(out.time)
    t0, t1 = time[idx == 0], time[idx == 1]
    assert len(t0) >= 2 and np.array_equal(t0, t1) and int(out.dropped) == 0
    if name == "ratio-1.5":
        ref = simulate_diffrax(twin.params, spikes, twin.weights.input, N_SPIKES, T_MAX)
        assert int(out.dropped) == 0 and int(ref.dropped) == 0
        _assert_same_spikes(out, ref)


# --- 9. one program per call ----------------------------------------------------------------------


def test_eager_calls_compile_and_traced_calls_add_to_the_program():
    """Eagerly (also under an eager `jax.vmap` or `jax.grad`) a layer runs one compiled
    program (`compiled`); inside a program being traced (`jax.jit`, a scan body) it adds its
    operations to that program directly, without a nested `jit` (JAX would re-trace one
    through every transformation around it). The spikes are the same either way."""
    from eqsnn._layers import base

    contexts = []

    def probe(x):
        contexts.append(base.staged())
        return x

    x = jnp.ones(2)
    probe(x)
    jax.vmap(probe)(x)
    jax.grad(lambda x: jnp.sum(probe(x)))(x)
    assert contexts == [False, False, False]
    jax.jit(probe)(x)
    jax.jit(jax.vmap(jax.grad(lambda x: jnp.sum(probe(x)))))(jnp.ones((2, 2)))
    jax.lax.scan(lambda c, _: (probe(c), None), x, None, length=2)
    assert contexts[3:] == [True, True, True]

    layer, spikes = _case("ratio-2")

    def nested(jaxpr):
        return [e for e in jaxpr.eqns if e.params.get("name") == base.compiled.__wrapped__.__name__]

    assert not nested(jax.make_jaxpr(layer)(spikes).jaxpr)

    def loss(time):
        out = layer(eqx.tree_at(lambda s: s.time, spikes, time))
        return jnp.sum(jnp.where(out.valid, out.time, 0.0))

    assert not nested(jax.make_jaxpr(jax.grad(loss))(spikes.time).jaxpr)
    eager, traced = layer(spikes), eqx.filter_jit(lambda m, s: m(s))(layer, spikes)
    for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(traced), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --- 10. documentation ----------------------------------------------------------------------------


@pytest.mark.standard_promotion  # as users run it
def test_docstring_example_runs():
    (code,) = re.findall(r"```python\n(.*?)```", LIF.__doc__, flags=re.S)
    namespace = {}
    with warnings.catch_warnings():
        warnings.simplefilter("error", eqsnn.SpikesDroppedWarning)  # the example keeps all
        exec(textwrap.dedent(code), namespace)  # noqa: S102
    out = namespace["out"]
    assert isinstance(out, eqsnn.Spikes) and out.n_slots == 15 and int(out.dropped) == 0
