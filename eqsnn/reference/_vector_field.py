"""The ordinary differential equations of the neuron models as Diffrax vector fields."""

from jaxtyping import Array, ArrayLike, Float

from .._params import LIFParameters
from ..neurons._alif import ALIFParameters
from ..neurons._integrate_and_fire import IFParameters


def lif_vector_field(
    t: Float[ArrayLike, ""],
    y: tuple[Float[Array, " n"], Float[Array, " n"]],
    args: LIFParameters,
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    r"""The vector field of the current-based LIF neuron, for `diffrax.ODETerm`.

    Between events the membrane voltage $V$ and synaptic current $I$ of every neuron follow

    $$
    \frac{dV}{dt} = \frac{v_\mathrm{leak} - V + I}{\tau_\mathrm{mem}}, \qquad
    \frac{dI}{dt} = -\frac{I}{\tau_\mathrm{syn}} .
    $$

    Threshold crossings and synaptic jumps are not part of the vector field: see
    [`eqsnn.reference.simulate_diffrax`][].

    **Arguments:**

    - `t`: time in seconds (unused: the field is autonomous).
    - `y`: the state `(V, I)`, two arrays of shape `(n,)` (voltage, current).
    - `args`: the [`eqsnn.LIFParameters`][] (anything with attributes `tau_syn`,
      `tau_mem` and `v_leak` in seconds / voltage units works; each a scalar or an array
      of shape `(n,)`, one value per neuron).

    **Returns:** the time derivative `(dV/dt, dI/dt)`, with the shapes of `y`.

    **Example:**

    ```python
    import diffrax
    import jax.numpy as jnp
    import eqsnn

    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2)
    term = diffrax.ODETerm(eqsnn.reference.lif_vector_field)
    y0 = (jnp.zeros(3), jnp.ones(3))
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1e-2, 1e-4, y0, args=params)
    ```
    """
    del t
    v, i = y
    return (args.v_leak - v + i) / args.tau_mem, -i / args.tau_syn


def alif_vector_field(
    t: Float[ArrayLike, ""],
    y: tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, " n"]],
    args: ALIFParameters,
) -> tuple[Float[Array, " n"], Float[Array, " n"], Float[Array, " n"]]:
    r"""The vector field of the adaptive LIF neuron, for `diffrax.ODETerm`.

    Between events the membrane voltage $V$, synaptic current $I$ and threshold
    adaptation $a$ of every neuron follow

    $$
    \frac{dV}{dt} = \frac{v_\mathrm{leak} - V + I}{\tau_\mathrm{mem}}, \qquad
    \frac{dI}{dt} = -\frac{I}{\tau_\mathrm{syn}}, \qquad
    \frac{da}{dt} = -\frac{a}{\tau_\mathrm{adapt}} ;
    $$

    the neuron spikes when $V$ reaches $v_\mathrm{th} + a$ (see
    [`eqsnn.ALIFParameters`][]). Threshold crossings and the jumps at spikes and inputs
    are not part of the vector field: see [`eqsnn.reference.simulate_diffrax`][].

    **Arguments:**

    - `t`: time in seconds (unused: the field is autonomous).
    - `y`: the state `(V, I, a)`, three arrays of shape `(n,)` (voltage, current,
      threshold adaptation).
    - `args`: the [`eqsnn.ALIFParameters`][] (anything with attributes `tau_syn`,
      `tau_mem`, `v_leak` and `tau_adapt` works; each a scalar or an array of shape
      `(n,)`, one value per neuron).

    **Returns:** the time derivative `(dV/dt, dI/dt, da/dt)`, with the shapes of `y`.

    **Example:**

    ```python
    import diffrax
    import jax.numpy as jnp
    import eqsnn

    params = eqsnn.ALIFParameters(tau_syn=5e-3, tau_mem=1e-2, tau_adapt=5e-2)
    term = diffrax.ODETerm(eqsnn.reference.alif_vector_field)
    y0 = (jnp.zeros(3), jnp.ones(3), jnp.full(3, 0.1))
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1e-2, 1e-4, y0, args=params)
    ```
    """
    del t
    v, i, a = y
    return (args.v_leak - v + i) / args.tau_mem, -i / args.tau_syn, -a / args.tau_adapt


def if_vector_field(
    t: Float[ArrayLike, ""],
    y: tuple[Float[Array, " n"], Float[Array, " n"]],
    args: IFParameters,
) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    r"""The vector field of the non-leaky integrate-and-fire neuron, for `diffrax.ODETerm`.

    Between events the membrane voltage $V$ and synaptic current $I$ of every neuron
    follow

    $$
    \frac{dV}{dt} = \frac{I}{\tau_\mathrm{mem}}, \qquad
    \frac{dI}{dt} = -\frac{I}{\tau_\mathrm{syn}}
    $$

    (no leak; see [`eqsnn.IFParameters`][]). Threshold crossings and the jumps at spikes
    and inputs are not part of the vector field: see
    [`eqsnn.reference.simulate_diffrax`][].

    **Arguments:**

    - `t`: time in seconds (unused: the field is autonomous).
    - `y`: the state `(V, I)`, two arrays of shape `(n,)` (voltage, current).
    - `args`: the [`eqsnn.IFParameters`][] (anything with attributes `tau_syn` and
      `tau_mem` works; each a scalar or an array of shape `(n,)`, one value per neuron).

    **Returns:** the time derivative `(dV/dt, dI/dt)`, with the shapes of `y`.

    **Example:**

    ```python
    import diffrax
    import jax.numpy as jnp
    import eqsnn

    params = eqsnn.IFParameters(tau_syn=5e-3, tau_mem=1e-2)
    term = diffrax.ODETerm(eqsnn.reference.if_vector_field)
    y0 = (jnp.zeros(3), jnp.ones(3))
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), 0.0, 1e-2, 1e-4, y0, args=params)
    ```
    """
    del t
    v, i = y
    del v
    return i / args.tau_mem, -i / args.tau_syn
