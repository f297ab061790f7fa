r"""Feed-forward layers of a neuron model other than the LIF: each neuron's events in order.

For a model of [`eqsnn.neurons.AbstractNeuronModel`][] every neuron is simulated on its
own (under `jax.vmap` over the neurons, as the per-neuron path of the LIF), from its
arrivals sorted in time: one scan whose step either fires at the first threshold crossing
before the next arrival ([`eqsnn.neurons.first_crossing`][]) or moves to that arrival and
receives it. `K` arrivals and a budget of `S` spikes take `K + S + 1` steps (the last one
tells whether the neuron would spike again after its budget). Delays shift the arrivals
exactly as for the LIF.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._spikes import Spikes
from ..neurons._crossing import first_crossing
from .base import SimulationConfig
from .buffers import sort_inputs
from .per_neuron import collect, per_neuron_spikes
from .window_scan import NeuronSpikes

IDLE, ARRIVAL, SPIKE = 0, 1, 2


class EventRecord(eqx.Module):
    """What one neuron did at each step of its scan, `(K + S + 1,)` arrays: the kind of
    event (`IDLE`, `ARRIVAL`, `SPIKE`) and which arrival (sorted index) or spike slot."""

    kind: Int[Array, " steps"]
    which: Int[Array, " steps"]


class ModelSpikes(eqx.Module):
    """One neuron's spikes, `(S,)` arrays in time order, and its event record."""

    time: Float[Array, " s"]
    current: Float[Array, " s"]
    valid: Bool[Array, " s"]
    interval: Int[Array, " s"]
    more: Bool[Array, ""]
    record: EventRecord


def model_neuron(weight, time, idx, params, t_max: float, budget: int) -> ModelSpikes:
    """The spikes of one neuron of model `params` (scalar parameters) driven by the
    arrivals `(time, weight)` of the slots `idx` (-1: empty)."""
    sorted_in = sort_inputs(Spikes(time=time, idx=idx), t_max)
    n_in = sorted_in.time.shape[0]
    w = jnp.where(sorted_in.valid, weight[sorted_in.order], 0.0)
    dtype = w.dtype
    t_max_ = jnp.asarray(t_max, dtype)

    def step(carry, _):
        x, t, k, count, done, more = carry
        arrival = (k < n_in) & sorted_in.valid[jnp.minimum(k, n_in - 1)]
        k_ = jnp.minimum(k, n_in - 1)
        t_next = jnp.where(arrival, sorted_in.time[k_], t_max_)
        dt, found = first_crossing(params, x, jnp.maximum(t_next - t, 0.0))
        s = t + dt
        found = found & (s < t_max) & ~done
        spike = found & (count < budget)
        x_pre = params.flow(x, dt)
        x_fired = params.fire(x_pre)
        x_arrived = params.receive(params.flow(x, t_next - t), w[k_])
        move = ~found & arrival & ~done
        x_new = jnp.where(spike, x_fired, jnp.where(move, x_arrived, x))
        t_new = jnp.where(spike, s, jnp.where(move, t_next, t))
        kind = jnp.where(spike, SPIKE, jnp.where(move, ARRIVAL, IDLE))
        which = jnp.where(spike, count, k_)
        out = (s, params.current(x_pre), spike, k, kind, which)
        carry = (
            x_new,
            t_new,
            k + move.astype(k.dtype),
            count + spike.astype(count.dtype),
            done | (found & ~spike) | (~found & ~arrival),
            more | (found & ~spike),
        )
        return carry, out

    zero_i = jnp.zeros((), jnp.int32)
    no = jnp.zeros((), bool)
    init = (params.initial_state(dtype), jnp.zeros((), dtype), zero_i, zero_i, no, no)
    carry, (s, current, spike, interval, kind, which) = jax.lax.scan(
        step, init, None, length=n_in + budget + 1
    )
    # Compact the steps' spikes into the `budget` slots (they are in time order).
    slot = jnp.where(spike, which, budget)
    out_time = jnp.full((budget,), jnp.inf, dtype).at[slot].set(s, mode="drop")
    out_current = jnp.zeros((budget,), dtype).at[slot].set(current, mode="drop")
    out_valid = jnp.zeros((budget,), bool).at[slot].set(spike, mode="drop")
    out_interval = jnp.zeros((budget,), jnp.int32).at[slot].set(interval, mode="drop")
    return ModelSpikes(
        time=out_time,
        current=out_current,
        valid=out_valid,
        interval=out_interval,
        more=jax.lax.stop_gradient(carry[5]),
        record=EventRecord(kind=kind, which=which),
    )


def simulate_model(config: SimulationConfig, weights, spikes: Spikes, budget: int) -> Spikes:
    """The simulation of a feed-forward layer of a neuron model, differentiated by
    autodiff (crossing times by the implicit-function theorem)."""
    _, constants = eqx.partition(config.params, eqx.is_array)

    def core(weight, time, idx, arrays):
        params = eqx.combine(arrays, constants)
        found = model_neuron(weight, time, idx, params, config.t_max, budget)
        return NeuronSpikes(
            time=found.time,
            current=found.current,
            valid=found.valid,
            interval=found.interval,
            more=found.more,
        )

    return collect(per_neuron_spikes(core, config, weights, spikes), config.n_spikes)
