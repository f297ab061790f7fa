"""EventPropLIF: gradients equal autodiff through LIF and central finite differences.

Tolerances. EventProp and autodiff compute the same derivative by different sequences of
floating-point operations, so they agree to rounding: 1e-8 relative leaves seven orders of
magnitude of margin over the <= 2e-15 measured. Central finite differences with step
h = 1e-6 (along directions of O(1) weights and `t_max`-scaled times) have a truncation error
~h^2 * (t_max/tau_syn)^2 ~ 1e-10 and a rounding error ~eps/h ~ 1e-10 (<= 1e-9 measured), so
1e-5 relative is a safe bound that still catches any wrong term (those are O(1) wrong).
Directional derivatives are compared relative to the sum of the magnitudes of their terms.

Runtime. Compilation dominates (seconds per configuration; runs take milliseconds), so the
grid of tau ratios x regimes x depths x losses is covered by few compiled configurations:
every ratio in both regimes, the multi-spike regime also as a two-layer network, both losses
everywhere. Autodiff through `LIF` is taken in forward mode (`jax.jvp`, half the compile time
of reverse mode) along random directions; it is compared elementwise in reverse mode, and
the two `wrap_only_step` settings with each other, in the hardest configuration (bursts
that overflow both the interval budget and the output buffer). Independent compilations of
a test run in two threads (`_in_parallel`).
"""

import concurrent.futures
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn import (
    AdjointState,
    EventPropLIF,
    adjoint_lif_exponential_flow,
    adjoint_transition_with_recurrence,
)
from eqsnn._flow import membrane, synaptic_current
from eqsnn.solvers import BracketedSolver

T_MAX = 0.04
N_IN, N_HIDDEN, N_OUT, N_INPUTS = 4, 6, 3, 8
N_DIRECTIONS = 2
H = 1e-6
# name: (v_reset, max_spikes_per_interval, hidden budget, output budget)
REGIMES = {"one-spike": (-1000.0, 1, N_HIDDEN, N_OUT), "multi-spike": (0.0, 3, 10, 8)}
# (ratio tau_mem/tau_syn, regime, number of layers, seed)
CASES = [
    (2.0, "one-spike", 1, 0),
    (2.0, "multi-spike", 2, 1),
    (1.0, "one-spike", 1, 2),
    (1.0, "multi-spike", 1, 3),
    (1.5, "one-spike", 1, 4),
    (1.5, "multi-spike", 1, 5),
    (0.5, "one-spike", 1, 6),
    (0.5, "multi-spike", 1, 7),
]
TWO_LAYER_CASE = CASES[1]


def _params(ratio, v_reset):
    return eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=ratio * 5e-3, v_reset=v_reset)


def _silence_last_neuron(layer):
    """Make the last neuron of a layer never spike (all its input weights negative)."""
    w = layer.weights.input
    return eqx.tree_at(lambda m: m.weights.input, layer, w.at[:, -1].set(-jnp.abs(w[:, -1])))


def _network(cls, ratio, regime, n_layers, seed, **kwargs):
    """A random `eqx.nn.Sequential` network whose last neuron in each layer never spikes,
    and random input spikes (some slots empty)."""
    v_reset, per_interval, n_hidden_spikes, n_out_spikes = REGIMES[regime]
    common = dict(params=_params(ratio, v_reset), max_spikes_per_interval=per_interval, **kwargs)
    sizes = [(N_IN, N_HIDDEN, n_hidden_spikes, 1.2), (N_HIDDEN, N_OUT, n_out_spikes, 0.8)]
    keys = jax.random.split(jax.random.PRNGKey(seed), 3)
    net = eqx.nn.Sequential(
        [
            _silence_last_neuron(cls(n_in, n_out, n_spk, T_MAX, key=k, mean=mean, **common))
            for k, (n_in, n_out, n_spk, mean) in zip(keys[:n_layers], sizes, strict=False)
        ]
    )
    k_time, k_idx = jax.random.split(keys[2])
    time = jax.random.uniform(k_time, (N_INPUTS,), maxval=0.6 * T_MAX)
    idx = jax.random.randint(k_idx, (N_INPUTS,), -1, N_IN)
    return net, time, idx


def _spike_losses(out, n_out):
    """Two losses of output spikes: weighted first-spike times (silent neurons excluded) and
    all spikes (times and currents)."""
    first = out.first_spike_times(n_out)
    coeff = jnp.linspace(1.0, -0.5, n_out)
    first_loss = jnp.sum(jnp.where(jnp.isfinite(first), coeff * first, 0.0)) / T_MAX
    all_loss = jnp.sum(jnp.where(out.valid, jnp.sin(150.0 * out.time) + 0.1 * out.current, 0.0))
    return jnp.stack([first_loss, all_loss])


def _losses(net_and_time, idx):
    net, time = net_and_time
    return _spike_losses(net(eqsnn.Spikes(time, idx)), net.layers[-1].out_size)


def _value_and_jacobian(net_and_time, idx):
    """The two losses and their gradients (leaves with a leading axis of 2)."""
    values, pull = eqx.filter_vjp(lambda x: _losses(x, idx), net_and_time)
    (jacobian,) = jax.vmap(pull)(jnp.eye(2))
    return values, jacobian


_jacobian = eqx.filter_jit(_value_and_jacobian)


@eqx.filter_jit
def _jacobian_and_differences(net_and_time, idx, directions):
    """`_value_and_jacobian`, and central differences `(direction, loss)` of the losses along
    `directions` (one compiled, vmapped forward serves the Jacobian and the differences)."""
    steps = jnp.concatenate([jnp.zeros(1), jnp.full(N_DIRECTIONS, H), jnp.full(N_DIRECTIONS, -H)])
    shifts = jax.tree_util.tree_map(
        lambda d: steps.reshape((-1,) + (1,) * (d.ndim - 1)) * jnp.concatenate([d[:1], d, d]),
        directions,
    )

    def at(shift):
        return _value_and_jacobian(eqx.apply_updates(net_and_time, shift), idx)

    values, jacobians = eqx.filter_vmap(at)(shifts)
    jacobian = jax.tree_util.tree_map(lambda j: j[0], jacobians)
    plus, minus = values[1 : 1 + N_DIRECTIONS], values[1 + N_DIRECTIONS :]
    return values[0], jacobian, (plus - minus) / (2 * H)


@eqx.filter_jit
def _autodiff_directional(net_and_time, idx, directions):
    """Forward-mode autodiff of the losses along each direction: `(direction, loss)`."""
    diff, static = eqx.partition(net_and_time, eqx.is_inexact_array)

    def along(direction):
        return jax.jvp(lambda x: _losses(eqx.combine(x, static), idx), (diff,), (direction,))

    values, tangents = jax.vmap(along)(directions)
    return values[0], tangents


def _directions(net_and_time, idx, seed=7):
    """`N_DIRECTIONS` random directions in (weights, input times), stacked on a leading axis;
    times scaled to `T_MAX`, zero on empty input slots."""
    diff = eqx.filter(net_and_time, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(diff)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    out = [
        jax.random.normal(k, (N_DIRECTIONS,) + x.shape) for k, x in zip(keys, leaves, strict=True)
    ]
    out[-1] = jnp.where(idx >= 0, T_MAX * out[-1], 0.0)
    return jax.tree_util.tree_unflatten(treedef, out)


def _in_parallel(*calls):
    """Run the calls (first calls of jitted functions) in threads. They spend their time in
    XLA compilation, which releases the GIL, so the compilations overlap on several cores."""
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


def _project(jacobian, directions):
    """Directional derivatives `(direction, loss)` and the sums of the magnitudes of their
    terms (the natural scale of a dot product)."""
    pairs = list(zip(_leaves(jacobian), _leaves(directions), strict=True))
    dot = sum(d.reshape(N_DIRECTIONS, -1) @ j.reshape(2, -1).T for j, d in pairs)
    size = sum(np.abs(d.reshape(N_DIRECTIONS, -1)) @ np.abs(j.reshape(2, -1)).T for j, d in pairs)
    return dot, size


def _max_rel_err(got, want):
    """Largest normwise relative error over the gradient arrays, per loss (and sample)."""
    errors = [0.0]
    for g, w in zip(_leaves(got), _leaves(want), strict=True):
        assert np.all(np.isfinite(g)), "non-finite gradient"
        g, w = g.reshape(g.shape[0], g.shape[1], -1), w.reshape(w.shape[0], w.shape[1], -1)
        scale = np.max(np.abs(w), axis=-1)
        err = np.max(np.abs(g - w), axis=-1) / np.where(scale > 0, scale, 1.0)
        errors.append(float(np.max(err)))
    return max(errors)


@pytest.mark.parametrize(("ratio", "regime", "n_layers", "seed"), CASES)
def test_gradients_match_autodiff_and_finite_differences(ratio, regime, n_layers, seed):
    net, time, idx = _network(EventPropLIF, ratio, regime, n_layers, seed)
    reference, _, _ = _network(eqsnn.LIF, ratio, regime, n_layers, seed)
    directions = _directions((net, time), idx)
    ref_directions = _directions((reference, time), idx)  # the same arrays, LIF's structure
    (values, got, fd), (ref_values, autodiff) = _in_parallel(
        functools.partial(_jacobian_and_differences, (net, time), idx, directions),
        functools.partial(_autodiff_directional, (reference, time), idx, ref_directions),
    )
    np.testing.assert_array_equal(values, ref_values)  # the same forward pass
    assert np.all(values != 0.0)  # the output layer spikes
    for leaf in _leaves(got):
        assert np.all(np.isfinite(leaf))
    eventprop, size = _project(got, directions)
    assert np.max(np.abs(eventprop - autodiff) / size) < 1e-8
    assert np.max(np.abs(eventprop - fd) / size) < 1e-5
    for layer_grad in got[0].layers:  # the never-spiking neurons get exactly zero
        np.testing.assert_array_equal(layer_grad.weights.input[..., -1], 0.0)


def test_silent_layer_gives_zero_gradients():
    ratio, regime, n_layers, seed = TWO_LAYER_CASE
    net, time, idx = _network(EventPropLIF, ratio, regime, n_layers, seed)
    silent = eqx.tree_at(lambda n: n.layers[0].weights.input, net, -jnp.ones((N_IN, N_HIDDEN)))
    directions = _directions((silent, time), idx)
    values, jacobian, fd = _jacobian_and_differences((silent, time), idx, directions)
    np.testing.assert_array_equal(values, 0.0)
    np.testing.assert_array_equal(fd, 0.0)
    for leaf in _leaves(jacobian):
        np.testing.assert_array_equal(leaf, 0.0)


def _bursting(cls, wrap_only_step=None):
    """A layer that bursts: more crossings than `max_spikes_per_interval=2` allows between
    inputs (they are lost, and the neuron is reset at each: its adjoint restarts there)
    and more spikes than its buffer of 10 holds."""
    params = _params(2.0, v_reset=0.0)
    kwargs = dict(max_spikes_per_interval=2, key=jax.random.PRNGKey(3), mean=3.0)
    if wrap_only_step is not None:
        kwargs["wrap_only_step"] = wrap_only_step
    return cls(N_IN, N_OUT, 10, T_MAX, params, **kwargs)


@eqx.filter_jit
def _batch_gradients(layer, time, idx):
    """Per sample: the output, the Jacobian of the losses, and the VJP of a cotangent that is
    NaN on empty output slots (as a loss evaluated on their `+inf` times could produce)."""

    def one(t, i):
        out, pull = eqx.filter_vjp(lambda x: x[0](eqsnn.Spikes(x[1], i)), (layer, t))
        diff, static = eqx.partition(out, eqx.is_inexact_array)
        losses = jax.jacrev(lambda o: _spike_losses(eqx.combine(o, static), layer.out_size))
        nan = jnp.where(out.valid, 1.0, jnp.nan)
        nan_cotangent = eqx.tree_at(lambda s: (s.time, s.current), diff, (nan, nan))
        cotangents = jax.tree_util.tree_map(
            lambda a, b: jnp.concatenate([a, b[None]]), losses(diff), nan_cotangent
        )
        (grads,) = jax.vmap(pull)(cotangents)
        jacobian = jax.tree_util.tree_map(lambda g: g[:2], grads)
        return out, jacobian, jax.tree_util.tree_map(lambda g: g[2], grads)

    return jax.vmap(one)(time, idx)


def test_bursts_and_full_buffers_match_autodiff_elementwise_with_both_wrappings():
    time = jnp.array([[1e-3, 2e-3, 9e-3, 9e-3, 2.5e-2, 0.0], [4e-3, 5e-3, 6e-3, 3e-2, 1.0, 1.0]])
    idx = jnp.array([[0, 1, 2, 3, 0, -1], [3, 2, 1, 0, 1, 2]])
    layers = [_bursting(EventPropLIF), _bursting(eqsnn.LIF), _bursting(EventPropLIF, True)]
    results = _in_parallel(*[functools.partial(_batch_gradients, x, time, idx) for x in layers])
    (out, got, got_masked), (_, want, want_masked), (_, per_step, per_step_masked) = results
    assert np.all(out.dropped > 0)
    for out_time, in_time in zip(out.time, time, strict=True):  # no spike pinned to an
        assert not np.any(np.isin(out_time, in_time))  # input (a lost crossing is reset)
    assert _max_rel_err(got, want) < 1e-8
    assert _max_rel_err(per_step, got) < 1e-12
    for g, w in zip(_leaves(got_masked), _leaves(want_masked), strict=True):
        assert np.all(np.isfinite(g))
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-8 * np.max(np.abs(w)))
    for g, w in zip(_leaves(per_step_masked), _leaves(got_masked), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12 * np.max(np.abs(w)))


@pytest.mark.parametrize("ratio", [2.0, 1.0, 1.0 + 1e-9, 1.5, 0.5])
def test_adjoint_flow_is_the_transpose_of_the_flow(ratio):
    """lambda(t - dt) = Phi(dt)^T lambda(t) in the state sensitivities p = -tau * lambda."""
    params = _params(ratio, 0.0)
    rng = np.random.default_rng(0)
    lam = AdjointState(jnp.asarray(rng.normal(size=5)), jnp.asarray(rng.normal(size=5)))
    dt = jnp.asarray(rng.uniform(0.0, 0.05, size=5))

    @jax.jit
    def both(lam, dt):
        state = eqsnn.LIFState(v=jnp.zeros(5), i=jnp.zeros(5))
        _, pull = jax.vjp(lambda s: eqsnn.lif_exponential_flow(params)(s, dt), state)
        p = eqsnn.LIFState(v=-params.tau_mem * lam.lambda_v, i=-params.tau_syn * lam.lambda_i)
        return adjoint_lif_exponential_flow(params)(lam, dt), pull(p)[0]

    back, p = both(lam, dt)
    # Rounding of O(1) quantities; the phi-form avoids cancellation at ratio 1 +- 1e-9.
    np.testing.assert_allclose(-params.tau_mem * back.lambda_v, p.v, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(-params.tau_syn * back.lambda_i, p.i, rtol=1e-13, atol=1e-15)
    far = adjoint_lif_exponential_flow(params)(lam, 10.0)  # 2000 time constants: no overflow
    assert np.all(np.isfinite(far.lambda_v)) and np.all(np.isfinite(far.lambda_i))


def test_recurrent_transition_matches_autodiff():
    """One recurrent spike of neuron 0: flow to the crossing, reset, add recurrent[0, :] to
    every current, flow on. The adjoint through the jump gives autodiff's gradients."""
    params = _params(1.5, v_reset=-0.2)
    solver, theta = BracketedSolver(), params.v_th
    tau_m, tau_s, t_end = params.tau_mem, params.tau_syn, 0.01
    a, b, c, e = jnp.array([0.3, -1.0, 0.7]), jnp.array([0.5, 0.2, -0.4]), 2.0, -0.8

    def loss(u0, i0, rec):
        t_spike, _ = solver(u0[0], i0[0], theta, t_end, tau_m, tau_s)
        u, i = membrane(u0, i0, t_spike, tau_m, tau_s), synaptic_current(i0, t_spike, tau_s)
        current = i[0]
        u, i = u.at[0].set(params.v_reset), i + rec[0]
        u, i = (
            membrane(u, i, t_end - t_spike, tau_m, tau_s),
            synaptic_current(i, t_end - t_spike, tau_s),
        )
        return jnp.dot(a, u) + jnp.dot(b, i) + c * t_spike + e * current, (t_spike, current)

    u0, i0 = jnp.array([0.1, 0.2, -0.1]), jnp.array([2.0, 0.3, 0.5])
    rec = jnp.array([[0.4, -0.6, 0.9], [0.1, 0.2, 0.3], [0.0, 0.5, -0.5]])
    grad_loss = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))
    grads, (t_spike, current) = grad_loss(u0, i0, rec)
    assert 0.0 < t_spike < t_end
    flow = adjoint_lif_exponential_flow(params)
    adjoint = flow(AdjointState(-a / tau_m, -b / tau_s), t_end - t_spike)
    adjoint, grad_row = adjoint_transition_with_recurrence(params, adjoint, 0, current, c, e, rec)
    adjoint = flow(adjoint, t_spike)
    np.testing.assert_allclose(-tau_m * adjoint.lambda_v, grads[0], rtol=1e-10)
    np.testing.assert_allclose(-tau_s * adjoint.lambda_i, grads[1], rtol=1e-10)
    np.testing.assert_allclose(grad_row, grads[2][0], rtol=1e-10)
    np.testing.assert_array_equal(grads[2][1:], 0.0)


def test_forward_mode_is_not_supported():
    layer, time, idx = _bursting(EventPropLIF), jnp.array([1e-3]), jnp.array([0])
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jit(jax.jvp, static_argnums=0)(
            lambda t: layer(eqsnn.Spikes(t, idx)).time, (time,), (jnp.ones(1),)
        )


def test_bad_wrap_only_step_raises():
    with pytest.raises(TypeError, match="wrap_only_step"):
        EventPropLIF(2, 2, 2, T_MAX, key=jax.random.PRNGKey(0), wrap_only_step="yes")
