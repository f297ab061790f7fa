r"""The feed-forward LIF layer with EventProp gradients, as Equinox custom VJPs."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._adjoint import AdjointState, adjoint_input_transition
from ._adjoint_trajectory import adjoint_trajectory, step_bwd
from ._checks import check_layer_weights, layer_name
from ._eventprop_parallel import eventprop_feedforward
from ._events import (
    Overflow,
    SortedInputs,
    check_input,
    compiled,
    input_cotangent,
    sort_inputs,
    zeros_if_none,
)
from ._feedforward import (
    IntervalSpikes,
    collect_intervals,
    evolve_interval,
    scan_intervals,
)
from ._lif import LIF, simulate_layer
from ._params import LIFParameters
from ._spikes import Spikes, with_sources
from .solvers import AbstractCrossingSolver

# --- Custom VJP on the whole trajectory -------------------------------------------------


@eqx.filter_custom_vjp
def _trajectory(layer_and_spikes):
    layer, spikes = layer_and_spikes
    return simulate_layer(layer, spikes)  # the sequential engine (a per-interval budget)


def _trajectory_fwd(perturbed, layer_and_spikes):
    del perturbed
    layer, spikes = layer_and_spikes
    sorted_in = sort_inputs(spikes, layer.t_max)
    found, overflowed = scan_intervals(
        layer.weights.input, sorted_in, layer.params, layer.solver, layer.max_spikes_per_interval
    )
    out = collect_intervals(
        found, overflowed, layer.n_spikes, layer.t_max, layer.overflow, type(layer).__name__
    )
    return out, (sorted_in, found)


def _output_grads(layer, found: IntervalSpikes, grad_out: Spikes):
    """Map the cotangents of the output buffer onto the recorded spikes `(k, m, n)`.

    Empty output slots (`idx == -1`, time `+inf`) may carry NaN/inf cotangents from a user
    loss evaluated on `+inf`; they are masked to zero here.
    """

    def select(time, current):
        out = collect_intervals(
            eqx.tree_at(lambda f: (f.time, f.current), found, (time, current)),
            jnp.zeros((), jnp.int32),
            layer.n_spikes,
            layer.t_max,
            Overflow.COUNT,
            type(layer).__name__,
        )
        return (out.time, out.current), out.idx

    (time, current), pull, idx = jax.vjp(select, found.time, found.current, has_aux=True)
    kept = idx >= 0
    grad_time = jnp.where(kept, zeros_if_none(grad_out.time, time), 0.0)
    grad_current = jnp.where(kept, zeros_if_none(grad_out.current, current), 0.0)
    return pull((grad_time, grad_current))


def _trajectory_bwd(residuals, grad_out, perturbed, layer_and_spikes):
    del perturbed
    layer, spikes = layer_and_spikes
    sorted_in, found = residuals
    grad_time, grad_current = _output_grads(layer, found, grad_out)
    adjoint, pinned = adjoint_trajectory(
        layer.params, sorted_in.time, sorted_in.end, found, grad_time, grad_current
    )
    rows = jnp.where(sorted_in.valid[:, None], layer.weights.input[sorted_in.idx], 0.0)
    grad_rows, grad_sorted = jax.vmap(adjoint_input_transition, in_axes=(None, 0, 0))(
        layer.params, adjoint, rows
    )
    grad_sorted = grad_sorted + jnp.sum(pinned, axis=-1)
    grad_w = (
        jnp.zeros_like(layer.weights.input)
        .at[sorted_in.idx]
        .add(jnp.where(sorted_in.valid[:, None], grad_rows, 0.0))
    )
    grad_layer = eqx.tree_at(
        lambda m: m.weights.input, eqx.filter(layer, eqx.is_inexact_array), grad_w
    )
    return grad_layer, input_cotangent(spikes, sorted_in, layer.t_max, grad_sorted)


_trajectory.def_fwd(_trajectory_fwd)
_trajectory.def_bwd(_trajectory_bwd)


# --- Custom VJP on each interval step ---------------------------------------------------


@eqx.filter_custom_vjp
def _step(state_and_input, params, solver, max_spikes_per_interval):
    """Apply the input at `t0` (adds `w`), then evolve to `t1`: one interval."""
    u, i, w, t0, t1 = state_and_input
    return evolve_interval(params, solver, max_spikes_per_interval, u, i + w, t0, t1)


def _step_fwd(perturbed, state_and_input, params, solver, max_spikes_per_interval):
    del perturbed
    out = _step.fn(state_and_input, params, solver, max_spikes_per_interval)
    return out, out


def _step_bwd(residuals, grad_out, perturbed, state_and_input, params, solver, m):
    r"""Per-step VJP: the cotangents of the carried state are $-\tau\lambda$ (see
    [`eqsnn.AdjointState`][]); the interval ends get the literal time derivatives."""
    del perturbed, solver, m
    u0, i0, w, t0, t1 = state_and_input
    u1, i1, _, spikes = residuals
    grad_u1, grad_i1, _, grad_spikes = grad_out
    adjoint1 = AdjointState(
        lambda_v=-zeros_if_none(grad_u1, u1) / params.tau_mem,
        lambda_i=-zeros_if_none(grad_i1, i1) / params.tau_syn,
    )
    adjoint0, pinned = step_bwd(
        params,
        adjoint1,
        t0,
        t1,
        spikes,
        zeros_if_none(grad_spikes.time, spikes.time),
        zeros_if_none(grad_spikes.current, spikes.current),
    )
    i0 = i0 + w
    # dL/dt0 = -p(t0).f(x0) + pinned and dL/dt1 = p(t1).f(x1), with p = (-tau_mem lambda_V,
    # -tau_syn lambda_I) and f the LIF vector field; summed over consecutive steps they give
    # the input-spike term sum_n W_n (lambda_V - lambda_I) of the trajectory version.
    grad_t0 = jnp.sum(adjoint0.lambda_v * (i0 - u0) - adjoint0.lambda_i * i0 + pinned)
    grad_t1 = jnp.sum(adjoint1.lambda_i * i1 - adjoint1.lambda_v * (i1 - u1))
    grad_u0 = -params.tau_mem * adjoint0.lambda_v
    grad_i0 = -params.tau_syn * adjoint0.lambda_i
    return grad_u0, grad_i0, grad_i0, grad_t0, grad_t1


_step.def_fwd(_step_fwd)
_step.def_bwd(_step_bwd)


def _stepwise(layer, spikes: Spikes) -> Spikes:
    """The layer's forward with the custom VJP on each interval step, autodiff elsewhere."""
    sorted_in: SortedInputs = sort_inputs(spikes, layer.t_max)
    rows = jnp.where(sorted_in.valid[:, None], layer.weights.input[sorted_in.idx], 0.0)
    zeros = jnp.zeros(layer.out_size, rows.dtype)

    def body(carry, x):
        u, i, overflowed = carry
        t0, t1, w = x
        u, i, more, out = _step(
            (u, i, w, t0, t1), layer.params, layer.solver, layer.max_spikes_per_interval
        )
        return (u, i, overflowed + more), out

    init = (zeros, zeros, jnp.zeros((), jnp.int32))
    (_, _, overflowed), found = jax.lax.scan(body, init, (sorted_in.time, sorted_in.end, rows))
    return collect_intervals(
        found, overflowed, layer.n_spikes, layer.t_max, layer.overflow, type(layer).__name__
    )


class EventPropLIF(LIF):
    r"""A feed-forward LIF layer whose gradients come from the EventProp adjoint.

    The forward pass is that of [`eqsnn.LIF`][] (same spikes, bit for bit). The backward
    pass is EventProp (Wunderlich & Pehle, 2021): instead of differentiating through the
    simulation, the adjoint $(\lambda_V, \lambda_I)$ is integrated backwards from
    $t_\mathrm{max}$ event by event, with its closed-form flow
    ([`eqsnn.adjoint_lif_exponential_flow`][]) and jumps at the output spikes
    ([`eqsnn.adjoint_transition_without_recurrence`][]), and the gradients are read off
    at the input spikes ([`eqsnn.adjoint_input_transition`][]):

    $$
    \frac{\partial L}{\partial W_{in}} = -\tau_\mathrm{syn}\sum_{t_k:\ \text{input } i}
        \lambda_{I,n}(t_k), \qquad
    \frac{\partial L}{\partial t_k} = \sum_n W_{in}\,(\lambda_{V,n} - \lambda_{I,n})(t_k).
    $$

    The forward pass stores only the spike record (times, currents, occurrence per input
    interval and neuron), not the root solver's computation graph. Gradients equal those of
    autodiff through [`eqsnn.LIF`][] up to rounding, for any number of spikes per neuron
    and any finite `v_reset`. They flow to the weights and to the input spike times, so
    `eqx.nn.Sequential` stacks of `EventPropLIF` train end to end. Losses may depend on the
    output spikes' `time` and `current`; empty slots get zero gradient whatever the loss
    does with their `+inf` times. See [EventProp](../concepts/eventprop.md).

    Like every custom VJP, the layer supports reverse mode (`jax.grad`, `jax.vjp`) but not
    forward mode (`jax.jvp`, `jax.jacfwd`); use [`eqsnn.LIF`][] for those.

    **Arguments:** as [`eqsnn.LIF`][], plus

    - `wrap_only_step`: if `False` (default), one custom VJP covers the whole trajectory
      (the backward pass is one closed-form adjoint); if `True`, each interval step of the
      sequential engine has its own custom VJP and JAX's autodiff chains them (this
      selects the sequential engine, with `max_spikes_per_interval` default 1). Both give
      the same gradients.

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.EventPropLIF(2, 3, n_spikes=6, t_max=0.05, key=jax.random.PRNGKey(0), mean=2.0)
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
        out_size: int,
        n_spikes: int,
        t_max: float,
        params: LIFParameters | None = None,
        *,
        key: PRNGKeyArray,
        mean: float = 0.5,
        std: float = 2.0,
        wrap_only_step: bool = False,
        duplication: int | None = None,
        solver: AbstractCrossingSolver | None = None,
        max_spikes_per_neuron: int | None = None,
        max_spikes_per_interval: int | None = None,
        overflow: Overflow = Overflow.WARN,
    ):
        if not isinstance(wrap_only_step, bool):
            raise TypeError(
                f"{type(self).__name__}: `wrap_only_step` must be a bool, got {wrap_only_step!r}."
            )
        if wrap_only_step and max_spikes_per_neuron is not None:
            raise ValueError(
                f"{type(self).__name__}: `wrap_only_step=True` wraps the steps of the "
                "sequential engine; it cannot be combined with `max_spikes_per_neuron` "
                f"(got {max_spikes_per_neuron!r}), whose parallel engine has one closed-form "
                "adjoint for the whole trajectory. Use `max_spikes_per_interval`."
            )
        if wrap_only_step and max_spikes_per_interval is None:
            max_spikes_per_interval = 1
        super().__init__(
            in_size,
            out_size,
            n_spikes,
            t_max,
            params,
            key=key,
            mean=mean,
            std=std,
            duplication=duplication,
            solver=solver,
            max_spikes_per_interval=max_spikes_per_interval,
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
        return with_sources(compiled(_simulate, layer, spikes), self.out_size)


def _simulate(layer: EventPropLIF, spikes: Spikes) -> Spikes:
    """The engine and custom VJP that the layer's budget selects."""
    if layer.max_spikes_per_interval is None:
        return eventprop_feedforward(layer.weights.input, spikes, layer)
    if layer.wrap_only_step:
        return _stepwise(layer, spikes)
    return _trajectory((layer, spikes))
