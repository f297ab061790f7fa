"""Crossing solvers: exactness, agreement between solvers, implicit gradients, edge cases."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eqsnn import LIFParameters
from eqsnn._flow import LIFState, membrane
from eqsnn.solvers import (
    BracketedSolver,
    LambertWSolver,
    TTFSSolver,
    default_solver,
    lambert_w0,
    ttfs_solver,
)

TAU_SYN = 5e-3


@eqx.filter_jit
def solve(solver, u0, i0, theta, window, tau_mem, tau_syn):
    """Jitted solver call: eager while-loops would recompile at every call."""
    return solver(u0, i0, theta, window, tau_mem, tau_syn)


@eqx.filter_jit
def solve_grad(solver, x, window, tau_mem, tau_syn):
    """Crossing time and its gradient w.r.t. x = (u0, i0, theta)."""

    def t_of(x):
        return solver(x[0], x[1], x[2], window, tau_mem, tau_syn)[0]

    return t_of(x), jax.grad(t_of)(x)


THETA = 1.0
WINDOW = 0.05


def _states(n=200, seed=0):
    rng = np.random.default_rng(seed)
    u0 = rng.uniform(-1.0, 0.99, n)
    i0 = rng.uniform(-2.0, 8.0, n)
    return jnp.asarray(u0), jnp.asarray(i0)


@pytest.mark.parametrize(
    ("solver", "ratio"), [(TTFSSolver(), 2.0), (LambertWSolver(), 1.0)], ids=["ttfs", "lambertw"]
)
def test_analytic_solvers_agree_with_bracketed(solver, ratio):
    u0, i0 = _states()
    tau_mem = ratio * TAU_SYN
    t_a, f_a = solve(solver, u0, i0, THETA, WINDOW, tau_mem, TAU_SYN)
    t_b, f_b = solve(BracketedSolver(), u0, i0, THETA, WINDOW, tau_mem, TAU_SYN)
    np.testing.assert_array_equal(f_a, f_b)
    assert 20 < int(f_a.sum()) < 200  # the sample exercises both outcomes
    # Both are exact to rounding: 1e-12 relative is ~1e4 ulps of slack for the
    # ill-conditioned near-grazing states in the random sample.
    np.testing.assert_allclose(t_a, t_b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("ratio", [2.0, 1.0, 1.0 + 1e-6, 1.0 - 1e-6, 1.5, 0.5, 3.0])
def test_crossing_is_the_first_root(ratio):
    u0, i0 = _states(seed=1)
    tau_mem = ratio * TAU_SYN
    t, found = solve(BracketedSolver(), u0, i0, THETA, WINDOW, tau_mem, TAU_SYN)
    u_at = membrane(u0, i0, t, tau_mem, TAU_SYN)
    # At the root the residual is rounding-level (voltages are O(1)).
    np.testing.assert_allclose(jnp.where(found, u_at, THETA), THETA, atol=1e-12)
    grid = jnp.linspace(0.0, 1.0, 401)[:, None]
    # Before the crossing (or over the whole window without one) u stays below threshold.
    before = membrane(u0, i0, grid * jnp.where(found, t, WINDOW), tau_mem, TAU_SYN)
    assert bool(jnp.all(before[:-1] < THETA + 1e-12))


def test_grazing_trajectories():
    # tau_mem = 2 tau_syn, u0 = 0: u = I0 (z - z^2) peaks at I0 / 4.
    tau_mem = 2 * TAU_SYN
    for solver in (TTFSSolver(), BracketedSolver()):
        _, found_above = solve(solver, 0.0, 4.0001, THETA, WINDOW, tau_mem, TAU_SYN)
        _, found_below = solve(solver, 0.0, 3.9999, THETA, WINDOW, tau_mem, TAU_SYN)
        assert bool(found_above) and not bool(found_below)
        # Exactly grazing: the crossing exists, its gradient is finite (zero slope -> 0).
        _, grad = solve_grad(solver, jnp.array([0.0, 4.0, THETA]), WINDOW, tau_mem, TAU_SYN)
        assert bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize(
    ("solver", "ratio"),
    [
        (TTFSSolver(), 2.0),
        (LambertWSolver(), 1.0),
        (BracketedSolver(), 1.5),
        (BracketedSolver(), 0.5),
        (BracketedSolver(), 1.0 + 1e-6),
    ],
)
def test_implicit_gradients_match_finite_differences(solver, ratio):
    tau_mem = ratio * TAU_SYN

    h = 1e-6
    for x in ([0.0, 5.0, 1.0], [0.3, 4.5, 1.0], [-0.4, 6.0, 0.8]):
        x = jnp.asarray(x)
        _, grad = solve_grad(solver, x, WINDOW, tau_mem, TAU_SYN)
        shifts = jnp.concatenate([jnp.eye(3), -jnp.eye(3)]) * h
        t_shift, _ = jax.vmap(solve_grad, in_axes=(None, 0, None, None, None))(
            solver, x + shifts, WINDOW, tau_mem, TAU_SYN
        )
        fd = (t_shift[:3] - t_shift[3:]) / (2 * h)
        # Central differences with h = 1e-6 carry O(h^2) ~ 1e-12 truncation and
        # ~1e-16 / 1e-6 rounding error on O(1e-3) derivatives: 1e-7 relative is ample.
        np.testing.assert_allclose(grad, fd, rtol=1e-7, atol=1e-12)


def test_no_crossing_gives_window_and_finite_zero_gradient():
    for i0 in (0.0, -1.0, 0.5):
        x = jnp.array([0.0, i0, THETA])
        t, grad = solve_grad(BracketedSolver(), x, WINDOW, 2 * TAU_SYN, TAU_SYN)
        assert float(t) == WINDOW
        np.testing.assert_array_equal(grad, jnp.zeros(3))


def test_default_solver_selection():
    assert isinstance(default_solver(LIFParameters(tau_syn=5e-3, tau_mem=1e-2)), TTFSSolver)
    assert isinstance(default_solver(LIFParameters(tau_syn=5e-3, tau_mem=5e-3)), LambertWSolver)
    assert isinstance(default_solver(LIFParameters(tau_syn=5e-3, tau_mem=6e-3)), BracketedSolver)


def test_reference_ttfs_solver_signature():
    state = LIFState(v=jnp.array([0.0, 0.0]), i=jnp.array([5.0, 1.0]))
    t = ttfs_solver(1e-2, 1.0, state, 0.05)
    want, _ = TTFSSolver()(state.v, state.i, 1.0, 0.05, 1e-2, 5e-3)
    np.testing.assert_allclose(t, jnp.array([float(want[0]), 0.05]))


def test_lambert_w0():
    a = jnp.linspace(-1 / np.e, 0.0, 101)
    w = lambert_w0(a)
    # Defining identity w e^w = a, to rounding (near the branch point w is only
    # determined to sqrt(eps), but the residual stays at rounding level).
    np.testing.assert_allclose(w * jnp.exp(w), a, atol=1e-15)
    assert bool(jnp.all(w >= -1.0 - 1e-7))


@settings(max_examples=30, deadline=None)
@given(
    u0=st.lists(st.floats(-2.0, 0.99), min_size=32, max_size=32),
    i0=st.lists(st.floats(-5.0, 20.0), min_size=32, max_size=32),
    ratio=st.sampled_from([0.5, 1.0, 1.5, 2.0, 4.0]),
    window=st.floats(1e-5, 0.1),
)
def test_solvers_agree_on_existence_and_respect_window(u0, i0, ratio, window):
    u0, i0 = jnp.asarray(u0), jnp.asarray(i0)
    tau_mem = ratio * TAU_SYN
    solvers = [BracketedSolver()]
    solvers += [TTFSSolver()] if ratio == 2.0 else []
    solvers += [LambertWSolver()] if ratio == 1.0 else []
    # Arrays, not Python floats: filter_jit would recompile for every static float.
    window, tau_mem = jnp.asarray(window), jnp.asarray(tau_mem)
    results = [solve(s, u0, i0, THETA, window, tau_mem, TAU_SYN) for s in solvers]
    for t, found in results:
        assert bool(jnp.all((t >= 0.0) & (t <= window)))
        np.testing.assert_array_equal(found, results[0][1])
        residual = jnp.where(found, membrane(u0, i0, t, tau_mem, TAU_SYN) - THETA, 0.0)
        # Rounding-level residual; 1e-9 leaves room for near-grazing draws.
        assert float(jnp.max(jnp.abs(residual))) < 1e-9
