r"""Populations connected feed-forward, simulated one population at a time.

When no neuron of a [`eqsnn.RecurrentLIF`][] reaches a neuron of its own population or of
an earlier one, the populations form a chain of feed-forward layers: population $b$ is
driven only by the external inputs and by the spikes of populations $a < b$. Each
population can then be simulated on its own with the feed-forward window scan
([`eqsnn._feedforward_parallel.neuron_spikes`][]), whose cost is linear in the number of
inputs and spikes, instead of the global event loop, which solves every neuron of every
population at every event (quadratic in the layer size). The layer asks for it with a
per-neuron spike budget (`max_spikes_per_neuron`), as the feed-forward layers do.

The spikes of all populations are then merged into one buffer of `n_spikes` slots, sorted
by time (ties: the lower neuron index first, as the event loop emits them).
"""

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._eventprop_parallel import eventprop_feedforward
from ._events import Overflow, collect_spikes
from ._feedforward_parallel import simulate_feedforward_parallel
from ._params import LIFParameters
from ._spikes import EMPTY_INDEX, Spikes
from ._weights import RecurrentWeights
from .solvers import AbstractCrossingSolver

Sources = tuple[tuple[bool, tuple[int, ...]], ...]
"""Per population: `(driven by the external inputs, the earlier populations that reach it)`."""


def population_bounds(layers: Sequence[int]) -> list[tuple[int, int]]:
    """`[(start, stop), ...]`: the neuron index range of each population."""
    stops = np.cumsum(layers).tolist()
    return list(zip([0, *stops[:-1]], stops, strict=True))


def feedforward_sources(
    mask_input: np.ndarray, mask_recurrent: np.ndarray, layers: Sequence[int]
) -> Sources | None:
    """What drives each population, or `None` if the populations are not feed-forward.

    They are feed-forward when no recurrent weight reaches a population from itself or
    from a later population (`mask_recurrent[j, m]` is `False` whenever `j` is not in an
    earlier population than `m`). Blocks whose mask is all `False` are left out.
    """
    bounds = population_bounds(layers)
    sources = []
    for b, (start, stop) in enumerate(bounds):
        if mask_recurrent[start:, start:stop].any():
            return None
        external = bool(mask_input[:, start:stop].any())
        earlier = tuple(
            a
            for a, (first, last) in enumerate(bounds[:b])
            if mask_recurrent[first:last, start:stop].any()
        )
        sources.append((external, earlier))
    return tuple(sources)


class _Population(eqx.Module):
    """The configuration one population's feed-forward simulation reads (array-free)."""

    params: LIFParameters
    solver: AbstractCrossingSolver = eqx.field(static=True)
    n_spikes: int = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    max_spikes_per_neuron: int = eqx.field(static=True)
    overflow: Overflow = eqx.field(static=True)


def _concatenate(buffers: list[tuple[Spikes, int]]) -> Spikes:
    """One buffer from several, shifting each one's indices by its offset (empty slots
    stay empty)."""
    return Spikes(
        time=jnp.concatenate([s.time for s, _ in buffers]),
        idx=jnp.concatenate([jnp.where(s.valid, s.idx + off, EMPTY_INDEX) for s, off in buffers]),
        current=jnp.concatenate([s.current for s, _ in buffers]),
        dropped=sum(s.dropped for s, _ in buffers),
    )


def simulate_layered(
    weights: RecurrentWeights,
    spikes: Spikes,
    params: LIFParameters,
    solver: AbstractCrossingSolver,
    layers: Sequence[int],
    sources: Sources,
    max_spikes_per_neuron: Sequence[int],
    n_spikes: int,
    t_max: float,
    overflow: Overflow,
    who: str,
    eventprop: bool,
) -> Spikes:
    """Simulate feed-forward populations one after the other with the window scan.

    **Arguments:**

    - `weights`: the effective (masked) weights of the layer.
    - `spikes`: one checked sample of input spikes.
    - `layers`, `sources`: the population sizes and what drives each population
      ([`feedforward_sources`][eqsnn._layered.feedforward_sources]).
    - `max_spikes_per_neuron`: the per-neuron budget of each population.
    - `n_spikes`, `t_max`, `overflow`, `who`: as for the layer.
    - `eventprop`: gradients of each population by the EventProp adjoint (`True`) or by
      autodiff through the window scan (`False`).

    **Returns:** the `n_spikes` earliest spikes of all populations, indices `0..n-1`.
    `dropped` is a lower bound on the spikes the layer lost, 0 exactly when none was lost:
    one per neuron that would have spiked beyond its budget (the window scan stops it
    there), plus exactly the spikes beyond `n_spikes` in a population's buffer or in the
    merged one. It does not include the input's `dropped` (the layer adds that).
    """
    bounds = population_bounds(layers)
    outputs: list[Spikes | None] = []
    for (start, stop), (external, earlier), budget in zip(
        bounds, sources, max_spikes_per_neuron, strict=True
    ):
        buffers = [(spikes, 0)] if external else []
        rows = [weights.input[:, start:stop]] if external else []
        offset = weights.input.shape[0] if external else 0
        for a in earlier:
            source = outputs[a]
            if source is None:
                continue
            buffers.append((source, offset))
            rows.append(weights.recurrent[bounds[a][0] : bounds[a][1], start:stop])
            offset += bounds[a][1] - bounds[a][0]
        if not buffers:  # nothing reaches this population: it stays at rest
            outputs.append(None)
            continue
        config = _Population(
            params=params,
            solver=solver,
            n_spikes=min(n_spikes, (stop - start) * budget),
            t_max=t_max,
            max_spikes_per_neuron=budget,
            overflow=Overflow.COUNT,
        )
        inputs = _concatenate(buffers)
        w = jnp.concatenate(rows)
        if eventprop:
            out = eventprop_feedforward(w, inputs, config)
        else:
            out = simulate_feedforward_parallel(
                w, inputs, params, solver, config.n_spikes, t_max, budget, Overflow.COUNT, who
            )
        outputs.append(out)
    return _merge(outputs, bounds, n_spikes, overflow, who)


def _merge(outputs, bounds, n_spikes: int, overflow: Overflow, who: str) -> Spikes:
    """The `n_spikes` earliest spikes of all populations, with the layer's indices."""
    starts = [start for start, _ in bounds]
    present = [(out, at) for out, at in zip(outputs, starts, strict=True) if out is not None]
    if not present:  # no population is driven by anything
        present = [(Spikes(time=jnp.full(1, jnp.inf), idx=jnp.full(1, EMPTY_INDEX)), 0)]
    merged = _concatenate(present)
    return collect_spikes(
        merged.time, merged.idx, merged.current, merged.valid, n_spikes, merged.dropped,
        overflow, who,
    )  # fmt: skip
