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
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._adjoint import (
    AdjointState,
    adjoint_input_transition,
    adjoint_lif_exponential_flow,
    adjoint_transition_with_recurrence,
)
from ._events import Overflow, check_input, sort_inputs
from ._params import LIFParameters
from ._recurrent import EventKind, collect_events, trajectory, transition_with_recurrence
from ._recurrent_lif import Connectivity, ConnectivityMask, RecurrentLIF
from ._spikes import Spikes
from ._weights import RecurrentWeights
from .solvers import AbstractCrossingSolver


def _zeros_if_none(grad, like):
    return jnp.zeros_like(like) if grad is None else grad


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
    )
    pending = jnp.sum(final.crossing_time < layer.t_max, dtype=jnp.int32)
    out = collect_events(events, layer.n_spikes, pending, layer.overflow, type(layer).__name__)
    return out, events


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
    grad_time = jnp.where(kept, _zeros_if_none(grad_out.time, time), 0.0)
    grad_current = jnp.where(kept, _zeros_if_none(grad_out.current, current), 0.0)
    return pull((grad_time, grad_current))


def adjoint_events(
    params: LIFParameters, weights: RecurrentWeights, events, grad_time, grad_current, t_max: float
):
    r"""Walk the recorded events in reverse, from $\lambda(t_\mathrm{max}) = 0$.

    **Arguments:**

    - `params`: the neuron parameters.
    - `weights`: the effective (masked) weights of the layer.
    - `events`: the recorded [`Event`][eqsnn._recurrent.Event]s, arrays of shape `(steps,)`.
    - `grad_time`, `grad_current`: $\partial L/\partial t$ and $\partial L/\partial I$ of each
      event (zero for events that are not output spikes), shape `(steps,)`.
    - `t_max`: the simulation horizon.

    **Returns:** `(grad_weights, grad_input_time)`: the gradient w.r.t. `weights` (a
    [`eqsnn.RecurrentWeights`][]) and, per step, the gradient w.r.t. the time of the input
    spike processed there (zero at other steps).
    """
    flow = adjoint_lif_exponential_flow(params)
    n = weights.input.shape[1]
    dtype = weights.input.dtype
    zeros = jnp.zeros(n, dtype)

    def body(carry, x):
        adjoint, now, grad_in, grad_rec = carry
        time, kind, idx, current, g_time, g_current = x
        happens = kind != EventKind.NONE
        event_time = jnp.where(happens, time, now)
        adjoint = flow(adjoint, now - event_time)
        j = jnp.maximum(idx, 0)
        # Spike of neuron j: adjoint jump and recurrent weight gradient of row j.
        is_spike = kind == EventKind.SPIKE
        jumped, grad_row = adjoint_transition_with_recurrence(
            params, adjoint, j, current, g_time, g_current, weights.recurrent
        )
        grad_rec = grad_rec.at[j].add(jnp.where(is_spike, grad_row, 0.0))
        # Input spike of input j: adjoint continuous; input weight and input time gradients.
        is_input = kind == EventKind.INPUT
        in_row, in_time = adjoint_input_transition(params, adjoint, weights.input[j])
        grad_in = grad_in.at[j].add(jnp.where(is_input, in_row, 0.0))
        adjoint = jax.tree.map(lambda a, b: jnp.where(is_spike, a, b), jumped, adjoint)
        return (adjoint, event_time, grad_in, grad_rec), jnp.where(is_input, in_time, 0.0)

    init = (
        AdjointState(zeros, zeros),
        jnp.asarray(t_max, dtype),
        jnp.zeros_like(weights.input),
        jnp.zeros_like(weights.recurrent),
    )
    xs = (events.time, events.kind, events.idx, events.current, grad_time, grad_current)
    (_, _, grad_in, grad_rec), grad_input_time = jax.lax.scan(body, init, xs, reverse=True)
    return RecurrentWeights(input=grad_in, recurrent=grad_rec), grad_input_time


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

    def sorted_time(time):
        return sort_inputs(eqx.tree_at(lambda s: s.time, spikes, time), layer.t_max).time

    sorted_in = sort_inputs(spikes, layer.t_max)
    _, pull = jax.vjp(sorted_time, spikes.time)
    (grad_in_time,) = pull(jnp.where(sorted_in.valid, grad_sorted, 0.0))
    grad_layer = jax.tree.map(jnp.zeros_like, eqx.filter(layer, eqx.is_inexact_array))
    grad_layer = eqx.tree_at(
        lambda m: (m.weights.input, m.weights.recurrent),
        grad_layer,
        (
            jnp.where(layer.mask.input, grad_w.input, 0.0),
            jnp.where(layer.mask.recurrent, grad_w.recurrent, 0.0),
        ),
    )
    grad_spikes = eqx.tree_at(
        lambda s: (s.time, s.current),
        eqx.filter(spikes, eqx.is_inexact_array),
        (grad_in_time, jnp.zeros_like(spikes.current)),
    )
    return grad_layer, grad_spikes


_trajectory.def_fwd(_trajectory_fwd)
_trajectory.def_bwd(_trajectory_bwd)


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

    - `wrap_only_step`: must be `False` (one custom VJP over the whole trajectory). A
      per-step custom VJP is not implemented for the recurrent layer; `True` raises
      `NotImplementedError`.

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
        overflow: Overflow = Overflow.COUNT,
    ):
        who = type(self).__name__
        if not isinstance(wrap_only_step, bool):
            raise TypeError(f"{who}: `wrap_only_step` must be a bool, got {wrap_only_step!r}.")
        if wrap_only_step:
            raise NotImplementedError(
                f"{who}: wrap_only_step=True (a custom VJP per event step) is not implemented "
                "for the recurrent layer; use wrap_only_step=False (one custom VJP over the "
                "whole event trajectory, same gradients)."
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
        )
        self.wrap_only_step = wrap_only_step

    def __call__(self, spikes: Spikes, *, key: PRNGKeyArray | None = None) -> Spikes:
        """Simulate the layer for one sample of input spikes (`key` is unused)."""
        spikes = check_input(spikes, self.in_size, type(self).__name__)
        # Integer leaves computed by a differentiated upstream layer arrive as (float0-)
        # perturbed values, which `eqx.filter_custom_vjp` rejects; they carry no gradient.
        spikes = eqx.tree_at(lambda s: (s.idx, s.dropped), spikes, replace_fn=jax.lax.stop_gradient)
        return _trajectory((self, spikes))
