r"""The first threshold crossing of a model that is linear between events.

Between events the distance to threshold of such a model is an exponential sum,
$g(t) = c_0 + \sum_{j=1}^m c_j e^{-r_j t}$ with distinct rates. Such a sum has at most $m$
zeros, and its derivative, multiplied by $e^{r_\mathrm{min} t}$, is again a sum of the
same kind with one exponential fewer. So the critical points of $g$ follow from the
zeros of a sum with $m - 1$ exponentials, recursively, down to one exponential, whose
zero is a logarithm. Between consecutive critical points $g$ is monotone: the first
crossing lies in the first such piece where $g$ goes from below 0 to at least 0, and a
safeguarded Newton iteration (bisection where Newton leaves the bracket) finds it there.
No crossing is missed however close the peak comes to the threshold: whether one exists
is decided by the sign of $g$ at the exact critical points, as for the LIF's bracket.
"""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float

_MAX_ITERATIONS = 100


def _terms(c, r, t):
    """`c_j e^{-r_j t}` for each `j`, as a list (sums over the few terms are unrolled:
    a reduction over a tiny last axis is slow on CPU)."""
    return [c[..., j] * jnp.exp(-r[..., j] * t) for j in range(c.shape[-1])]


def _sort_by(key, *arrays):
    """`key` and `arrays` reordered by `key` along the last axis, as a stable `argsort` of
    `key` would: from each entry's rank by unrolled comparisons where there are few
    entries (XLA's sort is slow on the CPU for many tiny rows), by `jnp.argsort` else."""
    m = key.shape[-1]
    if m > 8:
        order = jnp.argsort(key, axis=-1)
        return tuple(jnp.take_along_axis(x, order, axis=-1) for x in (key, *arrays))
    k = [key[..., i] for i in range(m)]
    rank = [
        sum(((k[j] < k[i]) | ((k[j] == k[i]) & (j < i))).astype(jnp.int32) for j in range(m))
        for i in range(m)
    ]

    def place(x, slot):
        out = x[..., m - 1]
        for i in range(m - 2, -1, -1):
            out = jnp.where(rank[i] == slot, x[..., i], out)
        return out

    return tuple(jnp.stack([place(x, j) for j in range(m)], axis=-1) for x in (key, *arrays))


def _exp_sum(c0, c, r, t):
    return c0 + sum(_terms(c, r, t))


def _exp_sum_full(c0, c, r, t):
    """The value, the slope and the size of the terms (the sum is zero within rounding
    where it is below a few ulps of this) at `t`."""
    terms = _terms(c, r, t)
    value = c0 + sum(terms)
    slope = -sum(r[..., j] * term for j, term in enumerate(terms))
    scale = jnp.abs(c0) + sum(jnp.abs(term) for term in terms)
    return value, slope, scale


def _solve(f, a, b, active, start=None):
    """A root of the scalar `f` in `[a, b]`, given a sign change (or a zero at `b`):
    Newton steps kept inside a shrinking bracket, bisection when they leave it, from
    `start` (default: the midpoint). Where
    `active` is false nothing is iterated (under `vmap` only the active lanes decide how
    many iterations run) and the midpoint is returned. `f(x)` returns the value, the
    slope and the size of the terms that make up the value: the iteration stops where the
    value is zero within their rounding, or the step or the bracket is below an ulp.

    The loop carries the bracket, the iterate, the count and whether to go on, decided at
    the end of each step: under `vmap` every carried array is selected lane by lane after
    each step, so the fewer and the cheaper to select, the faster one step."""
    dtype = jnp.result_type(a, b)
    eps = jnp.finfo(dtype).eps
    tiny = jnp.finfo(dtype).tiny
    f_a = f(a)[0]

    def going(a, b, x, step, i, rounding):
        small = jnp.abs(step) <= 2 * eps * jnp.abs(x) + tiny
        wide = b - a > 2 * eps * jnp.abs(x) + tiny
        return active & (i < _MAX_ITERATIONS) & ~small & ~rounding & wide

    def body(state):
        a, b, x, i, _ = state
        f_x, slope, scale = f(x)
        low = jnp.sign(f_x) == jnp.sign(f_a)
        a, b = jnp.where(low, x, a), jnp.where(low, b, x)
        newton = x - f_x / jnp.where(slope != 0, slope, 1.0)
        inside = (slope != 0) & (newton > a) & (newton < b) & jnp.isfinite(newton)
        x_new = jnp.where(inside, newton, 0.5 * (a + b))
        rounding = jnp.abs(f_x) <= 4 * eps * scale
        x_new = jnp.where(rounding, x, x_new)
        return a, b, x_new, i + 1, going(a, b, x_new, x_new - x, i + 1, rounding)

    start = 0.5 * (a + b) if start is None else start
    i = jnp.zeros((), jnp.int32)
    init = (a, b, start, i, going(a, b, start, b - a, i, jnp.zeros((), bool)))
    a, b, x, _, _ = jax.lax.while_loop(lambda state: state[-1], body, init)
    return jnp.clip(x, a, b)


def exp_sum_roots(c0, c, r, t_hi) -> Float[Array, " m"]:
    r"""Every zero of $c_0 + \sum_j c_j e^{-r_j t}$ in $(0, t_\mathrm{hi})$, in increasing
    order, padded with `t_hi` to `m` entries (`c`, `r` of shape `(m,)`, distinct rates)."""
    m = c.shape[-1]
    if m == 0:
        return jnp.zeros((0,), jnp.result_type(c0, t_hi))
    if m == 1:
        ratio = -c[0] / jnp.where(c0 != 0, c0, 1.0)
        ok = (c0 != 0) & (ratio > 0)
        t = jnp.log(jnp.where(ok, ratio, 1.0)) / r[0]
        inside = ok & (t > 0) & (t < t_hi)
        return jnp.where(inside, t, t_hi)[None]
    edges = _monotone_edges(c0, c, r, t_hi)
    values = jax.vmap(lambda t: _exp_sum(c0, c, r, t))(edges)

    def f(t):
        return _exp_sum_full(c0, c, r, t)

    change = (jnp.sign(values[:-1]) != jnp.sign(values[1:])) & (values[:-1] != 0)
    roots = jax.vmap(lambda a, b, ch: jnp.where(ch, _solve(f, a, b, ch), t_hi))(
        edges[:-1], edges[1:], change
    )
    inside = change & (roots > 0) & (roots < t_hi)
    return _sort_by(jnp.where(inside, roots, t_hi))[0]


def _monotone_edges(c0, c, r, t_hi) -> Float[Array, " m_plus_1"]:
    """`0`, the critical points of the sum in `(0, t_hi)` (padded with `t_hi`) and `t_hi`:
    the sum is monotone between consecutive entries."""
    del c0
    r, c = _sort_by(r, c)
    # g'(t) e^{r_0 t} = -r_0 c_0 - sum_{j>0} r_j c_j e^{-(r_j - r_0) t}
    critical = exp_sum_roots(-r[0] * c[0], -r[1:] * c[1:], r[1:] - r[0], t_hi)
    zero = jnp.zeros((1,), critical.dtype)
    end = jnp.full((1,), t_hi, critical.dtype)
    return jnp.concatenate([zero, critical, end])


def gap_bound(c0, c, r, t_hi) -> Float[Array, ""]:
    r"""An upper bound of $c_0 + \sum_j c_j e^{-r_j t}$ over $[0, t_\mathrm{hi}]$, cheap: the
    sum of the constant and the first two terms is maximised exactly (its one critical
    point is a logarithm), every further term is bounded on its own by its larger end
    value. Exact for one or two exponentials (LIF-like and IF-like distances to
    threshold); for the ALIF the third term is the adaptation, which changes little over
    one input interval. No crossing exists where the bound is negative."""
    m = c.shape[-1]
    head = min(m, 2)
    c_head, r_head = c[..., :head], r[..., :head]
    points = [jnp.zeros_like(t_hi), t_hi]
    if head == 2:
        rs, cs = _sort_by(r_head, c_head)
        critical = exp_sum_roots(-rs[0] * cs[0], -rs[1:] * cs[1:], rs[1:] - rs[0], t_hi)
        points.append(critical[0])
    best = jnp.max(jnp.stack([_exp_sum(c0, c_head, r_head, t) for t in points]))
    rest = [jnp.maximum(c[..., j], c[..., j] * jnp.exp(-r[..., j] * t_hi)) for j in range(head, m)]
    return best + sum(rest)


def first_crossing(model, x, t_hi) -> tuple[Float[Array, ""], Bool[Array, ""]]:
    r"""When the neuron in state `x` first reaches threshold within `[0, t_hi]`.

    **Arguments:**

    - `model`: the neuron's [`eqsnn.neurons.AbstractNeuronModel`][] (scalar parameters).
    - `x`: its state, shape `(state_size,)`.
    - `t_hi`: the end of the window, `>= 0`.

    **Returns:** `(dt, found)`: the time of the crossing after the state `x` (0 if the
    neuron is already at or above threshold; `t_hi` where there is none) and whether
    there is one. The time is differentiable by the implicit-function theorem,
    $\dot t = -\dot g / \partial_t g$ at the crossing, never through the iteration; its
    tangent is zero where there is no crossing, at `t = 0` and where the trajectory only
    touches the threshold.
    """
    dt, found = locate(model, x, t_hi)
    return implicit_time(model, x, dt, found), found


def locate(model, x, t_hi) -> tuple[Float[Array, ""], Bool[Array, ""]]:
    """[`eqsnn.neurons.first_crossing`][] without derivatives: `(dt, found)`."""
    c0, c, r = jax.lax.stop_gradient(model.gap_terms(x))
    t_hi = jax.lax.stop_gradient(t_hi)
    edges = _monotone_edges(c0, c, r, t_hi)
    values = jax.vmap(lambda t: _exp_sum(c0, c, r, t))(edges)
    already = values[0] >= 0
    up = (values[:-1] < 0) & (values[1:] >= 0)
    found = already | jnp.any(up)
    piece = jnp.argmax(up)
    bracketed = found & ~already
    lo = jnp.where(bracketed, edges[piece], 0.0)
    hi = jnp.where(bracketed, edges[piece + 1], 1.0)

    def f(t):
        return _exp_sum_full(c0, c, r, t)

    root = _solve(f, lo, hi, bracketed)
    return jnp.where(already, 0.0, jnp.where(found, root, t_hi)), found


@jax.custom_jvp
def implicit_time(model, x, t, found):
    r"""`t`, a crossing time of `model` from the state `x` found by `locate`, with the
    tangent of the implicit-function theorem: $\dot t = -\dot g / \partial_t g$ with
    $g = $ `gap(flow(x, t))`, zero where `found` is false, at `t = 0` or where the slope
    is not positive (a trajectory that only touches the threshold)."""
    del model, x, found
    return t


@implicit_time.defjvp
def _implicit_time_jvp(primals, tangents):
    model, x, t, found = primals
    model_dot, x_dot, _, _ = tangents

    def g(model, x, t):
        return model.gap(model.flow(x, t))

    slope = jax.jvp(lambda t: g(model, x, t), (t,), (jnp.ones_like(t),))[1]
    _, g_dot = jax.jvp(lambda m, x: g(m, x, t), (model, x), (model_dot, x_dot))
    usable = found & (slope > 0) & (t > 0)
    t_dot = jnp.where(usable, -g_dot / jnp.where(usable, slope, 1.0), 0.0)
    return t, t_dot
