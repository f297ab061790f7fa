"""The adaptive LIF's crossing search on the LIF's window scan (`eqsnn._engine.adaptive`)
against the general solver (`eqsnn.neurons.first_crossing`), window by window.

Float64 (see `conftest.py`). The search decides in closed form and locates by Newton
iteration; the general solver splits each window at the exact critical points of the
exponential sum. Both are exact: the crossing times agree to `1e-13` s (about 1e-11 of the
time constants, a few hundred ulps of a Newton root of a sum of three exponentials). The
time's derivatives (the implicit-function theorem's, as the general solver's) are checked
through the layers in `test_neuron_models.py`: AutoDiff against EventProp, whose adjoint
does not use the search, and against finite differences.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn._engine.adaptive import _decide, crossing_exists, first_crossing_window
from eqsnn.neurons import first_crossing
from eqsnn.solvers import BracketedSolver, TTFSSolver

L, N = 6, 800


def _states(seed, params):
    """`(L, N)` windows: random states, many of them adapted and above the base threshold,
    so that every branch of the search is taken (see the assertions below)."""
    rng = np.random.default_rng(seed)
    theta = params.v_th - params.v_leak
    u0 = rng.uniform(-0.5, 1.6, (L, N)) * theta
    i0 = rng.uniform(-1.0, 4.0, (L, N)) * theta
    a0 = np.where(rng.uniform(size=(L, N)) < 0.8, rng.uniform(0.0, 0.8, (L, N)) * theta, 0.0)
    window = rng.uniform(0.0, 3.0, (L, N)) * params.tau_mem
    inside = rng.uniform(size=(L, N)) < 0.9
    return tuple(jnp.asarray(x) for x in (u0, i0, a0, window)) + (jnp.asarray(inside),)


def _general(params, u0, i0, a0, window, inside):
    """Each neuron's first crossing, window by window, by the general solver."""
    x0 = jnp.stack([u0, i0, a0], axis=-1)
    dt, found = jax.vmap(jax.vmap(lambda x, w: first_crossing(params, x, w)))(x0, window)
    found = np.asarray(found & inside)
    first = np.argmax(found, axis=0)
    neurons = np.arange(u0.shape[1])
    return first, found.any(axis=0), np.asarray(dt)[first, neurons]


PARAMS = {
    # tau_mem = 2 tau_syn (the LIF's analytic solver), slow adaptation
    "ttfs": (eqsnn.ALIFParameters(tau_adapt=5e-2, beta=0.2), TTFSSolver()),
    # adaptation faster than the membrane: the distance to threshold can rise while the
    # voltage falls, which the bound cannot rule out (undecided windows)
    "fast-adaptation": (
        eqsnn.ALIFParameters(tau_syn=4e-3, tau_mem=1.3e-2, tau_adapt=2e-3, beta=0.2),
        BracketedSolver(),
    ),
}


@pytest.mark.parametrize("name", PARAMS)
def test_search_finds_the_general_solvers_first_crossing(name):
    params, solver = PARAMS[name]
    u0, i0, a0, window, inside = _states(0, params)
    first, dt, found = jax.jit(first_crossing_window, static_argnums=1)(
        params, solver, u0, i0, a0, window, inside
    )
    exists = jax.jit(crossing_exists, static_argnums=1)(params, solver, u0, i0, a0, window, inside)
    ref_first, ref_found, ref_dt = _general(params, u0, i0, a0, window, inside)
    np.testing.assert_array_equal(np.asarray(found), ref_found)
    np.testing.assert_array_equal(np.asarray(exists), ref_found)
    np.testing.assert_array_equal(np.asarray(first)[ref_found], ref_first[ref_found])
    np.testing.assert_allclose(np.asarray(dt)[ref_found], ref_dt[ref_found], rtol=0, atol=1e-13)
    # Every branch was taken: LIF-like windows, crossings at the start, on a rising piece
    # (Newton) and undecided windows settled by the general solver.
    crossing, undecided, lo, hi = _decide(params, u0, i0, a0, window)
    adapting = np.asarray(a0 > 0) & np.asarray(inside)
    assert np.sum(adapting & np.asarray(crossing) & np.asarray(hi > lo)) > 10
    assert np.sum(adapting & np.asarray(crossing) & np.asarray(hi == lo)) > 10
    if name == "fast-adaptation":
        assert np.sum(adapting & np.asarray(undecided)) > 5
