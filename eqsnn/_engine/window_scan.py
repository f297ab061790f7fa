r"""Parallel-in-time simulation of a feed-forward LIF layer.

Between its own spikes a neuron is linear: its state right after each input spike follows
from a linear recurrence over the inputs (a few multiply-adds per input), and a spike only
adds a decaying reset term $(v_\mathrm{reset} - v_\mathrm{th}) e^{-(t - s)/\tau_\mathrm{mem}}$
to the voltage afterwards. The simulation therefore computes that recurrence once, then
lets every neuron walk through the input intervals on its own with a *window scan*: at each
step a neuron solves for a crossing in the next few intervals at once and either spikes at
the earliest one or moves past them. One spike per neuron needs two steps over all
intervals; a bursting neuron takes short windows and about one step per spike. The
expensive part, root finding, is batched over windows and neurons, and the total work is
linear in the number of inputs and spikes.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._checks import as_int
from .._connectivity import feedforward_sources
from .._flow import LIFState, membrane
from .._params import LIFParameters
from .._spikes import Spikes
from ..solvers import AbstractCrossingSolver
from .adaptive import crossing_exists, first_crossing_window, is_adaptive, lif_solver
from .base import AbstractEngine, SimulationConfig
from .buffers import SortedInputs, collect_spikes, sort_inputs


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

    def step(state: LIFState, x):
        a, c, d, w_k = x
        state = LIFState(v=a * state.v + c * state.i, i=d * state.i + w_k)
        return state, state

    zeros = jnp.zeros(weights.shape[1], weights.dtype)
    _, states = jax.lax.scan(step, LIFState(v=zeros, i=zeros), (decay_u, coupling, decay_i, w))
    return states.v, states.i


def interval_at(sorted_in: SortedInputs, t: Float[Array, "*n"]) -> Int[Array, "*n"]:
    """The input interval that holds time `t`: the last sorted input at or before `t` (an
    input at exactly `t` has arrived), or 0 before the first input (where the state is
    zero)."""
    return jnp.maximum(jnp.searchsorted(sorted_in.time, t, side="right") - 1, 0)


def linear_state(u_in, i_in, sorted_in: SortedInputs, k, t, params: LIFParameters):
    """The no-spike trajectory of every neuron at time `t` in interval `k` (both `(n,)`):
    the state after input `k` evolved to `t` (zero before the first input)."""
    neurons = jnp.arange(u_in.shape[1])
    lag = t - sorted_in.time[k]
    started = lag >= 0
    lag = jnp.where(started, lag, 0.0)
    u = membrane(u_in[k, neurons], i_in[k, neurons], lag, params.tau_mem, params.tau_syn)
    i = i_in[k, neurons] * jnp.exp(-lag / params.tau_syn)
    return jnp.where(started, u, 0.0), jnp.where(started, i, 0.0)


class NeuronSpikes(eqx.Module):
    """Every neuron's spikes, one row per step of the window scan: entry `[r, n]` is what
    neuron `n` found at step `r` (each neuron's valid entries are in time order; most rows
    of a neuron are empty).

    - `time`, `current`: spike time and synaptic current at the spike, shape `(R, N)`.
    - `valid`: whether the entry is a spike (before `t_max`, within the budget), `(R, N)`.
    - `interval`: the input interval that holds the spike (the index of the sorted input
      that starts it), `(R, N)`.
    - `more`: whether a neuron could spike again after its budget, shape `(N,)`.
    """

    time: Float[Array, "r n"]
    current: Float[Array, "r n"]
    valid: Bool[Array, "r n"]
    interval: Int[Array, "r n"]
    more: Bool[Array, " n"]


class _WindowState(eqx.Module):
    """The carry of the window scan, one entry per neuron.

    - `pointer`: the input interval where the neuron's next window starts.
    - `at_spike`: whether the neuron spiked in the last step (its window starts at it).
    - `last_time`, `last_current`: time of its last spike and its current there.
    - `resets`: the decaying sum of its resets, at `last_time`.
    - `count`: how many spikes it emitted.
    - `more`: whether it found a crossing after its budget was spent.
    - `adapt`: the threshold adaptation right after its last spike (the adaptive LIF;
      `None` for the LIF).
    """

    pointer: Int[Array, " n"]
    at_spike: Bool[Array, " n"]
    last_time: Float[Array, " n"]
    last_current: Float[Array, " n"]
    resets: Float[Array, " n"]
    count: Int[Array, " n"]
    more: Bool[Array, " n"]
    adapt: Float[Array, " n"] | None = None


def window_length(n_inputs: int, max_spikes_per_neuron: int) -> int:
    """How many input intervals one step of the window scan searches per neuron: about the
    number of intervals between two spikes if the budget were spread evenly."""
    return max(1, -(-n_inputs // max_spikes_per_neuron))


def scan_length(n_inputs: int, max_spikes_per_neuron: int, window: int) -> int:
    """Steps that let every neuron reach the last interval: each step either finds a spike
    (at most `max_spikes_per_neuron`, plus one that overflows and ends the neuron) or moves
    on by `window` intervals."""
    return -(-n_inputs // window) + max_spikes_per_neuron


def neuron_spikes(
    weights: Float[Array, "n_in n_out"],
    sorted_in: SortedInputs,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    t_max: float,
    max_spikes_per_neuron: int,
) -> NeuronSpikes:
    r"""Find up to `max_spikes_per_neuron` spikes of every neuron with a window scan.

    Each neuron keeps a pointer into the input intervals. A step solves for a crossing in
    the `L` intervals after the pointer at once (`L` from [`window_length`][]), all neurons
    in parallel; at the earliest crossing the neuron spikes and the pointer moves there,
    otherwise it moves on by `L` intervals. The state at each window start is the no-spike
    trajectory ([`input_states`][]) plus the decaying sum of the resets so far,
    $R\,e^{-(t - s_\mathrm{last})/\tau_\mathrm{mem}}$; the window holding the last spike
    starts at that spike, from the reset. The scan has
    $\lceil K/L\rceil + S$ steps of $L$ solves per neuron, about $2K$ solves for $K$ inputs
    whatever the budget $S$: linear in inputs and spikes. A neuron that finds a crossing
    after its budget is full sets `more` and stops.
    """
    u_in, i_in = input_states(weights, sorted_in, params)
    n_in, n_out = u_in.shape
    budget = max_spikes_per_neuron
    length = window_length(n_in, budget)
    theta = params.v_th - params.v_leak
    u_reset = params.v_reset - params.v_leak
    neurons = jnp.arange(n_out)
    refractory = params.refractory
    adaptive = is_adaptive(params)

    def windows(carry, view, rows=None):
        """Start, state, length and index of each neuron's search windows, `(L, N)`, or
        where `rows` (shape `(N,)`) is given, of window `rows[n]` of neuron `n`, `(1, N)`.

        `view`: "first" (every pointer at 0, no spike yet: a static slice), "all" (the
        window covers every interval; those before the pointer are masked, no gather) or
        "gather" (the `L` intervals from each neuron's pointer).
        """
        ptr, at_spike, s_last = carry.pointer, carry.at_spike, carry.last_time
        i_last, resets = carry.last_current, carry.resets
        if view == "first" and rows is None:
            k = jnp.broadcast_to(jnp.arange(length)[:, None], (length, n_out))
            time, end = sorted_in.time[:length, None], sorted_in.end[:length, None]
            time = jnp.broadcast_to(time, k.shape)
            # (no spike yet: no adaptation either)
            states = (u_in[:length], i_in[:length], None)
            return time, states, end - time, jnp.ones_like(k, bool), k
        if view == "all" and rows is None:
            k = jnp.broadcast_to(jnp.arange(n_in)[:, None], (n_in, n_out))
            inside = k >= ptr[None, :]
            t_start, end, u_lin, i_lin = sorted_in.time[:, None], sorted_in.end[:, None], u_in, i_in
        else:
            # The windows' offsets: from each neuron's pointer ("gather"), or the given rows
            # (from the pointer in the "gather" view, from the first interval in "all").
            j = jnp.arange(length)[:, None] if rows is None else rows[None, :]
            k = ptr[None, :] + j if view == "gather" else j
            inside = (k < n_in) if view == "gather" else (k >= ptr[None, :])
            k = jnp.minimum(k, n_in - 1)
            t_start, end = sorted_in.time[k], sorted_in.end[k]
            u_lin, i_lin = jnp.take_along_axis(u_in, k, 0), jnp.take_along_axis(i_in, k, 0)
        lag = t_start - s_last[None, :]
        u0 = u_lin + resets[None, :] * jnp.exp(-jnp.where(lag >= 0, lag, 0.0) / params.tau_mem)
        from_spike = (k == ptr[None, :]) & at_spike[None, :]
        start = jnp.where(from_spike, s_last[None, :], t_start)
        u0 = jnp.where(from_spike, u_reset, u0)
        i0 = jnp.where(from_spike, i_last[None, :], i_lin)
        a0 = None
        if adaptive:
            # The adaptation decays from the last spike (0 before the first).
            since = start - s_last[None, :]
            since = jnp.where(since >= 0, since, 0.0)
            a0 = carry.adapt[None, :] * jnp.exp(-since / params.tau_adapt)
        return start, (u0, i0, a0), _length(end - start), inside, k

    def window_at(carry, view):
        """`k -> (u0, i0, a0, window)` of window `k[n]` of each neuron `n`, each `(N,)`."""

        def at(rows):
            _, (u0, i0, a0), window, _, _ = windows(carry, view, rows)
            return u0[0], i0[0], a0[0], window[0]

        return at

    def step(carry: _WindowState, view):
        start, (u0, i0, a0), window, inside, k = windows(carry, view)
        if a0 is not None:
            first, dt_first, any_found = first_crossing_window(
                params, solver, u0, i0, a0, window, inside, window_at(carry, view)
            )
            # The chosen windows, recomputed (see `first_crossing_window`), shape `(1, N)`:
            # read at row 0 below.
            start, (_, i0, a0), _, _, k = windows(carry, view, first)
            first = jnp.zeros_like(first)
        else:
            dt, found = solver(u0, i0, theta, window, params.tau_mem, params.tau_syn)
            found = found & inside
            first = jnp.argmax(found, axis=0)
            dt_first = dt[first, neurons]
            any_found = jnp.any(found, axis=0)
        s_new = start[first, neurons] + dt_first
        i_new = i0[first, neurons] * jnp.exp(-dt_first / params.tau_syn)
        interval = k[first, neurons]
        hit = any_found & (s_new < t_max)
        spike = hit & (carry.count < budget)
        if refractory:
            # The window after the spike starts when the refractory period ends, at
            # `s + t_ref`, from the reset; the resets so far are replaced by the one that
            # takes the free trajectory there to `u_reset` (the voltage was clamped).
            restart = s_new + params.t_ref
            k_restart = jnp.maximum(
                interval_at(sorted_in, restart).astype(interval.dtype), interval
            )
            u_lin_restart, i_restart = linear_state(
                u_in, i_in, sorted_in, k_restart, restart, params
            )
            new_pointer, new_time, new_current = k_restart, restart, i_restart
            new_resets = u_reset - u_lin_restart
        else:
            since = jnp.where(spike, s_new - carry.last_time, 0.0)
            jump = u_reset - theta
            if adaptive:
                # The voltage crosses the adapted threshold theta + a, which then rises.
                a_pre = 0.0
                if a0 is not None:
                    a_pre = a0[first, neurons] * jnp.exp(-dt_first / params.tau_adapt)
                jump = jump - a_pre
                new_adapt = jnp.where(spike, a_pre + params.beta, carry.adapt)
            new_resets = carry.resets * jnp.exp(-since / params.tau_mem) + jump
            new_pointer, new_time, new_current = interval, s_new, i_new
        carry = _WindowState(
            pointer=jnp.where(spike, new_pointer, jnp.where(hit, n_in, carry.pointer + length)),
            at_spike=spike,
            last_time=jnp.where(spike, new_time, carry.last_time),
            last_current=jnp.where(spike, new_current, carry.last_current),
            resets=jnp.where(spike, new_resets, carry.resets),
            count=carry.count + spike.astype(carry.count.dtype),
            more=carry.more | (hit & ~spike),
            adapt=new_adapt if adaptive else None,
        )
        return carry, (s_new, i_new, spike, interval)

    zeros = jnp.zeros((n_out,), u_in.dtype)
    no = jnp.zeros((n_out,), bool)
    carry = _WindowState(
        pointer=jnp.zeros((n_out,), int),
        at_spike=no,
        last_time=zeros,
        last_current=zeros,
        resets=zeros,
        count=jnp.zeros((n_out,), int),
        more=no,
        adapt=zeros if adaptive else None,
    )
    carry, row = step(carry, "first")
    if length >= n_in:
        # One window holds every interval: `budget` rounds over all of them (no gathers), and
        # a last look whether any neuron could spike again (no root finding).
        carry, rows = jax.lax.scan(lambda c, _: step(c, "all"), carry, None, length=budget - 1)
        start, (u0, i0, a0), window, inside, _ = windows(carry, "all")
        if adaptive:
            inside = inside & (window > 0)
            at = window_at(carry, "all")
            again = crossing_exists(params, solver, u0, i0, a0, window, inside, at)
        else:
            exists = solver.exists(u0, i0, theta, window, params.tau_mem, params.tau_syn)
            again = jnp.any(exists & inside & (window > 0), axis=0)
        more = carry.more | again
    else:
        steps = scan_length(n_in, budget, length) - 1
        carry, rows = jax.lax.scan(lambda c, _: step(c, "gather"), carry, None, length=steps)
        more = carry.more
    time, current, valid, interval = (
        jnp.concatenate([r[None], rs]) for r, rs in zip(row, rows, strict=True)
    )
    return NeuronSpikes(time, current, valid, interval, jax.lax.stop_gradient(more))


def candidates(spikes: NeuronSpikes):
    """Flatten `(R, N)` per-neuron spikes into candidate arrays (time, neuron, current, valid)."""
    neuron = jnp.broadcast_to(jnp.arange(spikes.time.shape[1]), spikes.time.shape)
    return (
        spikes.time.reshape(-1),
        neuron.reshape(-1),
        spikes.current.reshape(-1),
        spikes.valid.reshape(-1),
    )


def _length(span):
    """Window length: `span` is >= 0 up to rounding; `where` (unlike `maximum`) keeps the
    full gradient when two events coincide."""
    return jnp.where(span >= 0, span, 0.0)


def budget_per_neuron(max_spikes_per_neuron: int | None, n_spikes: int, size: int) -> int:
    """The budget of a neuron: as given, or the output buffer shared evenly."""
    if max_spikes_per_neuron is None:
        return -(-n_spikes // size)
    return max_spikes_per_neuron


class WindowScan(AbstractEngine):
    r"""The window scan: every neuron walks through the input intervals on its own.

    Between its own spikes a neuron of a feed-forward layer is linear, so its state right
    after each input follows from one cheap linear recurrence over the inputs. Each neuron
    then keeps a pointer into the input intervals and, at every step of one scan, solves
    for a crossing in the next few intervals at once, all neurons in parallel: it spikes
    at the earliest crossing or moves past the window. Work is linear in the number of
    inputs and spikes, and the root finding is batched. This is the default engine of the
    feed-forward layers.

    A neuron that could spike again after its budget adds one to `dropped` (a lower bound
    on what it lost); the spikes it did emit are exact. See
    [Spike budgets](../concepts/budgets.md).

    On a recurrent layer whose populations are connected feed-forward (as
    `Connectivity.LAYERED`), the populations are simulated one after the other, each with
    the window scan, instead of the global [`eqsnn.EventLoop`][]: cost linear in the layer
    size instead of quadratic.

    **Arguments:**

    - `max_spikes_per_neuron`: the most spikes one neuron emits. An int, or for a
      recurrent layer one int per population; `None` (default) shares the output buffer
      evenly: `ceil(n_spikes / n_neurons)` (1 in the one-spike regime). A budget of
      `n_spikes` never loses a spike while the buffer has room, at a cost.
    """

    max_spikes_per_neuron: int | tuple[int, ...] | None = eqx.field(
        default=None, static=True, converter=lambda v: tuple(v) if isinstance(v, list) else v
    )

    def __check_init__(self):
        value = self.max_spikes_per_neuron
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if v is not None:
                as_int(v, "max_spikes_per_neuron", "WindowScan", 1)

    def simulate(self, config: SimulationConfig, weights, spikes: Spikes) -> Spikes:
        """Simulate one sample of a feed-forward layer; see [`eqsnn.AbstractEngine`][]."""
        budget = self.population_budgets(config)[0]
        # (imported here: the per-neuron simulation is built on this module's scan)
        from ..neurons._model import is_model
        from .neuron_model import simulate_model
        from .per_neuron import simulate_per_neuron, uses_per_neuron_path

        per_neuron = uses_per_neuron_path(config, weights)
        # The ALIF with shared arrivals and constant parameters runs as the LIF does.
        adaptive = is_adaptive(config.params) and not per_neuron
        if is_model(config.params) and not adaptive:
            return simulate_model(config, weights, spikes, budget)
        if per_neuron:
            return simulate_per_neuron(config, weights, spikes, budget)
        sorted_in = sort_inputs(spikes, config.t_max)
        solver = lif_solver(config.params) if adaptive else config.solver
        found = neuron_spikes(weights, sorted_in, config.params, solver, config.t_max, budget)
        extra = jnp.sum(found.more, dtype=jnp.int32)
        return collect_spikes(*candidates(found), config.n_spikes, extra)

    def population_budgets(self, config: SimulationConfig) -> tuple[int, ...]:
        """The per-neuron budget of each population of `config` (one for a feed-forward
        layer)."""
        layers = config.layers
        value = self.max_spikes_per_neuron
        if isinstance(value, tuple):
            return value
        return (budget_per_neuron(value, config.n_spikes, sum(layers)),) * len(layers)

    def check(self, config: SimulationConfig, who: str) -> None:
        """Per-population budgets must match the populations; a recurrent layer must be
        feed-forward between its populations."""
        value = self.max_spikes_per_neuron
        if isinstance(value, tuple) and len(value) != len(config.layers):
            raise ValueError(
                f"{who}: `max_spikes_per_neuron` must be a positive int or one per population "
                f"({len(config.layers)} for layers={list(config.layers)}), got {list(value)!r}."
            )
        if (
            config.recurrent
            and feedforward_sources(config.mask.input, config.mask.recurrent, config.layers) is None
        ):
            raise ValueError(
                f"{who}: engine={self!r} simulates the populations one after the other, "
                "which needs feed-forward connectivity between them (no weight from a "
                f"population to itself or to an earlier one); got {config.mask!r}. Use "
                "engine=eqsnn.EventLoop() for recurrent connectivity."
            )

    @property
    def budget_settings(self) -> dict[str, object]:
        """`{"max_spikes_per_neuron": ...}`."""
        return {"max_spikes_per_neuron": self.max_spikes_per_neuron}
