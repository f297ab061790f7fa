r"""EventProp on the interval scan: on the whole trajectory, or on each interval step.

The trajectory version records the spikes of every interval in the forward pass and walks
the adjoint back over them in closed form ([`eqsnn.eventprop.adjoint_trajectory`][]). The
per-step version gives each step of the scan its own custom VJP
([`eqsnn.eventprop.step_bwd`][]) and lets JAX's transpose of the scan chain them.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._engine.base import SimulationConfig
from .._engine.buffers import (
    SortedInputs,
    input_cotangent,
    record_cotangents,
    sort_inputs,
    zeros_if_none,
)
from .._engine.interval_scan import (
    IntervalScan,
    IntervalState,
    collect_intervals,
    evolve_interval,
    initial_state,
    scan_intervals,
)
from .._spikes import Spikes
from .trajectory import adjoint_trajectory, step_bwd
from .transitions import AdjointState, adjoint_input_transition

# --- Custom VJP on the whole trajectory -------------------------------------------------


class _Static(eqx.Module):
    """The array-free settings of one interval-scan simulation (a custom VJP argument)."""

    config: SimulationConfig
    engine: IntervalScan


def interval_scan_eventprop(
    engine: IntervalScan, per_step: bool, config: SimulationConfig, weights, spikes: Spikes
) -> Spikes:
    """The interval scan with EventProp gradients, on the trajectory or on each step."""
    if per_step:
        return _stepwise(engine, config, weights, spikes)
    return _trajectory((weights, spikes), _Static(config=config, engine=engine))


@eqx.filter_custom_vjp
def _trajectory(weights_and_spikes, static: _Static):
    weights, spikes = weights_and_spikes
    return static.engine.simulate(static.config, weights, spikes)


def _trajectory_fwd(perturbed, weights_and_spikes, static: _Static):
    del perturbed
    weights, spikes = weights_and_spikes
    config = static.config
    sorted_in = sort_inputs(spikes, config.t_max)
    found, lost = scan_intervals(
        weights, sorted_in, config.params, config.solver, static.engine.max_spikes_per_interval
    )
    out = collect_intervals(found, lost, config.n_spikes, config.t_max)
    return out, (sorted_in, found)


def _trajectory_bwd(residuals, grad_out, perturbed, weights_and_spikes, static: _Static):
    del perturbed
    weights, spikes = weights_and_spikes
    config = static.config
    sorted_in, found = residuals
    zero = jnp.zeros((), jnp.int32)
    grad_time, grad_current = record_cotangents(
        lambda f: collect_intervals(f, zero, config.n_spikes, config.t_max), found, grad_out
    )
    adjoint, pinned = adjoint_trajectory(
        config.params, sorted_in.time, sorted_in.end, found, grad_time, grad_current
    )
    rows = jnp.where(sorted_in.valid[:, None], weights[sorted_in.idx], 0.0)
    grad_rows, grad_sorted = jax.vmap(adjoint_input_transition, in_axes=(None, 0, 0))(
        config.params, adjoint, rows
    )
    grad_sorted = grad_sorted + jnp.sum(pinned, axis=-1)
    grad_w = (
        jnp.zeros_like(weights)
        .at[sorted_in.idx]
        .add(jnp.where(sorted_in.valid[:, None], grad_rows, 0.0))
    )
    return grad_w, input_cotangent(spikes, sorted_in, config.t_max, grad_sorted)


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
    [`eqsnn.eventprop.AdjointState`][]); the interval ends get the literal time derivatives."""
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


def _stepwise(engine: IntervalScan, config: SimulationConfig, weights, spikes: Spikes) -> Spikes:
    """The interval scan with the custom VJP on each interval step, autodiff elsewhere."""
    sorted_in: SortedInputs = sort_inputs(spikes, config.t_max)
    rows = jnp.where(sorted_in.valid[:, None], weights[sorted_in.idx], 0.0)

    def body(state: IntervalState, x):
        t0, t1, w = x
        u, i, more, out = _step(
            (state.u, state.i, w, t0, t1),
            config.params,
            config.solver,
            engine.max_spikes_per_interval,
        )
        return IntervalState(u=u, i=i, lost=state.lost + more), out

    init = initial_state(weights.shape[1], rows.dtype)
    final, found = jax.lax.scan(body, init, (sorted_in.time, sorted_in.end, rows))
    return collect_intervals(found, final.lost, config.n_spikes, config.t_max)
