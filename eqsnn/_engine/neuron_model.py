r"""Feed-forward layers of a neuron model other than the LIF: the window scan, generically.

For a model of [`eqsnn.neurons.AbstractNeuronModel`][] every neuron is simulated on its
own (under `jax.vmap` over the neurons, as the per-neuron path of the LIF) from its
arrivals sorted in time, with the window scan of the LIF written against the model's
methods. It rests on linearity: the flow is linear in the state and an input adds to it,
so the state is the *free* trajectory (inputs only, no spike: one recurrence over the
arrivals, `free_states`) plus the response to the jumps at the spikes, which the flow
carries on its own: after the last spike $s$, $x(t) = x_\mathrm{free}(t) +
\Phi(t - s)\,R$ with $R = x(s^+) - x_\mathrm{free}(s)$. Each step of the scan then
searches the next `L` input intervals for a crossing (a closed-form bound rules intervals
out, the candidates are checked in time order and only the first that crosses is solved,
as [`eqsnn.neurons.first_crossing`][] does) and spikes at the earliest or moves past them:
$\lceil K/L\rceil + S$ steps for `K` arrivals and a budget of
`S` spikes, as for the LIF. A neuron that finds a crossing after its budget is full sets
`more` and stops. Delays shift the arrivals exactly as for the LIF.

The adaptive LIF ([`eqsnn.ALIFParameters`][]) takes a faster route: its voltage is the
LIF's, so it runs on the LIF's window scan with its own crossing search
(`eqsnn._engine.adaptive`); `model_neuron` dispatches it there.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._spikes import Spikes
from ..neurons._crossing import gap_bound, implicit_time, locate
from .adaptive import is_adaptive, lif_solver
from .base import SimulationConfig
from .buffers import SortedInputs, sort_inputs
from .per_neuron import collect, per_neuron_spikes
from .window_scan import NeuronSpikes, neuron_spikes, scan_length, window_length


def free_states(params, sorted_in: SortedInputs, weight):
    """The state right after each sorted arrival if the neuron never spiked, `(K, d)`
    (empty arrivals, at the end with time `t_max`, add nothing)."""
    w = jnp.where(sorted_in.valid, weight[sorted_in.order], 0.0)
    dt = jnp.diff(sorted_in.time, prepend=jnp.zeros((1,), sorted_in.time.dtype))

    def step(x, arrival):
        dt_k, w_k = arrival
        x = params.receive(params.flow(x, dt_k), w_k)
        return x, x

    _, states = jax.lax.scan(step, params.initial_state(w.dtype), (dt, w))
    return states


def model_neuron(weight, time, idx, params, t_max: float, budget: int) -> NeuronSpikes:
    """The spikes of one neuron of model `params` (scalar parameters) driven by the
    arrivals `(time, weight)` of the slots `idx` (-1: empty); `(S,)` arrays. The adaptive
    LIF runs on the LIF's window scan (`eqsnn._engine.adaptive`)."""
    sorted_in = sort_inputs(Spikes(time=time, idx=idx), t_max)
    if is_adaptive(params):
        solver = lif_solver(params)
        found = neuron_spikes(weight[:, None], sorted_in, params, solver, t_max, budget)
        found = jax.tree.map(lambda a: a[..., 0], found)
        return compact(found.time, found.current, found.valid, found.interval, found.more, budget)
    free = free_states(params, sorted_in, weight)
    n_in = free.shape[0]
    length = window_length(n_in, budget)
    dtype = free.dtype
    flow = jax.vmap(params.flow)

    def step(carry, _):
        ptr, at_spike, s_last, response, count, more = carry
        k = ptr + jnp.arange(length, dtype=ptr.dtype)
        inside = (k < n_in) & sorted_in.valid[jnp.minimum(k, n_in - 1)]
        k = jnp.minimum(k, n_in - 1)
        a_k = sorted_in.time[k]
        from_spike = (k == ptr) & at_spike
        start = jnp.where(from_spike, s_last, a_k)
        span = jnp.maximum(sorted_in.end[k] - start, 0.0)
        # The free state at each window start (at the spike: flowed there from its
        # interval's arrival), plus the response to the spikes so far.
        x_free = jnp.where(from_spike[:, None], flow(free[k], start - a_k), free[k])
        x0 = x_free + flow(jnp.broadcast_to(response, free[k].shape), start - s_last)
        first, dt, found = _first_window(params, x0, span, inside)
        dt = implicit_time(params, x0[first], dt, found)
        s = start[first] + dt
        hit = found & (s < t_max)
        spike = hit & (count < budget)
        x_pre = params.flow(x0[first], dt)
        free_s = params.flow(free[k[first]], s - a_k[first])
        new_response = params.fire(x_pre) - free_s
        moved = jnp.where(hit, n_in, ptr + length).astype(ptr.dtype)
        carry = (
            jnp.where(spike, k[first], moved),
            spike,
            jnp.where(spike, s, s_last),
            jnp.where(spike, new_response, response),
            count + spike.astype(count.dtype),
            more | (hit & ~spike),
        )
        return carry, (s, params.current(x_pre), spike, k[first])

    zero_i = jnp.zeros((), jnp.int32)
    no = jnp.zeros((), bool)
    response = jnp.zeros_like(free[0])
    init = (zero_i, no, jnp.zeros((), dtype), response, zero_i, no)
    steps = scan_length(n_in, budget, length)
    carry, (s, current, spike, interval) = jax.lax.scan(step, init, None, length=steps)
    return compact(s, current, spike, interval, carry[5], budget)


def compact(s, current, spike, interval, more, budget: int) -> NeuronSpikes:
    """The steps' spikes (in time order) compacted into the `budget` slots."""
    slot = jnp.where(spike, jnp.cumsum(spike) - 1, budget)
    dtype = s.dtype
    return NeuronSpikes(
        time=jnp.full((budget,), jnp.inf, dtype).at[slot].set(s, mode="drop"),
        current=jnp.zeros((budget,), dtype).at[slot].set(current, mode="drop"),
        valid=jnp.zeros((budget,), bool).at[slot].set(spike, mode="drop"),
        interval=jnp.zeros((budget,), jnp.int32)
        .at[slot]
        .set(interval.astype(jnp.int32), mode="drop"),
        more=jax.lax.stop_gradient(more),
    )


def _first_window(params, x0, span, inside):
    """The first of the `L` windows that holds a crossing, the time of that crossing from
    the window's start and whether there is one (none of them differentiable).

    A cheap bound ([`eqsnn.neurons.gap_bound`][], exact for one or two exponentials)
    rules windows out; the candidates are then solved one at a time in order, on one lane
    per neuron, until one crosses: much less work than solving every window."""
    params, x0, span = jax.lax.stop_gradient((params, x0, span))
    c0, c, r = jax.vmap(params.gap_terms)(x0)
    bound = jax.vmap(gap_bound)(c0, c, r, span)
    scale = jnp.abs(c0) + jnp.sum(jnp.abs(c), axis=-1)
    candidate = inside & (bound >= -8 * jnp.finfo(bound.dtype).eps * scale)

    def cond(state):
        left, done, _, _ = state
        return ~done & jnp.any(left)

    def body(state):
        left, _, _, _ = state
        j = jnp.argmax(left)
        dt, found = locate(params, x0[j], span[j])
        return left.at[j].set(False), found, j, dt

    first = jnp.argmax(candidate)
    init = (candidate, jnp.zeros((), bool), first, span[first])
    _, found, first, dt = jax.lax.while_loop(cond, body, init)
    return first, dt, found


def simulate_model(config: SimulationConfig, weights, spikes: Spikes, budget: int) -> Spikes:
    """The simulation of a feed-forward layer of a neuron model, differentiated by
    autodiff (crossing times by the implicit-function theorem)."""
    _, constants = eqx.partition(config.params, eqx.is_array)

    def core(weight, time, idx, arrays):
        params = eqx.combine(arrays, constants)
        return model_neuron(weight, time, idx, params, config.t_max, budget)

    return collect(per_neuron_spikes(core, config, weights, spikes), config.n_spikes)
