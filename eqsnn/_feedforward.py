r"""Per-neuron event simulation of a feed-forward LIF layer.

In a feed-forward layer the neurons do not interact, so given the input spikes each
neuron's trajectory is independent. The simulation therefore scans over the intervals
between consecutive input spikes only (scan length = number of input slots) and, inside
each interval, solves every neuron's threshold crossings in parallel. Compared with one
global event loop over inputs *and* output spikes, this shortens the scan by the spike
budget and removes the minimum over all neurons at every step.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._events import Overflow, SortedInputs, collect_spikes, sort_inputs
from ._flow import membrane, synaptic_current
from ._params import LIFParameters
from ._spikes import Spikes
from .solvers import AbstractCrossingSolver, crossing_bracket


class IntervalSpikes(eqx.Module):
    """Spikes found in one inter-input interval: `(max_spikes_per_interval, n_neurons)`."""

    time: Float[Array, "m n"]
    current: Float[Array, "m n"]
    found: Bool[Array, "m n"]


def evolve_interval(params, solver, n_per_interval, u, i, t0, t1):
    """Evolve all neurons from `t0` to `t1` (no input in between), emitting their spikes.

    `u` is the voltage above leak and `i` the current just after the input at `t0`.

    **Returns:** `(u, i, more, spikes)`: the state at `t1`, the number of further crossings
    beyond `n_per_interval` (lost), and the `IntervalSpikes` with absolute times.
    """
    theta = params.v_th - params.v_leak
    u_reset = params.v_reset - params.v_leak
    # Inputs are sorted, so t1 >= t0; no clamp (jnp.maximum would halve gradients at ties).
    length = t1 - t0
    offset = jnp.zeros_like(u)
    times, currents, founds = [], [], []
    for _ in range(n_per_interval):
        dt, found = solver(u, i, theta, length - offset, params.tau_mem, params.tau_syn)
        u_at = membrane(u, i, dt, params.tau_mem, params.tau_syn)
        i = synaptic_current(i, dt, params.tau_syn)
        offset = offset + dt
        times.append(t0 + offset)
        currents.append(i)
        founds.append(found)
        u = jnp.where(found, u_reset, u_at)
    rest = length - offset
    more, _ = crossing_bracket(u, i, theta, rest, params.tau_mem, params.tau_syn)
    u = membrane(u, i, rest, params.tau_mem, params.tau_syn)
    i = synaptic_current(i, rest, params.tau_syn)
    out = IntervalSpikes(jnp.stack(times), jnp.stack(currents), jnp.stack(founds))
    return u, i, jnp.sum(more, dtype=jnp.int32), out


def _interval(params, solver, n_per_interval, weights, carry, x):
    """Apply one input spike, then evolve all neurons to the next input, emitting spikes."""
    u, i, overflowed = carry
    t0, t1, idx, valid = x
    i = i + jnp.where(valid, weights[idx], 0.0)
    u, i, more, out = evolve_interval(params, solver, n_per_interval, u, i, t0, t1)
    return (u, i, overflowed + more), out


def collect_intervals(
    found: IntervalSpikes,
    overflowed: Int[Array, ""],
    n_spikes: int,
    t_max: float,
    overflow: Overflow,
    who: str,
) -> Spikes:
    """Gather the spikes of all intervals, shape `(k, m, n)`, into the output buffer."""
    n_out = found.time.shape[-1]
    neuron: Int[Array, " c"] = jnp.broadcast_to(jnp.arange(n_out), found.time.shape).reshape(-1)
    time = found.time.reshape(-1)
    valid = found.found.reshape(-1) & (time < t_max)
    return collect_spikes(
        time, neuron, found.current.reshape(-1), valid, n_spikes, overflowed, overflow, who
    )


def scan_intervals(
    weights: Float[Array, "n_in n_out"],
    sorted_in: SortedInputs,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    max_spikes_per_interval: int,
) -> tuple[IntervalSpikes, Int[Array, ""]]:
    """Scan over the input intervals; returns every interval's spikes `(k, m, n)` and the
    count of crossings lost to `max_spikes_per_interval`."""
    zeros = jnp.zeros(weights.shape[1], weights.dtype)
    init = (zeros, zeros, jnp.zeros((), jnp.int32))

    def body(carry, x):
        return _interval(params, solver, max_spikes_per_interval, weights, carry, x)

    xs = (sorted_in.time, sorted_in.end, sorted_in.idx, sorted_in.valid)
    (_, _, overflowed), found = jax.lax.scan(body, init, xs)
    return found, overflowed


def simulate_feedforward(
    weights: Float[Array, "n_in n_out"],
    inputs: Spikes,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    n_spikes: int,
    t_max: float,
    max_spikes_per_interval: int = 1,
    overflow: Overflow = Overflow.COUNT,
    who: str = "LIF",
) -> Spikes:
    """Simulate a feed-forward LIF layer exactly; see [`eqsnn.LIF`][] for the semantics."""
    sorted_in: SortedInputs = sort_inputs(inputs, t_max)
    found, overflowed = scan_intervals(weights, sorted_in, params, solver, max_spikes_per_interval)
    return collect_intervals(found, overflowed, n_spikes, t_max, overflow, who)
