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

from .._engine.event_loop import Event, EventKind
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
    params: LIFParameters, weights: RecurrentWeights, events, grad_time, grad_current, t_max: float
):
    r"""Walk the recorded events in reverse, from $\lambda(t_\mathrm{max}) = 0$.

    **Arguments:**

    - `params`: the neuron parameters.
    - `weights`: the effective (masked) weights of the layer.
    - `events`: the recorded `Event`s, arrays of shape `(steps,)`.
    - `grad_time`, `grad_current`: $\partial L/\partial t$ and $\partial L/\partial I$ of each
      event (zero for events that are not output spikes), shape `(steps,)`.
    - `t_max`: the simulation horizon.

    **Returns:** `(grad_weights, grad_input_time, jumps)`: the gradient w.r.t. `weights`
    (a [`eqsnn.RecurrentWeights`][]); per step, the gradient w.r.t. the time of the input
    spike processed there (zero at other steps); and per step the adjoint jump
    $\mu = -\tau_\mathrm{mem}\lambda_{V,j}(s^-)$ of a spike of neuron $j$ (zero at other
    steps), from which the gradients of the neuron parameters follow (see
    `parameter_gradients` in `_adjoint/event_loop.py`).
    """
    flow = adjoint_lif_exponential_flow(params)
    n = weights.input.shape[1]
    dtype = weights.input.dtype
    zeros = jnp.zeros(n, dtype)

    wide = params.per_neuron(n)
    neurons = jnp.arange(n, dtype=jnp.int32)

    def body(carry, x):
        adjoint, now, grad_in, grad_rec, release = carry
        event, g_time, g_current = x
        event_time = jnp.where(event.kind != EventKind.NONE, event.time, now)
        adjoint = flow(adjoint, now - event_time)
        j = jnp.maximum(event.idx, 0)
        if params.refractory:
            # The end of neuron j's refractory period at e = s + t_ref: the voltage was held
            # before it, so lambda_V,j = 0 there, and moving e moves the release:
            # dL/de = lambda_V,j(e+) (I_j(e) - u_reset), passed on to the spike at s.
            is_release = (event.kind == EventKind.RELEASE) & (neurons == j)
            u_reset = wide.v_reset - wide.v_leak
            term = adjoint.lambda_v * (event.current - u_reset)
            release = jnp.where(is_release, term, release)
            adjoint = AdjointState(
                lambda_v=jnp.where(is_release, 0.0, adjoint.lambda_v), lambda_i=adjoint.lambda_i
            )
            is_spike = event.kind == EventKind.SPIKE
            g_time = g_time + jnp.where(is_spike, release[j], 0.0)
            release = jnp.where(is_spike & (neurons == j), 0.0, release)
        adjoint, in_row, rec_row, in_time = adjoint_event(
            params, weights, adjoint, event, g_time, g_current
        )
        grad_in = grad_in.at[j].add(in_row)
        grad_rec = grad_rec.at[j].add(rec_row)
        tau_mem = of_neuron(params, j).tau_mem
        mu = jnp.where(event.kind == EventKind.SPIKE, -tau_mem * adjoint.lambda_v[j], 0.0)
        return (adjoint, event_time, grad_in, grad_rec, release), (in_time, mu)

    init = (
        AdjointState(zeros, zeros),
        jnp.asarray(t_max, dtype),
        jnp.zeros_like(weights.input),
        jnp.zeros_like(weights.recurrent),
        zeros,
    )
    xs = (events, grad_time, grad_current)
    (_, _, grad_in, grad_rec, _), (grad_input_time, jumps) = jax.lax.scan(
        body, init, xs, reverse=True
    )
    return RecurrentWeights(input=grad_in, recurrent=grad_rec), grad_input_time, jumps
