r"""Global event loop for layers whose neurons interact (recurrent layers).

In a recurrent layer a spike of neuron $j$ changes the synaptic currents of other neurons
of the same layer, so neurons cannot be simulated independently between input spikes (as
the feed-forward layer does). Instead one `jax.lax.scan` walks through *all* events of the
layer in time order, one event per step:

1. `next_event`: the earliest of the next input spike and
   the earliest cached threshold crossing of any neuron;
2. every neuron is evolved to that time with the closed-form flow (no matrix exponential);
3. the transition applies the event: an input spike of input $i$ adds
   $W^\mathrm{in}_{i\cdot}$ to the currents; a spike of neuron $j$ resets $V_j$ and, with
   recurrence (`transition_with_recurrence`),
   adds $W^\mathrm{rec}_{j\cdot}$ to the currents;
4. the next crossing is solved again only for the neurons whose state the transition
   changed (the spiking neuron and every neuron that received a non-zero weight).

**Cached crossings.** Each neuron carries the absolute time of its next threshold crossing
*if nothing else happens* (searched up to `t_max`; `+inf` if there is none) and its synaptic
current at that crossing. A neuron that no event touches keeps its free trajectory, so its
cached crossing stays exact: it is never re-derived from a state that was re-evolved many
times, and its gradient is that of its own crossing. The solve itself is vectorised over all
neurons (static shapes, and under `vmap` every sample has its own changed set), so the cache
saves no arithmetic; it buys exact tie handling and rounding-stable spike times.

**Simultaneous crossings** are emitted in consecutive steps at the same time (lowest index
first). The voltage is continuous and jumps only change currents, so a neuron whose cached
crossing equals the current event time is *committed*: it is not re-solved when another
neuron spiking at the same instant sends it a weight, and it spikes at that same time in a
following step, recording its current from just before the jumps of that instant. A
crossing at the time of an input spike is processed before the input.

**Recorded events.** Each step records one `Event` (time, kind,
index, current), so that an adjoint (EventProp) can walk the events in reverse.
"""

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._connectivity import ConnectivityMask
from .._flow import LIFState, lif_exponential_flow, synaptic_current
from .._params import LIFParameters
from .._spikes import EMPTY_INDEX, Spikes
from .._weights import InputWeights, RecurrentWeights
from ..solvers import AbstractCrossingSolver
from .base import AbstractEngine, SimulationConfig
from .buffers import SortedInputs, sort_inputs


class EventKind(eqx.Enumeration):
    """What a step of the event loop processed (`Event.kind`; compare with `==`)."""

    NONE = "nothing: no event is left before t_max, the step is padding"
    INPUT = "an input spike; Event.idx is the input index"
    SPIKE = "a spike of a neuron of the layer; Event.idx is the neuron index"
    RELEASE = "the end of a neuron's refractory period; Event.idx is the neuron index"
    ARRIVAL = "a delayed recurrent spike arrives; Event.idx is its slot in the queue"


class Event(eqx.Module):
    """One event processed by the loop (or, stacked by `jax.lax.scan`, one per step).

    **Arguments:**

    - `time`: event time in seconds; `+inf` for `EventKind.NONE`.
    - `kind`: an `EventKind` (an `eqx.Enumeration` item; stacked over steps).
    - `idx`: input index (input event), neuron index (spike), or `-1` (none).
    - `current`: for a spike, the synaptic current of the spiking neuron at its crossing,
      before any jump at that instant; for a release, the neuron's current then; `0`
      otherwise.
    """

    time: Float[Array, "*steps"]
    kind: EventKind
    idx: Int[Array, "*steps"]
    current: Float[Array, "*steps"]


class LoopState(eqx.Module):
    """State of the event loop after processing the events up to `time`.

    **Arguments:**

    - `time`: time of the last processed event in seconds (0 at the start).
    - `neurons`: the [`eqsnn.LIFState`][] of every neuron at `time`, after the transition.
    - `crossing_time`: per neuron, the absolute time of its next threshold crossing if no
      further event touches it; `+inf` if there is none before `t_max`.
    - `crossing_current`: per neuron, its synaptic current at that crossing.
    - `input_head`: number of (time-sorted) input slots processed so far.
    - `release`: with a refractory period, per neuron, the time its current refractory
      period ends (`+inf` if it is not held); `None` without one.
    - `queue`: with recurrent delays, the arrival time of every queued recurrent spike
      (`+inf` once it arrived or if it never will): the `k`-th spike of the layer fills
      slot `k` (per-source delays) or slots `k*n .. k*n + n - 1`, one per target
      (per-synapse delays); `None` without delays.
    - `spike_count`: with recurrent delays, the number of spikes so far.
    - `sources`: with recurrent delays, the neuron of each spike so far (`-1` after).
    """

    time: Float[Array, ""]
    neurons: LIFState
    crossing_time: Float[Array, " n"]
    crossing_current: Float[Array, " n"]
    input_head: Int[Array, ""]
    release: Float[Array, " n"] | None = None
    queue: Float[Array, " q"] | None = None
    spike_count: Int[Array, ""] | None = None
    sources: Int[Array, " s"] | None = None


Weights = InputWeights | RecurrentWeights
Transition = Callable[[LIFParameters, LIFState, Event, Weights], tuple[LIFState, Bool[Array, " n"]]]
"""`transition(params, neurons, event, weights) -> (neurons, changed)`."""


def initial_state(
    n: int, dtype, params: LIFParameters, queue: int = 0, n_spikes: int = 0
) -> LoopState:
    """All `n` neurons at rest at time 0, no crossing pending, no input processed (and,
    with recurrent delays, an empty queue of `queue` slots for `n_spikes` spikes)."""
    return LoopState(
        time=jnp.zeros((), dtype),
        neurons=LIFState(v=jnp.full(n, params.v_leak, dtype), i=jnp.zeros(n, dtype)),
        crossing_time=jnp.full(n, jnp.inf, dtype),
        crossing_current=jnp.zeros(n, dtype),
        input_head=jnp.zeros((), jnp.int32),
        release=jnp.full(n, jnp.inf, dtype) if params.refractory else None,
        queue=jnp.full(queue, jnp.inf, dtype) if queue else None,
        spike_count=jnp.zeros((), jnp.int32) if queue else None,
        sources=jnp.full(n_spikes, -1, jnp.int32) if queue else None,
    )


def next_event(state: LoopState, inputs: SortedInputs, t_max: float) -> Event:
    """The next event after `state`: the earliest cached crossing or the next input spike.

    A crossing at the same time as an input comes first; among equal crossings the lowest
    neuron index comes first. Returns an `EventKind.NONE` event if neither happens before
    `t_max`.
    """
    n_slots = inputs.time.shape[0]
    if n_slots == 0:
        t_input = jnp.asarray(t_max, state.time.dtype)
        input_idx = jnp.zeros((), jnp.int32)
    else:
        head = jnp.minimum(state.input_head, n_slots - 1)
        t_input = jnp.where(state.input_head < n_slots, inputs.time[head], t_max)
        input_idx = inputs.idx[head].astype(jnp.int32)
    neuron = jnp.argmin(state.crossing_time).astype(jnp.int32)
    t_spike = state.crossing_time[neuron]
    is_spike = t_spike <= t_input
    time = jnp.where(is_spike, t_spike, t_input)
    kind = EventKind.where(is_spike, EventKind.SPIKE, EventKind.INPUT)
    idx = jnp.where(is_spike, neuron, input_idx)
    current = jnp.where(is_spike, state.crossing_current[neuron], 0.0)
    if state.queue is not None:
        # A delayed recurrent spike arrives after everything else at the same time.
        slot = jnp.argmin(state.queue).astype(jnp.int32)
        t_arrival = state.queue[slot]
        is_arrival = t_arrival < time
        time = jnp.where(is_arrival, t_arrival, time)
        kind = EventKind.where(is_arrival, EventKind.ARRIVAL, kind)
        idx = jnp.where(is_arrival, slot, idx)
        current = jnp.where(is_arrival, 0.0, current)
    if state.release is not None:
        # A refractory period that ends comes before a crossing or an input at that time.
        held = jnp.argmin(state.release).astype(jnp.int32)
        t_release = state.release[held]
        is_release = t_release <= time
        time = jnp.where(is_release, t_release, time)
        kind = EventKind.where(is_release, EventKind.RELEASE, kind)
        idx = jnp.where(is_release, held, idx)
        current = jnp.where(is_release, 0.0, current)  # set after the flow, in `step`
    happens = time < t_max
    kind = EventKind.where(happens, kind, EventKind.NONE)
    return Event(
        time=jnp.where(happens, time, jnp.inf),
        kind=kind,
        idx=jnp.where(happens, idx, EMPTY_INDEX),
        current=jnp.where(happens, current, 0.0),
    )


def transition_without_recurrence(
    params: LIFParameters, neurons: LIFState, event: Event, weights: Weights
) -> tuple[LIFState, Bool[Array, " n"]]:
    r"""Apply `event` to `neurons` (already evolved to `event.time`), without recurrence.

    An input spike of input $i$ adds `weights.input[i, :]` to the currents; a spike of
    neuron $j$ sets $V_j \leftarrow v_\mathrm{reset}$. An `EventKind.NONE` event changes
    nothing.

    **Returns:** `(neurons, changed)`: the new state, and which neurons it changed (those
    whose next crossing must be solved again).
    """
    row = weights.input[jnp.maximum(event.idx, 0)]
    jump = jnp.where(event.kind == EventKind.INPUT, row, 0.0)
    n = neurons.v.shape[0]
    spiking = (event.kind == EventKind.SPIKE) & (jnp.arange(n, dtype=jnp.int32) == event.idx)
    v = jnp.where(spiking, params.v_reset, neurons.v)
    return LIFState(v=v, i=neurons.i + jump), spiking | (jump != 0)


def transition_with_recurrence(
    params: LIFParameters, neurons: LIFState, event: Event, weights: RecurrentWeights
) -> tuple[LIFState, Bool[Array, " n"]]:
    r"""Apply `event` to `neurons` (already evolved to `event.time`), with recurrence.

    As `transition_without_recurrence`,
    and a spike of neuron $j$ also adds `weights.recurrent[j, :]` to the currents
    (including $j$'s own, through the diagonal).

    **Returns:** `(neurons, changed)`, as there.
    """
    neurons, changed = transition_without_recurrence(params, neurons, event, weights)
    row = weights.recurrent[jnp.maximum(event.idx, 0)]
    jump = jnp.where(event.kind == EventKind.SPIKE, row, 0.0)
    return LIFState(v=neurons.v, i=neurons.i + jump), changed | (jump != 0)


def arrival_row(weights: RecurrentWeights, slot, sources) -> Float[Array, " n"]:
    """What queue slot `slot` adds to the currents when it arrives: `sources[slot // k]`'s
    recurrent row, restricted to target `slot % n` for per-synapse delays (`k` slots per
    spike)."""
    n = weights.recurrent.shape[0]
    per_synapse = weights.recurrent_delays.ndim == 2
    slot = jnp.maximum(slot, 0)
    source = sources[slot // n] if per_synapse else sources[slot]
    row = weights.recurrent[jnp.maximum(source, 0)]
    if per_synapse:
        row = jnp.where(jnp.arange(n, dtype=jnp.int32) == slot % n, row, 0.0)
    return row


def step(
    state: LoopState,
    *,
    weights: Weights,
    inputs: SortedInputs,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    transition: Transition,
    t_max: float,
    reach=None,
) -> tuple[LoopState, Event]:
    """Process the next event: evolve every neuron to it, apply it, update the crossings.

    `reach` is the layer's [`eqsnn.ConnectivityMask`][] (boolean `input` and `recurrent`
    arrays), or `None`. With it, every neuron that the event's row of weights may reach is
    solved again, also where that weight is zero: a zero weight the connectivity allows
    still moves the crossing when it is perturbed, and autodiff sees that only through a
    new solve. Without it, only the neurons whose state the transition changed are.

    **Returns:** `(state, event)`: the state after the event and the event itself.
    """
    event = next_event(state, inputs, t_max)
    happens = event.kind != EventKind.NONE
    now = jnp.where(happens, event.time, state.time)
    neurons = lif_exponential_flow(params)(state.neurons, now - state.time)
    n = neurons.v.shape[0]
    release = state.release
    if release is not None:
        # Held neurons keep their voltage (the reset) while the current flows on.
        held = jnp.isfinite(release)
        neurons = LIFState(v=jnp.where(held, state.neurons.v, neurons.v), i=neurons.i)
        j = jnp.maximum(event.idx, 0)
        released = (event.kind == EventKind.RELEASE) & (jnp.arange(n, dtype=jnp.int32) == j)
        spiking = (event.kind == EventKind.SPIKE) & (jnp.arange(n, dtype=jnp.int32) == j)
        release = jnp.where(released, jnp.inf, release)
        release = jnp.where(spiking, now + params.t_ref, release)
        current = jnp.where(event.kind == EventKind.RELEASE, neurons.i[j], event.current)
        event = eqx.tree_at(lambda e: e.current, event, current)
    neurons, changed = transition(params, neurons, event, weights)
    if release is not None:
        changed = changed | released
    queue, spike_count, sources = state.queue, state.spike_count, state.sources
    if queue is not None:
        arriving = event.kind == EventKind.ARRIVAL
        jump = jnp.where(arriving, arrival_row(weights, event.idx, sources), 0.0)
        neurons = LIFState(v=neurons.v, i=neurons.i + jump)
        changed = changed | (jump != 0)
        if reach is not None:
            source = sources[jnp.maximum(event.idx, 0) // (queue.shape[0] // sources.shape[0])]
            targets = jnp.asarray(reach.recurrent)[jnp.maximum(source, 0)]
            if weights.recurrent_delays.ndim == 2:
                targets = targets & (jnp.arange(n, dtype=jnp.int32) == event.idx % n)
            changed = changed | (arriving & targets)
        queue = jnp.where(arriving, queue.at[jnp.maximum(event.idx, 0)].set(jnp.inf), queue)
        queue, spike_count, sources = push_spike(
            queue, spike_count, sources, event, now, weights.recurrent_delays, t_max
        )
    if reach is not None:
        row = jnp.maximum(event.idx, 0)
        changed = changed | ((event.kind == EventKind.INPUT) & jnp.asarray(reach.input)[row])
        if isinstance(weights, RecurrentWeights):
            spike = event.kind == EventKind.SPIKE
            changed = changed | (spike & jnp.asarray(reach.recurrent)[row])
    committed = (
        (event.kind == EventKind.SPIKE)
        & (state.crossing_time == event.time)
        & (jnp.arange(n, dtype=jnp.int32) != event.idx)
    )
    resolve = changed & ~committed
    dt, found = solver(
        neurons.v - params.v_leak,
        neurons.i,
        params.v_th - params.v_leak,
        t_max - now,
        params.tau_mem,
        params.tau_syn,
    )
    if release is not None:
        found = found & ~jnp.isfinite(release)  # a held neuron cannot cross
    crossing_time = jnp.where(found, now + dt, jnp.inf)
    crossing_current = synaptic_current(neurons.i, dt, params.tau_syn)
    new_state = LoopState(
        time=now,
        neurons=neurons,
        crossing_time=jnp.where(resolve, crossing_time, state.crossing_time),
        crossing_current=jnp.where(resolve, crossing_current, state.crossing_current),
        input_head=state.input_head + (event.kind == EventKind.INPUT).astype(jnp.int32),
        release=release,
        queue=queue,
        spike_count=spike_count,
        sources=sources,
    )
    return new_state, event


def push_spike(queue, count, sources, event: Event, now, delays, t_max: float):
    """Queue the arrivals of a spike (`event`) of neuron `j` at `now + d`: one slot for
    per-source delays (`d = delays[j]`), one per target for per-synapse delays
    (`d = delays[j, :]`); arrivals at or after `t_max` never happen (`+inf`). Spikes beyond
    the `sources` buffer are not queued (they are lost to the output buffer anyway)."""
    spiking = (event.kind == EventKind.SPIKE) & (count < sources.shape[0])
    j = jnp.maximum(event.idx, 0)
    k = jnp.minimum(count, sources.shape[0] - 1)
    from .per_neuron import delay_of  # (the feed-forward delays' convention)

    arrival = now + delay_of(delays[j])
    arrival = jnp.where(arrival < t_max, arrival, jnp.inf)
    if delays.ndim == 2:
        n = delays.shape[1]
        block = jax.lax.dynamic_update_slice(queue, arrival, (k * n,))
        queue = jnp.where(spiking, block, queue)
    else:
        queue = jnp.where(spiking, queue.at[k].set(arrival), queue)
    sources = jnp.where(spiking, sources.at[k].set(j.astype(sources.dtype)), sources)
    return queue, count + spiking.astype(count.dtype), sources


def trajectory(
    weights: Weights,
    inputs: Spikes,
    n_steps: int,
    *,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    transition: Transition,
    t_max: float,
    reach=None,
    queue: int = 0,
    n_spikes: int = 0,
) -> tuple[LoopState, Event]:
    """Run the event loop for `n_steps` steps from rest.

    **Arguments:**

    - `weights`: an [`eqsnn.InputWeights`][] (with `transition_without_recurrence`) or an
      [`eqsnn.RecurrentWeights`][]; `weights.input` has shape `(in_size, n)`.
    - `inputs`: one sample of input spikes (any order; empty slots and spikes at or after
      `t_max` are ignored).
    - `n_steps`: number of events to process (static).
    - `params`, `solver`, `transition`, `t_max`, `reach`: as for
      `step`.
    - `queue`, `n_spikes`: with recurrent delays, the size of the queue of arrivals and the
      number of spikes it holds (0 without delays).

    **Returns:** `(state, events)`: the state after the last step, and the `n_steps` events
    in time order (an `Event` of arrays of shape `(n_steps,)`).
    """
    sorted_inputs = sort_inputs(inputs, t_max)
    n = weights.input.shape[1]
    init = initial_state(n, weights.input.dtype, params, queue, n_spikes)

    def body(state, _):
        return step(
            state,
            weights=weights,
            inputs=sorted_inputs,
            params=params,
            solver=solver,
            transition=transition,
            t_max=t_max,
            reach=reach,
        )

    return jax.lax.scan(body, init, None, length=n_steps)


class EventLoop(AbstractEngine):
    r"""The global event loop: one scan over all events of the layer, in time order.

    Each step finds the earliest of the next input spike and the next cached threshold
    crossing of any neuron, evolves every neuron to it in closed form, applies the event
    (an input adds its weights; a spike resets its neuron and, in a recurrent layer, adds
    its recurrent weights) and solves again only for the neurons whose state changed. It
    handles any connectivity, including genuine recurrence, and simultaneous crossings
    exactly; its cost per step grows with the layer size. This is the default engine of
    the recurrent layers (see [Recurrent layers](../concepts/recurrent.md)).

    The loop runs `n_input_slots + n_spikes` steps, enough for every input and `n_spikes`
    spikes; `dropped` counts the spikes seen beyond `n_spikes`, or 1 if the buffer is
    full and a neuron is still heading for a crossing (a lower bound, 0 exactly when none
    was lost). There is no per-neuron budget.
    """

    def simulate(self, config: SimulationConfig, weights, spikes: Spikes) -> Spikes:
        """Simulate one sample; see [`eqsnn.AbstractEngine`][]."""
        config, weights, spikes = arrivals(config, weights, spikes)
        final, events = run_loop(config, weights, spikes)
        return collect_events(events, config.n_spikes, pending_crossings(final, config.t_max))


def run_loop(config: SimulationConfig, weights, spikes: Spikes) -> tuple[LoopState, Event]:
    """The event loop of `config` over `spikes.n_slots + config.n_spikes` steps.

    `weights` is an input weight matrix (a feed-forward layer: no recurrence) or the
    effective [`eqsnn.RecurrentWeights`][] of a recurrent layer, whose `config.mask`
    tells the loop which neurons an event can reach.
    """
    queue = 0
    if isinstance(weights, RecurrentWeights):
        transition = transition_with_recurrence
        if weights.recurrent_delays is not None:  # the recurrent jumps wait in a queue
            transition = transition_without_recurrence
            n = weights.recurrent.shape[0]
            per_spike = n if weights.recurrent_delays.ndim == 2 else 1
            queue = config.n_spikes * per_spike
    else:
        weights = InputWeights(input=weights)
        transition = transition_without_recurrence
    # With a refractory period every spike may be followed by its release.
    releases = config.n_spikes if config.params.refractory else 0
    return trajectory(
        weights,
        spikes,
        spikes.n_slots + config.n_spikes + releases + queue,
        params=config.params,
        solver=config.solver,
        transition=transition,
        t_max=config.t_max,
        reach=config.mask,
        queue=queue,
        n_spikes=config.n_spikes,
    )


def pending_crossings(final: LoopState, t_max: float) -> Int[Array, ""]:
    """How many neurons still head for a crossing before `t_max` when the loop ended."""
    return jnp.sum(final.crossing_time < t_max, dtype=jnp.int32)


def collect_events(events: Event, n_spikes: int, pending: Int[Array, ""]) -> Spikes:
    """The first `n_spikes` spike events of a (time-ordered) trace as a `Spikes` buffer.

    `pending` is the number of neurons with a crossing before `t_max` when the loop ended.
    `dropped` is a lower bound on the spikes lost, 0 exactly when none was lost: the spike
    events beyond `n_spikes`, or, if there are none, 1 when a crossing is pending. (With at
    most `n_spikes` spike events every input was processed, so the earliest pending
    crossing is certain to happen; the others may not, as a spike can inhibit them.) The
    trace is already in time order, so this is a compaction (the `k`-th spike event goes
    to slot `k`), not a sort.
    """
    is_spike = events.kind == EventKind.SPIKE
    seen = jnp.cumsum(is_spike, dtype=jnp.int32)  # spike events up to and including step k
    slot = jnp.arange(1, n_spikes + 1, dtype=jnp.int32)
    pick = jnp.minimum(jnp.searchsorted(seen, slot), seen.shape[0] - 1)
    kept = slot <= seen[-1]
    beyond = jnp.maximum(seen[-1] - n_spikes, 0)
    dropped = jnp.where(beyond > 0, beyond, (pending > 0).astype(beyond.dtype))
    time = jnp.where(kept, events.time[pick], jnp.inf)
    return Spikes(
        time=time,
        idx=jnp.where(kept, events.idx[pick], EMPTY_INDEX),
        current=jnp.where(kept, events.current[pick], 0.0),
        dropped=dropped,
    )


def arrivals(config: SimulationConfig, weights, spikes: Spikes):
    """Input delays as arrival events, before the loop: `(config, weights, spikes)` with
    no delay left.

    Per source (`delays` of shape `(in_size,)`), every input spike simply arrives later.
    Per synapse (`(in_size, n)`), input slot `k` becomes `n` arrival slots, one per neuron
    `m`, at `t_k + d[i_k, m]`, each adding `w[i_k, m]` to neuron `m` only (a weight matrix of
    `n_slots * n` rows): the loop then takes one step per arrival, and memory grows as
    `n_slots * n**2`. The transformation is plain JAX, so gradients reach the delays, the
    weights and the input times through it by autodiff, under either gradient method.
    """
    delays = getattr(weights, "delays", None)
    if delays is None:
        return config, weights, spikes
    from .per_neuron import delay_of  # (the feed-forward delays' convention)

    recurrent = isinstance(weights, RecurrentWeights)
    w_in = weights.input
    d = delay_of(delays)
    used = spikes.idx >= 0
    src = jnp.where(used, spikes.idx, 0)
    if d.ndim == 1:
        time = spikes.time + jnp.where(used, d[src], 0.0)
        spikes = eqx.tree_at(lambda s: s.time, spikes, time)
        virtual, mask = w_in, None if not recurrent else config.mask.input
    else:
        n_slots, n = spikes.time.shape[0], w_in.shape[1]
        time = (spikes.time[:, None] + jnp.where(used[:, None], d[src], 0.0)).reshape(-1)
        slot = jnp.arange(n_slots * n, dtype=jnp.int32)
        idx = jnp.where(jnp.repeat(used, n), slot, -1)
        spikes = Spikes(time=time, idx=idx, dropped=spikes.dropped)
        eye = jnp.eye(n, dtype=w_in.dtype)
        virtual = (w_in[src][:, :, None] * eye[None]).reshape(n_slots * n, n)
        mask = np.tile(np.eye(n, dtype=bool), (n_slots, 1))
    if recurrent:
        weights = RecurrentWeights(
            input=virtual, recurrent=weights.recurrent, recurrent_delays=weights.recurrent_delays
        )
        config = dataclasses.replace(config, mask=ConnectivityMask(mask, config.mask.recurrent))
    else:
        weights = virtual
    return config, weights, spikes
