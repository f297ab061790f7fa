"""The recurrent LIF layer: several populations (or one recurrent pool) in one event loop."""

import enum
import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Bool, PRNGKeyArray

from ._checks import check_layer_weights, layer_name
from ._events import Overflow, check_input, compiled
from ._layered import feedforward_sources, population_bounds, simulate_layered
from ._params import LIFParameters
from ._recurrent import simulate_recurrent
from ._spikes import EMPTY_INDEX, Spikes, with_sources
from ._weights import RecurrentWeights, check_size, check_t_max, normal_weights
from .solvers import AbstractCrossingSolver, default_solver


class Connectivity(enum.Enum):
    """Which weights of a [`eqsnn.RecurrentLIF`][] exist (and are trained).

    - `Connectivity.LAYERED`: inputs reach the first population, population `k` reaches
      population `k + 1`; a stack of feed-forward layers simulated in one loop (default).
    - `Connectivity.FULL`: every weight exists: inputs reach every neuron, and every neuron
      reaches every neuron, itself included.

    For any other pattern pass a [`eqsnn.ConnectivityMask`][].
    """

    LAYERED = "layered"
    FULL = "full"


class ConnectivityMask:
    """Boolean masks of the weights of a [`eqsnn.RecurrentLIF`][] that exist.

    Masked-out weights (`False`) are zero in the simulation, receive exactly zero gradient
    and are initialised to zero, so an optimiser keeps them at zero. The masks are constants
    of the layer (a static field), not trainable leaves. Instances are immutable and
    hashable.

    **Arguments:**

    - `input`: boolean array of shape `(in_size, n)`.
    - `recurrent`: boolean array of shape `(n, n)`; `recurrent[j, k]` allows neuron `j` to
      reach neuron `k`.
    """

    __slots__ = ("input", "recurrent", "_hash")

    def __init__(self, input: Bool[ArrayLike, "in_size n"], recurrent: Bool[ArrayLike, "n n"]):
        masks = {}
        for name, value in (("input", input), ("recurrent", recurrent)):
            array = np.asarray(value)
            if array.dtype != np.bool_:
                raise TypeError(
                    f"ConnectivityMask: `{name}` must be a boolean array, got dtype {array.dtype}."
                )
            if array.ndim != 2:
                raise ValueError(
                    f"ConnectivityMask: `{name}` must be 2-d, got shape {array.shape}."
                )
            array = array.copy()
            array.flags.writeable = False
            masks[name] = array
        n = masks["recurrent"].shape[0]
        if masks["recurrent"].shape != (n, n) or masks["input"].shape[1] != n:
            raise ValueError(
                "ConnectivityMask: `recurrent` must have shape (n, n) and `input` shape "
                f"(in_size, n), got {masks['recurrent'].shape} and {masks['input'].shape}."
            )
        object.__setattr__(self, "input", masks["input"])
        object.__setattr__(self, "recurrent", masks["recurrent"])
        key = tuple((a.shape, a.tobytes()) for a in (self.input, self.recurrent))
        object.__setattr__(self, "_hash", hash(key))

    def __setattr__(self, name, value):
        raise AttributeError("ConnectivityMask is immutable.")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        if not isinstance(other, ConnectivityMask):
            return NotImplemented
        return all(
            a.shape == b.shape and np.array_equal(a, b)
            for a, b in ((self.input, other.input), (self.recurrent, other.recurrent))
        )

    def __repr__(self) -> str:
        return (
            f"ConnectivityMask(input: {self.input.shape}, {int(self.input.sum())} allowed; "
            f"recurrent: {self.recurrent.shape}, {int(self.recurrent.sum())} allowed)"
        )


def _make_mask(connectivity, in_size: int, layers: tuple[int, ...], who: str):
    n = sum(layers)
    if connectivity is Connectivity.FULL:
        return ConnectivityMask(np.ones((in_size, n), bool), np.ones((n, n), bool))
    if connectivity is Connectivity.LAYERED:
        bounds = population_bounds(layers)
        w_in = np.zeros((in_size, n), bool)
        w_in[:, : layers[0]] = True
        w_rec = np.zeros((n, n), bool)
        for (start, stop), (nxt_start, nxt_stop) in zip(bounds[:-1], bounds[1:], strict=True):
            w_rec[start:stop, nxt_start:nxt_stop] = True
        return ConnectivityMask(w_in, w_rec)
    if isinstance(connectivity, ConnectivityMask):
        expected = ((in_size, n), (n, n))
        if (connectivity.input.shape, connectivity.recurrent.shape) != expected:
            raise ValueError(
                f"{who}: `connectivity` masks must have shapes input={expected[0]} and "
                f"recurrent={expected[1]} for in_size={in_size}, layers={list(layers)}; got "
                f"{connectivity.input.shape} and {connectivity.recurrent.shape}."
            )
        return connectivity
    raise TypeError(
        f"{who}: `connectivity` must be an eqsnn.Connectivity or an eqsnn.ConnectivityMask, "
        f"got {connectivity!r}."
    )


def _per_block(name: str, value, n_blocks: int, who: str) -> tuple[float, ...]:
    """`mean`/`std`: one number per weight block (input block first), or one for all."""
    values = (value,) * n_blocks if isinstance(value, int | float | np.number) else value
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"{who}: `{name}` must be a number or a sequence of numbers, got {value!r}."
        ) from None
    if len(values) != n_blocks or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"{who}: `{name}` must hold one finite number per weight block (input block "
            f"first, then population k -> k+1: {n_blocks} in all), got {value!r}."
        )
    return values


def _layered_weights(key, in_size, layers, mean, std, duplication, mask, who):
    """N(mean[0], std[0]) input -> population 0, N(mean[k+1], std[k+1]) population k -> k+1,
    zeros elsewhere; then the mask is applied. Assembled in numpy (no per-shape compiles)."""
    keys = jax.random.split(key, len(layers))
    n = sum(layers)
    first = normal_weights(keys[0], in_size, layers[0], mean[0], std[0], duplication, who)
    dtype = first.dtype
    w_in = np.zeros((in_size, n), dtype)
    w_in[:, : layers[0]] = np.asarray(first)
    w_rec = np.zeros((n, n), dtype)
    bounds = population_bounds(layers)
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    for k, ((start, stop), (nxt_start, nxt_stop)) in enumerate(pairs):
        block = normal_weights(
            keys[k + 1], stop - start, nxt_stop - nxt_start, mean[k + 1], std[k + 1], None, who
        )
        w_rec[start:stop, nxt_start:nxt_stop] = np.asarray(block)
    return RecurrentWeights(
        input=jnp.asarray(np.where(mask.input, w_in, 0.0), dtype),
        recurrent=jnp.asarray(np.where(mask.recurrent, w_rec, 0.0), dtype),
    )


def _population_budgets(value, layers: tuple[int, ...], mask: ConnectivityMask, who: str):
    """`max_spikes_per_neuron` as one int per population (`None`: the global event loop)."""
    if value is None:
        return None
    values = (value,) * len(layers) if isinstance(value, int | np.integer) else value
    if isinstance(values, Sequence) and len(values) == len(layers):
        budgets = tuple(check_size("max_spikes_per_neuron", v, who) for v in values)
    else:
        raise ValueError(
            f"{who}: `max_spikes_per_neuron` must be a positive int or one per population "
            f"({len(layers)} for layers={list(layers)}), got {value!r}."
        )
    if feedforward_sources(mask.input, mask.recurrent, layers) is None:
        raise ValueError(
            f"{who}: `max_spikes_per_neuron`={value!r} simulates the populations one after "
            "the other, which needs feed-forward connectivity between them (no weight from "
            f"a population to itself or to an earlier one); got {mask!r}. Leave it at None "
            "for the global event loop."
        )
    return budgets


class RecurrentLIF(eqx.Module):
    r"""A recurrent layer of LIF neurons in populations, simulated exactly event by event.

    The layer holds $n = \sum_k$ `layers[k]` neurons, numbered population after
    population. Each neuron follows
    $\tau_\mathrm{mem}\dot V_n = v_\mathrm{leak} - V_n + I_n$,
    $\tau_\mathrm{syn}\dot I_n = -I_n$ from rest. An input spike of input $i$ adds
    `weights.input[i, n]` to $I_n$. When $V_j$ reaches $v_\mathrm{th}$, neuron $j$ spikes:
    $V_j \leftarrow v_\mathrm{reset}$ and `weights.recurrent[j, n]` is added to every $I_n$
    (its own included). All neurons share one event loop over input spikes and their own
    spikes (see [Recurrent layers](../concepts/recurrent.md)); spike times are exact up to
    rounding and differentiable with `jax.grad`. Neurons crossing at the same time all spike.

    With the default `Connectivity.LAYERED`, only the input block of the first population
    and the blocks from population $k$ to $k+1$ exist: the layer is a stack of feed-forward
    [`eqsnn.LIF`][] layers, simulated in one loop. `Connectivity.FULL` or a
    [`eqsnn.ConnectivityMask`][] give genuine recurrence. Weights outside the connectivity
    mask are zero, get zero gradient and stay zero during training.

    **Arguments:**

    - `in_size`: number of inputs.
    - `layers`: the population sizes, e.g. `[hidden, out]`.
    - `n_spikes`: capacity of the output buffer (spikes of all populations together).
    - `t_max`: simulation horizon in seconds.
    - `params`: the [`eqsnn.LIFParameters`][] (default: the reference's defaults).
    - `key`: a `jax.random.PRNGKey` for the weight initialisation (keyword-only).
    - `mean`, `std`: one entry per weight block, input block first, then population
      $k \to k+1$ (`len(layers)` entries), or one number for all blocks. Those blocks are
      drawn from $\mathcal N(\mathrm{mean}, \mathrm{std}^2)$; every other weight starts at 0.
    - `duplication`: if set to `d`, inputs come in `d` consecutive copies that start with
      equal weights; `in_size` must be a multiple of `d`.
    - `solver`: the crossing solver (default: [`eqsnn.solvers.default_solver`][]).
    - `connectivity`: an [`eqsnn.Connectivity`][] or an [`eqsnn.ConnectivityMask`][].
    - `overflow`: an [`eqsnn.Overflow`][]: warn about lost spikes (default), count them
      silently, or raise.
    - `max_spikes_per_neuron`: `None` (default) for the global event loop, bounded by
      `n_spikes` only. An int (or one int per population) simulates the populations one
      after the other with the feed-forward window scan of [`eqsnn.LIF`][], each neuron
      keeping at most that many spikes: cost linear in the layer size instead of
      quadratic. Needs connectivity that is feed-forward between populations (as
      `Connectivity.LAYERED`); see [Spike budgets](../concepts/budgets.md).

    **Returns (from `__call__`):** the output [`eqsnn.Spikes`][], `n_spikes` slots, sorted
    by time, indices `0..n-1` (`population_spikes` selects one population). `dropped` is
    the number of spikes this layer lost (a lower bound, 0 exactly when none was lost; see
    [Spike budgets](../concepts/budgets.md)) plus the input's `dropped`.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.RecurrentLIF(
        2, [4, 3], n_spikes=12, t_max=0.05, key=jax.random.PRNGKey(0), mean=[2.0, 1.0], std=0.5
    )
    out = layer(eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1])))
    first = layer.population_spikes(out, -1).first_spike_times(3)
    ```
    """

    weights: RecurrentWeights
    in_size: int = eqx.field(static=True)
    layers: tuple[int, ...] = eqx.field(static=True)
    n_spikes: int = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    params: LIFParameters
    solver: AbstractCrossingSolver = eqx.field(static=True)
    mask: ConnectivityMask = eqx.field(static=True)
    overflow: Overflow = eqx.field(static=True)
    max_spikes_per_neuron: tuple[int, ...] | None = eqx.field(static=True)

    def __init__(
        self,
        in_size: int,
        layers: Sequence[int],
        n_spikes: int,
        t_max: float,
        params: LIFParameters | None = None,
        *,
        key: PRNGKeyArray,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 2.0,
        duplication: int | None = None,
        solver: AbstractCrossingSolver | None = None,
        connectivity: Connectivity | ConnectivityMask = Connectivity.LAYERED,
        overflow: Overflow = Overflow.WARN,
        max_spikes_per_neuron: int | Sequence[int] | None = None,
    ):
        who = type(self).__name__
        self.in_size = check_size("in_size", in_size, who)
        if isinstance(layers, int) or not isinstance(layers, Sequence) or not layers:
            raise ValueError(
                f"{who}: `layers` must be a non-empty sequence of population sizes, got {layers!r}."
            )
        self.layers = tuple(check_size("layers[k]", size, who) for size in layers)
        self.n_spikes = check_size("n_spikes", n_spikes, who)
        self.t_max = check_t_max(t_max, who)
        self.params = LIFParameters() if params is None else params
        if not isinstance(self.params, LIFParameters):
            raise TypeError(f"{who}: `params` must be an eqsnn.LIFParameters, got {params!r}.")
        self.solver = default_solver(self.params) if solver is None else solver
        if not isinstance(self.solver, AbstractCrossingSolver):
            raise TypeError(f"{who}: `solver` must be a crossing solver, got {solver!r}.")
        if not isinstance(overflow, Overflow):
            raise TypeError(f"{who}: `overflow` must be an eqsnn.Overflow, got {overflow!r}.")
        self.overflow = overflow
        self.mask = _make_mask(connectivity, self.in_size, self.layers, who)
        self.max_spikes_per_neuron = _population_budgets(
            max_spikes_per_neuron, self.layers, self.mask, who
        )
        means = _per_block("mean", mean, len(self.layers), who)
        stds = _per_block("std", std, len(self.layers), who)
        self.weights = _layered_weights(
            key, self.in_size, self.layers, means, stds, duplication, self.mask, who
        )

    def __check_init__(self):
        n = self.size
        shapes = (jnp.shape(self.weights.input), jnp.shape(self.weights.recurrent))
        if shapes != ((self.in_size, n), (n, n)):
            raise ValueError(
                f"{type(self).__name__}: `weights.input` and `weights.recurrent` must have "
                f"shapes ({self.in_size}, {n}) and ({n}, {n}), got {shapes[0]} and {shapes[1]}."
            )

    @property
    def size(self) -> int:
        """Total number of neurons, `sum(layers)`."""
        return sum(self.layers)

    def population(self, k: int) -> range:
        """The neuron indices of population `k` (negative `k` counts from the end)."""
        bounds = population_bounds(self.layers)
        if isinstance(k, bool) or not isinstance(k, int) or not -len(bounds) <= k < len(bounds):
            raise ValueError(
                f"{type(self).__name__}: population index must be an int in "
                f"[-{len(bounds)}, {len(bounds)}), got {k!r}."
            )
        return range(*bounds[k])

    def population_spikes(self, spikes: Spikes, k: int) -> Spikes:
        """The spikes of population `k` only, with indices local to it.

        **Arguments:**

        - `spikes`: an output of this layer (one sample or a batch).
        - `k`: the population (static int; `-1` is the last, e.g. the output population).

        **Returns:** a [`eqsnn.Spikes`][] buffer of the same length, sorted by time, with
        indices `0..layers[k]-1` and empty slots for the other populations' spikes.
        `dropped` is the whole layer's count.
        """
        neurons = self.population(k)
        if spikes.n_sources is not None and spikes.n_sources != self.size:
            raise ValueError(
                f"{layer_name(self)}: population_spikes needs this layer's output, got spikes "
                f"from a source of {spikes.n_sources} neurons (spikes.n_sources="
                f"{spikes.n_sources}) but the layer has {self.size}."
            )
        keep = (spikes.idx >= neurons.start) & (spikes.idx < neurons.stop)
        local = Spikes(
            time=jnp.where(keep, spikes.time, jnp.inf),
            idx=jnp.where(keep, spikes.idx - neurons.start, EMPTY_INDEX),
            current=jnp.where(keep, spikes.current, 0.0),
            dropped=spikes.dropped,
            n_sources=len(neurons),
        )
        return local.sort()

    def effective_weights(self) -> RecurrentWeights:
        """The weights as simulated: `weights` with the masked-out entries set to zero."""
        return RecurrentWeights(
            input=jnp.where(self.mask.input, self.weights.input, 0.0),
            recurrent=jnp.where(self.mask.recurrent, self.weights.recurrent, 0.0),
        )

    def __call__(self, spikes: Spikes, *, key: PRNGKeyArray | None = None) -> Spikes:
        """Simulate the layer for one sample of input spikes (`key` is unused)."""
        who = layer_name(self)
        spikes = check_input(spikes, self.in_size, who)
        layer = check_layer_weights(self, who)
        return with_sources(compiled(_simulate, layer, spikes), self.size)

    def _simulate_populations(self, spikes: Spikes, eventprop: bool) -> Spikes:
        """The populations one after the other with the window scan (see `_layered`)."""
        return simulate_layered(
            self.effective_weights(),
            spikes,
            self.params,
            self.solver,
            self.layers,
            feedforward_sources(self.mask.input, self.mask.recurrent, self.layers),
            self.max_spikes_per_neuron,
            self.n_spikes,
            self.t_max,
            self.overflow,
            type(self).__name__,
            eventprop,
        )


def _simulate(layer: RecurrentLIF, spikes: Spikes) -> Spikes:
    """The global event loop, or the window scan per population with a budget."""
    if layer.max_spikes_per_neuron is not None:
        return layer._simulate_populations(spikes, eventprop=False)
    return simulate_recurrent(
        layer.effective_weights(),
        spikes,
        layer.params,
        layer.solver,
        layer.n_spikes,
        layer.t_max,
        layer.overflow,
        type(layer).__name__,
        reach=layer.mask,
    )
