r"""Software replay of the backend's spikes, with the EventProp adjoint as its VJP.

The backend returns spike times only; EventProp also needs each spike's synaptic current
(the membrane slope at the crossing). As in the reference's hardware loop, a second,
software forward pass takes the backend's spike times as the solutions of the root finding
(the reference's `next_queue`) instead of solving for crossings: the input spikes and the
backend's spikes are merged into one time-ordered event list, and the state of all neurons
is integrated in closed form from event to event
([`eqsnn.lif_exponential_flow`][]), applying each event as the simulator does (an input
adds its weight row; a spike resets the neuron and, in a recurrent layer, adds its
recurrent row). The replay records the current and the voltage of the spiking neuron just
before each spike. The event list is then exactly the record that
[`eqsnn.RecurrentEventPropLIF`][] keeps, and its reverse walk gives the gradients.

One implementation serves both layers: a feed-forward layer is a recurrent one whose
recurrent weights are zero (its recurrent gradient is discarded).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from .._adjoint.events import adjoint_events
from .._engine.buffers import sort_inputs
from .._engine.event_loop import Event, EventKind, transition_with_recurrence
from .._flow import LIFState, lif_exponential_flow
from .._params import LIFParameters
from .._sort import stable_argsort
from .._spikes import EMPTY_INDEX, Spikes
from .._weights import InputWeights, RecurrentWeights


class Mismatch(eqx.Module):
    r"""How far the software replay is from what the backend reported, per sample.

    Returned by the layers' `replay` method next to the output spikes (with a leading
    batch axis under `jax.vmap`). With an exact backend all entries are zero up to
    rounding.

    **Arguments:**

    - `voltage`: replayed $V - v_\mathrm{th}$ of the spiking neuron just before each
      backend spike, shape `(n_spikes,)`; zero in empty slots. Negative: the replay
      thinks the neuron was still below threshold (the chip spiked early or the model's
      weights or time constants are off); positive: it should have spiked earlier.
    - `unexplained`: number of backend spikes the replay cannot explain: the replayed
      current is too small to drive the voltage up through the threshold
      ($I \le v_\mathrm{th} - v_\mathrm{leak}$, so $\dot V \le 0$ at the spike).
    - `clamped`: number of backend spikes whose membrane slope the adjoint raised to the
      floor set by the layer's `min_rise` (this includes the unexplained ones when
      `min_rise > 0`).
    - `overshoot`: the largest replayed $V - v_\mathrm{th}$ (0 if none is positive) of a
      neuron that is not spiking, sampled at the event times: positive values are spikes
      the replay predicts but the backend did not emit (ties give values at rounding
      level).
    """

    voltage: Float[Array, "*batch n_spikes"]
    unexplained: Int[Array, "*batch"]
    clamped: Int[Array, "*batch"]
    overshoot: Float[Array, "*batch"]

    def max_voltage_error(self) -> Float[Array, ""]:
        r"""The largest $|V - v_\mathrm{th}|$ at a backend spike, over all samples."""
        return jnp.max(jnp.abs(self.voltage))


class ReplayConfig(eqx.Module):
    """The static settings of a replay (everything but arrays)."""

    params: LIFParameters = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    min_rise: float = eqx.field(static=True)
    who: str = eqx.field(static=True)


class _Record(eqx.Module):
    """The merged, time-ordered events and where each spike slot and input went."""

    events: Event
    spike_pos: Int[Array, " n_spikes"]  # position of output slot k in the event list
    input_pos: Int[Array, " k"]  # position of the k-th time-sorted input
    input_valid: Array
    input_order: Int[Array, " k"]


def _merge(input_time, input_idx, hw_time, hw_idx, t_max) -> _Record:
    """One event list: the backend's spikes and the inputs, by time; at equal times a spike
    comes before an input (as in the simulator); empty slots last as `NONE` events."""
    sorted_in = sort_inputs(Spikes(time=input_time, idx=input_idx), t_max)
    spike_valid = hw_idx >= 0
    n_out = hw_time.shape[0]
    time = jnp.concatenate(
        [
            jnp.where(spike_valid, hw_time, jnp.inf),
            jnp.where(sorted_in.valid, sorted_in.time, jnp.inf),
        ]
    )
    no_spikes, no_inputs = jnp.zeros_like(spike_valid), jnp.zeros_like(sorted_in.valid)
    is_spike = jnp.concatenate([spike_valid, no_inputs])
    is_input = jnp.concatenate([no_spikes, sorted_in.valid])
    # Input indices may be int64 (x64), the backend's are int32: cast before joining.
    idx = jnp.concatenate(
        [
            jnp.where(spike_valid, hw_idx.astype(jnp.int32), EMPTY_INDEX),
            jnp.where(sorted_in.valid, sorted_in.idx.astype(jnp.int32), EMPTY_INDEX),
        ]
    )
    order = stable_argsort(time)
    position = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    kind = jax.vmap(_kind)(is_spike[order], is_input[order])
    events = Event(time=time[order], kind=kind, idx=idx[order], current=jnp.zeros_like(time))
    return _Record(
        events=events,
        spike_pos=position[:n_out],
        input_pos=position[n_out:],
        input_valid=sorted_in.valid,
        input_order=sorted_in.order,
    )


def _kind(is_spike, is_input):
    """The `EventKind` of one recorded event."""
    none_or_input = EventKind.where(is_input, EventKind.INPUT, EventKind.NONE)
    return EventKind.where(is_spike, EventKind.SPIKE, none_or_input)


def _integrate(weights: RecurrentWeights, events: Event, params: LIFParameters):
    """Integrate all neurons from event to event; at each spike record the spiking neuron's
    current and voltage before the spike's own jumps, and the largest voltage of the others."""
    flow = lif_exponential_flow(params)
    n = weights.input.shape[1]
    dtype = weights.input.dtype

    def body(carry, event):
        neurons, now = carry
        happens = event.kind != EventKind.NONE
        t = jnp.where(happens, event.time, now)
        neurons = flow(neurons, t - now)
        j = jnp.maximum(event.idx, 0)
        is_spike = event.kind == EventKind.SPIKE
        current = jnp.where(is_spike, neurons.i[j], 0.0)
        voltage = jnp.where(is_spike, neurons.v[j] - params.v_th, 0.0)
        others = ~(is_spike & (jnp.arange(n, dtype=jnp.int32) == j))
        above = jnp.max(jnp.where(others, neurons.v - params.v_th, -jnp.inf))
        above = jnp.where(happens, jnp.maximum(above, 0.0), 0.0)
        recorded = Event(time=event.time, kind=event.kind, idx=event.idx, current=current)
        neurons, _ = transition_with_recurrence(params, neurons, recorded, weights)
        return (neurons, t), (current, voltage, above)

    init = LIFState(v=jnp.full(n, params.v_leak, dtype), i=jnp.zeros(n, dtype))
    _, out = jax.lax.scan(body, (init, jnp.zeros((), dtype)), events)
    return out


def _as_recurrent(weights: InputWeights | RecurrentWeights) -> RecurrentWeights:
    if isinstance(weights, RecurrentWeights):
        return weights
    n = weights.input.shape[1]
    return RecurrentWeights(input=weights.input, recurrent=jnp.zeros((n, n), weights.input.dtype))


def _forward(weights, input_time, input_idx, hw_time, hw_idx, dropped, config: ReplayConfig):
    record = _merge(input_time, input_idx, hw_time, hw_idx, config.t_max)
    current, voltage, above = _integrate(_as_recurrent(weights), record.events, config.params)
    valid = hw_idx >= 0
    params = config.params
    slot_current = jnp.where(valid, current[record.spike_pos], 0.0)
    slot_voltage = jnp.where(valid, voltage[record.spike_pos], 0.0)
    rise = slot_current - (params.v_th - params.v_leak)
    floor = config.min_rise * (params.v_th - params.v_leak)
    out = Spikes(
        time=jnp.where(valid, hw_time, jnp.inf),
        idx=jnp.where(valid, hw_idx, EMPTY_INDEX),
        current=slot_current,
        dropped=dropped,
    )
    mismatch = Mismatch(
        voltage=slot_voltage,
        unexplained=jnp.sum(valid & (rise <= 0), dtype=jnp.int32),
        clamped=jnp.sum(valid & (rise < floor), dtype=jnp.int32)
        if floor > 0
        else jnp.zeros((), jnp.int32),
        overshoot=jnp.max(above),
    )
    events = eqx.tree_at(lambda e: e.current, record.events, current)
    return (out, mismatch), (record, events)


@eqx.filter_custom_vjp
def replay(weights_and_times, input_idx, hw, config: ReplayConfig):
    """The replayed output spikes and the [`Mismatch`][eqsnn.hardware.Mismatch] of one sample.

    `weights_and_times = (weights, input_time)` is differentiated (EventProp); `hw` is the
    backend's `(time, idx, dropped)`.
    """
    weights, input_time = weights_and_times
    return _forward(weights, input_time, input_idx, *hw, config)[0]


@replay.def_fwd
def _replay_fwd(perturbed, weights_and_times, input_idx, hw, config):
    del perturbed
    weights, input_time = weights_and_times
    return _forward(weights, input_time, input_idx, *hw, config)


@replay.def_bwd
def _replay_bwd(residuals, grad_out, perturbed, weights_and_times, input_idx, hw, config):
    del perturbed
    record, events = residuals
    weights, input_time = weights_and_times
    hw_time, hw_idx, _ = hw
    params = config.params
    grad_spikes = grad_out[0]
    valid = hw_idx >= 0
    n_events = events.time.shape[0]

    def per_event(ct):
        # Empty slots may carry NaN/inf cotangents from a loss evaluated on `+inf`.
        ct = jnp.zeros_like(hw_time) if ct is None else jnp.where(valid, ct, 0.0)
        return jnp.zeros(n_events, hw_time.dtype).at[record.spike_pos].add(ct)

    # Against a mismatched backend, a spike whose replayed slope is tiny or negative would
    # get a huge (or undefined) adjoint jump; the floor bounds it (see `min_rise`).
    theta = params.v_th - params.v_leak
    if config.min_rise > 0:
        is_spike = events.kind == EventKind.SPIKE
        floor = theta * (1.0 + config.min_rise)
        events = eqx.tree_at(
            lambda e: e.current,
            events,
            jnp.where(is_spike, jnp.maximum(events.current, floor), events.current),
        )
    grad_w, grad_step_time, _ = adjoint_events(
        params,
        _as_recurrent(weights),
        events,
        per_event(grad_spikes.time),
        per_event(grad_spikes.current),
        config.t_max,
    )
    grad_sorted = jnp.where(record.input_valid, grad_step_time[record.input_pos], 0.0)
    grad_time = jnp.zeros_like(input_time).at[record.input_order].set(grad_sorted)
    if isinstance(weights, RecurrentWeights):
        return grad_w, grad_time
    return InputWeights(input=grad_w.input), grad_time
