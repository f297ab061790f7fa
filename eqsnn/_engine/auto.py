"""The automatic choice of engine: the one place where the selection rule lives."""

from .._connectivity import feedforward_sources
from ..neurons._model import is_model
from .base import AbstractEngine, SimulationConfig
from .event_loop import EventLoop
from .interval_scan import IntervalScan
from .window_scan import WindowScan, budget_per_neuron


class AutoEngine(AbstractEngine):
    """Choose the engine from the layer: the default `engine=` of every layer.

    [`select_engine`][eqsnn.AutoEngine.select_engine] holds the rule, so you can call it
    to see what will run:

    - a feed-forward layer gets the [`eqsnn.WindowScan`][] with the output buffer shared
      evenly (`max_spikes_per_neuron = ceil(n_spikes / out_size)`), or, with the per-step
      EventProp adjoint (`EventProp(per_step=True)`, whose steps are those of the interval
      scan), the [`eqsnn.IntervalScan`][] with one spike per neuron and interval;
    - a recurrent layer gets the [`eqsnn.EventLoop`][], which handles any connectivity;
      with a neuron model other than the LIF (such as [`eqsnn.ALIFParameters`][]) and
      populations connected feed-forward, it gets the window scan, which runs them.

    Layers resolve it when they are built: their `engine` field holds the engine that
    runs, with its budget filled in.

    **Example:**

    ```python
    import eqsnn

    config = eqsnn.SimulationConfig(
        eqsnn.LIFParameters(), eqsnn.solvers.TTFSSolver(), 12, 0.05, layers=(4,)
    )
    eqsnn.AutoEngine().select_engine(config)  # WindowScan(max_spikes_per_neuron=3)
    ```
    """

    def select_engine(self, config: SimulationConfig, adjoint=None) -> AbstractEngine:
        """The engine that runs a layer of `config` with the gradient method `adjoint`."""
        if config.recurrent:
            if is_model(config.params) and (
                feedforward_sources(config.mask.input, config.mask.recurrent, config.layers)
                is not None
            ):
                budget = budget_per_neuron(None, config.n_spikes, sum(config.layers))
                return WindowScan(max_spikes_per_neuron=(budget,) * len(config.layers))
            return EventLoop()
        if getattr(adjoint, "per_step", False):
            return IntervalScan(max_spikes_per_interval=1)
        budget = budget_per_neuron(None, config.n_spikes, sum(config.layers))
        return WindowScan(max_spikes_per_neuron=budget)

    def simulate(self, config: SimulationConfig, weights, spikes):
        """Run the selected engine (autodiff); layers resolve it at construction instead."""
        return self.select_engine(config).simulate(config, weights, spikes)


def resolve_engine(engine: AbstractEngine | None, config: SimulationConfig, adjoint):
    """The engine a layer stores: `AutoEngine` selected, a window-scan budget of `None`
    filled in (the output buffer shared evenly)."""
    if engine is None or isinstance(engine, AutoEngine):
        return (engine or AutoEngine()).select_engine(config, adjoint)
    if isinstance(engine, WindowScan):
        budget = engine.max_spikes_per_neuron
        if budget is None:
            budget = budget_per_neuron(None, config.n_spikes, sum(config.layers))
        if config.recurrent and not isinstance(budget, tuple):
            budget = (budget,) * len(config.layers)  # one per population
        return WindowScan(max_spikes_per_neuron=budget)
    return engine
