r"""EventProp for feed-forward layers of a neuron model that is linear between events.

Each neuron is simulated on its own (`eqsnn._engine.neuron_model`); its spikes
$s_1 < \dots < s_R$ are the roots of the crossing conditions $F_r = g(x(s_r^-)) = 0$, where
$x(s_r^-)$ follows from the state at $t = 0$ by the model's closed-form flow, its jumps at
the arrivals $a_k$ (input time plus delay) and at the earlier spikes. $F_r$ depends on
$s_1, \dots, s_r$ only, so $J = \partial F/\partial s$ is lower triangular, and the
implicit-function theorem gives, for every parameter $p$ (weights, arrival times, so delays
and input times, and every array field of the model),

$$
\frac{dL}{dp} = \sum_r \mu_r \frac{\partial F_r}{\partial p}
    + \sum_r \frac{\partial L}{\partial I_r} \frac{\partial I_r}{\partial p}, \qquad
J^\top \mu = -\Bigl(\frac{\partial L}{\partial s}
    + \bigl(\frac{\partial I}{\partial s}\bigr)^{\!\top} \frac{\partial L}{\partial I}\Bigr),
$$

at the recorded spike times. $\mu_r$ are the adjoint jumps of EventProp (Wunderlich &
Pehle 2021; for the LIF $\mu_r = -\tau_\mathrm{mem}\lambda_V(s_r^-)$), found by one
back-substitution; the adjoint flow between events and at the jumps is the transpose of the
model's closed-form flow, `receive` and `fire`, applied by reverse-mode over one replay of
the recorded events (`replay`), never through the root finder. The backward pass stores the
spike record only. A spike whose crossing has no slope ($J_{rr} \le 0$: the trajectory
touches the threshold) gets no gradient, as with autodiff.
"""

import jax
import jax.numpy as jnp

from .._engine.base import SimulationConfig
from .._engine.buffers import sort_inputs, zeros_if_none
from .._engine.neuron_model import model_neuron
from .._engine.window_scan import NeuronSpikes
from .._spikes import Spikes
from .neuron_core import Static, layer_eventprop, neuron_core


def model_eventprop(config: SimulationConfig, weights, spikes: Spikes, budget: int) -> Spikes:
    """A feed-forward layer of a neuron model with EventProp gradients (to the weights,
    delays, input times and the array fields of the parameters)."""
    return layer_eventprop(_core, config, weights, spikes, budget)


def _forward(diff, idx, static: Static) -> NeuronSpikes:
    """One neuron of the model simulated by the model engine."""
    weight, time, arrays = diff
    params = static.params(arrays)
    return model_neuron(weight, time, idx, params, static.config.t_max, static.budget)


def _backward(found: NeuronSpikes, grad_out, diff, idx, static: Static):
    r"""The cotangents of `(weight, time, arrays)`: the adjoint jumps $\mu$ from $J^\top \mu$
    (one back-substitution), then reverse mode over the replay (module docstring)."""
    weight, time, arrays = diff
    dtype = weight.dtype
    g_time = zeros_if_none(grad_out.time, found.time).astype(dtype)
    g_cur = zeros_if_none(grad_out.current, found.current).astype(dtype)
    g_time = jnp.where(found.valid, g_time, 0.0)
    g_cur = jnp.where(found.valid, g_cur, 0.0)
    s = jnp.where(found.valid, found.time, 0.0)

    def run(s, weight, time, arrays, usable):
        return replay(s, weight, time, idx, static.params(arrays), found, usable, static)

    # Forward mode over the R spike times (cheap: the free states enter linearly in s,
    # see `replay`) gives the Jacobians of the crossing conditions and of the currents.
    jac, jac_cur = jax.jacfwd(run)(s, weight, time, arrays, found.valid)
    usable = found.valid & (jnp.diagonal(jac) > 0)
    jac = jnp.where(usable[:, None], jac, jnp.eye(s.shape[0], dtype=dtype))
    dcur_ds = g_cur @ jac_cur
    g_total = jnp.where(usable, g_time + dcur_ds, 0.0)
    if s.shape[0] == 1:  # (a 1 x 1 system: XLA's batched triangular solve costs more)
        mu = -g_total / jac[:, 0]
    else:
        mu = jax.scipy.linalg.solve_triangular(jac, -g_total, trans="T", lower=True)
    mu = jnp.where(usable, mu, 0.0)
    _, pull = jax.vjp(lambda w, t, a: run(s, w, t, a, usable), weight, time, arrays)
    return pull((mu, g_cur))


_core = neuron_core(_forward, _backward)


def replay(s, weight, time, idx, params, found: NeuronSpikes, usable, static: Static):
    """The crossing conditions `F_r = gap(x(s_r^-))` (`s_r` where `usable` is false) and the
    currents `I_r` at the spike times `s`, as functions of the spike times, weights,
    arrival times and parameters: the free states, then the chain of jump responses."""
    sorted_in = sort_inputs(Spikes(time=time, idx=idx), static.config.t_max)
    w = jnp.where(sorted_in.valid, weight[sorted_in.order], 0.0)
    x_init = params.initial_state(w.dtype)
    jumps = jax.vmap(lambda w_j: params.receive(jnp.zeros_like(x_init), w_j))(w)
    arrivals = jnp.arange(w.shape[0])
    flows = jax.vmap(params.flow)

    def free_at(s_r, k, valid):
        # By linearity, the free state after the arrivals 0..k is the flow of the initial
        # state plus each arrival's jump flowed from its time: one sum, no recurrence.
        # Arrivals after k and unused rows of the record (time 0) would flow backwards in
        # time, where the exponentials overflow and `where` passes their NaN to the
        # gradient: lag 0 there, and masked.
        include = (arrivals <= k.astype(arrivals.dtype)) & valid
        lag = jnp.where(include, s_r - sorted_in.time, 0.0)
        terms = jnp.where(include[:, None], flows(jumps, lag), 0.0)
        return params.flow(x_init, jnp.where(valid, s_r, 0.0)) + jnp.sum(terms, axis=0)

    def step(carry, spike):
        s_last, response = carry
        s_r, free_s, valid = spike
        x_pre = free_s + params.flow(response, jnp.where(valid, s_r - s_last, 0.0))
        new_response = jnp.where(valid, params.fire(x_pre) - free_s, response)
        carry = (jnp.where(valid, s_r, s_last), new_response)
        return carry, (params.gap(x_pre), params.current(x_pre))

    init = (jnp.zeros((), w.dtype), jnp.zeros_like(x_init))
    # The free states at every spike at once, outside the chain's loop. The free state at
    # s_r depends on s_r alone: it enters as its value at the recorded time plus its
    # (constant) time derivative times the shift, exact to first order in s, so that
    # differentiating in s (the Jacobian of the crossing conditions, forward over all R
    # spikes) does not differentiate the K flows R times over.
    s0 = jax.lax.stop_gradient(s)
    free = jax.vmap(free_at)(s0, found.interval, found.valid)

    def rate(s_r, k, valid):
        return jax.jvp(lambda t: free_at(t, k, valid), (s_r,), (jnp.ones_like(s_r),))[1]

    slope = jax.lax.stop_gradient(jax.vmap(rate)(s0, found.interval, found.valid))
    free = free + slope * (s - s0)[:, None]
    _, (crossing, current) = jax.lax.scan(step, init, (s, free, found.valid))
    crossing = jnp.where(usable, crossing, s)
    return crossing, jnp.where(found.valid, current, 0.0)
