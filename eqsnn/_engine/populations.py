r"""Populations connected feed-forward, simulated one population at a time.

When no neuron of a [`eqsnn.RecurrentLIF`][] reaches a neuron of its own population or of
an earlier one, the populations form a chain of feed-forward layers: population $b$ is
driven only by the external inputs and by the spikes of populations $a < b$. Each
population can then be simulated on its own with the feed-forward window scan
(`neuron_spikes` in `_engine/window_scan.py`), whose cost is linear in the number of
inputs and spikes, instead of the global event loop, which solves every neuron of every
population at every event (quadratic in the layer size). The layer asks for it with a
per-neuron spike budget (`max_spikes_per_neuron`), as the feed-forward layers do.

The spikes of all populations are then merged into one buffer of `n_spikes` slots, sorted
by time (ties: the lower neuron index first, as the event loop emits them).
"""

import jax
import jax.numpy as jnp

from .._connectivity import feedforward_sources, population_bounds
from .._spikes import EMPTY_INDEX, Spikes
from .._weights import InputWeights, RecurrentWeights
from .base import SimulationConfig
from .buffers import collect_spikes


def _concatenate(buffers: list[tuple[Spikes, int]]) -> Spikes:
    """One buffer from several, shifting each one's indices by its offset (empty slots
    stay empty)."""
    return Spikes(
        time=jnp.concatenate([s.time for s, _ in buffers]),
        idx=jnp.concatenate([jnp.where(s.valid, s.idx + off, EMPTY_INDEX) for s, off in buffers]),
        current=jnp.concatenate([s.current for s, _ in buffers]),
        dropped=sum(s.dropped for s, _ in buffers),
    )


def simulate_populations(
    adjoint, engine, config: SimulationConfig, weights: RecurrentWeights, spikes: Spikes
) -> Spikes:
    """Simulate feed-forward populations one after the other with the window scan.

    **Arguments:**

    - `adjoint`: the gradient method, applied to each population's simulation (the
      populations are chained by autodiff).
    - `engine`: the [`eqsnn.WindowScan`][] with the per-neuron budget of each population.
    - `config`: the recurrent layer's [`eqsnn.SimulationConfig`][]; its mask must be
      feed-forward between populations.
    - `weights`: the effective (masked) weights of the layer.
    - `spikes`: one checked sample of input spikes.

    **Returns:** the `n_spikes` earliest spikes of all populations, indices `0..n-1`.
    `dropped` is a lower bound on the spikes the layer lost, 0 exactly when none was lost:
    one per neuron that would have spiked beyond its budget (the window scan stops it
    there), plus exactly the spikes beyond `n_spikes` in a population's buffer or in the
    merged one. It does not include the input's `dropped` (the layer adds that).
    """
    bounds = population_bounds(config.layers)
    sources = feedforward_sources(config.mask.input, config.mask.recurrent, config.layers)
    budgets = engine.population_budgets(config)
    delayed = weights.delays is not None or weights.recurrent_delays is not None
    wide = config.params.per_neuron(sum(config.layers))
    outputs: list[Spikes | None] = []
    for (start, stop), (external, earlier), budget in zip(bounds, sources, budgets, strict=True):
        buffers = [(spikes, 0)] if external else []
        rows = [weights.input[:, start:stop]] if external else []
        n_in, dtype = weights.input.shape[0], weights.input.dtype
        delays = [_block(weights.delays, n_in, start, stop, dtype)] if external else []
        offset = weights.input.shape[0] if external else 0
        for a in earlier:
            source = outputs[a]
            if source is None:
                continue
            buffers.append((source, offset))
            rows.append(weights.recurrent[bounds[a][0] : bounds[a][1], start:stop])
            delays.append(_block(weights.recurrent_delays, bounds[a], start, stop, dtype))
            offset += bounds[a][1] - bounds[a][0]
        if not buffers:  # nothing reaches this population: it stays at rest
            outputs.append(None)
            continue
        rows = jnp.concatenate(rows)
        if delayed:
            rows = InputWeights(input=rows, delays=jnp.concatenate(delays))
        population = SimulationConfig(
            params=jax.tree.map(lambda value, a=start, b=stop: value[a:b], wide),
            solver=config.solver,
            n_spikes=min(config.n_spikes, (stop - start) * budget),
            t_max=config.t_max,
            layers=(stop - start,),
        )
        scan = type(engine)(max_spikes_per_neuron=budget)
        outputs.append(adjoint.simulate(scan, population, rows, _concatenate(buffers)))
    return _merge(outputs, bounds, config.n_spikes)


def _block(delays, sources, start: int, stop: int, dtype):
    """The per-synapse delays from `sources` (a count of inputs, or the `(begin, end)`
    bounds of a population) to the neurons `start:stop`; zeros where there are none."""
    begin, end = (0, sources) if isinstance(sources, int) else sources
    if delays is None:
        return jnp.zeros((end - begin, stop - start), dtype)
    if delays.ndim == 1:  # per source
        return jnp.broadcast_to(delays[begin:end, None], (end - begin, stop - start))
    return delays[begin:end, start:stop]


def _merge(outputs, bounds, n_spikes: int) -> Spikes:
    """The `n_spikes` earliest spikes of all populations, with the layer's indices."""
    starts = [start for start, _ in bounds]
    present = [(out, at) for out, at in zip(outputs, starts, strict=True) if out is not None]
    if not present:  # no population is driven by anything
        present = [(Spikes(time=jnp.full(1, jnp.inf), idx=jnp.full(1, EMPTY_INDEX)), 0)]
    merged = _concatenate(present)
    return collect_spikes(
        merged.time, merged.idx, merged.current, merged.valid, n_spikes, merged.dropped
    )
