r"""Parallel-in-time simulation of a feed-forward LIF layer.

Between its own spikes a neuron is linear: its state right after each input spike follows
from a linear recurrence over the inputs (a few multiply-adds per input), and a spike only
adds a decaying reset term $(v_\mathrm{reset} - v_\mathrm{th}) e^{-(t - s)/\tau_\mathrm{mem}}$
to the voltage afterwards. The simulation therefore finds each neuron's first spike by
solving for a crossing in *every* input interval in parallel and taking the earliest one;
its second spike likewise, after adding the reset term; and so on,
`max_spikes_per_neuron` rounds. The expensive part, root finding, never runs inside a
loop over input spikes.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from ._events import Overflow, SortedInputs, collect_spikes, sort_inputs
from ._flow import membrane
from ._params import LIFParameters
from ._spikes import Spikes
from .solvers import AbstractCrossingSolver


def input_states(
    weights: Float[Array, "n_in n_out"], sorted_in: SortedInputs, params: LIFParameters
) -> tuple[Float[Array, "k n_out"], Float[Array, "k n_out"]]:
    """Voltage above leak and current of every neuron right after each input spike, if the
    neurons did not spike: the linear recurrence `u, I <- flow(u, I, dt); I <- I + w`.

    (A plain scan of a few multiply-adds per step beats both a kernel-matrix product and an
    associative scan on CPU; it is the only sequential part of the simulation.)
    """
    dt = jnp.diff(sorted_in.time, prepend=jnp.zeros((1,), sorted_in.time.dtype))
    decay_u = jnp.exp(-dt / params.tau_mem)
    decay_i = jnp.exp(-dt / params.tau_syn)
    coupling = membrane(0.0, 1.0, dt, params.tau_mem, params.tau_syn)
    w = jnp.where(sorted_in.valid[:, None], weights[sorted_in.idx], 0.0)

    def step(carry, x):
        u, i = carry
        a, c, d, w_k = x
        u, i = a * u + c * i, d * i + w_k
        return (u, i), (u, i)

    zeros = jnp.zeros(weights.shape[1], weights.dtype)
    _, (u, i) = jax.lax.scan(step, (zeros, zeros), (decay_u, coupling, decay_i, w))
    return u, i


class NeuronSpikes(eqx.Module):
    """Every neuron's spikes, round by round: entry `[r, n]` is the `r`-th spike of neuron `n`.

    - `time`, `current`: spike time and synaptic current at the spike, shape `(S, N)`.
    - `valid`: whether the spike happened (before `t_max`), shape `(S, N)`.
    - `more`: whether a neuron could spike again after its budget of `S`, shape `(N,)`.
    """

    time: Float[Array, "s n"]
    current: Float[Array, "s n"]
    valid: Bool[Array, "s n"]
    more: Bool[Array, " n"]


def neuron_spikes(
    weights: Float[Array, "n_in n_out"],
    sorted_in: SortedInputs,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    t_max: float,
    max_spikes_per_neuron: int,
) -> NeuronSpikes:
    """Find up to `max_spikes_per_neuron` spikes of every neuron, one round per spike."""
    u_in, i_in = input_states(weights, sorted_in, params)
    n_in, n_out = u_in.shape
    theta = params.v_th - params.v_leak
    u_reset = params.v_reset - params.v_leak
    windows = _Windows(
        t_start=jnp.broadcast_to(sorted_in.time[:, None], u_in.shape),
        t_end=sorted_in.end[:, None],
        k=jnp.arange(n_in)[:, None],
        u_reset=u_reset,
    )
    # Per neuron: interval of the last spike (-1: none yet; n_in: done), its time and current.
    last = (jnp.full((n_out,), -1), jnp.zeros((n_out,), u_in.dtype), jnp.zeros_like(u_in[0]))
    times, currents, valids = [], [], []
    for _ in range(max_spikes_per_neuron):
        start, u0, i0, active = windows.starts(u_in, i_in, *last)
        window = _length(windows.t_end - start)
        dt, found = solver(u0, i0, theta, window, params.tau_mem, params.tau_syn)
        found = found & active
        first = jnp.argmax(found, axis=0)
        pick = (first[None, :], jnp.arange(n_out)[None, :])
        s_new = start[pick][0] + dt[pick][0]
        i_new = i0[pick][0] * jnp.exp(-dt[pick][0] / params.tau_syn)
        spiked = jnp.any(found, axis=0) & (s_new < t_max)
        times.append(s_new)
        currents.append(i_new)
        valids.append(spiked)
        later = (windows.k > first[None, :]) & spiked[None, :]
        lag = jnp.where(later, sorted_in.time[:, None] - s_new[None, :], 0.0)
        u_in = u_in + jnp.where(later, (u_reset - theta) * jnp.exp(-lag / params.tau_mem), 0.0)
        last = (
            jnp.where(spiked, first, n_in),
            jnp.where(spiked, s_new, last[1]),
            jnp.where(spiked, i_new, last[2]),
        )
    start, u0, i0, active = windows.starts(u_in, i_in, *last)
    window = _length(windows.t_end - start)
    more = solver.exists(u0, i0, theta, window, params.tau_mem, params.tau_syn)
    more = jax.lax.stop_gradient(jnp.any(more & active & (window > 0), axis=0))
    return NeuronSpikes(jnp.stack(times), jnp.stack(currents), jnp.stack(valids), more)


def candidates(spikes: NeuronSpikes):
    """Flatten `(S, N)` per-neuron spikes into candidate arrays (time, neuron, current, valid)."""
    neuron = jnp.broadcast_to(jnp.arange(spikes.time.shape[1]), spikes.time.shape)
    return (
        spikes.time.reshape(-1),
        neuron.reshape(-1),
        spikes.current.reshape(-1),
        spikes.valid.reshape(-1),
    )


def simulate_feedforward_parallel(
    weights: Float[Array, "n_in n_out"],
    inputs: Spikes,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    n_spikes: int,
    t_max: float,
    max_spikes_per_neuron: int = 1,
    overflow: Overflow = Overflow.COUNT,
    who: str = "LIF",
) -> Spikes:
    """Simulate a feed-forward LIF layer exactly, parallel over input intervals."""
    sorted_in = sort_inputs(inputs, t_max)
    spikes = neuron_spikes(weights, sorted_in, params, solver, t_max, max_spikes_per_neuron)
    extra = jnp.sum(spikes.more, dtype=jnp.int32)
    return collect_spikes(*candidates(spikes), n_spikes, extra, overflow, who)


def _length(span):
    """Window length: `span` is >= 0 up to rounding; `where` (unlike `maximum`) keeps the
    full gradient when two events coincide."""
    return jnp.where(span >= 0, span, 0.0)


class _Windows(eqx.Module):
    """The search windows of a round: one per (input interval, neuron)."""

    t_start: Float[Array, "k n"]
    t_end: Float[Array, "k 1"]
    k: Int[Array, "k 1"]
    u_reset: float = eqx.field(static=True)

    def starts(self, u_in, i_in, k_last, s_last, i_last):
        """Start time and state of every window; windows before the last spike are inactive.

        The window holding a neuron's last spike starts at that spike, from the reset.
        """
        at_last = self.k == k_last[None, :]
        start = jnp.where(at_last, s_last[None, :], self.t_start)
        u0 = jnp.where(at_last, self.u_reset, u_in)
        i0 = jnp.where(at_last, i_last[None, :], i_in)
        return start, u0, i0, self.k >= k_last[None, :]
