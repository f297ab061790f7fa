r"""EventProp for feed-forward neurons with delays, per-neuron parameters and refractoriness.

Each neuron is simulated on its own (see `eqsnn._engine.per_neuron`); its spikes
$s_1 < \dots < s_R$ are the roots of the crossing conditions

$$
F_r = V(s_r^-) - v_\mathrm{th} = u_\mathrm{lin}(s_r)
    + \bigl(u_\mathrm{reset} - u_\mathrm{lin}(e_{r-1})\bigr)\,
      e^{-(s_r - e_{r-1})/\tau_\mathrm{mem}} - \vartheta = 0,
\qquad e_{r-1} = s_{r-1} + t_\mathrm{ref},
$$

where $u_\mathrm{lin}(t) = \sum_k w_k \kappa(t - a_k)$ is the free (no-spike) voltage above
leak driven by the arrivals $a_k$ (input time plus delay), $\kappa$ the voltage response to
a unit current jump, $u_\mathrm{reset} = v_\mathrm{reset} - v_\mathrm{leak}$ and
$\vartheta = v_\mathrm{th} - v_\mathrm{leak}$: after a spike the voltage is held at the
reset until $e_{r-1}$ and then relaxes towards the free trajectory (the term for $r = 1$
is absent). $F_r$ depends on the previous spike only, so the adjoint of the spike times is a
backward recursion over the spikes (Wunderlich & Pehle 2021, with the jump of the adjoint
voltage at a spike $\mu_r = -\tau_\mathrm{mem}\lambda_V(s_r^-)$):

$$
\mu_r = -\frac{\partial L/\partial s_r + \mu_{r+1}\, \partial F_{r+1}/\partial s_r}
              {\partial F_r/\partial s_r}, \qquad
\frac{\partial F_r}{\partial s_r} = \frac{I(s_r) - \vartheta}{\tau_\mathrm{mem}}, \qquad
\frac{\partial F_{r+1}}{\partial s_r} = \frac{u_\mathrm{reset} - I(e_r)}{\tau_\mathrm{mem}}
    e^{-(s_{r+1} - e_r)/\tau_\mathrm{mem}},
$$

with $\partial L/\partial s_r$ including the term $-I(s_r)/\tau_\mathrm{syn}$ times the
cotangent of the recorded current. Every gradient then follows from the adjoint identity
$dL/dp = \sum_r \mu_r\, \partial F_r/\partial p + \sum_r (\partial L/\partial I_r)\,
\partial I_r/\partial p$ at fixed spike times, for every $p$: the weights, the arrival
times (so the delays and the input times), $\tau_\mathrm{mem}$, $\tau_\mathrm{syn}$,
$v_\mathrm{th}$, $v_\mathrm{leak}$, $v_\mathrm{reset}$ and $t_\mathrm{ref}$. Written out,
these partial derivatives are the integrals of the continuous adjoint over the trajectory
(for instance $\sum_r \mu_r \partial F_r / \partial w_k = -\tau_\mathrm{syn}
\lambda_I(a_k)$, and $\partial F_r/\partial\tau_\mathrm{mem}$ is the integral of the
kernel's $\tau_\mathrm{mem}$-derivative against the inputs) plus the jump terms at the
spikes (the $v_\mathrm{th}$, $v_\mathrm{reset}$ and $t_\mathrm{ref}$ terms); they are
evaluated here by differentiating the closed-form $F_r$, $I_r$ at the recorded spike times
(one pass over the arrivals), never the root finder. The backward pass stores the spike
record only.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._engine.base import SimulationConfig
from .._engine.buffers import sort_inputs, zeros_if_none
from .._engine.per_neuron import one_neuron
from .._engine.window_scan import input_states, interval_at, linear_state
from .._params import LIFParameters
from .._spikes import Spikes
from .neuron_core import Static, layer_eventprop, neuron_core


def per_neuron_eventprop(config: SimulationConfig, weights, spikes: Spikes, budget: int) -> Spikes:
    """The per-neuron window scan of a feed-forward layer with EventProp gradients (to the
    weights, delays, input times and the array fields of the parameters)."""
    return layer_eventprop(_core, config, weights, spikes, budget)


def _forward(diff, idx, static: Static):
    """One LIF neuron simulated by the per-neuron window scan."""
    weight, time, arrays = diff
    return one_neuron(weight, time, idx, static.params(arrays), static.config, static.budget)


def _backward(found, grad_out, diff, idx, static: Static):
    r"""The cotangents of `(weight, time, arrays)`: the adjoint jumps $\mu_r$ by the backward
    recursion, then the gradient of the Lagrangian at fixed spike times (module docstring)."""
    weight, time, arrays = diff
    params: LIFParameters = static.params(arrays)
    dtype = weight.dtype
    g_time = zeros_if_none(grad_out.time, found.time).astype(dtype)
    g_cur = zeros_if_none(grad_out.current, found.current).astype(dtype)
    g_time = jnp.where(found.valid, g_time, 0.0)
    g_cur = jnp.where(found.valid, g_cur, 0.0)
    t_max = static.config.t_max
    sorted_in = sort_inputs(Spikes(time=time, idx=idx), t_max)
    u_in, i_in = input_states(weight[:, None], sorted_in, params)
    restart_k = _restart_intervals(found, sorted_in, params)
    mu = _adjoint_jumps(found, g_time, g_cur, params, sorted_in, u_in, i_in, restart_k)
    mu = jax.lax.stop_gradient(mu)

    def lagrangian(weight, time, arrays):
        p = static.params(arrays)
        crossing, current = replay(weight, time, idx, p, found, restart_k, t_max)
        return jnp.sum(jnp.where(found.valid, mu * crossing + g_cur * current, 0.0))

    return jax.grad(lagrangian, argnums=(0, 1, 2))(weight, time, arrays)


_core = neuron_core(_forward, _backward)


def _previous(found):
    """For each row, the previous valid spike's time and row's interval, and whether there
    is one (rows are in time order among the valid ones)."""

    def fwd(carry, x):
        has, s, k = carry
        s_r, k_r, valid = x
        out = (has, s, k)
        carry = (has | valid, jnp.where(valid, s_r, s), jnp.where(valid, k_r, k))
        return carry, out

    zero_t = jnp.zeros((), found.time.dtype)
    init = (jnp.zeros((), bool), zero_t, jnp.zeros((), found.interval.dtype))
    _, prev = jax.lax.scan(fwd, init, (found.time, found.interval, found.valid))
    return prev


def _restart_intervals(found, sorted_in, params: LIFParameters):
    """The input interval where each spike's refractory period ends (the forward pass's
    choice), `(R,)`; the spike's own interval without a refractory period."""
    if not params.refractory:
        return found.interval
    restart = jax.lax.stop_gradient(found.time + params.t_ref)
    return jnp.maximum(interval_at(sorted_in, restart).astype(found.interval.dtype), found.interval)


def replay(weight, time, idx, params: LIFParameters, found, restart_k, t_max):
    """The crossing conditions `F_r` and currents `I_r` at the recorded spike times, as
    functions of the weights, arrival times and parameters (the spike times held fixed)."""
    sorted_in = sort_inputs(Spikes(time=time, idx=idx), t_max)
    u_in, i_in = input_states(weight[:, None], sorted_in, params)
    s = jax.lax.stop_gradient(found.time)
    s_safe = jnp.where(found.valid, s, 0.0)
    u_s, i_s = linear_state(u_in, i_in, sorted_in, found.interval, s_safe, params)
    has_prev, s_prev, _ = _previous(eqx.tree_at(lambda f: f.time, found, s_safe))
    # restart_k of the previous spike: shift the per-row intervals by one valid spike.
    _, _, k_prev = _previous(eqx.tree_at(lambda f: f.interval, found, restart_k))
    restart = s_prev + params.t_ref if params.refractory else s_prev
    u_restart, _ = linear_state(u_in, i_in, sorted_in, k_prev, restart, params)
    u_reset = params.v_reset - params.v_leak
    lag = jnp.where(has_prev, s_safe - restart, 0.0)
    relax = jnp.where(has_prev, (u_reset - u_restart) * jnp.exp(-lag / params.tau_mem), 0.0)
    crossing = u_s + relax - (params.v_th - params.v_leak)
    return crossing, i_s


def _adjoint_jumps(found, g_time, g_cur, params, sorted_in, u_in, i_in, restart_k):
    r"""$\mu_r$ for every row (zero where there is no spike or the crossing has no slope)."""
    theta = params.v_th - params.v_leak
    u_reset = params.v_reset - params.v_leak
    s = jnp.where(found.valid, found.time, 0.0)
    restart = s + params.t_ref if params.refractory else s
    _, i_restart = linear_state(u_in, i_in, sorted_in, restart_k, restart, params)
    slope = (found.current - theta) / params.tau_mem
    ok = found.valid & (slope > 0)
    g = g_time - g_cur * found.current / params.tau_syn

    def back(carry, x):
        has_next, mu_next, s_next = carry
        valid, ok_r, slope_r, g_r, restart_r, i_restart_r, s_r = x
        lag = jnp.where(has_next, s_next - restart_r, 0.0)
        coupling = (u_reset - i_restart_r) / params.tau_mem * jnp.exp(-lag / params.tau_mem)
        a = g_r + jnp.where(has_next, mu_next * coupling, 0.0)
        mu = jnp.where(ok_r, -a / jnp.where(ok_r, slope_r, 1.0), 0.0)
        carry = (has_next | valid, jnp.where(valid, mu, mu_next), jnp.where(valid, s_r, s_next))
        return carry, mu

    zero = jnp.zeros((), s.dtype)
    xs = (found.valid, ok, slope, g, restart, i_restart, s)
    _, mu = jax.lax.scan(back, (jnp.zeros((), bool), zero, zero), xs, reverse=True)
    return mu
