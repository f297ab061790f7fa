"""Analytic crossing solvers for tau_mem = 2 tau_syn and tau_mem = tau_syn."""

import jax.numpy as jnp

from ._base import AbstractCrossingSolver


class TTFSSolver(AbstractCrossingSolver):
    r"""Analytic crossing for $\tau_\mathrm{mem} = 2\tau_\mathrm{syn}$.

    With $z = e^{-t/\tau_\mathrm{mem}}$ the voltage is $u = (u_0 + I_0) z - I_0 z^2$, so the
    crossing solves a quadratic; the earliest crossing is its larger root
    $z_+ = \big(u_0 + I_0 + \sqrt{(u_0+I_0)^2 - 4 I_0\theta}\big) / (2 I_0)$ and
    $t^* = -\tau_\mathrm{mem}\log z_+$. Both terms of the numerator are positive inside the
    bracket, so there is no cancellation. Only valid for `tau_mem == 2 * tau_syn`.

    Existence is decided in closed form too: the crossing exists iff $I_0 > 0$, the peak
    $z^* = (u_0 + I_0)/(2I_0)$ lies after the start ($z^* < 1$), the discriminant is
    non-negative, and $z_+ \ge e^{-\Delta t_\mathrm{max}/\tau_\mathrm{mem}}$ (or at once, if
    $u_0 \ge \theta$): one `exp`, one `sqrt` and one `log` per neuron.

    **Tangencies.** This is the criterion of [`eqsnn.solvers.crossing_bracket`][] in exact
    arithmetic, computed differently, so TTFS and the bracket-based solvers
    ([`eqsnn.solvers.BracketedSolver`][]) agree on which neurons spike except where the
    decision is within rounding: a peak voltage $(u_0+I_0)^2/(4I_0)$ within about two ulps
    of $\theta$ (a tangency), or a crossing within about $10\,\varepsilon\,\tau_\mathrm{mem}$
    of the start or of $\Delta t_\mathrm{max}$ (measured over $2\cdot 10^5$ random states
    each, float32 and float64: at most $2.2\,\varepsilon\,\theta$ and
    $9\,\varepsilon\,\tau_\mathrm{mem}$). There either may report the crossing. Where the
    computed discriminant is exactly zero (for example the exact tangency $u_0 = 0$,
    $I_0 = 4$, $\theta = 1$), TTFS reports the crossing, at the peak time. Deciding with
    the bracket instead would make the two agree everywhere, but costs about 10 % of a
    one-spike layer's forward and backward pass, for a difference no larger than the
    rounding of the neuron's state.
    """

    def _z_plus(self, u0, i0, theta):
        b = u0 + i0
        disc = b * b - 4.0 * i0 * theta
        rising = (i0 > 0) & (b < 2.0 * i0) & (disc >= 0)
        i_safe = jnp.where(rising, i0, 1.0)
        z = (b + jnp.sqrt(jnp.where(rising, disc, 0.0))) / (2.0 * i_safe)
        return z, rising

    def exists(self, u0, i0, theta, dt_max, tau_mem, tau_syn):
        z, rising = self._z_plus(u0, i0, theta)
        return (u0 >= theta) | (rising & (z >= jnp.exp(-dt_max / tau_mem)))

    def solve(self, u0, i0, theta, dt_max, tau_mem, tau_syn):
        z, rising = self._z_plus(u0, i0, theta)
        already = u0 >= theta
        found = already | (rising & (z >= jnp.exp(-dt_max / tau_mem)))
        t = -tau_mem * jnp.log(jnp.clip(z, jnp.finfo(z.dtype).tiny, 1.0))
        t = jnp.where(already, 0.0, jnp.minimum(t, dt_max))
        return jnp.where(found, t, dt_max), found

    def root(self, u0, i0, theta, t_hi, tau_mem, tau_syn):
        b = u0 + i0
        disc = jnp.maximum(b * b - 4.0 * i0 * theta, 0.0)
        z = (b + jnp.sqrt(disc)) / (2.0 * i0)
        return -tau_mem * jnp.log(jnp.clip(z, jnp.finfo(z.dtype).tiny, 1.0))


def lambert_w0(a):
    r"""Principal branch $W_0(a)$ of the Lambert W function for $a \in [-1/e, 0]$.

    Starts from the branch-point series (below $-0.3$) or the Taylor series at zero and
    refines with Halley's iteration.
    """
    p = jnp.sqrt(jnp.maximum(2.0 * (1.0 + jnp.e * a), 0.0))
    near_branch = -1.0 + p - p * p / 3.0 + 11.0 / 72.0 * p**3
    near_zero = a - a * a + 1.5 * a**3
    w = jnp.where(a < -0.3, near_branch, near_zero)
    for _ in range(6):
        ew = jnp.exp(w)
        f = w * ew - a
        wp1 = w + 1.0
        denom = ew * wp1 - (w + 2.0) * f / jnp.where(wp1 == 0, 1.0, 2.0 * wp1)
        ok = (denom != 0) & (p > 1e-6)
        w = jnp.where(ok, w - f / jnp.where(ok, denom, 1.0), w)
    return w


class LambertWSolver(AbstractCrossingSolver):
    r"""Analytic crossing for $\tau_\mathrm{mem} = \tau_\mathrm{syn} = \tau$.

    With $s = t/\tau$ the voltage is $u = (u_0 + I_0 s)e^{-s}$, and the rising crossing is
    $s^* = -W_0\!\left(-\tfrac{\theta}{I_0} e^{-u_0/I_0}\right) - u_0/I_0$ with the principal
    branch $W_0$ of the Lambert W function. Only valid for `tau_mem == tau_syn`.
    """

    def root(self, u0, i0, theta, t_hi, tau_mem, tau_syn):
        log_minus_a = jnp.log(theta / i0) - u0 / i0
        a = -jnp.exp(jnp.minimum(log_minus_a, -1.0))
        return tau_mem * (-lambert_w0(a) - u0 / i0)
