r"""Feed-forward layers whose neurons see their own inputs: delays, per-neuron parameters.

A feed-forward neuron depends only on the spikes that reach it. With synaptic delays
input $i$'s spike at $t$ reaches neuron $n$ at $t + d_{in}$ (per synapse, shape
`(in_size, out_size)`) or $t + d_i$ (per source, shape `(in_size,)`), so every neuron has
its own arrival order; with per-neuron parameters every neuron has its own constants. Both
are handled the same way: each neuron is simulated on its own by the window scan
(`neuron_spikes` with one neuron, under `jax.vmap` over the neurons), from its arrivals
sorted in time, and the neurons' spikes are merged into the output buffer. Work stays
linear in inputs times neurons (one sort of `in` arrivals per neuron).

Delays enter only through the arrival times $t + \max(d, 0)$: a delay that training makes
negative acts as zero (and gets no gradient while it is negative). Arrivals at or after
`t_max` are ignored.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._params import LIFParameters
from .._spikes import Spikes
from .._weights import InputWeights
from .base import SimulationConfig
from .buffers import collect_spikes, sort_inputs
from .window_scan import NeuronSpikes, candidates, neuron_spikes


def uses_per_neuron_path(config: SimulationConfig, weights) -> bool:
    """Whether a feed-forward layer needs the per-neuron simulation: delays, or a
    parameter that is an array (per neuron or trainable), or a refractory period."""
    has_delays = isinstance(weights, InputWeights) and weights.delays is not None
    return has_delays or bool(config.params.arrays) or config.params.refractory


class Arrivals(eqx.Module):
    """Every neuron's inputs in the caller's slot order, `(out_size, n_slots)`.

    - `time`: when input slot `k` reaches the neuron (its time plus the delay).
    - `weight`: the weight of that synapse (0 for an empty slot).
    - `idx`: the slot index where the slot holds a spike, -1 where it is empty.
    """

    time: Float[Array, "n k"]
    weight: Float[Array, "n k"]
    idx: Int[Array, "n k"]


def delay_of(delays: Float[Array, "..."]) -> Float[Array, "..."]:
    """The delay the simulation uses: `max(d, 0)`, with the full gradient at `d = 0`."""
    return jnp.where(delays >= 0, delays, 0.0)


def arrivals(weights, spikes: Spikes) -> Arrivals:
    """The arrival time and weight of every input slot at every neuron."""
    w = weights.input if isinstance(weights, InputWeights) else weights
    delays = weights.delays if isinstance(weights, InputWeights) else None
    n_out = w.shape[1]
    used = spikes.idx >= 0
    src = jnp.where(used, spikes.idx, 0)
    weight = jnp.where(used[None, :], w[src].T, 0.0)
    time = jnp.broadcast_to(spikes.time, (n_out,) + spikes.time.shape)
    if delays is not None:
        d = delay_of(delays)
        d = d[src][None, :] if d.ndim == 1 else d[src].T
        time = time + jnp.where(used[None, :], d, 0.0)
    slots = jnp.arange(spikes.time.shape[0], dtype=jnp.int32)
    idx = jnp.broadcast_to(jnp.where(used, slots, -1), time.shape)
    return Arrivals(time=time, weight=weight, idx=idx)


def shared_arrivals(weights) -> bool:
    """Whether every neuron sees the same arrival times (no delays, or per-source ones)."""
    delays = weights.delays if isinstance(weights, InputWeights) else None
    return delays is None or delays.ndim == 1


def split_params(params: LIFParameters, n: int) -> tuple[LIFParameters, LIFParameters]:
    """`(arrays, constants)`: the array fields broadcast to `(n,)` (vmapped over neurons)
    and the float fields (closed over)."""
    wide = params.per_neuron(n)
    return eqx.partition(wide, eqx.is_array)


def one_neuron(weight, time, idx, params: LIFParameters, config: SimulationConfig, budget):
    """The window scan of one neuron over its own arrivals; `(R,)` arrays."""
    sorted_in = sort_inputs(Spikes(time=time, idx=idx), config.t_max)
    found = neuron_spikes(weight[:, None], sorted_in, params, config.solver, config.t_max, budget)
    return jax.tree.map(lambda a: a[..., 0], found)


def per_neuron_spikes(core, config: SimulationConfig, weights, spikes: Spikes) -> NeuronSpikes:
    """Run `core(weight, time, idx, param_arrays)` for every neuron (vmapped) and return the
    spikes as `(R, N)` [`NeuronSpikes`][]."""
    arr = arrivals(weights, spikes)
    n_out = arr.time.shape[0]
    arrays, _ = split_params(config.params, n_out)
    if shared_arrivals(weights):
        # Every neuron sees the same arrival times: pass them unbatched, so that the
        # neurons' simulations share one sort of the inputs.
        found = jax.vmap(core, in_axes=(0, None, None, 0))(
            arr.weight, arr.time[0], arr.idx[0], arrays
        )
    else:
        found = jax.vmap(core)(arr.weight, arr.time, arr.idx, arrays)
    return NeuronSpikes(
        time=found.time.T,
        current=found.current.T,
        valid=found.valid.T,
        interval=found.interval.T,
        more=found.more,
    )


def collect(found: NeuronSpikes, n_spikes: int) -> Spikes:
    """The output buffer of the per-neuron spikes."""
    extra = jnp.sum(found.more, dtype=jnp.int32)
    return collect_spikes(*candidates(found), n_spikes, extra)


def simulate_per_neuron(config: SimulationConfig, weights, spikes: Spikes, budget: int) -> Spikes:
    """The per-neuron simulation of a feed-forward layer, differentiated by autodiff."""
    _, constants = eqx.partition(config.params, eqx.is_array)

    def core(weight, time, idx, arrays):
        params = eqx.combine(arrays, constants)
        return one_neuron(weight, time, idx, params, config, budget)

    return collect(per_neuron_spikes(core, config, weights, spikes), config.n_spikes)
