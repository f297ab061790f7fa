"""The recurrent layers: `RecurrentLIF`, and `RecurrentEventPropLIF`, its seed spelling
with EventProp."""

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from .._adjoint.base import AbstractAdjoint
from .._checks import check_size, layer_name
from .._connectivity import Connectivity, ConnectivityMask, make_mask, population_bounds
from .._engine.base import AbstractEngine, SimulationConfig
from .._initialisation import layered_weights, per_block
from .._overflow import Overflow
from .._params import LIFParameters
from .._spikes import EMPTY_INDEX, Spikes
from .._weights import RecurrentWeights
from ..solvers import AbstractCrossingSolver
from .base import AbstractLayer, AbstractSimulatedLayer
from .feedforward import check_delay_shape, initial_delays
from .keywords import engine_from_keywords, seed_adjoint


def check_layers(layers, who: str) -> tuple[int, ...]:
    """The population sizes as a tuple of positive ints (a `ValueError` naming `who`)."""
    if isinstance(layers, int) or not isinstance(layers, Sequence) or not layers:
        raise ValueError(
            f"{who}: `layers` must be a non-empty sequence of population sizes, got {layers!r}."
        )
    return tuple(check_size("layers[k]", size, who) for size in layers)


class AbstractRecurrentLayer(AbstractLayer):
    """Base class of the recurrent layers: populations of neurons and their connectivity.

    **Fields** (besides those of [`eqsnn.AbstractLayer`][]): `layers` (the population
    sizes), `mask` (the [`eqsnn.ConnectivityMask`][] of the weights that exist) and
    `weights`, an [`eqsnn.RecurrentWeights`][].
    """

    weights: RecurrentWeights
    layers: tuple[int, ...] = eqx.field(static=True)
    mask: ConnectivityMask = eqx.field(static=True)

    def _init_layer(
        self,
        in_size,
        layers,
        n_spikes,
        t_max,
        params,
        key,
        mean,
        std,
        duplication,
        connectivity,
        delays=None,
        recurrent_delays=None,
    ):
        """Check and set the sizes, parameters and connectivity, and draw the initial
        weights: the blocks of `Connectivity.LAYERED` from N(mean, std), the rest zero."""
        who = type(self).__name__
        self.layers = check_layers(layers, who)
        self._init_sizes(in_size, n_spikes, t_max, params)
        self.mask = make_mask(connectivity, self.in_size, self.layers, who)
        means = per_block("mean", mean, len(self.layers), who)
        stds = per_block("std", std, len(self.layers), who)
        weights = layered_weights(
            key, self.in_size, self.layers, means, stds, duplication, self.mask, who
        )
        n, dtype = self.size, weights.input.dtype
        self.weights = RecurrentWeights(
            input=weights.input,
            recurrent=weights.recurrent,
            delays=initial_delays(delays, self.in_size, n, dtype, who),
            recurrent_delays=initial_delays(recurrent_delays, n, n, dtype, who, "recurrent_delays"),
        )

    def _check_weight_shapes(self, who: str) -> None:
        n = self.size
        shapes = (jnp.shape(self.weights.input), jnp.shape(self.weights.recurrent))
        if shapes != ((self.in_size, n), (n, n)):
            raise ValueError(
                f"{who}: `weights.input` and `weights.recurrent` must have "
                f"shapes ({self.in_size}, {n}) and ({n}, {n}), got {shapes[0]} and {shapes[1]}."
            )
        if getattr(self.weights, "delays", None) is not None:
            check_delay_shape(self.weights.delays, self.in_size, n, who, "weights.delays")
        if getattr(self.weights, "recurrent_delays", None) is not None:
            check_delay_shape(self.weights.recurrent_delays, n, n, who, "weights.recurrent_delays")

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
            delays=self.weights.delays,
            recurrent_delays=self.weights.recurrent_delays,
        )


class RecurrentLIF(AbstractRecurrentLayer, AbstractSimulatedLayer):
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
    - `engine`: how the spikes are found (default [`eqsnn.AutoEngine`][]: the global
      [`eqsnn.EventLoop`][], bounded by `n_spikes` only). [`eqsnn.WindowScan`][] (with
      one budget for all populations or one per population) simulates the populations one
      after the other with the feed-forward window scan, each neuron keeping at most that
      many spikes: cost linear in the layer size instead of quadratic. It needs
      connectivity that is feed-forward between populations (as `Connectivity.LAYERED`);
      see [Spike budgets](../concepts/budgets.md).
    - `adjoint`: how gradients are computed: [`eqsnn.AutoDiff`][] (default) or
      [`eqsnn.EventProp`][].
    - `overflow`: an [`eqsnn.Overflow`][]: warn about lost spikes (default), count them
      silently, or raise.
    - `delays`, `recurrent_delays`: trainable delays of the input and of the recurrent
      synapses (`weights.delays`, `weights.recurrent_delays`): `None` (default), `"synapse"`
      or `"source"` (zeros of shape `(in_size, n)` / `(n, n)`, or `(in_size,)` / `(n,)`), or
      an array of either shape in seconds (finite, >= 0). Delays, per-neuron parameters
      and refractory periods run on the event loop (any connectivity) and on the window
      scan (populations connected feed-forward); see
      [Trainable parameters and delays](../concepts/trainable.md).
    - `max_spikes_per_neuron`: deprecated spelling of
      `engine=eqsnn.WindowScan(max_spikes_per_neuron=...)` (a `DeprecationWarning`).

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
        2, [4, 3], n_spikes=16, t_max=0.05, key=jax.random.PRNGKey(0), mean=[2.0, 1.0], std=0.5
    )
    out = layer(eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1])))
    first = layer.population_spikes(out, -1).first_spike_times(3)
    ```
    """

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
        engine: AbstractEngine | None = None,
        adjoint: AbstractAdjoint | None = None,
        overflow: Overflow = Overflow.WARN,
        delays=None,
        recurrent_delays=None,
        max_spikes_per_neuron: int | Sequence[int] | None = None,
    ):
        who = type(self).__name__
        engine = engine_from_keywords(who, engine, max_spikes_per_neuron)
        self._init_layer(
            in_size,
            layers,
            n_spikes,
            t_max,
            params,
            key,
            mean,
            std,
            duplication,
            connectivity,
            delays,
            recurrent_delays,
        )
        self._init_settings(solver, engine, adjoint, overflow)
        self._resolve_engine(engine)

    def config(self) -> SimulationConfig:
        """The [`eqsnn.SimulationConfig`][] that the engine receives."""
        return SimulationConfig(
            params=self.params,
            solver=self.solver,
            n_spikes=self.n_spikes,
            t_max=self.t_max,
            mask=self.mask,
            layers=self.layers,
        )

    def simulation_weights(self) -> RecurrentWeights:
        """The effective weights ([`effective_weights`][eqsnn.RecurrentLIF.effective_weights])."""
        return self.effective_weights()

    @property
    def max_spikes_per_neuron(self) -> tuple[int, ...] | None:
        """The window scan's per-population budgets (`None` for the event loop)."""
        return getattr(self.engine, "max_spikes_per_neuron", None)


class RecurrentEventPropLIF(RecurrentLIF):
    r"""A recurrent LIF layer whose gradients come from the EventProp adjoint.

    The seed's name for
    `eqsnn.RecurrentLIF(..., adjoint=eqsnn.EventProp(per_step=wrap_only_step))`.

    The forward pass is that of [`eqsnn.RecurrentLIF`][] (same spikes, bit for bit). The
    backward pass is EventProp (Wunderlich & Pehle, 2021) over the events the loop
    recorded, walked in reverse: the adjoint $(\lambda_V, \lambda_I)$ of all neurons flows
    back in closed form between events
    ([`eqsnn.eventprop.adjoint_lif_exponential_flow`][]), jumps at each spike of a neuron
    $j$ (reset and recurrent term through $W^\mathrm{rec}_{j\cdot}$,
    [`eqsnn.eventprop.adjoint_transition_with_recurrence`][]), and the gradients are read
    off at the events:

    $$
    \frac{\partial L}{\partial W^\mathrm{rec}_{jn}} = -\tau_\mathrm{syn}
        \sum_{\text{spikes of } j} \lambda_{I,n}^+, \qquad
    \frac{\partial L}{\partial W^\mathrm{in}_{in}} = -\tau_\mathrm{syn}
        \sum_{\text{inputs } i} \lambda_{I,n}, \qquad
    \frac{\partial L}{\partial t_k} = \sum_n W^\mathrm{in}_{in}\,(\lambda_{V,n} - \lambda_{I,n}).
    $$

    The forward pass stores only the event record, not the crossing solver's computation
    graph. Gradients equal those of autodiff through [`eqsnn.RecurrentLIF`][] up to
    rounding, reach the input and recurrent weights (masked-out entries get exactly zero)
    and the input spike times. Losses may depend on the output spikes' `time` and
    `current`; empty slots get zero gradient whatever the loss does with their `+inf`
    times. Reverse mode only (`jax.grad`, `jax.vjp`); use [`eqsnn.RecurrentLIF`][] for
    forward mode.

    **Arguments:** as [`eqsnn.RecurrentLIF`][], plus

    - `wrap_only_step`: if `False` (default), one custom VJP covers the whole event
      trajectory (the backward pass is one reverse scan over the recorded events); if
      `True`, each step of the event loop has its own custom VJP (the jump at its event
      and the flow back to the previous one) and JAX's autodiff chains them. Both give
      the same gradients up to rounding. `True` keeps every step's state for the backward
      pass and accumulates dense weight cotangents at every step, so `False` is cheaper;
      its compiled forward may also differ from that of [`eqsnn.RecurrentLIF`][] in the
      last bit of the spike times. Not with `engine=eqsnn.WindowScan(...)`.

    With `engine=eqsnn.WindowScan(...)` (feed-forward populations, see
    [`eqsnn.RecurrentLIF`][]) each population is simulated by the window scan and
    differentiated by its closed-form adjoint, as in [`eqsnn.EventPropLIF`][]; the
    populations are chained by autodiff.

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.RecurrentEventPropLIF(
        2, [4, 3], n_spikes=16, t_max=0.05, key=jax.random.PRNGKey(0), mean=[2.0, 1.0], std=0.5
    )
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))


    def first_spike_loss(layer):  # the output population's first spikes, as classifiers use
        first = layer.population_spikes(layer(spikes), -1).first_spike_times(3)
        return jnp.sum(jnp.where(jnp.isfinite(first), first, 0.0))


    grads = eqx.filter_grad(first_spike_loss)(layer)
    ```
    """

    def __init__(self, *args, wrap_only_step: bool = False, **kwargs):
        adjoint = seed_adjoint(type(self).__name__, wrap_only_step, kwargs, "RecurrentLIF")
        super().__init__(*args, adjoint=adjoint, **kwargs)

    @property
    def wrap_only_step(self) -> bool:
        """Whether each step has its own custom VJP (`adjoint.per_step`)."""
        return self.adjoint.per_step
