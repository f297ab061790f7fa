"""The closed-form flow against high-precision arithmetic (mpmath) and basic identities."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest

import eqsnn
from eqsnn._flow import membrane, phi

mpmath.mp.dps = 40


def _membrane_mp(u0, i0, t, tau_mem, tau_syn):
    """u(t) from the textbook two-exponential form, evaluated with 40 significant digits."""
    u0, i0, t, tm, ts = map(mpmath.mpf, (u0, i0, t, tau_mem, tau_syn))
    if tm == ts:
        return mpmath.exp(-t / tm) * (u0 + i0 * t / tm)
    k = ts / (ts - tm)
    return (u0 - i0 * k) * mpmath.exp(-t / tm) + i0 * k * mpmath.exp(-t / ts)


@pytest.mark.parametrize("ratio", [2.0, 1.0, 1.0 + 1e-6, 1.0 - 1e-6, 1.0 + 1e-12, 1.5, 0.5])
def test_membrane_matches_high_precision(ratio):
    tau_syn = 5e-3
    tau_mem = ratio * tau_syn
    rng = np.random.default_rng(0)
    for _ in range(20):
        u0, i0 = rng.normal(size=2)
        t = rng.uniform(0, 0.05)
        got = float(membrane(u0, i0, t, tau_mem, tau_syn))
        want = float(_membrane_mp(u0, i0, t, tau_mem, tau_syn))
        # 1e-13 absolute on O(1) voltages: a few ulps of the terms, far below the ~1e-10
        # that the textbook form loses at ratio 1 +- 1e-6 (checked below).
        assert abs(got - want) <= 1e-13 * (1 + abs(want)), (u0, i0, t, got, want)


def test_textbook_form_would_cancel():
    """Guards the point of the phi-form: the naive formula is visibly worse near ratio 1."""
    tau_syn, tau_mem = 5e-3, 5e-3 * (1 + 1e-9)
    u0, i0, t = 0.0, 1.0, 3e-3
    k = tau_syn / (tau_syn - tau_mem)
    naive = (u0 - i0 * k) * np.exp(-t / tau_mem) + i0 * k * np.exp(-t / tau_syn)
    want = float(_membrane_mp(u0, i0, t, tau_mem, tau_syn))
    assert abs(naive - want) > 1e-9
    assert abs(float(membrane(u0, i0, t, tau_mem, tau_syn)) - want) < 1e-15


def test_phi_and_derivative_near_zero():
    xs = jnp.array([-0.5, -0.02, -1e-3, -1e-8, 0.0, 1e-8, 1e-3, 0.0199, 0.0201, 0.5])
    for x in xs:
        want = mpmath.expm1(mpmath.mpf(float(x))) / mpmath.mpf(float(x)) if x != 0 else 1
        assert abs(float(phi(x)) - float(want)) < 1e-15
        xm = mpmath.mpf(float(x))
        dwant = mpmath.diff(lambda y: mpmath.expm1(y) / y if y != 0 else mpmath.mpf(1), xm)
        assert abs(float(jax.grad(phi)(x)) - float(dwant)) < 1e-12


def test_flow_is_a_semigroup_and_matches_current():
    params = eqsnn.LIFParameters(tau_syn=4e-3, tau_mem=7e-3, v_leak=-0.1, v_th=0.5)
    flow = eqsnn.lif_exponential_flow(params)
    state = eqsnn.LIFState(v=jnp.array([0.2, -0.3]), i=jnp.array([1.5, -0.7]))
    once = flow(state, 3e-3)
    twice = flow(flow(state, 1e-3), 2e-3)
    np.testing.assert_allclose(once.v, twice.v, rtol=0, atol=1e-15)
    np.testing.assert_allclose(once.i, state.i * np.exp(-3e-3 / 4e-3), rtol=1e-15)
    rest = flow(eqsnn.LIFState(v=jnp.full(2, -0.1), i=jnp.zeros(2)), 5e-3)
    np.testing.assert_array_equal(rest.v, jnp.full(2, -0.1))
