r"""The EventProp backward pass of the recurrent event loop, one recorded event at a time.

The event loop ([`eqsnn.EventLoop`][]; `trajectory` in `_engine/event_loop.py`) records one
event per step. `adjoint_event` carries the adjoint $(\lambda_V, \lambda_I)$ of all neurons
across one of them (the jump of [`eqsnn.eventprop.adjoint_transition_with_recurrence`][] at a
spike, continuity at an input spike) and reads the gradients off there; `adjoint_events`
walks all events in reverse with the closed-form flow in between.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._engine.event_loop import Event, EventKind, arrival_row
from .._params import LIFParameters
from .._weights import RecurrentWeights
from .transitions import (
    AdjointState,
    adjoint_input_transition,
    adjoint_lif_exponential_flow,
    adjoint_transition_with_recurrence,
    of_neuron,
)


def adjoint_event(
    params: LIFParameters,
    weights: RecurrentWeights,
    adjoint: AdjointState,
    event: Event,
    grad_time: Float[ArrayLike, ""],
    grad_current: Float[ArrayLike, ""],
) -> tuple[AdjointState, Float[Array, " n"], Float[Array, " n"], Float[Array, ""]]:
    r"""Carry the adjoint across one recorded event, from just after it to just before it.

    **Arguments:**

    - `params`: the neuron parameters.
    - `weights`: the effective (masked) weights of the layer.
    - `adjoint`: $\lambda$ of all `n` neurons just after the event.
    - `event`: one recorded `Event` of `_engine/event_loop.py` (scalar fields).
    - `grad_time`, `grad_current`: $\partial L/\partial t$ and $\partial L/\partial I$ of
      the event (used at a spike).

    **Returns:** `(adjoint, grad_input_row, grad_recurrent_row, grad_input_time)`:
    $\lambda$ just before the event (it jumps at a spike and is continuous otherwise); the
    contributions to `weights.input[event.idx]` (input event) and to
    `weights.recurrent[event.idx]` (spike), zero for the other kinds; and, for an input
    event, the gradient of its time (else zero).
    """
    j = jnp.maximum(event.idx, 0)
    # Spike of neuron j: adjoint jump and recurrent weight gradient of row j.
    is_spike = event.kind == EventKind.SPIKE
    jumped, rec_row = adjoint_transition_with_recurrence(
        params, adjoint, j, event.current, grad_time, grad_current, weights.recurrent
    )
    # Input spike of input j: adjoint continuous; input weight and input time gradients.
    is_input = event.kind == EventKind.INPUT
    in_row, in_time = adjoint_input_transition(params, adjoint, weights.input[j])
    adjoint = jax.tree.map(lambda a, b: jnp.where(is_spike, a, b), jumped, adjoint)
    return (
        adjoint,
        jnp.where(is_input, in_row, 0.0),
        jnp.where(is_spike, rec_row, 0.0),
        jnp.where(is_input, in_time, 0.0),
    )


def adjoint_events(
    params: LIFParameters,
    weights: RecurrentWeights,
    events,
    grad_time,
    grad_current,
    t_max: float,
    n_spikes: int = 0,
    rows: bool = False,
):
    r"""Walk the recorded events in reverse, from $\lambda(t_\mathrm{max}) = 0$.

    **Arguments:**

    - `params`: the neuron parameters.
    - `weights`: the effective (masked) weights of the layer.
    - `events`: the recorded `Event`s, arrays of shape `(steps,)`.
    - `grad_time`, `grad_current`: $\partial L/\partial t$ and $\partial L/\partial I$ of each
      event (zero for events that are not output spikes), shape `(steps,)`.
    - `t_max`: the simulation horizon.
    - `n_spikes`: with recurrent delays, the number of spikes the loop queued (its
      `n_spikes`).
    - `rows`: instead of the weight gradients, return per step the gradient of the row
      of weights that the step's event added to the currents,
      $-\tau_\mathrm{syn}\lambda_I(t_k^+)$ at an input or a spike, zero at other steps
      (without recurrent delays only). The weight gradients are their sums over the steps
      that used each row; `_adjoint/event_loop.py` lets autodiff form those sums (a
      scatter over the whole batch at once) instead of carrying a weight matrix per sample
      through the walk.

    With a refractory period, a release event of neuron $j$ at $e = s + t_\mathrm{ref}$ sets
    $\lambda_{V,j} = 0$ (the voltage was held before it) and passes
    $\partial L/\partial e = \lambda_{V,j}(e^+)(I_j(e) - u_\mathrm{reset})$ on to the spike
    at $s$. With recurrent delays a spike only resets its neuron; each of its arrivals at
    $s + d$ acts as an input spike (weight gradients $-\tau_\mathrm{syn}\lambda_I$ there, and
    the time gradient $\sum_m W_{jm}(\lambda_{V,m} - \lambda_{I,m})$, which moves with the
    spike time and with the delay).

    **Returns:** `(grad_weights, grad_input_time, jumps)`: the gradient w.r.t. `weights`
    (a [`eqsnn.RecurrentWeights`][], with `recurrent_delays` when there are some; with
    `rows=True`, the per-step rows of shape `(steps, n)` instead); per
    step, the gradient w.r.t. the time of the input spike processed there (zero at other
    steps); and per step the adjoint jump $\mu = -\tau_\mathrm{mem}\lambda_{V,j}(s^-)$ of
    a spike of neuron $j$ (zero at other steps), from which the gradients of the neuron
    parameters follow (see `parameter_gradients` in `_adjoint/event_loop.py`).
    """
    flow = adjoint_lif_exponential_flow(params)
    n = weights.input.shape[1]
    dtype = weights.input.dtype
    zeros = jnp.zeros(n, dtype)
    wide = params.per_neuron(n)
    neurons = jnp.arange(n, dtype=jnp.int32)
    delayed = weights.recurrent_delays is not None
    if rows and delayed:
        raise ValueError("rows=True reads the weight gradients at the events: no delays")
    per_spike = n if delayed and weights.recurrent_delays.ndim == 2 else 1
    n_queue = n_spikes * per_spike if delayed else 0
    ordinal = jnp.cumsum(events.kind == EventKind.SPIKE, dtype=jnp.int32) - 1
    sources = spike_sources(events, n_spikes) if delayed else None
    # With delays the recurrent jumps happen at the arrivals: a spike itself only resets.
    at_spike = (
        RecurrentWeights(input=weights.input, recurrent=jnp.zeros_like(weights.recurrent))
        if delayed
        else weights
    )

    def body(carry, x):
        adjoint, now, grad_in, grad_rec, release, arrival = carry
        event, g_time, g_current, k = x
        event_time = jnp.where(event.kind != EventKind.NONE, event.time, now)
        adjoint = flow(adjoint, now - event_time)
        j = jnp.maximum(event.idx, 0)
        is_spike = event.kind == EventKind.SPIKE
        if params.refractory:
            is_release = (event.kind == EventKind.RELEASE) & (neurons == j)
            u_reset = wide.v_reset - wide.v_leak
            term = adjoint.lambda_v * (event.current - u_reset)
            release = jnp.where(is_release, term, release)
            adjoint = AdjointState(
                lambda_v=jnp.where(is_release, 0.0, adjoint.lambda_v), lambda_i=adjoint.lambda_i
            )
            g_time = g_time + jnp.where(is_spike, release[j], 0.0)
            release = jnp.where(is_spike & (neurons == j), 0.0, release)
        if delayed:
            first = jnp.clip(k * per_spike, 0, n_queue - per_spike)
            mine = jax.lax.dynamic_slice(arrival, (first,), (per_spike,))
            g_time = g_time + jnp.where(is_spike, jnp.sum(mine), 0.0)
            is_arrival = event.kind == EventKind.ARRIVAL
            row = arrival_row(weights, event.idx, sources)
            source = jnp.maximum(sources[j // per_spike], 0)
            reached = is_arrival & _targets(event.idx, n, per_spike)
            grad_rec = grad_rec.at[source].add(
                jnp.where(reached, -wide.tau_syn * adjoint.lambda_i, 0.0)
            )
            a = jnp.sum(row * (adjoint.lambda_v - adjoint.lambda_i))
            arrival = jnp.where(is_arrival, arrival.at[j].set(a), arrival)
        if rows:  # the gradient of the row the event used: lambda just after the event
            used = is_spike | (event.kind == EventKind.INPUT)
            row = jnp.where(used, -wide.tau_syn * adjoint.lambda_i, 0.0)
        adjoint, in_row, rec_row, in_time = adjoint_event(
            params, at_spike, adjoint, event, g_time, g_current
        )
        if not rows:
            grad_in = grad_in.at[j].add(in_row)
            if not delayed:  # (with delays the recurrent gradients are read at the arrivals)
                grad_rec = grad_rec.at[j].add(rec_row)
        tau_mem = of_neuron(params, j).tau_mem
        mu = jnp.where(is_spike, -tau_mem * adjoint.lambda_v[j], 0.0)
        out = (in_time, mu, row) if rows else (in_time, mu)
        return (adjoint, event_time, grad_in, grad_rec, release, arrival), out

    init = (  # (rows=True: no weight gradient carried, None)
        AdjointState(zeros, zeros),
        jnp.asarray(t_max, dtype),
        None if rows else jnp.zeros_like(weights.input),
        None if rows else jnp.zeros_like(weights.recurrent),
        zeros,
        jnp.zeros(n_queue, dtype),
    )
    xs = (events, grad_time, grad_current, ordinal)
    carry, out = jax.lax.scan(body, init, xs, reverse=True)
    if rows:
        return out[2], out[0], out[1]
    grad_input_time, jumps = out
    grad_in, grad_rec, arrival = carry[2], carry[3], carry[5]
    grad_delays = None
    if delayed:
        grad_delays = _delay_gradients(weights.recurrent_delays, arrival, sources, per_spike)
    grads = RecurrentWeights(input=grad_in, recurrent=grad_rec, recurrent_delays=grad_delays)
    return grads, grad_input_time, jumps


def _targets(slot, n: int, per_spike: int):
    """The neurons an arrival of queue slot `slot` reaches (all, or `slot % n`)."""
    if per_spike == 1:
        return jnp.ones(n, bool)
    return jnp.arange(n, dtype=jnp.int32) == jnp.maximum(slot, 0) % n


def spike_sources(events, n_spikes: int):
    """The neuron of the k-th spike of the recorded events, `(n_spikes,)` (`-1` after the
    last), as the loop's `sources`."""
    is_spike = events.kind == EventKind.SPIKE
    seen = jnp.cumsum(is_spike, dtype=jnp.int32)
    slot = jnp.arange(1, n_spikes + 1, dtype=jnp.int32)
    pick = jnp.minimum(jnp.searchsorted(seen, slot), seen.shape[0] - 1)
    return jnp.where(slot <= seen[-1], events.idx[pick], -1).astype(jnp.int32)


def _delay_gradients(delays, arrival, sources, per_spike: int):
    """Scatter the arrival-time gradients of the queue slots onto the delays they used
    (a delay below zero acts as zero and gets no gradient)."""
    slot = jnp.arange(arrival.shape[0], dtype=jnp.int32)
    source = sources[slot // per_spike]
    grad = jnp.where(source >= 0, arrival, 0.0)
    source = jnp.maximum(source, 0)
    if delays.ndim == 1:
        out = jnp.zeros_like(delays).at[source].add(grad)
    else:
        out = jnp.zeros_like(delays).at[source, slot % delays.shape[1]].add(grad)
    return jnp.where(delays >= 0, out, 0.0)
