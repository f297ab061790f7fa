r"""The adaptive LIF neuron: an LIF neuron whose threshold rises at each spike."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ._model import AbstractNeuronModel


@jax.tree_util.register_pytree_with_keys_class
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ALIFParameters(AbstractNeuronModel):
    r"""Adaptive leaky integrate-and-fire neuron (ALIF) with exponential synapses.

    The current-based LIF neuron of [`eqsnn.LIFParameters`][] with an adaptive
    threshold $v_\mathrm{th} + a$:

    $$
    \tau_\mathrm{mem} \frac{dV}{dt} = v_\mathrm{leak} - V + I, \qquad
    \tau_\mathrm{syn} \frac{dI}{dt} = -I, \qquad
    \tau_\mathrm{adapt} \frac{da}{dt} = -a .
    $$

    An input spike of weight $w$ sets $I \to I + w$. When $V$ reaches
    $v_\mathrm{th} + a$ the neuron spikes, $V \to v_\mathrm{reset}$ and
    $a \to a + \beta$: each spike raises the threshold by $\beta$, which decays back to
    $v_\mathrm{th}$ with $\tau_\mathrm{adapt}$. With $\beta = 0$ it is the LIF neuron.
    Between events the distance to threshold is a sum of three exponentials (rates
    $1/\tau_\mathrm{mem}$, $1/\tau_\mathrm{syn}$, $1/\tau_\mathrm{adapt}$). The layers
    run it on the LIF's window scan: before a neuron's first spike its crossing is the
    LIF's (the LIF's solver), after it a closed-form decision per input interval and a
    Newton iteration find it exactly, with [`eqsnn.neurons.first_crossing`][] where the
    decision needs it; see [Neuron models](../concepts/neurons.md).

    Use it as the `params` of [`eqsnn.LIF`][], [`eqsnn.EventPropLIF`][] or a layered
    [`eqsnn.RecurrentLIF`][]; fields are floats (constants) or arrays of shape `()` or
    `(n,)` (per neuron, trainable), as for [`eqsnn.LIFParameters`][].

    **Arguments:**

    - `tau_syn`: synaptic time constant in seconds (> 0).
    - `tau_mem`: membrane time constant in seconds (> 0, different from `tau_syn`).
    - `v_th`: resting threshold (greater than `v_leak`).
    - `v_leak`: leak (resting) voltage.
    - `v_reset`: voltage after a spike (below `v_th`).
    - `tau_adapt`: time constant of the threshold adaptation in seconds (> 0, different
      from `tau_mem` and `tau_syn`).
    - `beta`: threshold increase per spike (>= 0, voltage units).

    The time constants must be pairwise different: the flow and the crossing solver use the
    exponential sum, whose coefficients grow as $1/(\tau_\mathrm{mem} - \tau_\mathrm{syn})$
    and lose digits when two time constants are very close (about `eps / (relative
    difference)` relative: 1e-13 in float64 at a difference of 1e-3).

    **Example:**

    ```python
    import jax
    import eqsnn

    params = eqsnn.ALIFParameters(tau_adapt=5e-2, beta=0.2)
    layer = eqsnn.LIF(4, 8, n_spikes=32, t_max=0.1, params=params, key=jax.random.key(0))
    ```
    """

    tau_syn: float | jax.Array = 5e-3
    tau_mem: float | jax.Array = 1e-2
    v_th: float | jax.Array = 0.6
    v_leak: float | jax.Array = 0.0
    v_reset: float | jax.Array = 0.0
    tau_adapt: float | jax.Array = 5e-2
    beta: float | jax.Array = 0.1

    _FIELDS = ("tau_syn", "tau_mem", "v_th", "v_leak", "v_reset", "tau_adapt", "beta")
    _DEFAULTS = (5e-3, 1e-2, 0.6, 0.0, 0.0, 5e-2, 0.1)

    def _check(self, check) -> None:
        """Finite values, positive and pairwise different time constants, `v_leak < v_th`,
        `v_reset < v_th`, `beta >= 0`."""
        check.common("tau_syn", "tau_mem", "tau_adapt")
        v = check.values
        check.voltages()
        check(v["beta"] < 0, "`beta` must be >= 0", "beta", single=True)
        for a, b in (("tau_mem", "tau_syn"), ("tau_adapt", "tau_mem"), ("tau_adapt", "tau_syn")):
            check(np.equal(v[a], v[b]), f"`{a}` must differ from `{b}`", a, b)

    def initial_state(self, dtype):
        """`(u, i, a)`: voltage above leak, current, threshold adaptation, all zero."""
        return jnp.zeros((3,), dtype)

    def flow(self, x, dt):
        r"""The closed form: $u(t) = (u_0 - A) e^{-t/\tau_\mathrm{mem}} + A
        e^{-t/\tau_\mathrm{syn}}$ with $A = I_0 \tau_\mathrm{syn} / (\tau_\mathrm{syn} -
        \tau_\mathrm{mem})$, $I(t) = I_0 e^{-t/\tau_\mathrm{syn}}$, $a(t) = a_0
        e^{-t/\tau_\mathrm{adapt}}$ (the time constants differ)."""
        u, i, a = x[0], x[1], x[2]
        decay_syn = jnp.exp(-dt / self.tau_syn)
        amp = i * self.tau_syn / (self.tau_syn - self.tau_mem)
        return jnp.stack(
            [
                (u - amp) * jnp.exp(-dt / self.tau_mem) + amp * decay_syn,
                i * decay_syn,
                a * jnp.exp(-dt / self.tau_adapt),
            ]
        )

    def receive(self, x, w):
        """`i -> i + w`."""
        return x.at[1].add(w)

    def fire(self, x):
        """`V -> v_reset`, `a -> a + beta`."""
        return jnp.stack(
            [jnp.zeros_like(x[0]) + (self.v_reset - self.v_leak), x[1], x[2] + self.beta]
        )

    def gap(self, x):
        """`V - (v_th + a)`."""
        return x[0] - (self.v_th - self.v_leak) - x[2]

    def gap_terms(self, x):
        r"""$u(t) - \vartheta - a(t)$ with $u(t) = (u_0 - A) e^{-t/\tau_\mathrm{mem}}
        + A e^{-t/\tau_\mathrm{syn}}$, $A = I_0 \tau_\mathrm{syn} /
        (\tau_\mathrm{syn} - \tau_\mathrm{mem})$."""
        u, i, a = x[0], x[1], x[2]
        amp = i * self.tau_syn / (self.tau_syn - self.tau_mem)
        c = jnp.stack([u - amp, amp, -a])
        r = jnp.stack([1.0 / self.tau_mem, 1.0 / self.tau_syn, 1.0 / self.tau_adapt])
        return jnp.zeros_like(u) - (self.v_th - self.v_leak), c, r.astype(c.dtype)

    def current(self, x):
        """The synaptic current `i`."""
        return x[1]
