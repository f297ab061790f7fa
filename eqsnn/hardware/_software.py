"""The exact backend: eqsnn's own simulator behind the backend contract."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._engine.auto import resolve_engine
from .._engine.base import AbstractEngine, SimulationConfig
from .._engine.event_loop import (
    collect_events,
    pending_crossings,
    trajectory,
    transition_with_recurrence,
)
from .._flow import check_lif
from .._layers.keywords import engine_from_keywords
from .._params import LIFParameters
from .._spikes import Spikes
from .._weights import RecurrentWeights
from ..solvers import AbstractCrossingSolver, default_solver
from ._backend import BACKEND_RUNS_LIF, Backend


class SoftwareBackend(Backend):
    """A backend that runs eqsnn's exact simulator: the hardware loop without hardware.

    A feed-forward layer runs as [`eqsnn.LIF`][] (with the same engine options), a
    recurrent layer as [`eqsnn.RecurrentLIF`][]; the batch is one `jax.vmap`-ed, compiled
    call. With this backend [`eqsnn.HardwareLIF`][] and [`eqsnn.HardwareRecurrentLIF`][]
    reproduce [`eqsnn.EventPropLIF`][] and [`eqsnn.RecurrentEventPropLIF`][] (spikes and
    gradients up to rounding): the test of the whole loop, and a reference for other
    backends.

    **Arguments:**

    - `solver`: the crossing solver (default: [`eqsnn.solvers.default_solver`][] of the
      layer's parameters).
    - `engine`: the engine of a feed-forward layer, as for [`eqsnn.LIF`][] (default:
      [`eqsnn.AutoEngine`][], the window scan with `ceil(n_spikes / out_size)` spikes per
      neuron); a recurrent layer runs the [`eqsnn.EventLoop`][].
    - `max_spikes_per_neuron`, `max_spikes_per_interval`: deprecated spellings of
      `engine=` (a `DeprecationWarning`).

    **Example:**

    ```python
    import jax
    import eqsnn
    from eqsnn.hardware import SoftwareBackend

    layer = eqsnn.HardwareLIF(
        5, 10, n_spikes=10, t_max=0.02, key=jax.random.PRNGKey(0), backend=SoftwareBackend()
    )
    ```
    """

    def __init__(
        self,
        *,
        solver: AbstractCrossingSolver | None = None,
        engine: AbstractEngine | None = None,
        max_spikes_per_neuron: int | None = None,
        max_spikes_per_interval: int | None = None,
    ):
        who = type(self).__name__
        if solver is not None and not isinstance(solver, AbstractCrossingSolver):
            raise TypeError(f"{who}: `solver` must be a crossing solver, got {solver!r}.")
        self.solver = solver
        engine = engine_from_keywords(who, engine, max_spikes_per_neuron, max_spikes_per_interval)
        if engine is not None and not isinstance(engine, AbstractEngine):
            raise TypeError(f"{who}: `engine` must be an eqsnn engine, got {engine!r}.")
        self.engine = engine
        """The engine of feed-forward layers (`None`: chosen per call by `AutoEngine`)."""
        self.calls = 0
        """How many times `run` was called (one per batch)."""

    def run(self, weights, input_time, input_idx, *, params, t_max, n_spikes):
        """Simulate the batch with eqsnn; see [`Backend.run`][eqsnn.hardware.Backend.run]."""
        check_lif(params, f"{self.name}.run", BACKEND_RUNS_LIF)
        self.calls += 1
        solver = default_solver(params) if self.solver is None else self.solver
        weights = jax.tree.map(jnp.asarray, weights)
        out = _simulate(
            weights,
            jnp.asarray(input_time),
            jnp.asarray(input_idx),
            params,
            solver,
            t_max,
            n_spikes,
            self.engine,
        )
        return np.asarray(out.time), np.asarray(out.idx), np.asarray(out.dropped)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7))
def _simulate(
    weights,
    time,
    idx,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    t_max: float,
    n_spikes: int,
    engine: AbstractEngine | None,
) -> Spikes:
    config = SimulationConfig(params, solver, n_spikes, t_max, layers=(weights.input.shape[1],))
    if isinstance(weights, RecurrentWeights):

        def one(time, idx):
            # The event loop without a connectivity mask: a backend sees the effective
            # weights only and solves again the neurons that an event changed.
            inputs = Spikes(time=time, idx=idx)
            final, events = trajectory(
                weights, inputs, inputs.n_slots + n_spikes, params=params, solver=solver,
                transition=transition_with_recurrence, t_max=t_max,
            )  # fmt: skip
            return collect_events(events, n_spikes, pending_crossings(final, t_max))

        return jax.vmap(one)(time, idx)
    engine = resolve_engine(engine, config, None)

    def one(time, idx):
        return engine.simulate(config, weights.input, Spikes(time=time, idx=idx))

    return jax.vmap(one)(time, idx)
