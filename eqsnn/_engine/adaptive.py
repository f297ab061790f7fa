r"""The adaptive LIF on the LIF's window scan: crossings of a decaying threshold.

An [`eqsnn.ALIFParameters`][] neuron is the LIF with the threshold $\theta + a(t)$, where
$a(t) = a_0 e^{-t/\tau_\mathrm{adapt}} \ge 0$ jumps by $\beta$ at each spike. Its voltage
between events is the LIF's, so the LIF's window scan ([`eqsnn.WindowScan`][]) runs it
with one more number per neuron (the adaptation after its last spike) and this module's
crossing search instead of the LIF solver. The search decides in closed form for every
window, and solves one window per neuron:

- where $a_0 = 0$ (no spike yet) the crossing is the LIF's: the LIF solver's answer,
  bit for bit;
- otherwise the window is split at the voltage's one critical point. Where the voltage
  rises, $g(t) = u(t) - \theta - a(t)$ rises too (the threshold only decays), so there is
  a crossing iff $g \ge 0$ at the piece's end, and it is the only root there. Where the
  voltage falls, there is a crossing at the piece's start if $g \ge 0$ there, none if
  $u(\text{start}) - \theta - a(\text{end}) < 0$, and otherwise the piece is *undecided*;
- only the windows where the voltage reaches the window's lowest threshold
  $\theta + a(\text{end})$ (the LIF's solver) are candidates, and each neuron's first
  candidate that crosses or is undecided is taken, in order: an undecided one is settled
  by the general solver ([`eqsnn.neurons.first_crossing`][]), a crossing on a rising
  piece is located by a safeguarded Newton iteration started at the voltage's crossing of
  that lowest threshold (a lower bound of the crossing).

No crossing is missed: every decision is the sign of $g$ at a point, or of an upper
bound of $g$, and the general solver covers what the bound cannot rule out. The time's
derivatives are those of the implicit-function theorem
([`eqsnn.neurons.first_crossing`][]).
"""

import jax
import jax.numpy as jnp

from ..neurons._alif import ALIFParameters
from ..neurons._crossing import _exp_sum_full, _solve, implicit_time, locate
from ..solvers import AbstractCrossingSolver, BracketedSolver, TTFSSolver


def is_adaptive(params) -> bool:
    """Whether `params` is the adaptive LIF, which the LIF's window scan runs."""
    return isinstance(params, ALIFParameters)


def lif_solver(params: ALIFParameters) -> AbstractCrossingSolver:
    """The LIF solver of the ALIF's voltage: the analytic one where `tau_mem == 2 tau_syn`
    (both constants), else the bracketed one (the ALIF's time constants differ)."""
    fixed = isinstance(params.tau_mem, float) and isinstance(params.tau_syn, float)
    if fixed and params.tau_mem == 2.0 * params.tau_syn:
        return TTFSSolver()
    return BracketedSolver()


def _terms(params: ALIFParameters, u0, i0, a0):
    """`(c0, c, r)` of $g(t) = u(t) - \\theta - a(t)$ for every window: the model's
    `gap_terms`, broadcast over the windows."""
    gap_terms = jnp.vectorize(params.gap_terms, signature="(d)->(),(m),(m)")
    return gap_terms(jnp.stack([u0, i0, a0], axis=-1))


def _decide(params: ALIFParameters, u0, i0, a0, window):
    """For every window: whether it has a crossing, whether it is undecided, and the
    bracket `[lo, hi]` of the crossing on a rising piece (`lo == hi` at its start)."""
    tm, ts, ta = params.tau_mem, params.tau_syn, params.tau_adapt
    c0, c, r = _terms(params, u0, i0, a0)
    amp = c[..., 1]

    def g(t):
        return _exp_sum_full(c0, c, r, t)[0]

    def u(t):
        return c[..., 0] * jnp.exp(-t / tm) + amp * jnp.exp(-t / ts)

    # u'(t) = 0 where e^{t (1/ts - 1/tm)} = -amp tm / ((u0 - amp) ts).
    ratio = -amp * tm / jnp.where(c[..., 0] != 0, c[..., 0] * ts, 1.0)
    has_critical = (c[..., 0] != 0) & (ratio > 0)
    t_c = jnp.log(jnp.where(has_critical, ratio, 1.0)) / (1.0 / ts - 1.0 / tm)
    interior = has_critical & (t_c > 0) & (t_c < window)
    edge = jnp.where(interior, t_c, window)
    rising_first = i0 > u0  # u'(0) = (i0 - u0) / tm
    g0, g_edge, g_end = g(jnp.zeros_like(window)), g(edge), g(window)

    def piece(start, end, g_start, g_stop, u_start, rising):
        """(crossing, undecided, lo, hi) of one monotone piece of u."""
        at_start = g_start >= 0
        up = rising & (g_stop >= 0)
        bound = u_start - (params.v_th - params.v_leak) - a0 * jnp.exp(-end / ta)
        crossing = at_start | up
        undecided = ~crossing & ~rising & (bound >= 0)
        lo = start
        hi = jnp.where(at_start, start, end)
        return crossing, undecided, lo, hi

    x1, und1, lo1, hi1 = piece(0.0, edge, g0, g_edge, u0, rising_first)
    x2, und2, lo2, hi2 = piece(edge, window, g_edge, g_end, u(edge), ~rising_first)
    x2, und2 = x2 & interior, und2 & interior
    first_piece = x1 | und1
    crossing = jnp.where(first_piece, x1, x2)
    undecided = jnp.where(first_piece, und1, und2)
    lo = jnp.where(first_piece, lo1, lo2)
    hi = jnp.where(first_piece, hi1, hi2)
    return crossing, undecided, lo, hi


def _once_if_any(pred, fn, default, *operands):
    """`fn(*operands)` where any entry of `pred` is true, else `default`, without computing
    `fn` when none is (a `lax.cond` would compute both branches under `vmap`).

    The operands reach `fn` through an optimization barrier together with the loop's flag:
    otherwise XLA sees that `fn`'s work does not change from one iteration to the next,
    hoists it out of the loop and runs it whether the loop runs or not."""

    def body(state):
        go, _ = state
        _, args = jax.lax.optimization_barrier((go, operands))
        return jnp.zeros_like(go), fn(*args)

    return jax.lax.while_loop(lambda state: state[0], body, (jnp.any(pred), default))[1]


_SETTLE_LANES = 8


def _settle(params, x0, width, settle):
    """The general solver's `(dt, found)` for the windows where `settle` holds, `(N,)`
    (`dt` 0 and `found` false elsewhere).

    They are few: the general solver runs on them alone, `_SETTLE_LANES` at a time,
    gathered from the `N` windows, not on all `N` of them (its iterations cost as much
    for every lane they run on, and under `vmap` they run on every lane of the batch)."""
    n = settle.shape[0]
    lanes = min(n, _SETTLE_LANES)

    def body(state):
        todo, dt, found = state
        (pick,) = jnp.nonzero(todo, size=lanes, fill_value=n)
        used = pick < n
        width_k = jnp.where(used, jnp.take(width, pick, mode="clip"), 0.0)
        x_k = jnp.take(x0, pick, axis=0, mode="clip")
        dt_k, found_k = jax.vmap(lambda x, w: locate(params, x, w))(x_k, width_k)
        return (
            todo.at[pick].set(False, mode="drop"),
            dt.at[pick].set(dt_k, mode="drop"),
            found.at[pick].set(found_k & used, mode="drop"),
        )

    init = (settle, jnp.zeros_like(width), jnp.zeros_like(settle))
    return jax.lax.while_loop(lambda state: jnp.any(state[0]), body, init)[1:]


def _lowest_threshold(params: ALIFParameters, a0, window):
    r"""The threshold above leak at a window's end, $\theta + a(\text{end})$: its lowest
    in the window (the adaptation only decays)."""
    return params.v_th - params.v_leak + a0 * jnp.exp(-window / params.tau_adapt)


def _gathered(u0, i0, a0, window):
    """`at` of the `(L, N)` window states: window `k[n]` of each neuron `n`, gathered."""
    neurons = jnp.arange(u0.shape[1])
    return lambda k: tuple(x[k, neurons] for x in (u0, i0, a0, window))


def _search(params, solver, u0, i0, a0, window, inside, at):
    r"""Each neuron's first window that crosses, among `(L, N)` windows (no gradient).

    The candidates are the windows where the voltage reaches the window's lowest
    threshold, $\theta + a(\text{end})$ (the LIF's solver: a window without that crossing
    has none, and where it has one, the voltage reaches it first no later than the
    adapted crossing; without adaptation it is the crossing); each neuron's candidates
    are decided in order, one window per neuron at a time, until one crosses. `at(k)`
    gives the state of window `k[n]` of each neuron (see `first_crossing_window`).
    Returns, shape `(N,)`: the window, whether there is one, its bracket `[lo, hi]` (of
    an adapting window) and where the general solver settled it, its time."""
    neurons = jnp.arange(u0.shape[1])
    theta = _lowest_threshold(params, a0, window)
    found_lif = solver.solve(u0, i0, theta, window, params.tau_mem, params.tau_syn)[1]
    zero = jnp.zeros_like(u0[0])
    no = jnp.zeros(u0.shape[1:], bool)

    def cond(state):
        candidate, done = state[0], state[1]
        return jnp.any(~done & jnp.any(candidate, axis=0))

    def body(state):
        # (A neuron's candidates stay set once it is done: `todo` masks them. Clearing
        # them would make the `(L, N)` update depend on this round's decision, which XLA
        # then recomputes for each of the `L` windows.)
        candidate, done, first, lo, hi, settled, dt_settled = state
        k = jnp.argmax(candidate, axis=0)
        todo = ~done & candidate[k, neurons]
        u, i, a, w = jax.lax.stop_gradient(at(k))
        adapting = a > 0
        crossing, undecided, lo_k, hi_k = _decide(params, u, i, a, w)
        settle = todo & adapting & ~crossing & undecided
        x0 = jnp.stack([u, i, a], axis=-1)

        dt_k, hit_k = _settle(params, x0, w, settle)
        hit_k = settle & hit_k
        hit = todo & (~adapting | crossing | hit_k)
        return (
            candidate.at[k, neurons].set(False),
            done | hit,
            jnp.where(hit, k, first),
            jnp.where(hit, lo_k, lo),
            jnp.where(hit, hi_k, hi),
            jnp.where(hit, hit_k, settled),
            jnp.where(hit, dt_k, dt_settled),
        )

    first = jnp.zeros_like(jnp.argmax(inside, axis=0))
    init = (found_lif & inside, no, first, zero, zero, no, zero)
    _, found, first, lo, hi, settled, dt_settled = jax.lax.while_loop(cond, body, init)
    return first, found, lo, hi, settled, dt_settled


def first_crossing_window(params: ALIFParameters, solver, u0, i0, a0, window, inside, at=None):
    """Each neuron's first window with a crossing, among `(L, N)` windows from the states
    `(u0, i0, a0)` at their starts (`inside`: the windows to search): `(first, dt, found)`
    of shape `(N,)`, the time from the window's start differentiable by the
    implicit-function theorem.

    `at(k)`, for `k` of shape `(N,)`, gives `(u0, i0, a0, window)` of window `k[n]` of
    each neuron `n`, each of shape `(N,)`; by default they are gathered from the arrays.
    The window scan passes one that recomputes them from what the windows are made of:
    the `(L, N)` arrays are then used once, where the candidates are found, and XLA
    fuses them into that pass instead of storing them for the search loop."""
    sg = jax.lax.stop_gradient
    at = _gathered(u0, i0, a0, window) if at is None else at
    static, u0s, i0s, a0s, window_s = sg((params, u0, i0, a0, window))
    first, found, lo, hi, settled, dt_settled = _search(
        static, solver, u0s, i0s, a0s, window_s, inside, at
    )
    u, i, a, w = at(first)
    us, i_s, a_s, ws = sg((u, i, a, w))
    # The voltage's crossing of the window's lowest threshold: the crossing where there
    # is no adaptation, a lower bound of it (the Newton start) where there is.
    start = solver.solve(
        us, i_s, _lowest_threshold(static, a_s, ws), ws, static.tau_mem, static.tau_syn
    )[0]
    plain = ~(a_s > 0)
    lo, hi = jnp.where(plain, start, lo), jnp.where(plain, start, hi)

    # Where the bracket is wider than a point, the crossing is on a rising piece: Newton
    # from the voltage's crossing of the window's lowest threshold, a lower bound.
    newton = found & ~settled & (hi > lo)
    c0, c, r = _terms(static, us, i_s, a_s)

    def solve_one(c0, c, r, lo, hi, active, start):
        return _solve(lambda t: _exp_sum_full(c0, c, r, t), lo, hi, active, start)

    lo_n, hi_n = jnp.where(newton, lo, 0.0), jnp.where(newton, hi, 1.0)
    # (the terms as rows: each Newton step reads each term's row whole, not strided)
    operands = (c0, c.T, r.T, lo_n, hi_n, newton, jnp.clip(start, lo_n, hi_n))
    solve = jax.vmap(solve_one, in_axes=(0, 1, 1, 0, 0, 0, 0))
    root = _once_if_any(newton, solve, lo, *operands)
    dt = jnp.where(newton, root, lo)
    dt = jnp.where(settled, dt_settled, dt)
    dt = jnp.where(found, dt, ws)
    x0 = jnp.stack([u, i, a], axis=-1)
    dt = jax.vmap(lambda x, t, hit: implicit_time(params, x, t, hit))(x0, dt, found)
    return first, dt, found


def crossing_exists(params: ALIFParameters, solver, u0, i0, a0, window, inside, at=None):
    """Whether each neuron has a crossing in one of its `(L, N)` windows (no gradient;
    `at` as for `first_crossing_window`)."""
    sg = jax.lax.stop_gradient
    args = sg((params, u0, i0, a0, window))
    at = _gathered(*args[1:]) if at is None else at
    return _search(args[0], solver, *args[1:], inside, at)[1]
