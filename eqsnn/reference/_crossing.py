r"""Integration between events: the ODE solve up to the next threshold crossing.

`advance` integrates the network from one state to the first threshold crossing before a
given time (or to that time) with `diffrax.diffeqsolve`, a `diffrax.Event` on
$\max_n (V_{n} - v_{\mathrm{th},n})$ and an `optimistix.Newton` root finder, and re-solves
where a voltage peak above threshold hides inside one step. Every constant is per neuron,
and a refractory neuron's voltage is held ($dV/dt = 0$) while its current integrates. The
event loop around it is in `_simulate.py`.
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jaxtyping import Array, Float

from ._vector_field import lif_vector_field

_COINCIDENCE_FACTOR = 100.0
"""Neurons within `factor * (atol + rtol * |v_th|)` of threshold at a crossing spike too."""

_MAX_RESOLVES = 100
"""Safety bound on the re-solves that locate one crossing (hidden peaks)."""

_ROOT_ULPS = 16.0
"""The root finder's voltage tolerance is at least the voltage change over this many ulps
of time (see `_root_atol`)."""


class Constants(NamedTuple):
    """The LIF parameters, one value per (padded) neuron, as arrays so that they are traced
    rather than compiled in."""

    tau_syn: Float[Array, " n"]
    tau_mem: Float[Array, " n"]
    v_th: Float[Array, " n"]
    v_leak: Float[Array, " n"]
    v_reset: Float[Array, " n"]


class SolverConfig(NamedTuple):
    """Static (hashable) solver settings shared by every segment."""

    solver: diffrax.AbstractAdaptiveSolver
    rtol: float
    atol: float
    dt0: float | None
    max_steps: int


class State(NamedTuple):
    """Host-side state of the network at time `t`: voltages `v`, currents `i` and `free`,
    1 where the voltage evolves and 0 where it is held at `v_reset` (refractory)."""

    t: float
    v: np.ndarray
    i: np.ndarray
    free: np.ndarray


class _Segment(NamedTuple):
    """Accepted steps of one solve (first row: the initial state), its outcome and the
    `free` mask it was solved with."""

    ts: np.ndarray
    vs: np.ndarray
    is_: np.ndarray
    event: bool
    free: np.ndarray


class _Args(NamedTuple):
    """The arguments of the vector field: the constants and the `free` mask."""

    consts: Constants
    free: Float[Array, " n"]


def _vector_field(t, y, args: _Args):
    """The LIF vector field with the voltage of refractory neurons held ($dV/dt = 0$)."""
    dv, di = lif_vector_field(t, y, args.consts)
    return dv * args.free, di


def _threshold_condition(t, y, args: _Args, **kwargs):
    del t, kwargs
    return jnp.max(y[0] - args.consts.v_th)


def _root_atol(t0, t1, v0, i0, free, consts, config):
    r"""Voltage tolerance of the event's root finder: `atol`, or the finest the condition
    can resolve where that is coarser.

    Newton stops once $|V - v_\mathrm{th}| <$ `atol`. One ulp of $t$ moves $V$ by
    $|\dot V|\,\varepsilon\,|t|$, so on a steep slope (strong recurrent excitation:
    $\dot V \sim 10^6\,$V/s) no time may meet `atol` and Newton would run out of steps.
    At a crossing $V = v_\mathrm{th}$, so the slope there is
    $(I - \theta) / \tau_\mathrm{mem} \le
    \max_n (\max(I_{0,n}, 0) + \theta_n) / \tau_{\mathrm{mem},n}$ over the free neurons,
    with $\theta = v_\mathrm{th} - v_\mathrm{leak}$ (currents only decay); with this
    tolerance the crossing time is still found to within about `_ROOT_ULPS` ulps of $t$
    wherever the crossing neuron's slope is of the order of this bound.
    """
    theta = consts.v_th - consts.v_leak
    slope = jnp.max(free * ((jnp.maximum(i0, 0.0) + theta) / consts.tau_mem))
    ulp = jnp.finfo(v0.dtype).eps * jnp.maximum(jnp.abs(t0), jnp.abs(t1))
    return jnp.maximum(config.atol, _ROOT_ULPS * slope * ulp)


def integrate(t0, t1, v0, i0, free, consts, config, *, saveat, event=None, throw=True):
    """`diffrax.diffeqsolve` of the LIF vector field from `(t0, v0, i0)` to `t1` with the
    reference's adaptive controller (tolerances of `config`); the voltage is held where
    `free` is 0."""
    controller = diffrax.PIDController(rtol=config.rtol, atol=config.atol, norm=optx.max_norm)
    return diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        config.solver,
        t0,
        t1,
        config.dt0,
        (v0, i0),
        args=_Args(consts, free),
        stepsize_controller=controller,
        saveat=saveat,
        event=event,
        max_steps=config.max_steps,
        throw=throw,
    )


@eqx.filter_jit
def _solve_jit(t0, t1, v0, i0, free, consts, config):
    atol = _root_atol(t0, t1, v0, i0, free, consts, config)
    root_finder = optx.Newton(rtol=config.rtol, atol=atol, norm=optx.max_norm)
    event = diffrax.Event(_threshold_condition, root_finder)
    saveat = diffrax.SaveAt(t0=True, steps=True)
    sol = integrate(t0, t1, v0, i0, free, consts, config, saveat=saveat, event=event, throw=False)
    n_saved = sol.stats["num_accepted_steps"] + 1
    return sol.ts, sol.ys, n_saved, sol.result


def coincidence_tol(consts: Constants, config: SolverConfig) -> np.ndarray:
    """Voltage tolerance of each neuron within which neurons count as crossing at the same
    time."""
    return _COINCIDENCE_FACTOR * (config.atol + config.rtol * np.abs(np.asarray(consts.v_th)))


def _solve(state: State, t1: float, consts: Constants, config: SolverConfig) -> _Segment:
    """Integrate from `state` to `t1`, stopping early at the first sign change of
    `max(V - v_th)` found at a step end."""
    dtype = consts.v_th.dtype
    ts, (vs, is_), n_saved, result = _solve_jit(
        jnp.asarray(state.t, dtype),
        jnp.asarray(t1, dtype),
        jnp.asarray(state.v),
        jnp.asarray(state.i),
        jnp.asarray(state.free),
        consts,
        config,
    )
    event = bool(result == diffrax.RESULTS.event_occurred)
    if not (event or bool(result == diffrax.RESULTS.successful)):
        raise RuntimeError(
            f"simulate_diffrax: the ODE solve from t={state.t!r} to t={t1!r} failed "
            f"(largest synaptic current {float(np.max(state.i)):.3g}): "
            f"{diffrax.RESULTS[result]} (`max_steps`, `rtol` and `atol` are arguments of "
            "simulate_diffrax)."
        )
    n = int(n_saved)
    return _Segment(np.asarray(ts[:n]), np.asarray(vs[:n]), np.asarray(is_[:n]), event, state.free)


def _peak_offsets(u: np.ndarray, i: np.ndarray, consts: Constants) -> np.ndarray:
    r"""Time after which $V$ peaks, from $V - v_\mathrm{leak} = u$ and current `i`.

    The closed form is used only to *detect* a peak that the step ends miss. $dV/dt = 0$
    exactly where $V - v_\mathrm{leak} = I$, and it is a maximum iff $I > 0$ there. With
    $k = \tau_s / (\tau_s - \tau_m)$, $u(t) = (u_0 - k I_0) e^{-t/\tau_m} + k I_0 e^{-t/\tau_s}$
    is stationary at $t^* = \ln(B / A) / (1/\tau_s - 1/\tau_m)$ with $A = u_0 - k I_0$,
    $B = (1 - k) I_0$; for $\tau_s = \tau_m = \tau$, $t^* = \tau (1 - u_0 / I_0)$. The
    constants are per neuron (the last axis). Returns `nan` where there is no maximum.
    """
    tau_s, tau_m = np.asarray(consts.tau_syn), np.asarray(consts.tau_mem)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        equal = tau_m * (1.0 - u / i)
        k = tau_s / (tau_s - tau_m)
        unequal = np.log(((1.0 - k) * i) / (u - k * i)) / (1.0 / tau_s - 1.0 / tau_m)
    offset = np.where(tau_s == tau_m, equal, unequal)
    return np.where(i > 0, offset, np.nan)


def _first_hidden_peak(seg: _Segment, consts: Constants) -> tuple[int, float] | None:
    """Earliest step whose interior holds a voltage maximum above threshold that both step
    ends miss (free neurons only); returns the step index and the earliest such peak time."""
    v_th, v_leak = np.asarray(consts.v_th), np.asarray(consts.v_leak)
    t_start, t_end = seg.ts[:-1, None], seg.ts[1:, None]
    offset = _peak_offsets(seg.vs[:-1] - v_leak, seg.is_[:-1], consts)
    with np.errstate(invalid="ignore", over="ignore"):
        t_peak = t_start + offset
        v_peak = v_leak + seg.is_[:-1] * np.exp(-offset / np.asarray(consts.tau_syn))
        hidden = (
            (seg.free > 0)
            & (offset > 0)
            & (t_peak < t_end)
            & (v_peak >= v_th)
            & (seg.vs[:-1] < v_th)
            & (seg.vs[1:] < v_th)
        )
    steps = np.flatnonzero(hidden.any(axis=1))
    if steps.size == 0:
        return None
    k = int(steps[0])
    return k, float(np.min(t_peak[k][hidden[k]]))


def advance(
    state: State, t_end: float, consts: Constants, config: SolverConfig
) -> tuple[State, bool]:
    """Integrate to the first threshold crossing before `t_end`, or to `t_end`.

    Diffrax only compares the sign of the condition at step ends, so a voltage that rises
    above threshold and falls back within one step is missed. After each solve every step
    is checked for such a hidden peak (closed form of the peak time); if one is found, the
    solve is redone from the start of that step to the peak time, so that the crossing is
    then located by the ODE solution and the root finder. Returns the state at the stop
    and whether it is a crossing.
    """
    tol = coincidence_tol(consts, config)
    t1 = t_end
    for _ in range(_MAX_RESOLVES):
        seg = _solve(state, t1, consts, config)
        peak = _first_hidden_peak(seg, consts)
        if peak is not None:
            k, t1 = peak
            state = State(float(seg.ts[k]), seg.vs[k], seg.is_[k], state.free)
            continue
        stop = State(float(seg.ts[-1]), seg.vs[-1], seg.is_[-1], state.free)
        crossed = seg.event or bool(np.any(stop.v >= np.asarray(consts.v_th) - tol))
        if crossed or t1 >= t_end:
            return stop, crossed
        # The ODE did not confirm the closed-form peak (below tolerance): carry on.
        state, t1 = stop, t_end
    raise RuntimeError(
        f"simulate_diffrax: no consistent threshold crossing after {_MAX_RESOLVES} "
        f"re-solves near t={state.t!r}; try other `rtol`/`atol`."
    )
