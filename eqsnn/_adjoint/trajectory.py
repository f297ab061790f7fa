r"""The EventProp backward pass of the interval scan: reverse scan over input intervals.

The forward pass ([`eqsnn.IntervalScan`][]) scans over the intervals $[t_k, t_{k+1})$ between
consecutive input spikes and records, per interval and neuron, the times, currents and
occurrence of up to `max_spikes_per_interval` spikes: shape `(k, m, n)`. That record is all
the adjoint needs. The backward pass walks the intervals in reverse, all neurons in
parallel: from $\lambda(t_{k+1})$ it flows back to each recorded spike, applies the jump
there ([`eqsnn.eventprop.adjoint_transition_without_recurrence`][]), and flows back to
$t_k$, where the input spike's weight and time gradients are read off
([`eqsnn.eventprop.adjoint_input_transition`][]).
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._engine.interval_scan import IntervalSpikes
from .._flow import check_lif
from .._params import LIFParameters
from .transitions import (
    LIF_ONLY,
    AdjointState,
    adjoint_lif_exponential_flow,
    adjoint_transition_without_recurrence,
)


def step_bwd(
    params: LIFParameters,
    adjoint: AdjointState,
    t0: Float[Array, ""],
    t1: Float[Array, ""],
    spikes: IntervalSpikes,
    grad_time: Float[Array, "m n"],
    grad_current: Float[Array, "m n"],
) -> tuple[AdjointState, Float[Array, " n"]]:
    r"""Integrate the adjoint backwards over one input interval $[t_0, t_1)$.

    Starting from $\lambda(t_1)$, the adjoint flows back to the latest spike in the
    interval, jumps there, flows to the previous one, and so on down to $t_0$. Spike slots
    that are not `found` are skipped. A neuron that crossed again after its budget (`lost`)
    restarted from $v_\mathrm{reset}$ at its last lost crossing $s$: there $\lambda_V$ drops to
    0 ($\lambda_I$ is continuous), and $\partial L/\partial s$ goes to the time and the
    current of its last recorded spike, on which $s$ depends. A spike at the very start of
    the interval (a neuron that entered it at threshold) is pinned to $t_0$: its time
    gradient goes to $t_0$, as in autodiff.

    **Arguments:**

    - `params`: the neuron parameters.
    - `adjoint`: $\lambda(t_1)$, shape `(n,)`.
    - `t0`, `t1`: the interval's ends in seconds.
    - `spikes`: the interval's spikes as recorded by the forward pass: `time`, `current`,
      `found`, each of shape `(m, n)`, slots in time order, and the lost crossings.
    - `grad_time`, `grad_current`: $\partial L/\partial t$ and $\partial L/\partial I$ of each
      slot, shape `(m, n)` (zero for slots that are not output).

    **Returns:** `(adjoint, pinned_grad)`: $\lambda(t_0^+)$, and the gradient that pinned
    spikes contribute to $t_0$, per neuron.
    """
    check_lif(
        params,
        "eqsnn.eventprop.step_bwd",
        LIF_ONLY,
    )
    flow = adjoint_lif_exponential_flow(params)
    before = jnp.concatenate([jnp.broadcast_to(t0, spikes.time[:1].shape), spikes.time[:-1]])
    pinned = spikes.time <= before
    now = jnp.broadcast_to(t1, spikes.time[0].shape)
    lost, lost_grad = spikes.lost, jnp.zeros_like(now)
    if lost is not None:  # the last lost crossing s: a reset to a constant at a moving time
        adjoint = flow(adjoint, jnp.where(lost, now - spikes.lost_time, 0.0))
        now = jnp.where(lost, spikes.lost_time, now)
        u_reset = params.v_reset - params.v_leak
        # dL/ds = -p_V(s+) du/dt(s+) with p_V = -tau_mem lambda_V; then lambda_V(s-) = 0.
        lost_grad = jnp.where(lost, adjoint.lambda_v * (spikes.lost_current - u_reset), 0.0)
        adjoint = AdjointState(jnp.where(lost, 0.0, adjoint.lambda_v), adjoint.lambda_i)
    pinned_grad = jnp.zeros_like(now)
    for j in reversed(range(spikes.time.shape[0])):
        found = spikes.found[j]
        adjoint = flow(adjoint, jnp.where(found, now - spikes.time[j], 0.0))
        now = jnp.where(found, spikes.time[j], now)
        extra_time = extra_current = jnp.zeros_like(now)
        if lost is not None and j == spikes.time.shape[0] - 1:
            # s = t_j + sigma(I(t_j)) (`lost_crossings` in `_engine/interval_scan.py`):
            # dL/ds is a loss term of this spike's time and, through beta, of its current.
            extra_time, extra_current = lost_grad, spikes.lost_sensitivity * lost_grad
        adjoint, pinned_j = adjoint_transition_without_recurrence(
            params,
            adjoint,
            spikes.current[j],
            grad_time[j] + extra_time,
            grad_current[j] + extra_current,
            found,
            pinned[j],
        )
        pinned_grad = pinned_grad + pinned_j
    return flow(adjoint, now - t0), pinned_grad


def adjoint_trajectory(
    params: LIFParameters,
    start: Float[Array, " k"],
    end: Float[Array, " k"],
    spikes: IntervalSpikes,
    grad_time: Float[Array, "k m n"],
    grad_current: Float[Array, "k m n"],
) -> tuple[AdjointState, Float[Array, "k n"]]:
    r"""Run [`eqsnn.eventprop.step_bwd`][] over all input intervals in reverse, from
    $\lambda = 0$ at the end.

    **Arguments:**

    - `params`: the neuron parameters.
    - `start`, `end`: the intervals $[t_k, t_{k+1})$, in time order; the last ends at
      `t_max`.
    - `spikes`: the forward pass's spike record, arrays of shape `(k, m, n)`.
    - `grad_time`, `grad_current`: loss gradients of each recorded spike, `(k, m, n)`.

    **Returns:** `(adjoint, pinned_grad)`: $\lambda(t_k)$ at every input spike (an
    [`eqsnn.eventprop.AdjointState`][] with arrays of shape `(k, n)`), and the pinned-spike
    gradients of every $t_k$, `(k, n)`.
    """
    check_lif(
        params,
        "eqsnn.eventprop.adjoint_trajectory",
        LIF_ONLY,
    )
    n = spikes.time.shape[-1]
    zeros = jnp.zeros(n, spikes.time.dtype)

    def body(adjoint, x):
        t0, t1, interval, g_time, g_current = x
        adjoint, pinned = step_bwd(params, adjoint, t0, t1, interval, g_time, g_current)
        return adjoint, (adjoint, pinned)

    xs = (start, end, spikes, grad_time, grad_current)
    _, (adjoints, pinned) = jax.lax.scan(body, AdjointState(zeros, zeros), xs, reverse=True)
    return adjoints, pinned
