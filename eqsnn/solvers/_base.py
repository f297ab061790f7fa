"""The crossing-solver interface, the shared bracket, and implicit differentiation."""

import abc
from functools import partial

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

from .._flow import membrane, synaptic_current


def crossing_bracket(u0, i0, theta, dt_max, tau_mem, tau_syn):
    r"""Decide whether `u` reaches `theta` within `[0, dt_max]`, and bracket the first crossing.

    With $I_0 > 0$ every extremum of $u$ is a maximum (there $\dot u = 0$ and
    $\ddot u = \dot I / \tau_\mathrm{mem} < 0$), so $u$ rises and is concave up to the peak
    time $t_p = \tau_\mathrm{syn} r\, \log(1+x)/x$ with $r = 1 - u_0/I_0$ and
    $x = (\tau_\mathrm{syn}/\tau_\mathrm{mem} - 1) r$ (no peak when $1 + x \le 0$). A crossing
    exists iff $u(\min(t_p, \Delta t_\mathrm{max})) \ge \theta$, and it lies in
    $[0, \min(t_p, \Delta t_\mathrm{max})]$ where $u$ is increasing and concave.

    **Returns:** `(found, t_hi)`: whether a crossing exists and the right end of its bracket.
    """
    rising = (i0 > 0) & (i0 > u0)
    i_safe = jnp.where(rising, i0, 1.0)
    r = (i_safe - u0) / i_safe
    x = (tau_syn / tau_mem - 1.0) * r
    has_peak = rising & (x > -1.0)
    x_safe = jnp.where(has_peak & (x != 0), x, 1.0)
    psi = jnp.where(x == 0, 1.0, jnp.log1p(x_safe) / x_safe)
    t_peak = tau_syn * jnp.where(has_peak, r, 0.0) * psi
    t_hi = jnp.where(has_peak, jnp.minimum(t_peak, dt_max), dt_max)
    u_hi = membrane(u0, jnp.where(rising, i0, 0.0), t_hi, tau_mem, tau_syn)
    already = u0 >= theta
    found = already | (rising & (u_hi >= theta))
    return found, jnp.where(already, 0.0, t_hi)


class AbstractCrossingSolver(eqx.Module):
    r"""Base class of the solvers for the next threshold crossing of LIF neurons.

    A solver answers, for each neuron: starting from $u_0 = V_0 - v_\mathrm{leak}$ and
    $I_0$, when does $u(t)$ first reach $\theta = v_\mathrm{th} - v_\mathrm{leak}$ within
    $[0, \Delta t_\mathrm{max}]$? By default whether a crossing exists is decided by the
    closed-form bracket ([`eqsnn.solvers.crossing_bracket`][]) and subclasses only locate the
    root inside it: [`eqsnn.solvers.BracketedSolver`][] and [`eqsnn.solvers.LambertWSolver`][]
    do so, and agree on which neurons spike bit for bit. [`eqsnn.solvers.TTFSSolver`][]
    decides from a discriminant instead, which is the same criterion in exact arithmetic
    but can differ at a tangency (see below).

    **Promises.** For finite inputs with $\theta > 0$ (as [`eqsnn.LIFParameters`][]
    requires), $\Delta t_\mathrm{max} \ge 0$ and positive time constants, every solver
    returns a finite time in $[0, \Delta t_\mathrm{max}]$ and finite gradients, whatever
    the current, including $I_0 \le 0$, $\Delta t_\mathrm{max} = 0$ and a solver used at a
    ratio it is not made for (the time is then wrong, but finite). A neuron at or above
    threshold ($u_0 \ge \theta$) crosses at $t = 0$, whatever its current; where there is
    no crossing the time is $\Delta t_\mathrm{max}$.

    **Tangencies.** Where the trajectory only touches the threshold (its peak equals
    $\theta$ in exact arithmetic) or crosses it exactly at $\Delta t_\mathrm{max}$, the
    floating-point rounding of the existence test decides: the bracket reports a crossing
    iff its computed $u(\min(t_p, \Delta t_\mathrm{max}))$ is $\ge \theta$, so a tangency
    may or may not spike, the same way for the bracket-based solvers. The time of a
    reported grazing crossing is the peak time to about $\sqrt{\varepsilon}$ relative (the
    root is double), and its gradient is finite.

    Gradients of the crossing time are given by the implicit-function theorem,
    $\dot t^* = (\dot\theta - \dot u|_{t^*}) / \dot u(t^*)$, never by differentiating the
    root finder. They are zero where there is no crossing or the crossing is at the start,
    and finite where the trajectory only grazes the threshold (a zero slope gives a zero
    tangent).
    """

    @abc.abstractmethod
    def root(self, u0, i0, theta, t_hi, tau_mem, tau_syn) -> Float[Array, "*n"]:
        """Locate the crossing inside `[0, t_hi]`, given that it exists there."""

    def exists(self, u0, i0, theta, dt_max, tau_mem, tau_syn) -> Bool[Array, "*n"]:
        """Whether there is a crossing within `[0, dt_max]` (no gradient)."""
        return crossing_bracket(u0, i0, theta, dt_max, tau_mem, tau_syn)[0]

    def solve(self, u0, i0, theta, dt_max, tau_mem, tau_syn):
        """Crossing time (`dt_max` where there is none) and existence, without gradients.

        The default brackets the root in closed form and calls `root` on the bracket;
        analytic solvers may override it with a cheaper formula.
        """
        found, t_hi = crossing_bracket(u0, i0, theta, dt_max, tau_mem, tau_syn)
        # `root` sees only crossings after the start (there `i0 > max(u0, 0)`): a neuron at
        # or above threshold crosses at 0 whatever its current (an analytic root would
        # divide by `i0 <= 0` there), and the others get harmless inputs, then are masked.
        ahead = found & (u0 < theta)
        i_safe = jnp.where(ahead, i0, 1.0)
        u_safe = jnp.where(ahead, u0, 0.0)
        theta_safe = jnp.where(ahead, theta, 0.5)
        t_safe = jnp.where(ahead, t_hi, 0.0)
        t = self.root(u_safe, i_safe, theta_safe, t_safe, tau_mem, tau_syn)
        t = jnp.clip(t, 0.0, t_safe)
        return jnp.where(found, t, dt_max), found

    def __call__(
        self,
        u0: Float[ArrayLike, "*n"],
        i0: Float[ArrayLike, "*n"],
        theta: Float[ArrayLike, "*n"],
        dt_max: Float[ArrayLike, "*n"],
        tau_mem: Float[ArrayLike, "*n"],
        tau_syn: Float[ArrayLike, "*n"],
    ) -> tuple[Float[Array, "*n"], Bool[Array, "*n"]]:
        """Find the first crossing of `theta` within `[0, dt_max]`.

        **Arguments:**

        - `u0`: voltage above leak at the start, $V_0 - v_\\mathrm{leak}$.
        - `i0`: synaptic current at the start.
        - `theta`: threshold above leak, $v_\\mathrm{th} - v_\\mathrm{leak}$ (> 0).
        - `dt_max`: length of the search window in seconds (>= 0).
        - `tau_mem`, `tau_syn`: time constants in seconds.

        **Returns:** `(t, found)`: the time of the crossing after the start (equal to
        `dt_max` where `found` is false) and whether there is one.
        """
        args = jnp.broadcast_arrays(
            *(
                jnp.asarray(a, dtype=jnp.result_type(u0, float))
                for a in (u0, i0, theta, dt_max, tau_mem, tau_syn)
            )
        )
        return _crossing(self, *args)


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def _crossing(solver, u0, i0, theta, dt_max, tau_mem, tau_syn):
    return solver.solve(u0, i0, theta, dt_max, tau_mem, tau_syn)


@_crossing.defjvp
def _crossing_jvp(solver, primals, tangents):
    u0, i0, theta, dt_max, tau_mem, tau_syn = primals
    du0, di0, dtheta, ddt_max, dtau_mem, dtau_syn = tangents
    # `t` comes from `_crossing` itself and is not `stop_gradient`-ed: differentiating this
    # rule again (second derivatives, `jax.hessian`) then moves the evaluation point with
    # its own implicit tangent, as the chain rule requires.
    t, found = _crossing(solver, *primals)
    _, du = jax.jvp(
        lambda a, b, tm, ts: membrane(a, b, t, tm, ts),
        (u0, i0, tau_mem, tau_syn),
        (du0, di0, dtau_mem, dtau_syn),
    )
    slope = synaptic_current(i0, t, tau_syn) - membrane(u0, i0, t, tau_mem, tau_syn)
    slope = slope / tau_mem
    ok = found & (t > 0) & (slope > 0)
    t_dot = jnp.where(ok, (dtheta - du) / jnp.where(ok, slope, 1.0), 0.0)
    # Without a crossing the returned value is `dt_max` itself.
    t_dot = jnp.where(found, t_dot, ddt_max)
    return (t, found), (t_dot, np.zeros(found.shape, dtype=jax.dtypes.float0))
