r"""The non-leaky integrate-and-fire neuron with exponential synapses."""

import dataclasses

import jax
import jax.numpy as jnp

from ._model import AbstractNeuronModel


@jax.tree_util.register_pytree_with_keys_class
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class IFParameters(AbstractNeuronModel):
    r"""Non-leaky integrate-and-fire neuron (IF) with exponential synapses.

    $$
    \tau_\mathrm{mem} \frac{dV}{dt} = I, \qquad \tau_\mathrm{syn} \frac{dI}{dt} = -I .
    $$

    The voltage integrates the current without leak: `tau_mem` is the integration time
    scale (a capacitance over a conductance), so that for times short against
    `tau_mem` the LIF neuron of [`eqsnn.LIFParameters`][] with the same values behaves
    alike. An input spike of weight $w$ sets $I \to I + w$; when $V$ reaches $v_\mathrm{th}$
    the neuron spikes and $V \to v_\mathrm{reset}$. $V$ starts at $v_\mathrm{init}$. The
    closed form is its own (not an LIF with a large $\tau_\mathrm{mem}$):

    $$
    I(t) = I_0 e^{-t/\tau_\mathrm{syn}}, \qquad
    V(t) = V_0 + I_0 \frac{\tau_\mathrm{syn}}{\tau_\mathrm{mem}}
        \left(1 - e^{-t/\tau_\mathrm{syn}}\right),
    $$

    and the crossing is a logarithm: $t^* = -\tau_\mathrm{syn}
    \log\bigl(1 - (v_\mathrm{th} - V_0)\tau_\mathrm{mem} / (I_0\tau_\mathrm{syn})\bigr)$.
    Without a leak, the voltage stays where the inputs leave it; a negative current
    lowers it without bound. See [Neuron models](../concepts/neurons.md).

    **Arguments:**

    - `tau_syn`: synaptic time constant in seconds (> 0).
    - `tau_mem`: integration time scale in seconds (> 0).
    - `v_th`: threshold voltage.
    - `v_init`: voltage at `t = 0` (below `v_th`).
    - `v_reset`: voltage after a spike (below `v_th`).
    """

    tau_syn: float | jax.Array = 5e-3
    tau_mem: float | jax.Array = 1e-2
    v_th: float | jax.Array = 0.6
    v_init: float | jax.Array = 0.0
    v_reset: float | jax.Array = 0.0

    _FIELDS = ("tau_syn", "tau_mem", "v_th", "v_init", "v_reset")
    _DEFAULTS = (5e-3, 1e-2, 0.6, 0.0, 0.0)

    def _check(self, check) -> None:
        """Finite values, positive time constants, `v_init < v_th`, `v_reset < v_th`."""
        check.common("tau_syn", "tau_mem")
        v = check.values
        check(v["v_init"] >= v["v_th"], "`v_init` must be below `v_th`", "v_init", "v_th")
        check(v["v_reset"] >= v["v_th"], "`v_reset` must be below `v_th`", "v_reset", "v_th")

    def initial_state(self, dtype):
        """`(V, i)` = `(v_init, 0)`."""
        return jnp.stack([jnp.asarray(self.v_init, dtype), jnp.zeros((), dtype)])

    def flow(self, x, dt):
        """The closed form above (with `expm1`)."""
        v, i = x[0], x[1]
        scale = self.tau_syn / self.tau_mem
        return jnp.stack(
            [v - i * scale * jnp.expm1(-dt / self.tau_syn), i * jnp.exp(-dt / self.tau_syn)]
        )

    def receive(self, x, w):
        """`i -> i + w`."""
        return x.at[1].add(w)

    def fire(self, x):
        """`V -> v_reset`."""
        return jnp.stack([jnp.zeros_like(x[0]) + self.v_reset, x[1]])

    def gap(self, x):
        """`V - v_th`."""
        return x[0] - self.v_th

    def gap_terms(self, x):
        r"""$V_0 + I_0 \tau_\mathrm{syn}/\tau_\mathrm{mem} - v_\mathrm{th}
        - I_0 (\tau_\mathrm{syn}/\tau_\mathrm{mem}) e^{-t/\tau_\mathrm{syn}}$."""
        v, i = x[0], x[1]
        scale = i * self.tau_syn / self.tau_mem
        r = jnp.reshape(1.0 / jnp.asarray(self.tau_syn, x.dtype), (1,))
        return v + scale - self.v_th, jnp.reshape(-scale, (1,)), r

    def current(self, x):
        """The synaptic current `i`."""
        return x[1]
