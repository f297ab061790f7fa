"""Neuron models beyond the LIF (`eqsnn.ALIFParameters`, `eqsnn.IFParameters`): gradients,
limits, edge cases and checks. (Spikes against the Diffrax reference are in
`test_neuron_models_reference.py`.)

Everything in float64 (see `conftest.py`). Tolerances:

- AutoDiff against EventProp: `1e-8` relative to the largest entry of each gradient (both
  are exact; they differ only by rounding, about 1e-13 in practice);
- central finite differences: `1e-5` relative to the largest entry, with steps of about
  `1e-7` of each quantity's scale (truncation ~ h^2 and rounding ~ eps / h both stay below
  1e-7 relative);
- the ALIF with `beta = 0` against the LIF: `1e-12` s (both exact, different solvers).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn.neurons import exp_sum_roots, first_crossing

N_IN, N_OUT, T_MAX = 5, 4, 0.05

ALIF = eqsnn.ALIFParameters(
    tau_syn=jnp.array([5e-3, 4e-3, 6e-3, 5e-3]),
    tau_mem=jnp.array([1e-2, 1.2e-2, 8e-3, 2e-2]),
    v_th=jnp.array([0.5, 0.6, 0.45, 0.5]),
    v_leak=jnp.array([0.0, 0.05, -0.05, 0.0]),
    v_reset=jnp.array([0.1, 0.0, -0.1, 0.2]),
    tau_adapt=jnp.array([3e-2, 5e-2, 2e-2, 4e-2]),
    beta=jnp.array([0.1, 0.2, 0.05, 0.3]),
)
IF = eqsnn.IFParameters(
    tau_syn=jnp.array([5e-3, 4e-3, 6e-3, 5e-3]),
    tau_mem=jnp.array([1e-2, 1.2e-2, 8e-3, 2e-2]),
    v_th=jnp.array([0.5, 0.6, 0.45, 0.5]),
    v_init=jnp.array([0.0, 0.1, -0.1, 0.0]),
    v_reset=jnp.array([0.1, 0.0, -0.1, 0.2]),
)
MODELS = {"alif": ALIF, "if": IF}
WEIGHTS = {"alif": (0.9, 0.5), "if": (0.5, 0.3)}  # (mean, std): bursts within the budget


def _inputs(seed=0, n=12, n_in=N_IN):
    k1, k2 = jax.random.split(jax.random.key(seed))
    time = jax.random.uniform(k1, (n,), minval=0.0, maxval=0.03, dtype=jnp.float64)
    return eqsnn.Spikes(time=time, idx=jax.random.randint(k2, (n,), 0, n_in))


def _layer(params, adjoint, delays="synapse", recurrent=False):
    """A layer of the model `params` on the window scan (budget 10 per neuron), with weights
    that make every neuron burst within the budget: feed-forward `N_IN -> N_OUT` with
    random per-synapse delays (none if `delays` is None), or with `recurrent` a layered
    recurrent layer `4 -> (5, 3)` (weights scaled by 0.7: the second population sums 5
    inputs)."""
    mean, std = WEIGHTS["if" if isinstance(params, eqsnn.IFParameters) else "alif"]
    common = dict(engine=eqsnn.WindowScan(max_spikes_per_neuron=10), adjoint=adjoint)
    if recurrent:
        key, mean, std = jax.random.key(5), 0.7 * mean, 0.7 * std
        return eqsnn.RecurrentLIF(
            4, (5, 3), 64, T_MAX, params, key=key, mean=mean, std=std, **common
        )
    key = jax.random.key(3)
    layer = eqsnn.LIF(
        N_IN, N_OUT, 40, T_MAX, params, key=key, mean=mean, std=std, delays=delays, **common
    )
    if delays is not None:
        d = np.abs(np.random.default_rng(1).normal(size=(N_IN, N_OUT))) * 2e-3
        layer = eqx.tree_at(lambda m: m.weights.delays, layer, jnp.asarray(d))
    return layer


def _loss(model):
    """A loss of every output spike's time and current, and the output spikes."""
    layer, spikes = model
    out = layer(spikes)
    used = out.idx >= 0
    value = jnp.sum(jnp.where(used, jnp.sin(150.0 * out.time) + 0.3 * out.current**2, 0.0))
    return value, out


@eqx.filter_jit
def _run(layer, spikes):
    """The loss, the output spikes and the gradients, as one program per layer structure
    (the finite differences reuse it: fewer compilations)."""
    (value, out), grads = eqx.filter_value_and_grad(_loss, has_aux=True)((layer, spikes))
    return value, out, grads


def _value(layer, spikes):
    return _run(layer, spikes)[:2]


def _grads(layer, spikes):
    return _run(layer, spikes)[2]


@eqx.filter_jit
def _forward(layer, spikes):
    return layer(spikes)


def _leaves(tree):
    return jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))


def _assert_close(a, b, rtol, what):
    a, b = np.asarray(a), np.asarray(b)
    scale = np.max(np.abs(a))
    assert np.max(np.abs(a - b)) <= rtol * scale + 1e-300, f"{what}: {a} vs {b}"


def _finite_difference(layer, spikes, where, index, h):
    def shifted(step):
        value = where((layer, spikes))
        new = value.at[index].add(step)
        model = eqx.tree_at(where, (layer, spikes), new)
        return float(_value(*model)[0])

    return (shifted(h) - shifted(-h)) / (2 * h)


# (path to an array, its entries to probe, step)
PROBES = {
    "alif": [
        (lambda m: m[0].weights.input, [(0, 0), (2, 1), (4, 3)], 1e-7),
        (lambda m: m[0].weights.delays, [(1, 0), (3, 2)], 1e-9),
        (lambda m: m[1].time, [0, 5], 1e-9),
        (lambda m: m[0].params.tau_adapt, [0, 1], 1e-9),
        (lambda m: m[0].params.beta, [1, 3], 1e-8),
        (lambda m: m[0].params.tau_mem, [2], 1e-10),
        (lambda m: m[0].params.tau_syn, [0], 1e-10),
        (lambda m: m[0].params.v_th, [1], 1e-8),
        (lambda m: m[0].params.v_leak, [2], 1e-8),
        (lambda m: m[0].params.v_reset, [3], 1e-8),
    ],
    "if": [
        (lambda m: m[0].weights.input, [(0, 0), (2, 1), (4, 3)], 1e-7),
        (lambda m: m[0].weights.delays, [(1, 0), (3, 2)], 1e-9),
        (lambda m: m[1].time, [0, 5], 1e-9),
        (lambda m: m[0].params.tau_mem, [0, 2], 1e-10),
        (lambda m: m[0].params.tau_syn, [1], 1e-10),
        (lambda m: m[0].params.v_th, [3], 1e-8),
        (lambda m: m[0].params.v_init, [1], 1e-8),
        (lambda m: m[0].params.v_reset, [0], 1e-8),
    ],
}


@pytest.mark.parametrize("name", ["alif", "if"])
def test_feedforward_gradients_autodiff_eventprop_finite_differences(name):
    """Multi-spike layer with per-neuron parameters and per-synapse delays: AutoDiff equals
    EventProp, and both equal central finite differences for every kind of quantity."""
    params, spikes = MODELS[name], _inputs()
    auto, prop = _layer(params, eqsnn.AutoDiff()), _layer(params, eqsnn.EventProp())
    out = _value(prop, spikes)[1]
    counts = np.bincount(np.asarray(out.idx)[np.asarray(out.idx) >= 0], minlength=N_OUT)
    assert counts.min() >= 2 and int(out.dropped) == 0, counts  # every neuron bursts
    g_auto, g_prop = _grads(auto, spikes), _grads(prop, spikes)
    for a, b in zip(_leaves(g_auto), _leaves(g_prop), strict=True):
        _assert_close(a, b, 1e-8, f"{name}: AutoDiff vs EventProp")
    for where, indices, h in PROBES[name]:
        grad = where(g_prop)
        for index in indices:
            fd = _finite_difference(prop, spikes, where, index, h)
            scale = max(np.max(np.abs(np.asarray(grad))), 1e-12)
            assert abs(float(grad[index]) - fd) <= 1e-5 * scale, (name, index, grad, fd)
    # Silent neurons (negative weights; the same compiled programs): no spike, and zero,
    # finite gradients by both methods.
    silent = [
        eqx.tree_at(lambda m: m.weights.input, m, -jnp.abs(m.weights.input)) for m in (auto, prop)
    ]
    assert int(jnp.sum(_value(silent[1], spikes)[1].idx >= 0)) == 0
    for layer in silent:
        for g in _leaves(_grads(layer, spikes)):
            assert np.all(np.asarray(g) == 0.0)


def test_alif_closed_form_adjoint():
    """An ALIF layer with constant parameters and shared arrivals gets EventProp's closed-form
    adjoint (`adjoint_jumps` with the adaptation): AutoDiff equals it, and so do central
    finite differences of weights and input times, with every neuron bursting (the
    adaptation and the resets' dependence on it enter every later spike's condition)."""
    params = eqsnn.ALIFParameters(
        tau_syn=4e-3, tau_mem=1.2e-2, v_th=0.5, v_leak=0.05, v_reset=0.1, tau_adapt=3e-2, beta=0.2
    )
    common = dict(key=jax.random.key(3), mean=0.9, std=0.5)
    engine = eqsnn.WindowScan(max_spikes_per_neuron=10)
    auto, prop = (
        eqsnn.LIF(N_IN, N_OUT, 40, T_MAX, params, engine=engine, adjoint=m, **common)
        for m in (eqsnn.AutoDiff(), eqsnn.EventProp())
    )
    spikes = _inputs()
    out = _value(prop, spikes)[1]
    counts = np.bincount(np.asarray(out.idx)[np.asarray(out.idx) >= 0], minlength=N_OUT)
    assert counts.min() >= 2 and int(out.dropped) == 0, counts
    g_auto, g_prop = _grads(auto, spikes), _grads(prop, spikes)
    for a, b in zip(_leaves(g_auto), _leaves(g_prop), strict=True):
        _assert_close(a, b, 1e-8, "ALIF closed form: AutoDiff vs EventProp")
    probes = [
        (lambda m: m[0].weights.input, [(0, 0), (4, 3)], 1e-7),
        (lambda m: m[1].time, [0, 5], 1e-9),
    ]
    for where, indices, h in probes:
        grad = where(g_prop)
        for index in indices:
            fd = _finite_difference(prop, spikes, where, index, h)
            scale = np.max(np.abs(np.asarray(grad)))
            assert abs(float(grad[index]) - fd) <= 1e-5 * scale, (index, grad, fd)


@pytest.mark.parametrize("name", ["alif", "if"])
def test_layered_recurrent_gradients(name):
    """A layered recurrent layer (4 -> 5 -> 3) of the model: AutoDiff equals EventProp, and
    finite differences of a recurrent weight and a parameter match."""
    base = MODELS[name]
    params = jax.tree.map(lambda a: jnp.concatenate([a, a[:4]]), base)  # 8 neurons
    spikes = _inputs(seed=2, n=14, n_in=4)
    auto, prop = (_layer(params, m, recurrent=True) for m in (eqsnn.AutoDiff(), eqsnn.EventProp()))
    assert isinstance(auto.engine, eqsnn.WindowScan)
    out = _value(prop, spikes)[1]
    assert int(jnp.sum(out.idx >= 5)) >= 3 and int(out.dropped) == 0  # the second population fires
    g_auto, g_prop = _grads(auto, spikes), _grads(prop, spikes)
    for a, b in zip(_leaves(g_auto), _leaves(g_prop), strict=True):
        _assert_close(a, b, 1e-8, f"{name} recurrent: AutoDiff vs EventProp")
    recurrent = np.asarray(g_prop[0].weights.recurrent)
    i, j = np.unravel_index(np.argmax(np.abs(recurrent)), recurrent.shape)
    probes = [
        (lambda m: m[0].weights.recurrent, (int(i), int(j)), 1e-7),
        (lambda m: m[0].params.tau_syn, 6, 1e-10),
        (lambda m: m[0].params.v_th, 1, 1e-8),
    ]
    for where, index, h in probes:
        grad = where(g_prop)
        fd = _finite_difference(prop, spikes, where, index, h)
        scale = max(np.max(np.abs(np.asarray(grad))), 1e-12)
        assert abs(float(grad[index]) - fd) <= 1e-5 * scale, (name, index, grad, fd)


def test_alif_without_adaptation_is_the_lif_and_adaptation_thins_bursts():
    """`beta = 0` makes the ALIF an LIF: the same spikes as the LIF's own engine (a check of
    the generic window scan and crossing solver against the LIF's). With adaptation a
    bursting neuron spikes less often, and its first spike is unchanged."""
    spikes = _inputs(seed=4, n=20)
    common = dict(tau_syn=5e-3, tau_mem=1.3e-2, v_th=0.5, v_leak=0.02, v_reset=0.1)
    lif = _forward(_layer(eqsnn.LIFParameters(**common), eqsnn.AutoDiff(), delays=None), spikes)
    outs = [
        _forward(
            _layer(
                eqsnn.ALIFParameters(**common, beta=jnp.full(N_OUT, beta)), eqsnn.AutoDiff(), None
            ),
            spikes,
        )
        for beta in (0.0, 0.4)
    ]
    assert int(jnp.sum(lif.idx >= 0)) >= 8
    np.testing.assert_array_equal(np.asarray(outs[0].idx), np.asarray(lif.idx))
    used = np.asarray(lif.idx) >= 0
    np.testing.assert_allclose(
        np.asarray(outs[0].time)[used], np.asarray(lif.time)[used], rtol=0, atol=1e-12
    )
    assert int(jnp.sum(outs[1].idx >= 0)) < int(jnp.sum(outs[0].idx >= 0))
    np.testing.assert_allclose(
        np.asarray(outs[1].first_spike_times(N_OUT)),
        np.asarray(outs[0].first_spike_times(N_OUT)),
        rtol=0,
        atol=1e-15,
    )


def _exp_sum(c0, c, r, t):
    return c0 + np.sum(c[None, :] * np.exp(-r[None, :] * t[:, None]), axis=1)


def test_exp_sum_roots_against_a_dense_grid():
    """Every sign change of random 3-term exponential sums on a fine grid is a root found
    (and no root is reported where there is none)."""
    rng = np.random.default_rng(0)
    t_hi = 0.1
    grid = np.linspace(0.0, t_hi, 200_001)
    roots_of = jax.jit(jax.vmap(lambda c0, c, r: exp_sum_roots(c0, c, r, t_hi)))
    c0 = rng.normal(size=300) * 0.3
    c = rng.normal(size=(300, 3))
    r = np.stack([rng.permutation([100.0, 200.0, 35.0]) for _ in range(300)])
    found = np.asarray(roots_of(jnp.asarray(c0), jnp.asarray(c), jnp.asarray(r)))
    n_checked = 0
    for k in range(300):
        values = _exp_sum(c0[k], c[k], r[k], grid)
        changes = grid[1:][np.sign(values[1:]) != np.sign(values[:-1])]
        mine = found[k][found[k] < t_hi]
        assert len(mine) == len(changes), (k, mine, changes)
        np.testing.assert_allclose(mine, changes, atol=grid[1] - grid[0])
        np.testing.assert_allclose(_exp_sum(c0[k], c[k], r[k], mine), 0.0, atol=1e-12)
        n_checked += len(changes)
    assert n_checked > 100


def _alif_state(u, i, a):
    return jnp.array([u, i, a], jnp.float64)


@pytest.mark.parametrize("offset", [1e-9, -1e-9])
def test_grazing_crossing_is_decided_by_the_peak(offset):
    """A trajectory whose peak is just above the threshold crosses, just below it does not;
    the time and its gradient are finite either way."""
    params = eqsnn.ALIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.5, tau_adapt=4e-2, beta=0.1)
    x = _alif_state(0.0, 1.0, 0.05)
    peak = jax.jit(
        lambda x: jnp.max(
            jax.vmap(lambda t: params.gap(params.flow(x, t)))(jnp.linspace(0.0, 0.05, 50_001))
        )
    )(x)
    # shift the threshold so that the peak is `offset` above it (refined by bisection
    # around the grid maximum with the solver's own edges)
    c0, c, r = params.gap_terms(x)
    from eqsnn.neurons._crossing import _monotone_edges

    edges = _monotone_edges(c0, c, r, 0.05)
    exact_peak = max(float(params.gap(params.flow(x, t))) for t in np.asarray(edges))
    assert exact_peak >= float(peak) - 1e-12
    shifted = dataclasses.replace(params, v_th=params.v_th + exact_peak - offset)
    dt, found = jax.jit(lambda x: first_crossing(shifted, x, 0.05))(x)
    assert bool(found) == (offset > 0)
    grad = jax.grad(lambda x: first_crossing(shifted, x, 0.05)[0])(x)
    assert np.all(np.isfinite(np.asarray(grad))) and np.isfinite(float(dt))


def test_bad_parameters_and_settings_are_refused():
    with pytest.raises(ValueError, match="`tau_adapt` must differ from `tau_mem`"):
        eqsnn.ALIFParameters(tau_mem=1e-2, tau_adapt=1e-2)
    with pytest.raises(ValueError, match=r"`tau_mem` must differ from `tau_syn`.*tau_mem\[1\]"):
        eqsnn.ALIFParameters(tau_mem=jnp.array([1e-2, 5e-3]), tau_syn=5e-3)
    with pytest.raises(ValueError, match="`beta` must be >= 0, got -0.1"):
        eqsnn.ALIFParameters(beta=-0.1)
    with pytest.raises(ValueError, match="`v_init` must be below `v_th`"):
        eqsnn.IFParameters(v_init=0.7, v_th=0.6)
    with pytest.raises(ValueError, match="`tau_syn` must be positive"):
        eqsnn.IFParameters(tau_syn=0.0)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="Leave `solver` out"):
        eqsnn.LIF(
            3, 2, 4, 0.1, eqsnn.IFParameters(), key=key, solver=eqsnn.solvers.BracketedSolver()
        )
    with pytest.raises(ValueError, match="simulated by the window scan.*engine=EventLoop"):
        eqsnn.RecurrentLIF(
            3, (2,), 4, 0.1, eqsnn.ALIFParameters(), key=key, connectivity=eqsnn.Connectivity.FULL
        )
    with pytest.raises(ValueError, match="engine=IntervalScan"):
        eqsnn.LIF(3, 2, 4, 0.1, eqsnn.ALIFParameters(), key=key, engine=eqsnn.IntervalScan())
    with pytest.raises(ValueError, match="params.beta"):
        eqsnn.LIF(3, 2, 4, 0.1, eqsnn.ALIFParameters(beta=jnp.zeros(3)), key=key)
