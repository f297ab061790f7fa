"""EventProp beyond the engine x adjoint matrix (tests/test_engine_matrix.py, which checks
EventProp against autodiff for every engine and layer kind): a silent layer, bursts that
overflow both the interval budget and the output buffer, the adjoint's building blocks
(`eqsnn.eventprop`) against autodiff, and what EventProp refuses.

Tolerances. EventProp and autodiff compute the same derivative by different sequences of
floating-point operations, so they agree to rounding: 1e-8 relative leaves orders of
magnitude of margin over the <= 2e-15 measured; the two `per_step` settings apply the
same jumps and flows: 1e-12.

Runtime. Compilation dominates; independent compilations of a test run in two threads
(`_in_parallel`).
"""

import concurrent.futures
import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _networks import build

import eqsnn
from eqsnn._flow import membrane, synaptic_current
from eqsnn.eventprop import (
    AdjointState,
    adjoint_lif_exponential_flow,
    adjoint_transition_with_recurrence,
)
from eqsnn.solvers import BracketedSolver

T_MAX = 0.04
N_IN, N_OUT = 4, 3
INTERVAL_SCAN = eqsnn.IntervalScan(max_spikes_per_interval=2)


def _params(ratio, v_reset):
    return eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=ratio * 5e-3, v_reset=v_reset)


def _spike_losses(out, n_out):
    """Two losses of output spikes: weighted first-spike times (silent neurons excluded) and
    all spikes (times and currents)."""
    first = out.first_spike_times(n_out)
    coeff = jnp.linspace(1.0, -0.5, n_out)
    first_loss = jnp.sum(jnp.where(jnp.isfinite(first), coeff * first, 0.0)) / T_MAX
    all_loss = jnp.sum(jnp.where(out.valid, jnp.sin(150.0 * out.time) + 0.1 * out.current, 0.0))
    return jnp.stack([first_loss, all_loss])


def _in_parallel(*calls):
    """Run the calls (first calls of jitted functions) in threads. They spend their time in
    XLA compilation, which releases the GIL, so the compilations overlap on several cores."""
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_array))]


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


@pytest.mark.parametrize(
    "adjoint", [eqsnn.EventProp(), eqsnn.EventProp(per_step=True)], ids=["trajectory", "per-step"]
)
def test_silent_layer_gives_zero_gradients(adjoint):
    """No output spike at all: zero losses and exactly zero (not NaN) gradients."""
    layer, spikes = build("feedforward", INTERVAL_SCAN, adjoint)
    silent = eqx.tree_at(lambda m: m.weights.input, layer, -jnp.ones_like(layer.weights.input))

    @eqx.filter_jit
    def value_and_jacobian(layer_and_time):
        def losses(x):
            return _spike_losses(x[0](eqsnn.Spikes(x[1], spikes.idx)), layer.out_size)

        values, pull = eqx.filter_vjp(losses, layer_and_time)
        return values, jax.vmap(pull)(jnp.eye(2))

    values, jacobian = value_and_jacobian((silent, spikes.time))
    np.testing.assert_array_equal(values, 0.0)
    for leaf in _leaves(jacobian):
        np.testing.assert_array_equal(leaf, 0.0)


def _bursting(adjoint):
    """A layer that bursts: more crossings than `IntervalScan(max_spikes_per_interval=2)`
    allows between inputs (they are lost, and the neuron is reset at each: its adjoint
    restarts there) and more spikes than its buffer of 10 holds."""
    params = _params(2.0, v_reset=0.0)
    return eqsnn.LIF(
        N_IN, N_OUT, 10, T_MAX, params, key=jax.random.PRNGKey(3), mean=3.0,
        engine=INTERVAL_SCAN, adjoint=adjoint, overflow=eqsnn.Overflow.COUNT,
    )  # fmt: skip


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


def test_bursts_and_full_buffers_match_autodiff_elementwise_with_both_adjoints():
    time = jnp.array([[1e-3, 2e-3, 9e-3, 9e-3, 2.5e-2, 0.0], [4e-3, 5e-3, 6e-3, 3e-2, 1.0, 1.0]])
    idx = jnp.array([[0, 1, 2, 3, 0, -1], [3, 2, 1, 0, 1, 2]])
    adjoints = [eqsnn.EventProp(), eqsnn.AutoDiff(), eqsnn.EventProp(per_step=True)]
    layers = [_bursting(adjoint) for adjoint in adjoints]
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
    layer = _bursting(eqsnn.EventProp())
    time, idx = jnp.array([1e-3]), jnp.array([0])
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jit(jax.jvp, static_argnums=0)(
            lambda t: layer(eqsnn.Spikes(t, idx)).time, (time,), (jnp.ones(1),)
        )


def test_bad_wrap_only_step_or_per_step_raises():
    with pytest.raises(TypeError, match="EventPropLIF: `wrap_only_step` must be a bool"):
        eqsnn.EventPropLIF(2, 2, 2, T_MAX, key=jax.random.PRNGKey(0), wrap_only_step="yes")
    with pytest.raises(TypeError, match="EventProp: `per_step` must be a bool"):
        eqsnn.EventProp(per_step="yes")
