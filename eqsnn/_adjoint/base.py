r"""Gradient methods as values: `AutoDiff` and `EventProp`, with their common base.

A layer runs its engine through its adjoint: `adjoint.simulate(engine, config, weights,
spikes)` is where the two choices meet (as `solver=` and `adjoint=` meet in
`diffrax.diffeqsolve`). [`eqsnn.AutoDiff`][] runs the engine as it is and lets JAX
differentiate through it; [`eqsnn.EventProp`][] wraps the engine in a custom VJP whose
backward pass is the EventProp adjoint of that engine (one module per engine in
`eqsnn._adjoint`).
"""

import abc

import equinox as eqx
import jax

from .._engine.base import AbstractEngine, SimulationConfig
from .._engine.event_loop import EventLoop
from .._engine.interval_scan import IntervalScan
from .._engine.populations import simulate_populations
from .._engine.window_scan import WindowScan
from .._spikes import Spikes
from .._weights import RecurrentWeights
from .event_loop import event_loop_eventprop
from .interval_scan import interval_scan_eventprop
from .window_scan import window_scan_eventprop


class AbstractAdjoint(eqx.Module):
    """Base class of the gradient methods: how gradients flow back through a layer."""

    def simulate(
        self, engine: AbstractEngine, config: SimulationConfig, weights, spikes: Spikes
    ) -> Spikes:
        """Run `engine` on one sample, differentiable by this method.

        A recurrent layer whose engine is the [`eqsnn.WindowScan`][] runs its populations
        one after the other, each through this method; everything else goes to
        `simulate_engine`.
        """
        if isinstance(weights, RecurrentWeights) and isinstance(engine, WindowScan):
            return simulate_populations(self, engine, config, weights, spikes)
        return self.simulate_engine(engine, config, weights, spikes)

    @abc.abstractmethod
    def simulate_engine(
        self, engine: AbstractEngine, config: SimulationConfig, weights, spikes: Spikes
    ) -> Spikes:
        """Run `engine` on one sample (see [`eqsnn.AbstractEngine`][])."""

    def check(self, engine: AbstractEngine, who: str) -> None:
        """Raise a `ValueError` naming `who` if this method cannot differentiate `engine`."""
        del engine, who


class AutoDiff(AbstractAdjoint):
    r"""Gradients by JAX's autodiff through the event simulation (the default).

    Crossing times are differentiated with the implicit-function theorem, so gradients
    are exact, and every JAX transformation works: `jax.grad`, `jax.jvp`, `jax.jacfwd`,
    `jax.hessian` and higher derivatives. The backward pass stores the engine's
    intermediate states.
    """

    def simulate_engine(self, engine, config, weights, spikes):
        """`engine.simulate(config, weights, spikes)`, differentiated by JAX."""
        return engine.simulate(config, weights, spikes)


class EventProp(AbstractAdjoint):
    r"""Gradients by the EventProp adjoint (Wunderlich & Pehle, 2021), as a custom VJP.

    The forward pass is the engine's (same spikes, bit for bit, except where noted in
    [EventProp](../concepts/eventprop.md)); it stores only the spike record, not the
    crossing solver's computation graph. The backward pass integrates the adjoint
    $(\lambda_V, \lambda_I)$ backwards from $t_\mathrm{max}$ in closed form, jumps at the
    spikes and reads the gradients off at the input spikes:

    $$
    \frac{\partial L}{\partial W_{in}} = -\tau_\mathrm{syn}\sum_{t_k:\ \text{input } i}
        \lambda_{I,n}(t_k), \qquad
    \frac{\partial L}{\partial t_k} = \sum_n W_{in}\,(\lambda_{V,n} - \lambda_{I,n})(t_k).
    $$

    Gradients equal those of [`eqsnn.AutoDiff`][] up to rounding and reach the weights and
    the input spike times.

    !!! info

        Reverse mode only (`jax.grad`, `jax.vjp`, and `jax.hessian`, which takes reverse
        mode innermost); `jax.jvp` and `jax.jacfwd` raise. Use [`eqsnn.AutoDiff`][] for
        forward mode.

    **Arguments:**

    - `per_step`: if `False` (default), one custom VJP covers the whole trajectory of the
      engine (the backward pass is one closed-form adjoint walk). If `True`, each step of
      the engine's loop has its own custom VJP and JAX's autodiff chains them (the seed's
      `wrap_only_step=True`); for the interval scan and the event loop only. Both give
      the same gradients up to rounding; `False` is cheaper.
    """

    per_step: bool = eqx.field(default=False, static=True)

    def __check_init__(self):
        if not isinstance(self.per_step, bool):
            raise TypeError(f"EventProp: `per_step` must be a bool, got {self.per_step!r}.")

    def simulate_engine(self, engine, config, weights, spikes):
        """The engine's forward pass under its EventProp custom VJP."""
        # Integer leaves computed by a differentiated upstream layer arrive as (float0-)
        # perturbed values, which `eqx.filter_custom_vjp` rejects; they carry no gradient.
        spikes = eqx.tree_at(lambda s: (s.idx, s.dropped), spikes, replace_fn=jax.lax.stop_gradient)
        return _EVENTPROP[type(engine)](engine, self.per_step, config, weights, spikes)

    def check(self, engine: AbstractEngine, who: str) -> None:
        """EventProp has an adjoint for each built-in engine; `per_step` needs a loop with
        steps that carry the whole state (the interval scan or the event loop)."""
        if type(engine) not in _EVENTPROP:
            raise ValueError(f"{who}: EventProp has no adjoint for engine={engine!r}.")
        if self.per_step and isinstance(engine, WindowScan):
            raise ValueError(
                f"{who}: `EventProp(per_step=True)` wraps the steps of the interval scan or "
                f"the event loop; engine={engine!r} has one closed-form adjoint for the "
                "whole trajectory. Use engine=eqsnn.IntervalScan(...) (feed-forward), "
                "engine=eqsnn.EventLoop() (recurrent) or per_step=False (the seed's "
                "`wrap_only_step=True` is `EventProp(per_step=True)`)."
            )


_EVENTPROP = {
    IntervalScan: interval_scan_eventprop,
    WindowScan: window_scan_eventprop,
    EventLoop: event_loop_eventprop,
}
"""The EventProp adjoint of each engine: `(engine, per_step, config, weights, spikes)`."""
