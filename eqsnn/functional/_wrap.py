"""The wrapping of an eqsnn layer module into a jaxsnn-style `(init_fn, apply_fn)` pair."""

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._checks import is_concrete
from .._spikes import EMPTY_INDEX, Spikes
from .._weights import InputWeights, RecurrentWeights

Weights: TypeAlias = InputWeights | RecurrentWeights
Carry: TypeAlias = tuple[int, int]
InitFn: TypeAlias = Callable[[PRNGKeyArray, int], tuple[PRNGKeyArray, int, Weights]]
ApplyFn: TypeAlias = Callable[..., tuple[Carry, Weights, Spikes, Any]]
Builder: TypeAlias = Callable[[int, PRNGKeyArray], eqx.Module]


def _check_global(spikes: Spikes, start: int, stop: int, who: str) -> Spikes:
    """Input indices must be `-1` or global indices below `stop`, as a module checks its
    inputs against `in_size`; indices below `start` (earlier sources, which jaxsnn copies
    into a layer's output) are ignored. Concrete indices raise a `ValueError`, traced ones
    an `eqx.error_if`; a buffer whose `n_sources` is not `stop` is refused at once."""
    where = f"functional.{who} (reading global indices [{start}, {stop}))"
    if spikes.n_sources is not None and spikes.n_sources != stop:
        raise ValueError(
            f"{where}: got spikes with global indices below spikes.n_sources="
            f"{spikes.n_sources}, but this layer's inputs end at {stop}; pass the previous "
            "layer's output of this network (or the encoded inputs to the first layer)."
        )
    text = f"{where}: input spike indices must be -1 or lie in [0, {stop})"
    if is_concrete(spikes.idx):
        idx = np.asarray(spikes.idx)
        bad = (idx < EMPTY_INDEX) | (idx >= stop)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"{text}, got idx[{k}]={idx[k]}.")
        return spikes
    bad = jnp.any((spikes.idx < EMPTY_INDEX) | (spikes.idx >= stop))
    return eqx.tree_at(lambda s: s.idx, spikes, eqx.error_if(spikes.idx, bad, text + "."))


def _to_local(spikes: Spikes, start: int, in_size: int) -> Spikes:
    """Keep the spikes with global indices in `[start, start + in_size)`, made local."""
    mine = (spikes.idx >= start) & (spikes.idx < start + in_size)
    return Spikes(
        time=spikes.time,
        idx=jnp.where(mine, spikes.idx - start, EMPTY_INDEX),
        current=spikes.current,
        dropped=spikes.dropped,
        n_sources=in_size,
    )


def _to_global(spikes: Spikes, layer_start: int) -> Spikes:
    """A layer's output with global indices: its neuron `n` is `layer_start + n`."""
    valid = spikes.idx >= 0
    return Spikes(
        time=spikes.time,
        idx=jnp.where(valid, spikes.idx + layer_start, EMPTY_INDEX),
        current=spikes.current,
        dropped=spikes.dropped,
        n_sources=None if spikes.n_sources is None else layer_start + spikes.n_sources,
    )


class Skeletons:
    """Concrete modules of one layer, one per input size, whose weights `apply_fn` swaps.

    They are built eagerly (also when `apply_fn` is traced) and cached; building the first
    one in `__init__` makes bad factory arguments fail at the factory call.
    """

    def __init__(self, build: Builder, duplication):
        self.build = build
        self._cache: dict[int, eqx.Module] = {}
        valid = isinstance(duplication, int) and not isinstance(duplication, bool)
        self(duplication if valid and duplication > 0 else 1)

    def __call__(self, in_size: int) -> eqx.Module:
        if in_size not in self._cache:
            with jax.ensure_compile_time_eval():
                self._cache[in_size] = self.build(in_size, jax.random.PRNGKey(0))
        return self._cache[in_size]


def _with_weights(skeletons: Skeletons, weights: Weights, who: str, layer_index: int) -> eqx.Module:
    """The module of this layer holding `weights` (shapes checked against the module)."""
    if not isinstance(weights, InputWeights | RecurrentWeights):
        raise TypeError(
            f"functional.{who}: weights[{layer_index}] must be the weights returned by an "
            f"init_fn (eqsnn.InputWeights or eqsnn.RecurrentWeights), got "
            f"{type(weights).__name__}."
        )
    skeleton = skeletons(jnp.shape(weights.input)[0])
    expected = jax.tree_util.tree_map(jnp.shape, skeleton.weights)
    got = jax.tree_util.tree_map(jnp.shape, weights)
    if type(weights) is not type(skeleton.weights) or expected != got:
        raise ValueError(
            f"functional.{who}: weights[{layer_index}] must have type "
            f"{type(skeleton.weights).__name__} and shapes {expected}, got "
            f"{type(weights).__name__} with shapes {got}."
        )
    return eqx.tree_at(lambda m: m.weights, skeleton, weights)


def init_apply(
    skeletons: Skeletons, n_out: int, who: str, hardware: bool = False
) -> tuple[InitFn, ApplyFn]:
    """The `(init_fn, apply_fn)` pair of the module that `skeletons.build` makes.

    `hardware`: the module runs on a backend (only the error message for `external` differs).
    """
    where = "the layer's backend produces them" if hardware else "this is a software layer"

    def init_fn(rng: PRNGKeyArray, input_size: int) -> tuple[PRNGKeyArray, int, Weights]:
        rng, layer_key = jax.random.split(rng)
        return rng, n_out, skeletons.build(input_size, layer_key).weights

    def apply_fn(
        weights: Sequence[Weights],
        spikes: Spikes,
        external: Any = None,
        carry: Carry | None = None,
    ) -> tuple[Carry, Weights, Spikes, Spikes]:
        if external is not None:
            raise ValueError(
                f"functional.{who}: `external` (hardware spikes) must be None ({where}), "
                f"got {type(external).__name__}."
            )
        if not isinstance(weights, list | tuple):
            raise TypeError(
                f"functional.{who}: `weights` must be the list of all layers' weights (as "
                f"returned by init_fn), got {type(weights).__name__}; wrap one layer's "
                "weights as [weights]."
            )
        if not isinstance(spikes, Spikes):
            raise TypeError(
                f"functional.{who}: `spikes` must be an eqsnn.Spikes, got "
                f"{type(spikes).__name__}; convert with eqsnn.Spikes(time, idx, current)."
            )
        layer_index, layer_start = (0, 0) if carry is None else carry
        layer = _with_weights(skeletons, weights[layer_index], who, layer_index)
        in_size = layer.in_size
        layer_start = layer_start + in_size
        spikes = _check_global(spikes, layer_start - in_size, layer_start, who)
        out = layer(_to_local(spikes, layer_start - in_size, in_size))
        out = _to_global(out, layer_start)
        return (layer_index + 1, layer_start), weights[layer_index], out, out

    init_fn.__doc__ = f"Initialise the weights of a functional.{who} layer."
    apply_fn.__doc__ = f"Simulate a functional.{who} layer (global spike indices)."
    return init_fn, apply_fn
