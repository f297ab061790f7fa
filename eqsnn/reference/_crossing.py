r"""Integration between events: the ODE solve up to the next threshold crossing.

`advance` integrates the network from one state to the first threshold crossing before a
given time (or to that time) with `diffrax.diffeqsolve`, a `diffrax.Event` on
$\max_n (V_{n} - \vartheta_{n})$ (the threshold $\vartheta$ is $v_\mathrm{th}$, or
$v_\mathrm{th} + a$ for the ALIF) and an `optimistix.Newton` root finder, and re-solves
where a peak above threshold hides inside one step. Every constant is per neuron, and a
refractory neuron's voltage is held ($dV/dt = 0$) while its current integrates. The
models are in `_models.py`; the event loop around this is in `_simulate.py`.
"""

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from ._models import ALIFConstants, AnyConstants, IFConstants, max_gap_slope, threshold
from ._models import Constants as Constants
from ._models import vector_field as model_vector_field

_COINCIDENCE_FACTOR = 100.0
"""Neurons within `factor * (atol + rtol * |v_th|)` of threshold at a crossing spike too."""

_MAX_RESOLVES = 100
"""Safety bound on the re-solves that locate one crossing (hidden peaks)."""

_ROOT_ULPS = 16.0
"""The root finder's voltage tolerance is at least the voltage change over this many ulps
of time (see `_root_atol`)."""

_PEAK_SAMPLES = 64
"""ALIF: a step suspected of a hidden peak is sampled at this many intervals before the
maximum is refined by golden-section search (see `_alif_hidden_peak`)."""

_GOLDEN_ITERATIONS = 80
"""Golden-section iterations that refine an ALIF peak (the bracket shrinks by 0.618 each)."""


class SolverConfig(NamedTuple):
    """Static (hashable) solver settings shared by every segment."""

    solver: diffrax.AbstractAdaptiveSolver
    rtol: float
    atol: float
    dt0: float | None
    max_steps: int


class State(NamedTuple):
    """Host-side state of the network at time `t`: the model's state `y` (a tuple of
    arrays: voltages, currents, then the ALIF's adaptation) and `free`, 1 where the voltage
    evolves and 0 where it is held at `v_reset` (refractory)."""

    t: float
    y: tuple[np.ndarray, ...]
    free: np.ndarray

    @property
    def v(self) -> np.ndarray:
        """The voltages."""
        return self.y[0]

    @property
    def i(self) -> np.ndarray:
        """The synaptic currents."""
        return self.y[1]


class _Segment(NamedTuple):
    """Accepted steps of one solve (first row: the initial state), one array per state
    component in `ys`, its outcome and the `free` mask it was solved with."""

    ts: np.ndarray
    ys: tuple[np.ndarray, ...]
    event: bool
    free: np.ndarray


class _Args(NamedTuple):
    """The arguments of the vector field: the constants and the `free` mask."""

    consts: AnyConstants
    free: jnp.ndarray


def _vector_field(t, y, args: _Args):
    """The model's vector field with the voltage of refractory neurons held ($dV/dt = 0$)."""
    dv, *rest = model_vector_field(t, y, args.consts)
    return (dv * args.free, *rest)


def _threshold_condition(t, y, args: _Args, **kwargs):
    del t, kwargs
    return jnp.max(y[0] - threshold(y, args.consts))


def _root_atol(t0, t1, y0, free, consts, config):
    r"""Voltage tolerance of the event's root finder: `atol`, or the finest the condition
    can resolve where that is coarser.

    Newton stops once $|V - v_\mathrm{th}| <$ `atol`. One ulp of $t$ moves $V$ by
    $|\dot V|\,\varepsilon\,|t|$, so on a steep slope (strong recurrent excitation:
    $\dot V \sim 10^6\,$V/s) no time may meet `atol` and Newton would run out of steps.
    For the LIF at a crossing $V = v_\mathrm{th}$, so the slope there is
    $(I - \theta) / \tau_\mathrm{mem} \le
    \max_n (\max(I_{0,n}, 0) + \theta_n) / \tau_{\mathrm{mem},n}$ over the free neurons,
    with $\theta = v_\mathrm{th} - v_\mathrm{leak}$ (currents only decay); the other
    models' bounds are in `_models.max_gap_slope`. With this tolerance the crossing time is
    still found to within about `_ROOT_ULPS` ulps of $t$ wherever the crossing neuron's
    slope is of the order of this bound.
    """
    slope = max_gap_slope(y0, free, consts)
    ulp = jnp.finfo(y0[0].dtype).eps * jnp.maximum(jnp.abs(t0), jnp.abs(t1))
    return jnp.maximum(config.atol, _ROOT_ULPS * slope * ulp)


def integrate(t0, t1, y0, free, consts, config, *, saveat, event=None, throw=True):
    """`diffrax.diffeqsolve` of the model's vector field from `(t0, y0)` to `t1` with the
    reference's adaptive controller (tolerances of `config`); the voltage is held where
    `free` is 0."""
    controller = diffrax.PIDController(rtol=config.rtol, atol=config.atol, norm=optx.max_norm)
    return diffrax.diffeqsolve(
        diffrax.ODETerm(_vector_field),
        config.solver,
        t0,
        t1,
        config.dt0,
        tuple(y0),
        args=_Args(consts, free),
        stepsize_controller=controller,
        saveat=saveat,
        event=event,
        max_steps=config.max_steps,
        throw=throw,
    )


@eqx.filter_jit
def _solve_jit(t0, t1, y0, free, consts, config, bisect: bool):
    atol = _root_atol(t0, t1, y0, free, consts, config)
    if bisect:
        root_finder = optx.Bisection(rtol=config.rtol, atol=atol)
    else:
        root_finder = optx.Newton(rtol=config.rtol, atol=atol, norm=optx.max_norm)
    event = diffrax.Event(_threshold_condition, root_finder)
    saveat = diffrax.SaveAt(t0=True, steps=True)
    sol = integrate(t0, t1, y0, free, consts, config, saveat=saveat, event=event, throw=False)
    n_saved = sol.stats["num_accepted_steps"] + 1
    return sol.ts, sol.ys, n_saved, sol.result


def coincidence_tol(consts: AnyConstants, config: SolverConfig) -> np.ndarray:
    """Voltage tolerance of each neuron within which neurons count as crossing at the same
    time."""
    return _COINCIDENCE_FACTOR * (config.atol + config.rtol * np.abs(np.asarray(consts.v_th)))


def _solve(state: State, t1: float, consts: AnyConstants, config: SolverConfig) -> _Segment:
    """Integrate from `state` to `t1`, stopping early at the first sign change of
    `max(V - threshold)` found at a step end.

    The crossing is located by `optx.Newton` for the LIF and by `optx.Bisection` for the
    other models. Newton starts at the end of the step where the sign changed; where the
    distance to threshold is (nearly) tangent there, as at a grazing peak, its steps
    leave the bracket and it runs out of iterations: the LIF solve is then repeated with
    bisection, which only needs the sign change."""
    dtype = consts.v_th.dtype
    args = (
        jnp.asarray(state.t, dtype),
        jnp.asarray(t1, dtype),
        tuple(jnp.asarray(x) for x in state.y),
        jnp.asarray(state.free),
        consts,
        config,
    )
    bisect = not isinstance(consts, Constants)
    ts, ys, n_saved, result = _solve_jit(*args, bisect)

    def failed(result) -> bool:
        done = (diffrax.RESULTS.event_occurred, diffrax.RESULTS.successful)
        return not any(bool(result == ok) for ok in done)

    if failed(result) and not bisect:
        ts, ys, n_saved, result = _solve_jit(*args, True)
    event = bool(result == diffrax.RESULTS.event_occurred)
    if failed(result):
        raise RuntimeError(
            f"simulate_diffrax: the ODE solve from t={state.t!r} to t={t1!r} failed "
            f"(largest synaptic current {float(np.max(state.i)):.3g}): "
            f"{diffrax.RESULTS[result]} (`max_steps`, `rtol` and `atol` are arguments of "
            "simulate_diffrax)."
        )
    n = int(n_saved)
    return _Segment(np.asarray(ts)[:n], tuple(np.asarray(x)[:n] for x in ys), event, state.free)


def _peak_offsets(u: np.ndarray, i: np.ndarray, consts: Constants | ALIFConstants) -> np.ndarray:
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


def _first_hidden_peak(seg: _Segment, consts: AnyConstants) -> tuple[int, float] | None:
    """Earliest step whose interior holds a maximum of the distance to threshold above 0
    that both step ends miss (free neurons only); returns the step index and the earliest
    such peak time. The IF voltage is monotone between events (the current keeps its
    sign), so it has none."""
    if isinstance(consts, IFConstants):
        return None
    if isinstance(consts, ALIFConstants):
        return _alif_hidden_peak(seg, consts)
    v_th, v_leak = np.asarray(consts.v_th), np.asarray(consts.v_leak)
    vs, is_ = seg.ys
    t_start, t_end = seg.ts[:-1, None], seg.ts[1:, None]
    offset = _peak_offsets(vs[:-1] - v_leak, is_[:-1], consts)
    with np.errstate(invalid="ignore", over="ignore"):
        t_peak = t_start + offset
        v_peak = v_leak + is_[:-1] * np.exp(-offset / np.asarray(consts.tau_syn))
        hidden = (
            (seg.free > 0)
            & (offset > 0)
            & (t_peak < t_end)
            & (v_peak >= v_th)
            & (vs[:-1] < v_th)
            & (vs[1:] < v_th)
        )
    steps = np.flatnonzero(hidden.any(axis=1))
    if steps.size == 0:
        return None
    k = int(steps[0])
    return k, float(np.min(t_peak[k][hidden[k]]))


def _alif_gap(tau, u0, i0, a0, c: dict) -> np.ndarray:
    r"""The ALIF distance to threshold $g = u - \theta - a$ a time `tau` after the state
    $(u_0, I_0, a_0)$ ($u = V - v_\mathrm{leak}$), from the linear ODE's solution:
    $u = (u_0 - k I_0) e^{-\tau/\tau_m} + k I_0 e^{-\tau/\tau_s}$ with
    $k = \tau_s / (\tau_s - \tau_m)$ ($u = (u_0 + I_0 \tau / \tau_m) e^{-\tau/\tau_m}$ for
    $\tau_s = \tau_m$) and $a = a_0 e^{-\tau/\tau_a}$. Used only to detect hidden peaks."""
    tau_s, tau_m = c["tau_syn"], c["tau_mem"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = tau_s / (tau_s - tau_m)
        unequal = (u0 - k * i0) * np.exp(-tau / tau_m) + k * i0 * np.exp(-tau / tau_s)
    equal = (u0 + i0 * tau / tau_m) * np.exp(-tau / tau_m)
    u = np.where(tau_s == tau_m, equal, unequal)
    return u - c["theta"] - a0 * np.exp(-tau / c["tau_adapt"])


def _alif_hidden_peak(seg: _Segment, consts: ALIFConstants) -> tuple[int, float] | None:
    r"""`_first_hidden_peak` for the ALIF, whose distance to threshold
    $g = V - v_\mathrm{th} - a$ is a sum of three exponentials in each step.

    A cheap bound first: $a \ge 0$ only decays, so within a step
    $g \le \max u - \theta - \min(a_0, a_1)$, with $\max u$ the LIF voltage's maximum
    (its peak in closed form, `_peak_offsets`, or a step end). Where that bound reaches 0
    while both ends are below threshold, $g$ is sampled at `_PEAK_SAMPLES` intervals of the
    step and its maximum refined by golden-section search (one exponential sum has at most
    two extrema; a step of the adaptive solver is far shorter than the time constants).
    """
    c = {name: np.asarray(getattr(consts, name)) for name in ALIFConstants._fields}
    c["theta"] = c["v_th"] - c["v_leak"]
    vs, is_, as_ = seg.ys
    u0, u1 = vs[:-1] - c["v_leak"], vs[1:] - c["v_leak"]
    a0, a1 = as_[:-1], as_[1:]
    h = seg.ts[1:, None] - seg.ts[:-1, None]
    offset = _peak_offsets(u0, is_[:-1], consts)
    with np.errstate(invalid="ignore", over="ignore"):
        interior = (offset > 0) & (offset < h)
        u_peak = np.where(interior, is_[:-1] * np.exp(-offset / c["tau_syn"]), -np.inf)
        u_max = np.maximum(u_peak, np.maximum(u0, u1))
        suspect = (
            (seg.free > 0)
            & (vs[:-1] < c["v_th"] + a0)
            & (vs[1:] < c["v_th"] + a1)
            & (u_max - c["theta"] - np.minimum(a0, a1) >= 0)
        )
    for k in np.flatnonzero(suspect.any(axis=1)):
        n = np.flatnonzero(suspect[k])
        cn = {name: value[n] for name, value in c.items()}
        args = (u0[k, n], is_[k, n], a0[k, n], cn)
        # Sample [0, h] and bracket the largest sample by its neighbours.
        grid = h[k, 0] * np.linspace(0.0, 1.0, _PEAK_SAMPLES + 1)[:, None]
        best = np.argmax(_alif_gap(grid, *args), axis=0)
        lo = grid[np.maximum(best - 1, 0), 0]
        hi = grid[np.minimum(best + 1, _PEAK_SAMPLES), 0]
        ratio = (np.sqrt(5.0) - 1.0) / 2.0
        for _ in range(_GOLDEN_ITERATIONS):
            x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
            left = _alif_gap(x1, *args) >= _alif_gap(x2, *args)
            lo, hi = np.where(left, lo, x1), np.where(left, x2, hi)
        tau = 0.5 * (lo + hi)
        hidden = (tau > 0) & (tau < h[k, 0]) & (_alif_gap(tau, *args) >= 0)
        if hidden.any():
            return int(k), float(np.min(seg.ts[k] + tau[hidden]))
    return None


def advance(
    state: State, t_end: float, consts: AnyConstants, config: SolverConfig
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
            state = State(float(seg.ts[k]), tuple(x[k] for x in seg.ys), state.free)
            continue
        stop = State(float(seg.ts[-1]), tuple(x[-1] for x in seg.ys), state.free)
        crossed = seg.event or bool(np.any(stop.v >= np.asarray(threshold(stop.y, consts)) - tol))
        if crossed or t1 >= t_end:
            return stop, crossed
        # The ODE did not confirm the closed-form peak (below tolerance): carry on.
        state, t1 = stop, t_end
    raise RuntimeError(
        f"simulate_diffrax: no consistent threshold crossing after {_MAX_RESOLVES} "
        f"re-solves near t={state.t!r}; try other `rtol`/`atol`."
    )
