"""Parameters of the current-based leaky integrate-and-fire neuron."""

import math

import equinox as eqx


class LIFParameters(eqx.Module):
    r"""Parameters of a current-based LIF neuron with exponential synapses.

    The membrane voltage $V$ and synaptic current $I$ follow

    $$
    \tau_\mathrm{mem} \frac{dV}{dt} = v_\mathrm{leak} - V + I, \qquad
    \tau_\mathrm{syn} \frac{dI}{dt} = -I .
    $$

    When $V$ reaches $v_\mathrm{th}$ the neuron emits a spike and $V$ is set to
    $v_\mathrm{reset}$. A very low `v_reset` (e.g. `-1000.0`) gives the usual
    one-spike-per-neuron regime of time-to-first-spike coding.

    All fields are static Python floats: they select the crossing solver at trace
    time and are not trained.

    **Arguments:**

    - `tau_syn`: synaptic time constant $\tau_\mathrm{syn}$ in seconds (> 0).
    - `tau_mem`: membrane time constant $\tau_\mathrm{mem}$ in seconds (> 0).
    - `v_th`: threshold voltage (volt-like units; must exceed `v_leak`).
    - `v_leak`: leak (resting) voltage.
    - `v_reset`: voltage after a spike (must be below `v_th`).

    **Example:**

    ```python
    import eqsnn

    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6)
    ```
    """

    tau_syn: float = eqx.field(default=5e-3, static=True, converter=float)
    tau_mem: float = eqx.field(default=1e-2, static=True, converter=float)
    v_th: float = eqx.field(default=0.6, static=True, converter=float)
    v_leak: float = eqx.field(default=0.0, static=True, converter=float)
    v_reset: float = eqx.field(default=0.0, static=True, converter=float)

    def __check_init__(self):
        for name in ("tau_syn", "tau_mem", "v_th", "v_leak", "v_reset"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"LIFParameters: `{name}` must be finite, got {value!r}.")
        for name in ("tau_syn", "tau_mem"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(
                    f"LIFParameters: `{name}` must be positive (seconds), got {value!r}."
                )
        if self.v_th <= self.v_leak:
            raise ValueError(
                f"LIFParameters: `v_th` must be greater than `v_leak`, got "
                f"v_th={self.v_th!r} and v_leak={self.v_leak!r}."
            )
        if self.v_reset >= self.v_th:
            raise ValueError(
                f"LIFParameters: `v_reset` must be below `v_th`, got "
                f"v_reset={self.v_reset!r} and v_th={self.v_th!r}."
            )

    @property
    def tau_ratio(self) -> float:
        r"""The ratio $\tau_\mathrm{mem} / \tau_\mathrm{syn}$."""
        return self.tau_mem / self.tau_syn
