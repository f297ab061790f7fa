r"""The interface of a neuron model that is linear between events.

A model is its parameters class: a subclass of [`eqsnn.neurons.AbstractNeuronModel`][]
(itself a frozen dataclass pytree, like [`eqsnn.LIFParameters`][]) whose methods say how
one neuron's state moves between events, jumps at an input and at a spike, and when it
crosses threshold. The engine ([`eqsnn.WindowScan`][] for feed-forward layers and layered
recurrent ones) and both gradient methods are written once against these methods; see
[Write your own neuron model](../howto/neuron_model.md).
"""

import abc

from jaxtyping import Array, Float

from .._params import AbstractNeuronParameters


class AbstractNeuronModel(AbstractNeuronParameters):
    r"""Base class of the neuron models that are linear between events.

    A subclass is a frozen dataclass of parameters (registered as a pytree, see
    [`eqsnn.LIFParameters`][] for the convention: float fields are constants, array fields
    of shape `()` or `(n,)` are per-neuron and trainable) that implements, for **one
    neuron** (every parameter a scalar; the engine maps over neurons with `jax.vmap`):

    - `initial_state(dtype)`: the state vector $x(0)$, shape `(state_size,)`.
    - `flow(x, dt)`: the state after a time `dt >= 0` without events, in closed form.
    - `receive(x, w)`: the state right after an input spike of weight `w`.
    - `fire(x)`: the state right after the neuron spikes.
    - `gap(x)`: the distance to threshold; the neuron spikes when it reaches 0 from below.
    - `gap_terms(x)`: the same distance as a function of the time $t$ since the state
      `x`, written as an exponential sum $g(t) = c_0 + \sum_j c_j e^{-r_j t}$: returns
      `(c0, c, r)` with `c`, `r` of shape `(m,)`, distinct rates. The crossing solver
      ([`eqsnn.neurons.first_crossing`][]) uses it to split a window into pieces where
      $g$ is monotone, and then finds the root with `gap(flow(x, t))`.
    - `current(x)`: the synaptic current, recorded in the output spikes.

    **Linearity.** The engine relies on it: `flow(x, dt)` must be linear in `x`
    ($x(t) = \Phi(t)\,x_0$, with the constant parts of the dynamics folded into the
    state's offsets, as $u = V - v_\mathrm{leak}$), `receive(x, w)` must add to `x` (an
    input's effect does not depend on the state), and a neuron at `initial_state` without
    input must stay below threshold. `fire` may be any differentiable map. The state is then
    the free trajectory (the inputs alone) plus the flow of the jumps at the spikes, which
    is what lets the window scan search many input intervals at once.

    Everything else (the window scan, spike budgets, delays, EventProp's adjoint, the
    implicit differentiation of the crossing times) is generic: the adjoint between and
    at events is the transpose of these closed forms.
    """

    @abc.abstractmethod
    def initial_state(self, dtype) -> Float[Array, " d"]:
        """The state at `t = 0`, shape `(state_size,)`."""

    @abc.abstractmethod
    def flow(self, x: Float[Array, " d"], dt: Float[Array, ""]) -> Float[Array, " d"]:
        """The state after a time `dt >= 0` without events (closed form)."""

    @abc.abstractmethod
    def receive(self, x: Float[Array, " d"], w: Float[Array, ""]) -> Float[Array, " d"]:
        """The state right after an input spike of weight `w`."""

    @abc.abstractmethod
    def fire(self, x: Float[Array, " d"]) -> Float[Array, " d"]:
        """The state right after a spike (the reset and any other jump)."""

    @abc.abstractmethod
    def gap(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        """Distance to threshold: `>= 0` means the neuron spikes."""

    @abc.abstractmethod
    def gap_terms(self, x: Float[Array, " d"]):
        r"""`(c0, c, r)`: $g(t) = c_0 + \sum_j c_j e^{-r_j t}$ equals
        `gap(flow(x, t))`; `c` and `r` have shape `(m,)` and the rates are distinct."""

    @abc.abstractmethod
    def current(self, x: Float[Array, " d"]) -> Float[Array, ""]:
        """The synaptic current (recorded with each output spike)."""


def is_model(params) -> bool:
    """Whether `params` is a neuron model run by the generic engine (not the LIF's own)."""
    return isinstance(params, AbstractNeuronModel)
