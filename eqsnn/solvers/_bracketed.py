"""Exact crossing solver for any ratio of time constants."""

import jax
import jax.numpy as jnp

from .._flow import membrane, synaptic_current
from ._base import AbstractCrossingSolver


class BracketedSolver(AbstractCrossingSolver):
    r"""Crossing solver for any $\tau_\mathrm{mem}/\tau_\mathrm{syn}$: bracketed root finding.

    Inside the bracket $[0, t_\mathrm{hi}]$ the voltage is increasing and concave (see
    [`eqsnn.solvers.crossing_bracket`][]). Newton's method started from the left end therefore
    never overshoots the root (a tangent of a concave function lies above it) and gives a
    rising lower bound, while the chord through the bracket ends lies below the function and
    gives a falling upper bound. Both bounds are iterated until they meet within a few ulps,
    at most `max_steps` times.

    **Arguments:**

    - `max_steps`: iteration cap (each iteration evaluates two exponentials twice).
    """

    max_steps: int = 64

    def root(self, u0, i0, theta, t_hi, tau_mem, tau_syn):
        eps = jnp.finfo(jnp.result_type(u0)).eps

        def f(t):
            return membrane(u0, i0, t, tau_mem, tau_syn) - theta

        def df(t):
            return (synaptic_current(i0, t, tau_syn) - membrane(u0, i0, t, tau_mem, tau_syn)) / (
                tau_mem
            )

        def update(a, fa, b, fb, c):
            fc = f(c)
            lower = (fc <= 0) & (c >= a)
            upper = (fc > 0) & (c <= b)
            return (
                jnp.where(lower, c, a),
                jnp.where(lower, fc, fa),
                jnp.where(upper, c, b),
                jnp.where(upper, fc, fb),
            )

        def cond(carry):
            a, fa, b, fb, n = carry
            open_ = (b - a > 4 * eps * b) & (fa < 0) & (fb > 0)
            return jnp.any(open_) & (n < self.max_steps)

        def body(carry):
            a, fa, b, fb, n = carry
            slope = df(a)
            newton = jnp.where(slope > 0, a - fa / jnp.where(slope > 0, slope, 1.0), b)
            a, fa, b, fb = update(a, fa, b, fb, jnp.clip(newton, a, b))
            a, fa, b, fb = update(a, fa, b, fb, 0.5 * (a + b))
            return a, fa, b, fb, n + 1

        a = jnp.zeros_like(u0)
        init = (a, f(a), t_hi, f(t_hi), 0)
        a, fa, b, fb, _ = jax.lax.while_loop(cond, body, init)
        return jnp.where(-fa <= fb, a, b)
