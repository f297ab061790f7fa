"""The exact backend: eqsnn's own simulator behind the backend contract."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._events import Overflow
from .._feedforward import simulate_feedforward
from .._feedforward_parallel import simulate_feedforward_parallel
from .._params import LIFParameters
from .._recurrent import simulate_recurrent
from .._spikes import Spikes
from .._weights import InputWeights, RecurrentWeights, spike_budget
from ..solvers import AbstractCrossingSolver, default_solver
from ._backend import Backend


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
    - `max_spikes_per_neuron`, `max_spikes_per_interval`: the feed-forward engine and its
      spike budget, as for [`eqsnn.LIF`][] (default: the parallel engine with
      `ceil(n_spikes / out_size)` spikes per neuron).

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
        max_spikes_per_neuron: int | None = None,
        max_spikes_per_interval: int | None = None,
    ):
        who = type(self).__name__
        if solver is not None and not isinstance(solver, AbstractCrossingSolver):
            raise TypeError(f"{who}: `solver` must be a crossing solver, got {solver!r}.")
        self.solver = solver
        # Resolved against each call's sizes; this checks both values and the pair now.
        spike_budget(max_spikes_per_neuron, max_spikes_per_interval, 1, 1, who)
        self.max_spikes_per_neuron = max_spikes_per_neuron
        self.max_spikes_per_interval = max_spikes_per_interval
        self.calls = 0
        """How many times `run` was called (one per batch)."""

    def run(self, weights, input_time, input_idx, *, params, t_max, n_spikes):
        """Simulate the batch with eqsnn; see [`Backend.run`][eqsnn.hardware.Backend.run]."""
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
            self.max_spikes_per_interval,
            self.max_spikes_per_neuron,
        )
        return np.asarray(out.time), np.asarray(out.idx), np.asarray(out.dropped)


@functools.partial(jax.jit, static_argnums=(3, 4, 5, 6, 7, 8))
def _simulate(
    weights: InputWeights | RecurrentWeights,
    time,
    idx,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    t_max: float,
    n_spikes: int,
    max_spikes_per_interval: int | None,
    max_spikes_per_neuron: int | None,
) -> Spikes:
    def one(time, idx):
        inputs = Spikes(time=time, idx=idx)
        if isinstance(weights, RecurrentWeights):
            return simulate_recurrent(weights, inputs, params, solver, n_spikes, t_max)
        per_neuron, per_interval = spike_budget(
            max_spikes_per_neuron,
            max_spikes_per_interval,
            n_spikes,
            weights.input.shape[1],
            "SoftwareBackend",
        )
        if per_interval is None:
            return simulate_feedforward_parallel(
                weights.input, inputs, params, solver, n_spikes, t_max, per_neuron
            )
        return simulate_feedforward(
            weights.input,
            inputs,
            params,
            solver,
            n_spikes,
            t_max,
            max_spikes_per_interval,
            Overflow.COUNT,
            "SoftwareBackend",
        )

    return jax.vmap(one)(time, idx)
