r"""The recurrent LIF layer with EventProp gradients: a reverse walk over the recorded events.

The forward pass is the global event loop of [`eqsnn.RecurrentLIF`][]
([`eqsnn._recurrent.trajectory`][]), which records one event per step (time, kind, index,
current). The backward pass walks those events in reverse, carrying the adjoint
$(\lambda_V, \lambda_I)$ of all neurons from $\lambda(t_\mathrm{max}) = 0$:

- between events the adjoint follows its closed-form flow
  ([`eqsnn.adjoint_lif_exponential_flow`][]);
- at a spike of neuron $j$ it jumps ([`eqsnn.adjoint_transition_with_recurrence`][]: the
  reset, the recurrent term through $W^\mathrm{rec}_{j\cdot}$, the loss terms of the spike),
  and $\partial L/\partial W^\mathrm{rec}_{j\cdot} \mathrel{+}= -\tau_\mathrm{syn}\lambda_I^+$;
- at an input spike of input $i$ the adjoint is continuous;
  $\partial L/\partial W^\mathrm{in}_{i\cdot}$ and the input time's gradient are read off
  ([`eqsnn.adjoint_input_transition`][]).

Gradients of masked-out weights are exactly zero. Simultaneous events (ties) are processed
one per step in the forward order; their gradient is that of the recorded order.

With `wrap_only_step=True` the same adjoint is split over the steps of the loop instead:
each step ([`eqsnn._recurrent.step`][]) gets its own custom VJP (the jump at its event,
then the flow back to the previous event), and JAX's transpose of the `lax.scan` chains
them. The carried state's cotangents are $(-\tau_\mathrm{mem}\lambda_V,
-\tau_\mathrm{syn}\lambda_I)$; the cached crossings get none, because the jump at a spike
already accounts for how its time depends on the state (the implicit-function term
$1/\dot V^-$). Both settings apply the same adjoint flow and jumps
([`adjoint_event`][eqsnn._recurrent_adjoint.adjoint_event]), so their gradients agree to
rounding.
"""

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._adjoint import AdjointState, adjoint_lif_exponential_flow
from ._checks import check_layer_weights, layer_name
from ._events import (
    Overflow,
    SortedInputs,
    check_input,
    compiled,
    input_cotangent,
    sort_inputs,
    zeros_if_none,
)
from ._flow import LIFState
from ._params import LIFParameters
from ._recurrent import (
    EventKind,
    LoopState,
    collect_events,
    initial_state,
    step,
    trajectory,
    transition_with_recurrence,
)
from ._recurrent_adjoint import adjoint_event, adjoint_events
from ._recurrent_lif import Connectivity, ConnectivityMask, RecurrentLIF
from ._spikes import Spikes, with_sources
from ._weights import RecurrentWeights
from .solvers import AbstractCrossingSolver


def _collect(layer, final: LoopState, events) -> Spikes:
    """The output buffer of a finished loop (as [`eqsnn._recurrent.simulate_recurrent`][])."""
    pending = jnp.sum(final.crossing_time < layer.t_max, dtype=jnp.int32)
    return collect_events(events, layer.n_spikes, pending, layer.overflow, type(layer).__name__)


def _forward(layer, spikes: Spikes):
    """Run the event loop; returns the output buffer and the recorded events."""
    final, events = trajectory(
        layer.effective_weights(),
        spikes,
        spikes.n_slots + layer.n_spikes,
        params=layer.params,
        solver=layer.solver,
        transition=transition_with_recurrence,
        t_max=layer.t_max,
        reach=layer.mask,
    )
    return _collect(layer, final, events), events


@eqx.filter_custom_vjp
def _trajectory(layer_and_spikes):
    layer, spikes = layer_and_spikes
    return _forward(layer, spikes)[0]


def _trajectory_fwd(perturbed, layer_and_spikes):
    del perturbed
    layer, spikes = layer_and_spikes
    out, events = _forward(layer, spikes)
    return out, events


def _event_grads(layer, events, grad_out: Spikes):
    """Route the cotangents of the output slots to the recorded events (one per step).

    Empty output slots (`idx == -1`, time `+inf`) may carry NaN/inf cotangents from a loss
    evaluated on `+inf`; they are masked to zero.
    """
    zero = jnp.zeros((), jnp.int32)

    def select(time, current):
        recorded = eqx.tree_at(lambda e: (e.time, e.current), events, (time, current))
        out = collect_events(recorded, layer.n_spikes, zero, Overflow.COUNT, "")
        return (out.time, out.current), out.idx

    (time, current), pull, idx = jax.vjp(select, events.time, events.current, has_aux=True)
    kept = idx >= 0
    grad_time = jnp.where(kept, zeros_if_none(grad_out.time, time), 0.0)
    grad_current = jnp.where(kept, zeros_if_none(grad_out.current, current), 0.0)
    return pull((grad_time, grad_current))


def _trajectory_bwd(events, grad_out, perturbed, layer_and_spikes):
    del perturbed
    layer, spikes = layer_and_spikes
    grad_time, grad_current = _event_grads(layer, events, grad_out)
    grad_w, grad_step_time = adjoint_events(
        layer.params, layer.effective_weights(), events, grad_time, grad_current, layer.t_max
    )
    # The k-th input event is slot k of the time-sorted inputs.
    is_input = events.kind == EventKind.INPUT
    slot = jnp.cumsum(is_input, dtype=jnp.int32) - 1
    n_slots = spikes.n_slots
    grad_sorted = (
        jnp.zeros(n_slots, grad_step_time.dtype)
        .at[jnp.where(is_input, slot, n_slots)]
        .add(grad_step_time, mode="drop")
    )
    sorted_in = sort_inputs(spikes, layer.t_max)
    grad_layer = jax.tree.map(jnp.zeros_like, eqx.filter(layer, eqx.is_inexact_array))
    grad_layer = eqx.tree_at(
        lambda m: (m.weights.input, m.weights.recurrent),
        grad_layer,
        (
            jnp.where(layer.mask.input, grad_w.input, 0.0),
            jnp.where(layer.mask.recurrent, grad_w.recurrent, 0.0),
        ),
    )
    return grad_layer, input_cotangent(spikes, sorted_in, layer.t_max, grad_sorted)


_trajectory.def_fwd(_trajectory_fwd)
_trajectory.def_bwd(_trajectory_bwd)


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

    The carried neurons' cotangents are $-\tau\lambda$ (see [`eqsnn.AdjointState`][]); the
    carried time and the cached crossings get none (the jump at a spike holds the
    dependence of its time on the state). The weights get dense cotangents with one
    non-zero row; the sorted input times one non-zero entry, at the input processed here.
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


def _stepwise(layer, spikes: Spikes) -> Spikes:
    """The layer's forward with the custom VJP on each event step, autodiff elsewhere."""
    inputs: SortedInputs = sort_inputs(spikes, layer.t_max)
    weights = layer.effective_weights()
    init = initial_state(layer.size, weights.input.dtype, layer.params)

    def body(state, _):
        # Integer leaves (the input head, sorted indices) carry (float0) tangents inside a
        # differentiated scan, which `eqx.filter_custom_vjp` rejects; they have no gradient.
        arg = (state, weights, inputs)
        diff, ints = eqx.partition(arg, eqx.is_inexact_array)
        arg = eqx.combine(diff, jax.lax.stop_gradient(ints))
        return _step(arg, layer.params, layer.solver, layer.t_max, layer.mask)

    final, events = jax.lax.scan(body, init, None, length=spikes.n_slots + layer.n_spikes)
    return _collect(layer, final, events)


class RecurrentEventPropLIF(RecurrentLIF):
    r"""A recurrent LIF layer whose gradients come from the EventProp adjoint.

    The forward pass is that of [`eqsnn.RecurrentLIF`][] (same spikes, bit for bit). The
    backward pass is EventProp (Wunderlich & Pehle, 2021) over the events the loop
    recorded, walked in reverse: the adjoint $(\lambda_V, \lambda_I)$ of all neurons flows
    back in closed form between events ([`eqsnn.adjoint_lif_exponential_flow`][]), jumps at
    each spike of a neuron $j$ (reset and recurrent term through $W^\mathrm{rec}_{j\cdot}$,
    [`eqsnn.adjoint_transition_with_recurrence`][]), and the gradients are read off at the
    events:

    $$
    \frac{\partial L}{\partial W^\mathrm{rec}_{jn}} = -\tau_\mathrm{syn}
        \sum_{\text{spikes of } j} \lambda_{I,n}^+, \qquad
    \frac{\partial L}{\partial W^\mathrm{in}_{in}} = -\tau_\mathrm{syn}
        \sum_{\text{inputs } i} \lambda_{I,n}, \qquad
    \frac{\partial L}{\partial t_k} = \sum_n W^\mathrm{in}_{in}\,(\lambda_{V,n} - \lambda_{I,n}).
    $$

    The forward pass stores only the event record, not the crossing solver's computation
    graph. Gradients equal those of autodiff through [`eqsnn.RecurrentLIF`][] up to
    rounding, reach the input and recurrent weights (masked-out entries get exactly zero)
    and the input spike times. Losses may depend on the output spikes' `time` and
    `current`; empty slots get zero gradient whatever the loss does with their `+inf`
    times. Reverse mode only (`jax.grad`, `jax.vjp`); use [`eqsnn.RecurrentLIF`][] for
    forward mode.

    **Arguments:** as [`eqsnn.RecurrentLIF`][], plus

    - `wrap_only_step`: if `False` (default), one custom VJP covers the whole event
      trajectory (the backward pass is one reverse scan over the recorded events); if
      `True`, each step of the event loop has its own custom VJP (the jump at its event
      and the flow back to the previous one) and JAX's autodiff chains them. Both give
      the same gradients up to rounding. `True` keeps every step's state for the backward
      pass and accumulates dense weight cotangents at every step, so `False` is cheaper;
      its compiled forward may also differ from that of [`eqsnn.RecurrentLIF`][] in the
      last bit of the spike times. Not with `max_spikes_per_neuron`.

    With `max_spikes_per_neuron` (feed-forward populations, see [`eqsnn.RecurrentLIF`][])
    each population is simulated by the window scan and differentiated by the closed-form
    adjoint of [`eqsnn.EventPropLIF`][]; the populations are chained by autodiff.

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.RecurrentEventPropLIF(
        2, [4, 3], n_spikes=12, t_max=0.05, key=jax.random.PRNGKey(0), mean=[2.0, 1.0], std=0.5
    )
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))


    def loss(layer):
        out = layer(spikes)
        return jnp.sum(jnp.where(out.valid, out.time, 0.0))


    grads = eqx.filter_grad(loss)(layer)
    ```
    """

    wrap_only_step: bool = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        layers,
        n_spikes: int,
        t_max: float,
        params: LIFParameters | None = None,
        *,
        key: PRNGKeyArray,
        mean=0.5,
        std=2.0,
        wrap_only_step: bool = False,
        duplication: int | None = None,
        solver: AbstractCrossingSolver | None = None,
        connectivity: Connectivity | ConnectivityMask = Connectivity.LAYERED,
        overflow: Overflow = Overflow.WARN,
        max_spikes_per_neuron: int | Sequence[int] | None = None,
    ):
        who = type(self).__name__
        if not isinstance(wrap_only_step, bool):
            raise TypeError(f"{who}: `wrap_only_step` must be a bool, got {wrap_only_step!r}.")
        if wrap_only_step and max_spikes_per_neuron is not None:
            raise ValueError(
                f"{who}: `wrap_only_step=True` wraps the steps of the global event loop; "
                f"`max_spikes_per_neuron`={max_spikes_per_neuron!r} replaces that loop by the "
                "window scan per population. Give one or the other."
            )
        super().__init__(
            in_size,
            layers,
            n_spikes,
            t_max,
            params,
            key=key,
            mean=mean,
            std=std,
            duplication=duplication,
            solver=solver,
            connectivity=connectivity,
            overflow=overflow,
            max_spikes_per_neuron=max_spikes_per_neuron,
        )
        self.wrap_only_step = wrap_only_step

    def __call__(self, spikes: Spikes, *, key: PRNGKeyArray | None = None) -> Spikes:
        """Simulate the layer for one sample of input spikes (`key` is unused)."""
        who = layer_name(self)
        spikes = check_input(spikes, self.in_size, who)
        layer = check_layer_weights(self, who)
        # Integer leaves computed by a differentiated upstream layer arrive as (float0-)
        # perturbed values, which `eqx.filter_custom_vjp` rejects; they carry no gradient.
        spikes = eqx.tree_at(lambda s: (s.idx, s.dropped), spikes, replace_fn=jax.lax.stop_gradient)
        return with_sources(compiled(_simulate, layer, spikes), self.size)


def _simulate(layer: RecurrentEventPropLIF, spikes: Spikes) -> Spikes:
    """The window scan per population with a budget, else the global loop's custom VJP."""
    if layer.max_spikes_per_neuron is not None:
        return layer._simulate_populations(spikes, eventprop=True)
    if layer.wrap_only_step:
        return _stepwise(layer, spikes)
    return _trajectory((layer, spikes))
