"""The LIF ordinary differential equation as a Diffrax vector field."""

from jaxtyping import Array, ArrayLike, Float

from .._params import LIFParameters


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
