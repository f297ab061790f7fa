r"""Closed-form flow of the LIF neuron between events.

With $u = V - v_\mathrm{leak}$, $\alpha = 1/\tau_\mathrm{mem}$, $\beta = 1/\tau_\mathrm{syn}$ and
$c = \alpha - \beta$, the exact solution of the LIF ODE over a time $t$ is

$$
I(t) = I_0 e^{-\beta t}, \qquad
u(t) = e^{-\alpha t}\left(u_0 + I_0\, \alpha t\, \varphi(c t)\right), \qquad
\varphi(x) = \frac{e^x - 1}{x},
$$

which holds for every ratio $\tau_\mathrm{mem}/\tau_\mathrm{syn}$, including equality
($\varphi(0) = 1$). Evaluating $\varphi$ with `expm1` and a Taylor series near zero
avoids the catastrophic cancellation of the textbook form
$\frac{\tau_\mathrm{syn}}{\tau_\mathrm{syn}-\tau_\mathrm{mem}}(e^{-\beta t} - e^{-\alpha t})$
when the time constants are close.
"""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._params import AbstractNeuronParameters, LIFParameters

# Taylor coefficients 1/(k+1)! of phi(x) = expm1(x)/x, k = 0..7.
_PHI_SERIES = (1.0, 1 / 2, 1 / 6, 1 / 24, 1 / 120, 1 / 720, 1 / 5040, 1 / 40320)
# Below this |x| the series (error < x^8/9! ~ 3e-22 at 0.02) is used instead of expm1(x)/x,
# whose derivative would lose digits to cancellation.
_PHI_SWITCH = 0.02


def phi(x: Float[ArrayLike, "..."]) -> Float[Array, "..."]:
    r"""$\varphi(x) = (e^x - 1)/x$ with $\varphi(0) = 1$, accurate with accurate derivatives."""
    x = jnp.asarray(x)
    small = jnp.abs(x) < _PHI_SWITCH
    x_big = jnp.where(small, 1.0, x)
    x_small = jnp.where(small, x, 0.0)
    series = jnp.zeros_like(x_small)
    for coeff in reversed(_PHI_SERIES):
        series = series * x_small + coeff
    return jnp.where(small, series, jnp.expm1(x_big) / x_big)


class LIFState(eqx.Module):
    """State of a population of LIF neurons.

    **Arguments:**

    - `v`: membrane voltage of each neuron, shape `(n,)` (absolute, not relative to leak).
    - `i`: synaptic current of each neuron, shape `(n,)`.
    """

    v: Float[Array, "*n"]
    i: Float[Array, "*n"]


def membrane(
    u0: Float[ArrayLike, "*n"],
    i0: Float[ArrayLike, "*n"],
    t: Float[ArrayLike, "*n"],
    tau_mem: Float[ArrayLike, "*n"],
    tau_syn: Float[ArrayLike, "*n"],
) -> Float[Array, "*n"]:
    """Voltage above leak, `u(t)`, after a time `t` from `(u0, i0)` (closed form)."""
    alpha = 1.0 / jnp.asarray(tau_mem)
    beta = 1.0 / jnp.asarray(tau_syn)
    # exp(-alpha t) phi(c t) == exp(-min(alpha, beta) t) phi(-|c| t): the right form never
    # overflows (0 * inf) for long intervals when tau_mem < tau_syn. It is written as two
    # branches, each the exact formula with its own safe argument, rather than with
    # `minimum` and `abs`: at alpha == beta those split the derivative between the time
    # constants wrongly (the kernel is smooth there, its kinked pieces are not).
    syn_slower = alpha >= beta
    c_syn = jnp.where(syn_slower, alpha - beta, 0.0)
    c_mem = jnp.where(syn_slower, 0.0, beta - alpha)
    kernel = jnp.where(
        syn_slower,
        jnp.exp(-beta * t) * phi(-c_syn * t),
        jnp.exp(-alpha * t) * phi(-c_mem * t),
    )
    return jnp.exp(-alpha * t) * u0 + i0 * (alpha * t) * kernel


def synaptic_current(
    i0: Float[ArrayLike, "*n"], t: Float[ArrayLike, "*n"], tau_syn: Float[ArrayLike, "*n"]
) -> Float[Array, "*n"]:
    """Synaptic current `I(t) = I0 exp(-t / tau_syn)`."""
    return i0 * jnp.exp(-t / jnp.asarray(tau_syn))


def check_lif(params, who: str, reason: str) -> None:
    """Raise a `TypeError` naming `who` if `params` are the parameters of another neuron
    model than the LIF ([`eqsnn.ALIFParameters`][], [`eqsnn.IFParameters`][], ...): code
    written for the LIF's closed forms must not run them as LIF neurons. `reason` ends the
    message (why, and what to use instead)."""
    if isinstance(params, AbstractNeuronParameters) and not isinstance(params, LIFParameters):
        raise TypeError(
            f"{who}: `params` are {type(params).__name__}, not eqsnn.LIFParameters; {reason}."
        )


def lif_exponential_flow(params: LIFParameters) -> Callable[[LIFState, ArrayLike], LIFState]:
    r"""Exact propagator of the LIF state over a time step, in closed form.

    **Arguments:**

    - `params`: the [`eqsnn.LIFParameters`][]. Another neuron model
      ([`eqsnn.ALIFParameters`][], [`eqsnn.IFParameters`][]) raises a `TypeError`: its
      closed-form flow is its own `flow(x, dt)` method (one neuron).

    **Returns:** a function `flow(state, dt) -> state` that evolves an
    [`eqsnn.LIFState`][] by `dt` seconds (`dt >= 0`, scalar or broadcastable to the
    state) with the exact solution of the LIF ODE (no matrix exponential).

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn

    flow = eqsnn.lif_exponential_flow(eqsnn.LIFParameters())
    state = flow(eqsnn.LIFState(v=jnp.zeros(3), i=jnp.ones(3)), 1e-3)
    ```
    """
    check_lif(
        params,
        "lif_exponential_flow",
        "this is the LIF's flow, and a neuron model's closed-form flow is its own "
        "`flow(x, dt)` method (one neuron)",
    )

    def flow(state: LIFState, dt: ArrayLike) -> LIFState:
        u = membrane(state.v - params.v_leak, state.i, dt, params.tau_mem, params.tau_syn)
        return LIFState(v=u + params.v_leak, i=synaptic_current(state.i, dt, params.tau_syn))

    return flow
