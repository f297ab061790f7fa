r"""EventProp on the event loop: a reverse walk over the recorded events.

The forward pass is the global event loop ([`eqsnn.EventLoop`][]; `trajectory` in
`_engine/event_loop.py`), which records one event per step (time, kind, index, current).
The backward pass walks those events in reverse, carrying the adjoint
$(\lambda_V, \lambda_I)$ of all neurons from $\lambda(t_\mathrm{max}) = 0$:

- between events the adjoint follows its closed-form flow
  ([`eqsnn.eventprop.adjoint_lif_exponential_flow`][]);
- at a spike of neuron $j$ it jumps
  ([`eqsnn.eventprop.adjoint_transition_with_recurrence`][]: the reset, the recurrent term
  through $W^\mathrm{rec}_{j\cdot}$, the loss terms of the spike),
  and $\partial L/\partial W^\mathrm{rec}_{j\cdot} \mathrel{+}= -\tau_\mathrm{syn}\lambda_I^+$;
- at an input spike of input $i$ the adjoint is continuous;
  $\partial L/\partial W^\mathrm{in}_{i\cdot}$ and the input time's gradient are read off
  ([`eqsnn.eventprop.adjoint_input_transition`][]).

Gradients of masked-out weights are exactly zero. Simultaneous events (ties) are processed
one per step in the forward order; their gradient is that of the recorded order.

Without recurrent delays (`_gathered`) the walk does not sum the weight gradients itself:
it returns, per event, the gradient of the row of weights the event used, and the weight
gradients are the transpose of a gather of those rows (under `jax.vmap`, one scatter-add
of the whole batch into the shared weights). With delays (`_trajectory`) the walk carries
the weight gradients, which it reads at the arrivals.

With `EventProp(per_step=True)` the same adjoint is split over the steps of the loop
instead: each step (`step` in `_engine/event_loop.py`) gets its own custom VJP (the jump at
its event, then the flow back to the previous event), and JAX's transpose of the `lax.scan` chains
them. The carried state's cotangents are $(-\tau_\mathrm{mem}\lambda_V,
-\tau_\mathrm{syn}\lambda_I)$; the cached crossings get none, because the jump at a spike
already accounts for how its time depends on the state (the implicit-function term
$1/\dot V^-$). Both settings apply the same adjoint flow and jumps
(`adjoint_event` in `_adjoint/events.py`), so their gradients agree to
rounding.
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._connectivity import ConnectivityMask
from .._engine.base import SimulationConfig
from .._engine.buffers import (
    SortedInputs,
    input_cotangent,
    record_cotangents,
    sort_inputs,
    zeros_if_none,
)
from .._engine.event_loop import (
    EventKind,
    EventLoop,
    LoopState,
    arrival_row,
    arrivals,
    collect_events,
    initial_state,
    pending_crossings,
    run_loop,
    step,
    transition_with_recurrence,
)
from .._flow import LIFState, lif_exponential_flow
from .._spikes import Spikes
from .._weights import RecurrentWeights
from .events import adjoint_event, adjoint_events, spike_sources
from .transitions import AdjointState, adjoint_lif_exponential_flow, of_neuron


def event_loop_eventprop(
    engine: EventLoop, per_step: bool, config: SimulationConfig, weights, spikes: Spikes
) -> Spikes:
    """The event loop with EventProp gradients, on the trajectory or on each step.

    `weights` is the input matrix of a feed-forward layer or the effective
    [`eqsnn.RecurrentWeights`][] of a recurrent one.
    """
    del engine
    config, weights, spikes = arrivals(config, weights, spikes)
    if not isinstance(weights, RecurrentWeights):  # a feed-forward layer: no recurrence
        zeros = jnp.zeros((weights.shape[1],) * 2, weights.dtype)
        weights = RecurrentWeights(input=weights, recurrent=zeros)
        n_in, n = weights.input.shape
        mask = ConnectivityMask(np.ones((n_in, n), bool), np.zeros((n, n), bool))
        config = dataclasses.replace(config, mask=mask)
    if per_step:
        return _stepwise(config, weights, spikes)
    arrays, constants = eqx.partition(config.params, eqx.is_array)
    if weights.recurrent_delays is None:
        return _gathered(config, weights, spikes, arrays, constants)
    return _trajectory((weights, spikes, arrays), dataclasses.replace(config, params=constants))


def _collect(config: SimulationConfig, final: LoopState, events) -> Spikes:
    """The output buffer of a finished loop (as [`eqsnn.EventLoop`][])."""
    return collect_events(events, config.n_spikes, pending_crossings(final, config.t_max))


def _forward(config: SimulationConfig, weights: RecurrentWeights, spikes: Spikes):
    """Run the event loop; returns the output buffer and the recorded events."""
    final, events = run_loop(config, weights, spikes)
    return _collect(config, final, events), events


def _with_params(config: SimulationConfig, arrays) -> SimulationConfig:
    """`config` with the array fields of its parameters put back."""
    return dataclasses.replace(config, params=eqx.combine(arrays, config.params))


@eqx.filter_custom_vjp
def _trajectory(weights_spikes_params, config: SimulationConfig):
    weights, spikes, arrays = weights_spikes_params
    return _forward(_with_params(config, arrays), weights, spikes)[0]


def _trajectory_fwd(perturbed, weights_spikes_params, config: SimulationConfig):
    del perturbed
    weights, spikes, arrays = weights_spikes_params
    return _forward(_with_params(config, arrays), weights, spikes)


def _trajectory_bwd(events, grad_out, perturbed, weights_spikes_params, config: SimulationConfig):
    del perturbed
    weights, spikes, arrays = weights_spikes_params
    config = _with_params(config, arrays)
    zero = jnp.zeros((), jnp.int32)
    grad_time, grad_current = record_cotangents(
        lambda e: collect_events(e, config.n_spikes, zero), events, grad_out
    )
    grad_w, grad_step_time, jumps = adjoint_events(
        config.params, weights, events, grad_time, grad_current, config.t_max, config.n_spikes
    )
    grad_params = parameter_gradients(
        arrays, config, weights, events, jumps, grad_current, config.n_spikes
    )
    grad_sorted = _by_slot(events, grad_step_time, spikes.n_slots)
    sorted_in = sort_inputs(spikes, config.t_max)
    grad_weights = RecurrentWeights(
        input=jnp.where(config.mask.input, grad_w.input, 0.0),
        recurrent=jnp.where(config.mask.recurrent, grad_w.recurrent, 0.0),
        recurrent_delays=grad_w.recurrent_delays,
    )
    grad_spikes = input_cotangent(spikes, sorted_in, config.t_max, grad_sorted)
    return grad_weights, grad_spikes, grad_params


_trajectory.def_fwd(_trajectory_fwd)
_trajectory.def_bwd(_trajectory_bwd)


def parameter_gradients(
    arrays, config: SimulationConfig, weights, events, jumps, grad_current, n_spikes: int
):
    r"""Gradients of the array fields of the neuron parameters, from the adjoint jumps.

    Each spike $r$ of neuron $j$ at $s_r$ is a root of $F_r = V_j(s_r^-) - v_{\mathrm{th},j}$,
    a closed-form function of the parameters once every event time is fixed (the flow
    between events, input and recurrent jumps, resets to $v_\mathrm{reset}$). With the
    adjoint jumps $\mu_r = -\tau_{\mathrm{mem},j}\lambda_{V,j}(s_r^-)$ of the backward walk,
    $dL/dp = \sum_r \mu_r\,\partial F_r/\partial p + \sum_r (\partial L/\partial I_r)\,
    \partial I_r/\partial p$ (the adjoint identity; written out, the integrals of the
    adjoint over the trajectory plus the jump terms at the spikes, as on
    [Trainable parameters and delays](../concepts/trainable.md)). It is evaluated by
    differentiating one replay of the recorded events.
    """
    if not jax.tree.leaves(arrays):
        return arrays
    mu = jax.lax.stop_gradient(jumps)
    g_cur = jax.lax.stop_gradient(grad_current)

    def lagrangian(arrays):
        params = eqx.combine(arrays, config.params)
        crossing, current = replay_conditions(params, weights, events, n_spikes)
        return jnp.sum(mu * crossing + g_cur * current)

    return jax.grad(lagrangian)(arrays)


def replay_conditions(params, weights: RecurrentWeights, events, n_spikes: int = 0):
    """Per recorded step, `V_j - v_th_j` just before a spike of neuron `j` and its current
    (zero at other steps), replaying the events at their recorded times (`n_spikes`: the
    size of the loop's queue of delayed spikes, with recurrent delays)."""
    delayed = weights.recurrent_delays is not None
    sources = spike_sources(events, n_spikes) if delayed else None
    n = weights.input.shape[1]
    flow = lif_exponential_flow(params)
    wide = params.per_neuron(n)
    neurons = jnp.arange(n, dtype=jnp.int32)
    times = jax.lax.stop_gradient(events.time)

    def body(carry, x):
        state, now, held, last = carry
        kind, idx, time = x
        happens = kind != EventKind.NONE
        j = jnp.maximum(idx, 0).astype(jnp.int32)
        t = jnp.where(happens, time, now)
        if params.refractory:
            # A release happens t_ref after the neuron's spike: as a function of t_ref.
            release = kind == EventKind.RELEASE
            t = jnp.where(release, last[j] + of_neuron(wide, j).t_ref, t)
        flowed = flow(state, t - now)
        state = LIFState(v=jnp.where(held, state.v, flowed.v), i=flowed.i)
        spike = kind == EventKind.SPIKE
        crossing = jnp.where(spike, state.v[j] - of_neuron(wide, j).v_th, 0.0)
        current = jnp.where(spike, state.i[j], 0.0)
        v = jnp.where(spike & (neurons == j), wide.v_reset, state.v)
        i = state.i + jnp.where(kind == EventKind.INPUT, weights.input[j], 0.0)
        if delayed:
            arriving = kind == EventKind.ARRIVAL
            i = i + jnp.where(arriving, arrival_row(weights, idx, sources), 0.0)
        else:
            i = i + jnp.where(spike, weights.recurrent[j], 0.0)
        if params.refractory:
            held = jnp.where(spike & (neurons == j), True, held)
            held = jnp.where(release & (neurons == j), False, held)
            last = jnp.where(spike & (neurons == j), t, last)
        return (LIFState(v=v, i=i), t, held, last), (crossing, current)

    dtype = weights.input.dtype
    rest = LIFState(v=jnp.broadcast_to(wide.v_leak, (n,)).astype(dtype), i=jnp.zeros(n, dtype))
    init = (rest, jnp.zeros((), dtype), jnp.zeros(n, bool), jnp.zeros(n, dtype))
    _, (crossing, current) = jax.lax.scan(body, init, (events.kind, events.idx, times))
    return crossing, current


# --- The weight gradients as the transpose of a gather -----------------------------------


def _gathered(
    config: SimulationConfig, weights: RecurrentWeights, spikes: Spikes, arrays, constants
):
    r"""The event loop with EventProp, its weight gradients formed outside the custom VJP.

    `_run` runs the loop (a custom VJP with no cotangents: reverse mode does not
    differentiate through the loop, forward mode over reverse mode still sees how the
    events move). Each recorded step then *gathers* the row of weights its event added to
    the currents (`weights.input[i]` at an input of input $i$, `weights.recurrent[j]` at a
    spike of neuron $j$, a row of zeros at other steps) and hands those rows to `_replay`,
    a custom VJP whose backward pass returns the gradient of each row,
    $-\tau_\mathrm{syn}\lambda_I(t_k^+)$ (`adjoint_events(rows=True)`). The weight
    gradients are the transpose of the gather, which autodiff forms. Under `jax.vmap` of a
    batch the weights are shared, so that transpose is one scatter-add of all samples'
    rows into one weight matrix: no weight matrix per sample is carried through the
    reverse walk, masked or summed over the batch. (The rows' values are never used.)
    """
    config = dataclasses.replace(config, params=constants)
    events, pending = _run((weights, spikes, arrays), config)
    floats, ints = eqx.partition(events, eqx.is_inexact_array)  # (the ints carry float0
    events = eqx.combine(floats, jax.lax.stop_gradient(ints))  # tangents out of `_run`)
    pending = jax.lax.stop_gradient(pending)
    n_in, n = weights.input.shape
    table = jnp.concatenate(
        [
            jnp.where(config.mask.input, weights.input, 0.0),
            jnp.where(config.mask.recurrent, weights.recurrent, 0.0),
            jnp.zeros((1, n), weights.input.dtype),
        ]
    )
    j = jnp.maximum(events.idx, 0)
    row = jnp.where(
        events.kind == EventKind.INPUT,
        j,
        jnp.where(events.kind == EventKind.SPIKE, n_in + j, n_in + n),
    )
    return _replay((table[row], weights, spikes, arrays, events, pending), config)


@eqx.filter_custom_vjp
def _run(weights_spikes_params, config: SimulationConfig):
    """The loop's recorded events and its number of pending crossings (for `dropped`)."""
    weights, spikes, arrays = weights_spikes_params
    final, events = run_loop(_with_params(config, arrays), weights, spikes)
    return events, pending_crossings(final, config.t_max)


def _run_fwd(perturbed, weights_spikes_params, config: SimulationConfig):
    del perturbed
    return _run.fn(weights_spikes_params, config), None


def _run_bwd(residuals, grad_out, perturbed, weights_spikes_params, config):
    """No cotangents: `_replay` gives them all."""
    del residuals, grad_out, perturbed, config
    return _no_cotangents(weights_spikes_params)


def _no_cotangents(tree):
    """Symbolic zero cotangents (`None`) for every inexact array of `tree`, in the
    structure an `eqx.filter_custom_vjp` backward pass returns."""
    return jax.tree.map(lambda _: None, eqx.filter(tree, eqx.is_inexact_array))


_run.def_fwd(_run_fwd)
_run.def_bwd(_run_bwd)


@eqx.filter_custom_vjp
def _replay(rows_weights_spikes_params_events, config: SimulationConfig):
    """The output buffer of a loop that already ran (`_gathered`), as a function of the
    rows of weights its steps used, the input spikes and the parameters' arrays (the
    weights and the events come along for the backward pass, without cotangents)."""
    *_, events, pending = rows_weights_spikes_params_events
    return collect_events(events, config.n_spikes, pending)


def _replay_fwd(perturbed, rows_weights_spikes_params_events, config: SimulationConfig):
    del perturbed
    return _replay.fn(rows_weights_spikes_params_events, config), None


def _replay_bwd(residuals, grad_out, perturbed, rows_weights_spikes_params_events, config):
    del residuals, perturbed
    _, weights, spikes, arrays, events, _ = rows_weights_spikes_params_events
    config = _with_params(config, arrays)
    zero = jnp.zeros((), jnp.int32)
    grad_time, grad_current = record_cotangents(
        lambda e: collect_events(e, config.n_spikes, zero), events, grad_out
    )
    grad_rows, grad_step_time, jumps = adjoint_events(
        config.params, weights, events, grad_time, grad_current, config.t_max, rows=True
    )
    grad_params = parameter_gradients(arrays, config, weights, events, jumps, grad_current, 0)
    grad_sorted = _by_slot(events, grad_step_time, spikes.n_slots)
    sorted_in = sort_inputs(spikes, config.t_max)
    grad_spikes = input_cotangent(spikes, sorted_in, config.t_max, grad_sorted)
    return (
        grad_rows,
        _no_cotangents(weights),
        grad_spikes,
        grad_params,
        _no_cotangents(events),
        None,
    )


_replay.def_fwd(_replay_fwd)
_replay.def_bwd(_replay_bwd)


def _by_slot(events, grad_step_time, n_slots: int):
    """The per-step input-time gradients on the time-sorted input slots (the `k`-th input
    event is slot `k` of the sorted inputs)."""
    is_input = events.kind == EventKind.INPUT
    slot = jnp.cumsum(is_input, dtype=jnp.int32) - 1
    return (
        jnp.zeros(n_slots, grad_step_time.dtype)
        .at[jnp.where(is_input, slot, n_slots)]
        .add(grad_step_time, mode="drop")
    )


# --- Custom VJP on each event step ------------------------------------------------------


@eqx.filter_custom_vjp
def _step(state_weights_inputs, params, solver, t_max, reach):
    """One step of the event loop: evolve to the next event and apply it."""
    state, weights, inputs = state_weights_inputs
    return step(
        state,
        weights=weights,
        inputs=inputs,
        params=params,
        solver=solver,
        transition=transition_with_recurrence,
        t_max=t_max,
        reach=reach,
    )


def _step_fwd(perturbed, state_weights_inputs, params, solver, t_max, reach):
    del perturbed
    new_state, event = _step.fn(state_weights_inputs, params, solver, t_max, reach)
    return (new_state, event), event


def _step_bwd(event, grad_out, perturbed, state_weights_inputs, params, solver, t_max, reach):
    r"""Per-step VJP: the jump at the step's event, then the flow back to the previous event.

    The carried neurons' cotangents are $-\tau\lambda$ (see
    [`eqsnn.eventprop.AdjointState`][]); the carried time and the cached crossings get none
    (the jump at a spike holds the dependence of its time on the state). The weights get
    dense cotangents with one non-zero row; the sorted input times one non-zero entry, at
    the input processed here.
    """
    del perturbed, solver, t_max, reach
    state, weights, inputs = state_weights_inputs
    grad_state, grad_event = grad_out
    neurons = grad_state.neurons
    after = AdjointState(
        lambda_v=-zeros_if_none(neurons.v, state.neurons.v) / params.tau_mem,
        lambda_i=-zeros_if_none(neurons.i, state.neurons.i) / params.tau_syn,
    )
    before, in_row, rec_row, in_time = adjoint_event(
        params,
        weights,
        after,
        event,
        zeros_if_none(grad_event.time, event.time),
        zeros_if_none(grad_event.current, event.current),
    )
    dt = jnp.where(event.kind != EventKind.NONE, event.time - state.time, 0.0)
    start = adjoint_lif_exponential_flow(params)(before, dt)
    j = jnp.maximum(event.idx, 0)
    grad_weights = RecurrentWeights(
        input=jnp.zeros_like(weights.input).at[j].set(in_row),
        recurrent=jnp.zeros_like(weights.recurrent).at[j].set(rec_row),
    )
    # An input event processes sorted slot `input_head`; other events have in_time = 0.
    grad_times = jnp.zeros_like(inputs.time).at[state.input_head].set(in_time, mode="drop")
    grad_neurons = LIFState(v=-params.tau_mem * start.lambda_v, i=-params.tau_syn * start.lambda_i)
    grad_state = LoopState(
        time=None, neurons=grad_neurons, crossing_time=None, crossing_current=None, input_head=None
    )
    grad_inputs = SortedInputs(time=grad_times, end=None, idx=None, valid=None, order=None)
    return grad_state, grad_weights, grad_inputs


_step.def_fwd(_step_fwd)
_step.def_bwd(_step_bwd)


def _stepwise(config: SimulationConfig, weights: RecurrentWeights, spikes: Spikes) -> Spikes:
    """The event loop with the custom VJP on each event step, autodiff elsewhere."""
    inputs: SortedInputs = sort_inputs(spikes, config.t_max)
    init = initial_state(weights.input.shape[1], weights.input.dtype, config.params)

    def body(state, _):
        # Integer leaves (the input head, sorted indices) carry (float0) tangents inside a
        # differentiated scan, which `eqx.filter_custom_vjp` rejects; they have no gradient.
        arg = (state, weights, inputs)
        diff, ints = eqx.partition(arg, eqx.is_inexact_array)
        arg = eqx.combine(diff, jax.lax.stop_gradient(ints))
        return _step(arg, config.params, config.solver, config.t_max, config.mask)

    final, events = jax.lax.scan(body, init, None, length=spikes.n_slots + config.n_spikes)
    return _collect(config, final, events)
