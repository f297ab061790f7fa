r"""The EventProp adjoint of the LIF neuron: closed-form flow and jump conditions.

Notation of Wunderlich & Pehle (2021), "Event-based backpropagation can compute exact
gradients for spiking neural networks", Sci. Rep. 11:12829. The adjoint variables
$\lambda_V$, $\lambda_I$ are integrated backwards in time from $\lambda(t_\mathrm{max}) = 0$.
Between events they follow (forward-time derivatives)

$$
\tau_\mathrm{mem} \dot\lambda_V = \lambda_V, \qquad
\tau_\mathrm{syn} \dot\lambda_I = \lambda_I - \lambda_V ,
$$

and they relate to the sensitivities of the loss to the state by
$\partial L / \partial V(t) = -\tau_\mathrm{mem}\lambda_V(t)$ and
$\partial L / \partial I(t) = -\tau_\mathrm{syn}\lambda_I(t)$. All voltages below are
relative to the leak: $\vartheta = v_\mathrm{th} - v_\mathrm{leak}$,
$v_r = v_\mathrm{reset} - v_\mathrm{leak}$.
"""

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from .._flow import check_lif, phi
from .._params import LIFParameters


class AdjointState(eqx.Module):
    r"""The EventProp adjoint variables of a population of LIF neurons.

    **Arguments:**

    - `lambda_v`: $\lambda_V$, shape `(n,)`; $\partial L/\partial V = -\tau_\mathrm{mem}\lambda_V$.
    - `lambda_i`: $\lambda_I$, shape `(n,)`; $\partial L/\partial I = -\tau_\mathrm{syn}\lambda_I$.
    """

    lambda_v: Float[Array, "*n"]
    lambda_i: Float[Array, "*n"]


LIF_ONLY = (
    "the closed forms of eqsnn.eventprop are the LIF's; layers of other models get "
    "EventProp from adjoint=eqsnn.EventProp()"
)
"""Why the blocks here refuse other neuron models (the end of the message)."""


def adjoint_lif_exponential_flow(
    params: LIFParameters,
) -> Callable[[AdjointState, Float[ArrayLike, "*n"]], AdjointState]:
    r"""Exact propagator of the adjoint LIF system backwards in time, in closed form.

    Over a step $\Delta \ge 0$ backwards, with $c = 1/\tau_\mathrm{mem} - 1/\tau_\mathrm{syn}$
    and $\varphi(x) = (e^x - 1)/x$ as in the forward flow,

    $$
    \lambda_V(t - \Delta) = e^{-\Delta/\tau_\mathrm{mem}} \lambda_V(t), \qquad
    \lambda_I(t - \Delta) = e^{-\Delta/\tau_\mathrm{syn}} \lambda_I(t)
        + \frac{\Delta}{\tau_\mathrm{syn}}\, e^{-\Delta/\tau_\mathrm{mem}}\varphi(c\Delta)\,
          \lambda_V(t),
    $$

    the transpose of the forward propagator (no matrix exponential). The coupling term is
    evaluated as $\frac{\Delta}{\tau_\mathrm{syn}} e^{-\Delta/\tau_\mathrm{slow}}
    \varphi(-|c|\Delta)$ with the slower time constant, so it neither cancels near
    $\tau_\mathrm{mem} = \tau_\mathrm{syn}$ nor overflows for long steps.

    **Arguments:**

    - `params`: the neuron parameters.

    **Returns:** a function `flow(adjoint, dt) -> adjoint` that maps $\lambda(t)$ to
    $\lambda(t - dt)$ for an [`eqsnn.eventprop.AdjointState`][] (`dt` in seconds,
    broadcastable).

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn

    flow = eqsnn.eventprop.adjoint_lif_exponential_flow(eqsnn.LIFParameters())
    later = eqsnn.eventprop.AdjointState(lambda_v=jnp.ones(3), lambda_i=jnp.zeros(3))
    earlier = flow(later, 1e-3)
    ```
    """
    check_lif(
        params,
        "eqsnn.eventprop.adjoint_lif_exponential_flow",
        LIF_ONLY,
    )
    if params.tau_ratio is None:  # array time constants (per neuron or trainable)
        tau_slow = jnp.maximum(params.tau_mem, params.tau_syn)
        abs_c = jnp.abs(1.0 / params.tau_mem - 1.0 / params.tau_syn)
    else:
        tau_slow = max(params.tau_mem, params.tau_syn)
        abs_c = abs(1.0 / params.tau_mem - 1.0 / params.tau_syn)

    def flow(adjoint: AdjointState, dt: Float[ArrayLike, "*n"]) -> AdjointState:
        dt = jnp.asarray(dt, dtype=jnp.result_type(adjoint.lambda_v))
        coupling = dt / params.tau_syn * jnp.exp(-dt / tau_slow) * phi(-abs_c * dt)
        return AdjointState(
            lambda_v=jnp.exp(-dt / params.tau_mem) * adjoint.lambda_v,
            lambda_i=jnp.exp(-dt / params.tau_syn) * adjoint.lambda_i + coupling * adjoint.lambda_v,
        )

    return flow


def _jump(params, lambda_v, current, grad_time, grad_current, recurrent_term):
    """Numerator and denominator of the lambda_V jump at a spike (shared by both transitions)."""
    theta = params.v_th - params.v_leak
    v_r = params.v_reset - params.v_leak
    numerator = (
        (current - v_r) * lambda_v
        + recurrent_term
        + grad_time
        - current / params.tau_syn * grad_current
    )
    return numerator, current - theta


def adjoint_transition_without_recurrence(
    params: LIFParameters,
    adjoint: AdjointState,
    current: Float[Array, " n"],
    grad_time: Float[Array, " n"],
    grad_current: Float[Array, " n"],
    spiked: Bool[Array, " n"],
    pinned: Bool[Array, " n"] | None = None,
) -> tuple[AdjointState, Float[Array, " n"]]:
    r"""Adjoint jump at output spikes of a feed-forward layer (all neurons in parallel).

    For a neuron that spikes at $t_k$ with synaptic current $I = I(t_k)$, given the
    adjoint just after the spike ($\lambda^+$) and the loss gradients
    $\partial L/\partial t_k$, $\partial L/\partial I_k$ of that spike's time and current:

    $$
    \lambda_V^- = \frac{(I - v_r)\,\lambda_V^+ + \partial L/\partial t_k
        - (I/\tau_\mathrm{syn})\,\partial L/\partial I_k}{I - \vartheta}, \qquad
    \lambda_I^- = \lambda_I^+ - \frac{1}{\tau_\mathrm{syn}}\frac{\partial L}{\partial I_k}.
    $$

    This is the paper's $\lambda_V^- = (\dot V^+/\dot V^-)\lambda_V^+
    + (\partial l/\partial t_k)/(\tau_\mathrm{mem}\dot V^-)$ with
    $\tau_\mathrm{mem}\dot V^\mp = I - \vartheta,\ I - v_r$: the first term is the reset
    (exact for multiple spikes per neuron with any finite $v_\mathrm{reset}$).

    A spike whose time does not move with the state (a zero or negative slope
    $I \le \vartheta$, or one `pinned` to the start of its interval: the neuron was
    already above threshold there) has a zero-tangent time, as in autodiff: then
    $\lambda_V^- = 0$ (the reset forgets the voltage) and the numerator above is returned
    as the gradient of the time the spike is pinned to.

    **Arguments:**

    - `params`: the neuron parameters.
    - `adjoint`: $\lambda^+$, just after the spikes.
    - `current`: $I(t_k)$ of each neuron at its spike.
    - `grad_time`, `grad_current`: $\partial L/\partial t_k$, $\partial L/\partial I_k$.
    - `spiked`: which neurons spike (the others are left unchanged).
    - `pinned`: which spikes are pinned to the start of their interval (default none).

    **Returns:** `(adjoint, pinned_grad)`: $\lambda^-$ just before the spikes, and for
    pinned spikes the gradient of the time they are pinned to (zero elsewhere).
    """
    check_lif(
        params,
        "eqsnn.eventprop.adjoint_transition_without_recurrence",
        LIF_ONLY,
    )
    numerator, rise = _jump(
        params, adjoint.lambda_v, current, grad_time, grad_current, jnp.zeros_like(current)
    )
    moves = spiked & (rise > 0)
    if pinned is not None:
        moves = moves & ~pinned
    lambda_v = jnp.where(moves, numerator / jnp.where(moves, rise, 1.0), 0.0)
    lambda_v = jnp.where(spiked, lambda_v, adjoint.lambda_v)
    lambda_i = jnp.where(spiked, adjoint.lambda_i - grad_current / params.tau_syn, adjoint.lambda_i)
    pinned_grad = jnp.where(spiked & ~moves, numerator, 0.0)
    return AdjointState(lambda_v=lambda_v, lambda_i=lambda_i), pinned_grad


def adjoint_transition_with_recurrence(
    params: LIFParameters,
    adjoint: AdjointState,
    neuron: Int[ArrayLike, ""],
    current: Float[ArrayLike, ""],
    grad_time: Float[ArrayLike, ""],
    grad_current: Float[ArrayLike, ""],
    recurrent: Float[Array, "n n"],
) -> tuple[AdjointState, Float[Array, " n"]]:
    r"""Adjoint jump at one spike of neuron $j$ in a recurrent layer.

    The spike resets $V_j$ and adds `recurrent[j, :]` $= W_{j\cdot}$ to every synaptic
    current. With $I = I_j(t_k)$ the current of neuron $j$ before its own recurrent input:

    $$
    \lambda_{V,j}^- = \frac{(I - v_r)\,\lambda_{V,j}^+
        + \sum_k W_{jk}\,(\lambda_{V,k}^+ - \lambda_{I,k}^+) + \partial L/\partial t_k
        - (I/\tau_\mathrm{syn})\,\partial L/\partial I_k}{I - \vartheta}, \qquad
    \lambda_{I,j}^- = \lambda_{I,j}^+ - \frac{1}{\tau_\mathrm{syn}}
        \frac{\partial L}{\partial I_k},
    $$

    the other neurons' adjoints are continuous, and
    $\partial L/\partial W_{jk} \mathrel{+}= -\tau_\mathrm{syn}\lambda_{I,k}^+$. A crossing
    with zero or negative slope ($I \le \vartheta$) has a zero-tangent time, as in
    autodiff: then $\lambda_{V,j}^- = 0$.

    **Arguments:**

    - `params`: the neuron parameters.
    - `adjoint`: $\lambda^+$ of all `n` neurons just after the spike.
    - `neuron`: the index $j$ of the spiking neuron.
    - `current`: $I_j(t_k)$, before the spike's recurrent input.
    - `grad_time`, `grad_current`: $\partial L/\partial t_k$, $\partial L/\partial I_k$.
    - `recurrent`: the recurrent weights, `recurrent[j, k]` from neuron `j` to `k`.

    **Returns:** `(adjoint, grad_row)`: $\lambda^-$ just before the spike, and the
    gradient contribution to `recurrent[j, :]`.
    """
    check_lif(
        params,
        "eqsnn.eventprop.adjoint_transition_with_recurrence",
        LIF_ONLY,
    )
    row = recurrent[neuron]
    term = jnp.dot(row, adjoint.lambda_v - adjoint.lambda_i)
    own = of_neuron(params, neuron)
    numerator, rise = _jump(own, adjoint.lambda_v[neuron], current, grad_time, grad_current, term)
    moves = rise > 0
    lambda_v_j = jnp.where(moves, numerator / jnp.where(moves, rise, 1.0), 0.0)
    grad_row = -params.tau_syn * adjoint.lambda_i
    new = AdjointState(
        lambda_v=adjoint.lambda_v.at[neuron].set(lambda_v_j),
        lambda_i=adjoint.lambda_i.at[neuron].add(-grad_current / own.tau_syn),
    )
    return new, grad_row


def of_neuron(params: LIFParameters, neuron: Int[ArrayLike, ""]) -> LIFParameters:
    """The parameters of one neuron: per-neuron array fields indexed, the others as they
    are."""
    return jax.tree.map(lambda value: value[neuron] if jnp.ndim(value) else value, params)


def adjoint_input_transition(
    params: LIFParameters, adjoint: AdjointState, weights_row: Float[Array, " n"]
) -> tuple[Float[Array, " n"], Float[Array, ""]]:
    r"""Gradients at an input spike that adds `weights_row` $= W_{i\cdot}$ to the currents.

    The adjoint is continuous across an input spike; the spike contributes

    $$
    \frac{\partial L}{\partial W_{in}} \mathrel{+}= -\tau_\mathrm{syn}\,\lambda_{I,n}, \qquad
    \frac{\partial L}{\partial t_\mathrm{in}} \mathrel{+}=
        \sum_n W_{in}\,(\lambda_{V,n} - \lambda_{I,n}),
    $$

    the latter being the paper's presynaptic jump term, i.e. what stacked layers pass on.

    **Returns:** `(grad_row, grad_time)`: the contribution to $\partial L/\partial W_{i\cdot}$
    and $\partial L/\partial t_\mathrm{in}$.
    """
    check_lif(
        params,
        "eqsnn.eventprop.adjoint_input_transition",
        LIF_ONLY,
    )
    grad_row = -params.tau_syn * adjoint.lambda_i
    grad_time = jnp.sum(weights_row * (adjoint.lambda_v - adjoint.lambda_i), axis=-1)
    return grad_row, grad_time
