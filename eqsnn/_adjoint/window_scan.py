r"""EventProp on the window scan (feed-forward layers and populations).

Between events the adjoint system of Wunderlich & Pehle (2021) is linear, so it can be
evaluated in closed form. With $u = V - v_\mathrm{leak}$ and a neuron's spikes
$s_1 < \dots < s_R$, each spike is the root of

$$
F_r = \sum_k w_k\, \kappa(s_r - t_k) + \delta \sum_{q<r} e^{-(s_r - s_q)/\tau_\mathrm{mem}}
      - \theta = 0,
$$

where $\kappa$ is the voltage response to a unit current jump, $\delta = v_\mathrm{reset} -
v_\mathrm{th}$ the reset jump and $\theta = v_\mathrm{th} - v_\mathrm{leak}$. Walking the
spikes backwards, the adjoint jump at spike $r$ is
$\mu_r = -a_r / \dot u(s_r^-)$ with $\dot u(s_r^-) = (I(s_r) - \theta)/\tau_\mathrm{mem}$ (the
synaptic current at the spike, which is why EventProp needs it) and
$a_r = \partial L/\partial s_r + \delta\,\tau_\mathrm{mem}^{-1}
\sum_{r'>r} \mu_{r'} e^{-(s_{r'} - s_r)/\tau_\mathrm{mem}}$ (the running sum is the adjoint
voltage $\lambda_V$ propagated back between spikes). Then
$\partial L/\partial w_{kn} = \sum_r \mu_r \kappa(s_r - t_k)$ (this is
$-\tau_\mathrm{syn}\lambda_I(t_k)$) and
$\partial L/\partial t_k = -\sum_{n,r} w_{kn}\, \mu_r\, \kappa'(s_r - t_k)$, summed over the
spikes after $t_k$; cotangents on the recorded currents add the terms of
$I(s_r) = \sum_k w_k e^{-(s_r - t_k)/\tau_\mathrm{syn}}$. The backward pass stores only the
sorted inputs and the spikes, never the root finder's work.
"""

import equinox as eqx
import jax
import jax.numpy as jnp

from .._engine.adaptive import is_adaptive, lif_solver
from .._engine.base import SimulationConfig
from .._engine.buffers import collect_spikes, pad_candidates, select_spikes, sort_inputs
from .._engine.per_neuron import uses_per_neuron_path
from .._engine.window_scan import WindowScan, candidates, neuron_spikes
from .._flow import membrane
from .._spikes import Spikes
from ..neurons._model import is_model
from .neuron_model import model_eventprop
from .per_neuron import per_neuron_eventprop


class _Static(eqx.Module):
    """The array-free settings of one window-scan simulation (a custom VJP argument)."""

    config: SimulationConfig
    budget: int = eqx.field(static=True)


def window_scan_eventprop(
    engine: WindowScan, per_step: bool, config: SimulationConfig, weights, spikes: Spikes
) -> Spikes:
    """The window scan of a feed-forward layer with EventProp gradients.

    Gradients reach `weights` and `spikes.time`. (`per_step` is refused by
    [`eqsnn.EventProp.check`][]: this adjoint covers the whole trajectory.)
    """
    del per_step
    budget = engine.population_budgets(config)[0]
    per_neuron = uses_per_neuron_path(config, weights)
    # The ALIF with shared arrivals and constant parameters has this module's closed form.
    adaptive = is_adaptive(config.params) and not per_neuron
    if is_model(config.params) and not adaptive:
        return model_eventprop(config, weights, spikes, budget)
    if per_neuron:
        return per_neuron_eventprop(config, weights, spikes, budget)
    static = _Static(config=config, budget=budget)
    return _eventprop((weights, spikes.time), spikes.idx, static)


@eqx.filter_custom_vjp
def _eventprop(weights_and_times, idx, static: _Static):
    weights, time = weights_and_times
    sorted_in = sort_inputs(Spikes(time=time, idx=idx), static.config.t_max)
    spikes = _neuron_spikes(weights, sorted_in, static)
    extra = jnp.sum(spikes.more, dtype=jnp.int32)
    return collect_spikes(*candidates(spikes), static.config.n_spikes, extra)


def _neuron_spikes(weights, sorted_in, static: _Static):
    config = static.config
    solver = lif_solver(config.params) if is_adaptive(config.params) else config.solver
    return neuron_spikes(weights, sorted_in, config.params, solver, config.t_max, static.budget)


@_eventprop.def_fwd
def _fwd(perturbed, weights_and_times, idx, static: _Static):
    del perturbed
    weights, time = weights_and_times
    n_spikes = static.config.n_spikes
    sorted_in = sort_inputs(Spikes(time=time, idx=idx), static.config.t_max)
    spikes = _neuron_spikes(weights, sorted_in, static)
    cand = candidates(spikes)
    extra = jnp.sum(spikes.more, dtype=jnp.int32)
    out = collect_spikes(*cand, n_spikes, extra)
    time, _, _, valid = pad_candidates(n_spikes, cand[0], cand[1], cand[2], cand[3])
    pick, kept = select_spikes(time, valid, n_spikes)
    return out, (sorted_in, spikes, pick, kept)


def _candidate_cotangent(ct, pick, kept, shape):
    """Route cotangents of the output slots back to the `(S, N)` spikes (NaN-safe)."""
    if ct is None:
        return jnp.zeros(shape)
    ct = jnp.where(kept, ct, 0.0)
    n_cand = shape[0] * shape[1]
    flat = jnp.zeros(max(n_cand, pick.shape[0]), ct.dtype).at[pick].add(ct)
    return flat[:n_cand].reshape(shape)


@_eventprop.def_bwd
def _bwd(residuals, grad_out, perturbed, weights_and_times, idx, static: _Static):
    del perturbed, idx
    sorted_in, spikes, pick, kept = residuals
    weights, time = weights_and_times
    params = static.config.params
    shape = spikes.time.shape
    g_time = _candidate_cotangent(grad_out.time, pick, kept, shape).astype(weights.dtype)
    g_cur = _candidate_cotangent(grad_out.current, pick, kept, shape).astype(weights.dtype)
    g_cur = jnp.where(spikes.valid, g_cur, 0.0)
    mu = adjoint_jumps(spikes, g_time - g_cur * spikes.current / params.tau_syn, params)
    w = jnp.where(sorted_in.valid[:, None], weights[sorted_in.idx], 0.0)
    d_w, d_t = input_gradients(spikes, mu, g_cur, sorted_in, w, params)
    grad_w = (
        jnp.zeros_like(weights).at[sorted_in.idx].add(jnp.where(sorted_in.valid[:, None], d_w, 0.0))
    )
    d_t = jnp.where(sorted_in.valid, d_t, 0.0)
    return grad_w, jnp.zeros_like(time).at[sorted_in.order].set(d_t)


def adjoint_jumps(spikes, grad_time, params):
    r"""The adjoint jumps $\mu_r$ at every neuron's spikes, walking the spikes backwards.

    For the LIF this is the module docstring's recursion. For the adaptive LIF
    ([`eqsnn.ALIFParameters`][]), with the adaptation before spike $r$,
    $a_r = \beta \sum_{q<r} e^{-(s_r - s_q)/\tau_a}$ ($\tau_a$ = `tau_adapt`), the crossing
    conditions are

    $$
    F_r = \sum_k w_k\, \kappa(s_r - t_k) + \sum_{q<r} \delta_q e^{-(s_r - s_q)/
    \tau_\mathrm{mem}} - \theta - a_r = 0, \qquad \delta_q = u_\mathrm{reset} - \theta - a_q
    $$

    (the reset takes the voltage to $u_\mathrm{reset}$ from the adapted threshold). The
    weights and inputs enter as in the LIF, so only the jumps change: with the adjoint
    voltage $\Lambda_r = \sum_{r'>r} \mu_{r'} e^{-(s_{r'} - s_r)/\tau_\mathrm{mem}}$ and
    the adjoint adaptation $\Lambda^a_r = \sum_{q>r} e^{-(s_q - s_r)/\tau_a}
    (\mu_q + \Lambda_q)$, carried back together,

    $$
    \mu_r = -\frac{\partial L/\partial s_r + (\delta_r/\tau_\mathrm{mem} + a_r/\tau_a)
    \Lambda_r - \beta \Lambda^a_r/\tau_a}{\partial F_r/\partial s_r}, \qquad
    \frac{\partial F_r}{\partial s_r} = \frac{I(s_r) - \theta - a_r}{\tau_\mathrm{mem}}
    + \frac{a_r}{\tau_a} :
    $$

    the terms of $\partial F_{r'}/\partial s_r$ for $r' > r$ are the reset's decay and its
    dependence on $a_r$, the adaptation jump's decay, and the later resets' dependence on
    that jump. (With $\beta = 0$ this is the LIF's recursion.)

    **Arguments:**

    - `spikes`: the per-neuron spikes of the forward pass (`(R, N)` arrays; each neuron's
      valid entries in time order, empty entries anywhere in between).
    - `grad_time`: $\partial L / \partial s_r$ including the current terms, `(R, N)`.
    - `params`: the neuron parameters (constants).

    **Returns:** $\mu$, shape `(R, N)`, zero for entries that are not spikes.
    """
    theta = params.v_th - params.v_leak
    delta = params.v_reset - params.v_th
    slope = (spikes.current - theta) / params.tau_mem
    adaptive = is_adaptive(params)
    zeros = jnp.zeros_like(spikes.time[0])
    xs = (spikes.time, grad_time)
    if adaptive:
        adapt = _adaptation(spikes, params)
        slope = (spikes.current - theta - adapt) / params.tau_mem + adapt / params.tau_adapt
        rate = (delta - adapt) / params.tau_mem + adapt / params.tau_adapt
        xs = xs + (rate,)
    ok = spikes.valid & (slope > 0)

    def back(carry, x):
        lam, lam_a, s_next = carry
        s, g, *rate_r = x[:-3]
        ok_r, slope_r, valid = x[-3:]
        gap = jnp.where(valid, jnp.maximum(s_next - s, 0.0), 0.0)
        # lam: the adjoint voltage (sum of the later spikes' jumps), carried back to s.
        lam_s = lam * jnp.exp(-gap / params.tau_mem)
        if adaptive:
            lam_a_s = lam_a * jnp.exp(-gap / params.tau_adapt)
            a = g + rate_r[0] * lam_s - params.beta / params.tau_adapt * lam_a_s
        else:
            a = g + delta / params.tau_mem * lam_s
        mu = jnp.where(ok_r, -a / jnp.where(ok_r, slope_r, 1.0), 0.0)
        if adaptive:
            lam_a = jnp.where(valid, lam_s + mu + lam_a_s, lam_a)
        return (jnp.where(valid, lam_s + mu, lam), lam_a, jnp.where(valid, s, s_next)), mu

    xs = xs + (ok, slope, spikes.valid)
    _, mu = jax.lax.scan(back, (zeros, zeros, zeros), xs, reverse=True)
    return mu


def _adaptation(spikes, params):
    """The ALIF's adaptation just before each spike, `(R, N)` (0 before the first)."""

    def forward(carry, x):
        a_post, s_last = carry
        s, valid = x
        since = jnp.where(valid, jnp.maximum(s - s_last, 0.0), 0.0)
        a_pre = a_post * jnp.exp(-since / params.tau_adapt)
        carry = (jnp.where(valid, a_pre + params.beta, a_post), jnp.where(valid, s, s_last))
        return carry, a_pre

    zeros = jnp.zeros_like(spikes.time[0])
    return jax.lax.scan(forward, (zeros, zeros), (spikes.time, spikes.valid))[1]


def input_gradients(spikes, mu, g_cur, sorted_in, w, params):
    r"""Gradients w.r.t. the weight of every (sorted) input event and its time.

    Both are sums over the spikes after each input $t_k$ of decaying kernels,
    $\sum_{s_r > t_k} \mu_r \kappa(s_r - t_k)$ and the like. They are computed as the LIF
    adjoint is: each spike's terms are taken back to the start of the input interval that
    holds it, summed per interval, and carried back over the intervals by one reverse scan
    of the transposed (closed-form) flow. Work and memory are linear in inputs and spikes.

    **Returns:** `(d_w, d_t)` of shapes `(K, N)` and `(K,)`.
    """
    n_in = sorted_in.time.shape[0]
    lag = spikes.time - sorted_in.time[spikes.interval]
    lag = jnp.where(spikes.valid & (lag >= 0), lag, 0.0)
    mu = jnp.where(spikes.valid, mu, 0.0)
    g_cur = jnp.where(spikes.valid, g_cur, 0.0)
    e_mem = jnp.exp(-lag / params.tau_mem)
    e_syn = jnp.exp(-lag / params.tau_syn)
    kappa = membrane(0.0, 1.0, lag, params.tau_mem, params.tau_syn)
    # Per spike, at the start of its interval: mu e_mem (decays with tau_mem), the weight
    # sensitivity mu kappa + g e_syn, and mu e_syn and g e_syn (decay with tau_syn).
    terms = jnp.stack([mu * e_mem, mu * kappa + g_cur * e_syn, mu * e_syn, g_cur * e_syn])
    neuron = jnp.broadcast_to(jnp.arange(mu.shape[1]), mu.shape)
    per_interval = jnp.zeros((4, n_in, mu.shape[1]), mu.dtype)
    per_interval = per_interval.at[:, spikes.interval, neuron].add(terms)

    dt = sorted_in.end - sorted_in.time
    flow = (
        jnp.exp(-dt / params.tau_mem),
        membrane(0.0, 1.0, dt, params.tau_mem, params.tau_syn),
        jnp.exp(-dt / params.tau_syn),
    )

    def back(carry, x):
        p_mem, p_w, q_mu, q_g = carry
        (a, c, d), here = x
        carry = (
            a * p_mem + here[0],
            c * p_mem + d * p_w + here[1],
            d * q_mu + here[2],
            d * q_g + here[3],
        )
        return carry, carry[1:]

    zeros = jnp.zeros(mu.shape[1], mu.dtype)
    xs = (flow, jnp.moveaxis(per_interval, 1, 0))
    _, (d_w, q_mu, q_g) = jax.lax.scan(back, (zeros,) * 4, xs, reverse=True)
    # -mu kappa' + g e_syn / tau_syn, with kappa' = (e_syn - kappa) / tau_mem.
    per_neuron = -(q_mu - (d_w - q_g)) / params.tau_mem + q_g / params.tau_syn
    return d_w, jnp.sum(w * per_neuron, axis=-1)
