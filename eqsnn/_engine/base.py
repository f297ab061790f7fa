r"""What every engine shares: the configuration it receives and its abstract base.

An *engine* is how a layer's spikes are found: which loop runs over the events and what
it solves at each step. It is a value the user passes to a layer (`engine=`), like a
Diffrax solver; the *gradient method* is a second value (`adjoint=`, see
[`eqsnn.AutoDiff`][] and [`eqsnn.EventProp`][]). Below the layer nothing knows which
layer called: an engine receives a [`eqsnn.SimulationConfig`][]
(the neuron parameters, the crossing solver, the buffer size, the horizon and, for a
recurrent layer, its connectivity), the weights and one sample of checked input spikes.
"""

import abc

import equinox as eqx

from .._connectivity import ConnectivityMask
from .._params import LIFParameters
from .._spikes import Spikes
from ..solvers import AbstractCrossingSolver


class SimulationConfig(eqx.Module):
    """Everything an engine reads besides the weights and the input spikes.

    **Arguments:**

    - `params`: the [`eqsnn.LIFParameters`][] of the neurons.
    - `solver`: the crossing solver ([`eqsnn.solvers.AbstractCrossingSolver`][]).
    - `n_spikes`: the number of output slots.
    - `t_max`: the simulation horizon in seconds; events at or after it are ignored.
    - `mask`: for a recurrent layer, which of its weights exist (an
      [`eqsnn.ConnectivityMask`][]); `None` for a feed-forward layer.
    - `layers`: the population sizes of a recurrent layer (`(out_size,)` for a
      feed-forward one).
    """

    params: LIFParameters
    solver: AbstractCrossingSolver = eqx.field(static=True)
    n_spikes: int = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    mask: ConnectivityMask | None = eqx.field(static=True, default=None)
    layers: tuple[int, ...] = eqx.field(static=True, default=())

    @property
    def recurrent(self) -> bool:
        """Whether the configuration is that of a recurrent layer."""
        return self.mask is not None


class AbstractEngine(eqx.Module):
    """Base class of the engines: how a layer's events are found.

    An engine's fields are its settings (spike budgets); they are static. Subclasses
    implement `simulate`, which autodiff can differentiate (see [`eqsnn.AutoDiff`][]).
    The EventProp adjoint of each engine lives beside it in `eqsnn._adjoint`.
    """

    @abc.abstractmethod
    def simulate(self, config: SimulationConfig, weights, spikes: Spikes) -> Spikes:
        """Simulate one sample.

        **Arguments:**

        - `config`: the [`eqsnn.SimulationConfig`][].
        - `weights`: the `(in_size, out_size)` input weights of a feed-forward layer, or
          the effective (masked) [`eqsnn.RecurrentWeights`][] of a recurrent one.
        - `spikes`: one checked sample of input spikes.

        **Returns:** the `config.n_spikes` earliest output spikes, sorted by time; their
        `dropped` counts the spikes this engine lost (a lower bound, 0 exactly when none
        was lost), not those of the input.
        """

    def check(self, config: SimulationConfig, who: str) -> None:
        """Raise a `ValueError` naming `who` if this engine cannot run `config`."""
        del config, who

    @property
    def budget_settings(self) -> dict[str, object]:
        """The engine's spike budgets by name (for messages and summaries)."""
        return {}
