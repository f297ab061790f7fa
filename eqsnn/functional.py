r"""The reference's functional API: layers as `(init_fn, apply_fn)` pairs, chained by `serial`.

Code written for jaxsnn 0.2.0 ports by changing imports. Each factory wraps an eqsnn layer
module: `init_fn` builds the module and returns its weights, `apply_fn` puts the weights
into the module and calls it, so spikes and gradients are those of the module. As in
jaxsnn, spike indices are global across the network (inputs first, then each layer's
neurons); the modules use local indices and the wrappers translate. The calling
convention and the differences from jaxsnn are on the how-to page *Functional API
(jaxsnn style)*.
"""

from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._events import Overflow
from ._lif import LIF as _LIFModule
from ._params import LIFParameters
from ._recurrent_lif import Connectivity
from ._recurrent_lif import RecurrentLIF as _RecurrentLIFModule
from ._spikes import EMPTY_INDEX, Spikes
from ._weights import InputWeights, RecurrentWeights, check_size
from .solvers import AbstractCrossingSolver

__all__ = [
    "LIF",
    "RecurrentLIF",
    "construct_init_fn",
    "construct_recurrent_init_fn",
    "serial",
]

Weights: TypeAlias = InputWeights | RecurrentWeights
Carry: TypeAlias = tuple[int, int]
InitFn: TypeAlias = Callable[[PRNGKeyArray, int], tuple[PRNGKeyArray, int, Weights]]
ApplyFn: TypeAlias = Callable[..., tuple[Carry, Weights, Spikes, Any]]
Builder: TypeAlias = Callable[[int, PRNGKeyArray], eqx.Module]


def _to_local(spikes: Spikes, start: int, in_size: int) -> Spikes:
    """Keep the spikes with global indices in `[start, start + in_size)`, made local."""
    mine = (spikes.idx >= start) & (spikes.idx < start + in_size)
    return Spikes(
        time=spikes.time,
        idx=jnp.where(mine, spikes.idx - start, EMPTY_INDEX),
        current=spikes.current,
        dropped=spikes.dropped,
    )


def _to_global(spikes: Spikes, layer_start: int) -> Spikes:
    valid = spikes.idx >= 0
    return Spikes(
        time=spikes.time,
        idx=jnp.where(valid, spikes.idx + layer_start, EMPTY_INDEX),
        current=spikes.current,
        dropped=spikes.dropped,
    )


class _Skeletons:
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


def _with_weights(
    skeletons: _Skeletons, weights: Weights, who: str, layer_index: int
) -> eqx.Module:
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


def _init_apply(skeletons: _Skeletons, n_out: int, who: str) -> tuple[InitFn, ApplyFn]:
    """The `(init_fn, apply_fn)` pair of the module that `skeletons.build` makes."""

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
                f"functional.{who}: `external` (hardware spikes) must be None for a "
                f"software layer, got {type(external).__name__}."
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
        out = layer(_to_local(spikes, layer_start - in_size, in_size))
        out = _to_global(out, layer_start)
        return (layer_index + 1, layer_start), weights[layer_index], out, out

    init_fn.__doc__ = f"Initialise the weights of a functional.{who} layer."
    apply_fn.__doc__ = f"Simulate a functional.{who} layer (global spike indices)."
    return init_fn, apply_fn


def LIF(
    n_hidden: int,
    n_spikes: int,
    t_max: float,
    params: LIFParameters,
    mean: float = 0.5,
    std: float = 2.0,
    duplication: int | None = None,
    *,
    solver: AbstractCrossingSolver | None = None,
    max_spikes_per_interval: int = 1,
    overflow: Overflow = Overflow.COUNT,
) -> tuple[InitFn, ApplyFn]:
    r"""A feed-forward layer of LIF neurons, as jaxsnn's `(init_fn, apply_fn)` pair.

    A wrapper of [`eqsnn.LIF`][], with the signature of jaxsnn 0.2.0's `LIF`.

    **Arguments:**

    - `n_hidden`: number of neurons of the layer.
    - `n_spikes`: capacity of the layer's output buffer (its own spikes only).
    - `t_max`: simulation horizon in seconds.
    - `params`: the [`eqsnn.LIFParameters`][].
    - `mean`, `std`: initial weights are drawn from $\mathcal N(\mathrm{mean}, \mathrm{std}^2)$.
    - `duplication`: inputs come in `duplication` consecutive copies with equal initial
      weights (the input size must be a multiple of it).
    - `solver`, `max_spikes_per_interval`, `overflow` (keyword-only, eqsnn additions):
      passed to [`eqsnn.LIF`][].

    **Returns:** `(init_fn, apply_fn)`:

    - `init_fn(rng, input_size) -> (rng, n_hidden, weights)`: splits `rng`, builds the
      [`eqsnn.LIF`][] with one half and returns the other half, the layer's output size
      and its [`eqsnn.InputWeights`][].
    - `apply_fn(weights, spikes, external=None, carry=None) -> (carry, weights[k], out,
      out)`: simulates layer `k = carry[0]` (0 if `carry` is None) on one sample of input
      [`eqsnn.Spikes`][] with global indices, and returns the new carry and the output
      spikes with [global indices](../howto/functional_api.md#the-calling-convention).

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn
    from eqsnn import functional

    init_fn, apply_fn = functional.LIF(3, n_spikes=6, t_max=0.05, params=eqsnn.LIFParameters())
    _, n_out, weights = init_fn(jax.random.PRNGKey(0), 2)
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))
    _, _, out, _ = apply_fn([weights], spikes)  # out.idx in 2..4 (global), or -1
    ```
    """
    check_size("n_hidden", n_hidden, "functional.LIF")

    def build(in_size: int, key: PRNGKeyArray) -> _LIFModule:
        return _LIFModule(
            in_size,
            n_hidden,
            n_spikes,
            t_max,
            params,
            key=key,
            mean=mean,
            std=std,
            duplication=duplication,
            solver=solver,
            max_spikes_per_interval=max_spikes_per_interval,
            overflow=overflow,
        )

    return _init_apply(_Skeletons(build, duplication), n_hidden, "LIF")


def RecurrentLIF(
    layers: Sequence[int],
    n_spikes: int,
    t_max: float,
    params: LIFParameters,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    duplication: int | None = None,
    *,
    solver: AbstractCrossingSolver | None = None,
    overflow: Overflow = Overflow.COUNT,
) -> tuple[InitFn, ApplyFn]:
    r"""A recurrent layer of LIF populations, as jaxsnn's `(init_fn, apply_fn)` pair.

    A wrapper of [`eqsnn.RecurrentLIF`][] with `Connectivity.FULL`, with the
    signature of jaxsnn 0.2.0's `RecurrentLIF`. As in jaxsnn, only the input block of the
    first population and the blocks from population $k$ to $k+1$ are drawn at
    initialisation, every other weight starts at zero, and *every* weight is simulated
    and trained (the recurrent weights are a full `(n, n)` matrix).

    **Arguments:**

    - `layers`: the population sizes; the layer has `sum(layers)` neurons, numbered
      population after population.
    - `n_spikes`: capacity of the output buffer (spikes of all populations together).
    - `t_max`: simulation horizon in seconds.
    - `params`: the [`eqsnn.LIFParameters`][].
    - `mean`, `std`: one entry per drawn block (input block first, then population
      $k \to k+1$), or one number for all.
    - `duplication`: inputs come in `duplication` consecutive copies with equal initial
      weights.
    - `solver`, `overflow` (keyword-only, eqsnn additions): passed to the layer.

    **Returns:** `(init_fn, apply_fn)` as for [`eqsnn.functional.LIF`][]; `init_fn` returns
    `sum(layers)` as the output size and the weights have fields `input` `(in, n)` and
    `recurrent` `(n, n)`.
    """
    who = "RecurrentLIF"
    if isinstance(layers, int) or not isinstance(layers, Sequence) or not layers:
        raise ValueError(
            f"functional.{who}: `layers` must be a non-empty sequence of population sizes, "
            f"got {layers!r}."
        )
    sizes = tuple(check_size("layers[k]", size, f"functional.{who}") for size in layers)

    def build(in_size: int, key: PRNGKeyArray) -> _RecurrentLIFModule:
        return _RecurrentLIFModule(
            in_size,
            sizes,
            n_spikes,
            t_max,
            params,
            key=key,
            mean=mean,
            std=std,
            duplication=duplication,
            solver=solver,
            connectivity=Connectivity.FULL,
            overflow=overflow,
        )

    return _init_apply(_Skeletons(build, duplication), sum(sizes), who)


def construct_init_fn(
    n_hidden: int, mean: float, std: float, duplication: int | None = None
) -> Callable[[PRNGKeyArray, int], tuple[PRNGKeyArray, int, InputWeights]]:
    r"""The weight initialiser of a feed-forward layer, as in jaxsnn.

    **Arguments:** `n_hidden`, `mean`, `std`, `duplication` as for
    [`eqsnn.functional.LIF`][].

    **Returns:** `init_fn(rng, input_size) -> (rng, n_hidden, weights)`; the weights
    equal those that [`eqsnn.functional.LIF`][]'s `init_fn` returns for the same `rng`.
    """
    check_size("n_hidden", n_hidden, "functional.construct_init_fn")

    def build(in_size: int, key: PRNGKeyArray) -> _LIFModule:
        return _LIFModule(
            in_size, n_hidden, 1, 1.0, key=key, mean=mean, std=std, duplication=duplication
        )

    init_fn, _ = _init_apply(_Skeletons(build, duplication), n_hidden, "construct_init_fn")
    return init_fn


def construct_recurrent_init_fn(
    layers: Sequence[int],
    mean: float | Sequence[float],
    std: float | Sequence[float],
    duplication: int | None = None,
) -> Callable[[PRNGKeyArray, int], tuple[PRNGKeyArray, int, RecurrentWeights]]:
    r"""The weight initialiser of a recurrent layer, as in jaxsnn.

    **Arguments:** `layers`, `mean`, `std`, `duplication` as for
    [`eqsnn.functional.RecurrentLIF`][].

    **Returns:** `init_fn(rng, input_size) -> (rng, sum(layers), weights)`; the weights
    equal those that [`eqsnn.functional.RecurrentLIF`][]'s `init_fn` returns for the same
    `rng`.
    """
    init_fn, _ = RecurrentLIF(layers, 1, 1.0, LIFParameters(), mean, std, duplication)
    return init_fn


def serial(*layers: tuple[InitFn, ApplyFn]) -> tuple[Callable, Callable]:
    r"""Chain `(init_fn, apply_fn)` pairs into one network, as jaxsnn's `serial`.

    **Arguments:**

    - `*layers`: `(init_fn, apply_fn)` pairs of layers, first layer first.

    **Returns:** `(init_fn, apply_fn)`:

    - `init_fn(rng, input_size) -> (output_size, weights)`: initialises the layers in
      order, threading `rng` and the sizes; `weights` is a flat list, one entry per layer.
    - `apply_fn(weights, spikes, external=None, carry=None) -> (carry, weights, out,
      recording)`: simulates the layers in order on one sample; `out` is the last layer's
      output and `recording` the list of every layer's output, all with global indices.
      Use `jax.vmap(apply_fn, in_axes=(None, 0))` for a batch.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn
    from eqsnn import functional

    params = eqsnn.LIFParameters()
    init_fn, apply_fn = functional.serial(
        functional.LIF(4, n_spikes=8, t_max=0.05, params=params, mean=2.0, std=0.5),
        functional.LIF(2, n_spikes=4, t_max=0.05, params=params, mean=1.0, std=0.5),
    )
    n_out, weights = init_fn(jax.random.PRNGKey(0), 3)
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3, 3e-3]), idx=jnp.array([0, 1, 2]))
    _, _, out, recording = apply_fn(weights, spikes)  # out.idx in 7..8 (global), or -1
    ```
    """
    if not layers:
        raise ValueError("functional.serial: needs at least one (init_fn, apply_fn) pair.")
    for k, layer in enumerate(layers):
        if not (isinstance(layer, tuple) and len(layer) == 2 and all(map(callable, layer))):
            raise TypeError(
                f"functional.serial: layer {k} must be an (init_fn, apply_fn) pair, got {layer!r}."
            )
    init_fns, apply_fns = zip(*layers, strict=True)

    def init_fn(rng: PRNGKeyArray, input_size: int) -> tuple[int, list[Weights]]:
        """Initialise every layer's weights, in order."""
        weights: list[Weights] = []
        for layer_init in init_fns:
            rng, input_size, layer_weights = layer_init(rng, input_size)
            weights.append(layer_weights)
        return input_size, weights

    def apply_fn(
        weights: Sequence[Weights],
        spikes: Spikes,
        external: Any = None,
        carry: Carry | None = None,
    ) -> tuple[Carry | None, list[Weights], Spikes, list[Spikes]]:
        """Simulate the layers in order; returns every layer's output spikes."""
        if carry is None and len(weights) != len(apply_fns):
            raise ValueError(
                f"functional.serial: `weights` holds {len(weights)} entries for "
                f"{len(apply_fns)} layers; pass the list that init_fn returned."
            )
        used: list[Weights] = []
        recording: list[Spikes] = []
        for layer_apply in apply_fns:
            carry, layer_weights, spikes, _ = layer_apply(weights, spikes, external, carry)
            used.append(layer_weights)
            recording.append(spikes)
        return carry, used, spikes, recording

    return init_fn, apply_fn
