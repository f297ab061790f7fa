r"""Per-neuron event simulation of a feed-forward LIF layer.

In a feed-forward layer the neurons do not interact, so given the input spikes each
neuron's trajectory is independent. The simulation therefore scans over the intervals
between consecutive input spikes only (scan length = number of input slots) and, inside
each interval, solves every neuron's threshold crossings in parallel. Compared with one
global event loop over inputs *and* output spikes, this shortens the scan by the spike
budget and removes the minimum over all neurons at every step.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._checks import as_int
from .._flow import membrane, synaptic_current
from .._params import LIFParameters
from .._spikes import Spikes
from ..solvers import AbstractCrossingSolver, crossing_bracket
from .base import AbstractEngine, SimulationConfig
from .buffers import SortedInputs, collect_spikes, sort_inputs


class IntervalSpikes(eqx.Module):
    """Spikes found in one inter-input interval: `(max_spikes_per_interval, n_neurons)`,
    and what the adjoint needs of the crossings lost to that budget, `(n_neurons,)`.

    A neuron that crosses the threshold again after its budget loses those spikes but is
    reset at each crossing: `lost` marks it, `lost_time` is its last lost crossing (the
    interval's end where there is none), `lost_current` its current there and
    `lost_sensitivity` the derivative of that time with respect to the current right after
    its last recorded spike (`lost_crossings`).
    """

    time: Float[Array, "m n"]
    current: Float[Array, "m n"]
    found: Bool[Array, "m n"]
    lost: Bool[Array, " n"]
    lost_time: Float[Array, " n"]
    lost_current: Float[Array, " n"]
    lost_sensitivity: Float[Array, " n"]


def evolve_interval(params, solver, n_per_interval, u, i, t0, t1):
    """Evolve all neurons from `t0` to `t1` (no input in between), emitting their spikes.

    `u` is the voltage above leak and `i` the current just after the input at `t0`.

    **Returns:** `(u, i, lost, spikes)`: the state at `t1`, the number of crossings beyond
    `n_per_interval` (lost, counted exactly; the neuron is reset at each of them, so its
    later spikes are right), and the `IntervalSpikes` with absolute times.
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
    lost, since, sensitivity = lost_crossings(params, solver, i, rest, more)
    # After its last lost crossing, at `t0 + offset + since`, a neuron restarts from the
    # reset (`since` is 0 where nothing was lost).
    i_at = synaptic_current(i, since, params.tau_syn)
    u = jnp.where(
        lost > 0,
        membrane(u_reset, i_at, rest - since, params.tau_mem, params.tau_syn),
        membrane(u, i, rest, params.tau_mem, params.tau_syn),
    )
    i = synaptic_current(i, rest, params.tau_syn)
    found = lost > 0
    last = jnp.where(found, t0 + offset + since, t1)
    out = IntervalSpikes(
        jnp.stack(times), jnp.stack(currents), jnp.stack(founds), found, last, i_at, sensitivity
    )
    return u, i, jnp.sum(lost, dtype=jnp.int32), out


MAX_LOST_PER_INTERVAL = 100_000
"""Safety cap of `lost_crossings`: crossings counted
per neuron and interval beyond the budget (a bound on the loop, never reached by a
neuron whose reset lies below its threshold, as `LIFParameters` requires)."""


def lost_crossings(params, solver, i, rest, more):
    r"""The crossings of each neuron in the `rest` of an interval after its budget is spent.

    Every neuron with `more` starts from the reset with current `i` (its state right after
    its last recorded spike), finds its next crossing, is reset there and looks again,
    until no neuron crosses before the end of the interval (a `lax.while_loop`).

    The time $\sigma$ from the start of `rest` to the last lost crossing is differentiable
    (a custom JVP): the dynamics are autonomous, so it depends only on `i`, and the loop
    accumulates $\beta = \partial\sigma/\partial i$ by the implicit-function theorem at
    each crossing $j$: $\partial\sigma_j = \partial\sigma_{j-1} + \gamma_j\,\partial c_{j-1}$
    and $\partial c_j = (e^{-\Delta_j/\tau_\mathrm{syn}} - c_j\gamma_j/\tau_\mathrm{syn})
    \,\partial c_{j-1}$, with $c_j$ the current at crossing $j$, $\Delta_j$ the time since
    the previous one and $\gamma_j = -\kappa(\Delta_j)/\dot u_j$ ($\kappa$ the voltage
    response to a unit current, $\dot u_j = (c_j - \theta)/\tau_\mathrm{mem}$; 0 where
    $\dot u_j \le 0$, a grazing crossing).

    **Returns:** `(lost, since, sensitivity)`: per neuron, the number of lost crossings, the
    time $\sigma$ from the start of `rest` to the last one (0 if none) and $\beta$.
    """
    theta = params.v_th - params.v_leak
    u_reset = params.v_reset - params.v_leak
    tau_mem, tau_syn = params.tau_mem, params.tau_syn

    def body(rest, carry):
        c, since, lost, more, beta_s, beta_c = carry
        u = jnp.full_like(c, u_reset)
        dt, found = solver(u, c, theta, rest - since, tau_mem, tau_syn)
        found = found & more
        decay = jnp.exp(-dt / tau_syn)
        c_new = c * decay
        slope = (c_new - theta) / tau_mem
        rising = found & (slope > 0)
        gamma = jnp.where(rising, -membrane(0.0, 1.0, dt, tau_mem, tau_syn), 0.0) / jnp.where(
            rising, slope, 1.0
        )
        beta_s = jnp.where(found, beta_s + gamma * beta_c, beta_s)
        beta_c = jnp.where(found, (decay - c_new * gamma / tau_syn) * beta_c, beta_c)
        since = jnp.where(found, since + dt, since)
        c = jnp.where(found, c_new, c)
        lost = lost + found.astype(lost.dtype)
        again, _ = crossing_bracket(u, c, theta, rest - since, tau_mem, tau_syn)
        more = found & again & (lost < MAX_LOST_PER_INTERVAL)
        return c, since, lost, more, beta_s, beta_c

    @jax.custom_jvp
    def count(i, rest, more):
        zeros = jnp.zeros_like(i)
        init = (i, zeros, jnp.zeros(i.shape, jnp.int32), more, zeros, jnp.ones_like(i))
        loop = jax.lax.while_loop(lambda c: jnp.any(c[3]), functools.partial(body, rest), init)
        _, since, lost, _, beta, _ = loop
        return lost, since, beta

    @count.defjvp
    def _count_jvp(primals, tangents):
        lost, since, beta = count(*primals)
        di = tangents[0]  # the count and the times do not move with the interval's end
        zero_lost = np.zeros(lost.shape, jax.dtypes.float0)
        return (lost, since, beta), (zero_lost, beta * di, jnp.zeros_like(beta))

    return count(i, rest, more)


class IntervalState(eqx.Module):
    """The carry of the interval scan: every neuron's state and the crossings lost so far.

    - `u`: voltage above leak, `(n_neurons,)`.
    - `i`: synaptic current, `(n_neurons,)`.
    - `lost`: crossings beyond the per-interval budget so far (a count).
    """

    u: Float[Array, " n"]
    i: Float[Array, " n"]
    lost: Int[Array, ""]


def initial_state(n_out: int, dtype) -> IntervalState:
    """All neurons at rest, nothing lost."""
    zeros = jnp.zeros(n_out, dtype)
    return IntervalState(u=zeros, i=zeros, lost=jnp.zeros((), jnp.int32))


def collect_intervals(
    found: IntervalSpikes, lost: Int[Array, ""], n_spikes: int, t_max: float
) -> Spikes:
    """Gather the spikes of all intervals, shape `(k, m, n)`, into the output buffer."""
    n_out = found.time.shape[-1]
    neuron: Int[Array, " c"] = jnp.broadcast_to(jnp.arange(n_out), found.time.shape).reshape(-1)
    time = found.time.reshape(-1)
    valid = found.found.reshape(-1) & (time < t_max)
    return collect_spikes(time, neuron, found.current.reshape(-1), valid, n_spikes, lost)


def scan_intervals(
    weights: Float[Array, "n_in n_out"],
    sorted_in: SortedInputs,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    max_spikes_per_interval: int,
) -> tuple[IntervalSpikes, Int[Array, ""]]:
    """Scan over the input intervals; returns every interval's spikes `(k, m, n)` and the
    count of crossings lost to `max_spikes_per_interval`."""

    def body(state: IntervalState, x):
        """Apply one input spike, then evolve all neurons to the next input."""
        t0, t1, idx, valid = x
        i = state.i + jnp.where(valid, weights[idx], 0.0)
        u, i, more, out = evolve_interval(
            params, solver, max_spikes_per_interval, state.u, i, t0, t1
        )
        return IntervalState(u=u, i=i, lost=state.lost + more), out

    xs = (sorted_in.time, sorted_in.end, sorted_in.idx, sorted_in.valid)
    final, found = jax.lax.scan(body, initial_state(weights.shape[1], weights.dtype), xs)
    return found, final.lost


class IntervalScan(AbstractEngine):
    r"""The interval scan: one scan over the input intervals, all neurons together.

    Between two consecutive input spikes every neuron of a feed-forward layer evolves on
    its own; the scan steps from input to input and, in each interval, solves for up to
    `max_spikes_per_interval` threshold crossings of every neuron at once (the crossing
    solver of the layer). Its length is the number of input slots. A crossing beyond the
    budget is lost but counted exactly in `dropped`, and the neuron is reset at it, so its
    later spikes stay right.

    Feed-forward layers only. This is the engine of the seed's per-step EventProp
    (`EventProp(per_step=True)` differentiates each of its steps on its own).

    **Arguments:**

    - `max_spikes_per_interval`: the most spikes one neuron emits between two consecutive
      inputs (default 1).
    """

    max_spikes_per_interval: int = eqx.field(default=1, static=True)

    def __check_init__(self):
        as_int(self.max_spikes_per_interval, "max_spikes_per_interval", "IntervalScan", 1)

    def simulate(self, config: SimulationConfig, weights, spikes: Spikes) -> Spikes:
        """Simulate one sample; see [`eqsnn.AbstractEngine`][]."""
        sorted_in: SortedInputs = sort_inputs(spikes, config.t_max)
        found, lost = scan_intervals(
            weights, sorted_in, config.params, config.solver, self.max_spikes_per_interval
        )
        return collect_intervals(found, lost, config.n_spikes, config.t_max)

    def check(self, config: SimulationConfig, who: str) -> None:
        """The interval scan runs feed-forward layers only."""
        if config.recurrent:
            raise ValueError(
                f"{who}: `engine=IntervalScan(...)` simulates feed-forward layers only; use "
                "eqsnn.EventLoop() (any connectivity) or eqsnn.WindowScan(...) "
                "(feed-forward populations)."
            )

    @property
    def budget_settings(self) -> dict[str, object]:
        """`{"max_spikes_per_interval": ...}`."""
        return {"max_spikes_per_interval": self.max_spikes_per_interval}
