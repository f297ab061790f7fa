"""The feed-forward layers: `LIF`, and `EventPropLIF`, its seed spelling with EventProp."""

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._adjoint.base import AbstractAdjoint
from .._checks import check_size
from .._engine.base import AbstractEngine, SimulationConfig
from .._initialisation import normal_weights
from .._overflow import Overflow
from .._params import LIFParameters
from .._weights import InputWeights
from ..solvers import AbstractCrossingSolver
from .base import AbstractLayer, AbstractSimulatedLayer
from .keywords import engine_from_keywords, seed_adjoint


class AbstractFeedForwardLayer(AbstractLayer):
    """Base class of the feed-forward layers: `out_size` neurons, input weights only.

    **Fields** (besides those of [`eqsnn.AbstractLayer`][]): `out_size` and `weights`, an
    [`eqsnn.InputWeights`][] of shape `(in_size, out_size)`.
    """

    weights: InputWeights
    out_size: int = eqx.field(static=True)

    def _init_layer(
        self, in_size, out_size, n_spikes, t_max, params, key, mean, std, duplication, delays=None
    ):
        """Check and set the sizes and parameters, and draw the initial weights (`__init__`)."""
        who = type(self).__name__
        self.out_size = check_size("out_size", out_size, who)
        self._init_sizes(in_size, n_spikes, t_max, params)
        w = normal_weights(key, self.in_size, self.out_size, mean, std, duplication, who)
        delays = initial_delays(delays, self.in_size, self.out_size, w.dtype, who)
        self.weights = InputWeights(input=w, delays=delays)

    @property
    def size(self) -> int:
        """The number of neurons, `out_size`."""
        return self.out_size

    def _check_weight_shapes(self, who: str) -> None:
        shape = jnp.shape(self.weights.input)
        if shape != (self.in_size, self.out_size):
            raise ValueError(
                f"{who}: `weights.input` must have shape (in_size, out_size)="
                f"({self.in_size}, {self.out_size}), got {shape}."
            )
        delays = getattr(self.weights, "delays", None)
        if delays is not None:
            check_delay_shape(delays, self.in_size, self.out_size, who, "weights.delays")


def check_delay_shape(delays, in_size: int, out_size: int, who: str, name: str) -> None:
    """Raise a `ValueError` naming `name` unless `delays` has shape `(in_size,)` (per source)
    or `(in_size, out_size)` (per synapse)."""
    shape = jnp.shape(delays)
    if shape not in ((in_size,), (in_size, out_size)):
        raise ValueError(
            f"{who}: `{name}` must have shape (in_size,)=({in_size},) (per source) or "
            f"(in_size, out_size)=({in_size}, {out_size}) (per synapse), got {shape}."
        )


def initial_delays(delays, in_size: int, out_size: int, dtype, who: str, name: str = "delays"):
    """The delays a layer starts with: `None`; zeros of the per-synapse (`"synapse"`) or
    per-source (`"source"`) shape; or the given array, checked (shape, finite, >= 0)."""
    if delays is None:
        return None
    if isinstance(delays, str):
        shapes = {"synapse": (in_size, out_size), "source": (in_size,)}
        if delays not in shapes:
            raise ValueError(
                f"{who}: `{name}` must be None, 'synapse', 'source' or an array of delays in "
                f"seconds, got {delays!r}."
            )
        return jnp.zeros(shapes[delays], dtype)
    delays = jnp.asarray(delays, dtype)
    check_delay_shape(delays, in_size, out_size, who, name)
    host = np.asarray(delays)
    bad = ~np.isfinite(host) | (host < 0)
    if bad.any():
        where = tuple(int(k) for k in np.unravel_index(int(np.argmax(bad)), host.shape))
        raise ValueError(
            f"{who}: `{name}` must be finite and >= 0 (seconds), got {name}{list(where)}="
            f"{host[where].item()!r}."
        )
    return delays


class LIF(AbstractFeedForwardLayer, AbstractSimulatedLayer):
    r"""A feed-forward layer of LIF neurons, simulated exactly from event to event.

    Each neuron $n$ follows
    $\tau_\mathrm{mem}\dot V_n = v_\mathrm{leak} - V_n + I_n$,
    $\tau_\mathrm{syn}\dot I_n = -I_n$, starting at rest ($V_n = v_\mathrm{leak}$,
    $I_n = 0$). An input spike of input $i$ adds `weights.input[i, n]` to $I_n$; when $V_n$
    reaches $v_\mathrm{th}$ the neuron spikes and $V_n \leftarrow v_\mathrm{reset}$.
    Events at or after `t_max` are ignored. Spike times are exact up to floating-point
    rounding, and gradients (with respect to the weights and the input spike times) are
    exact too: crossing times are differentiated with the implicit-function theorem.

    The layer simulates one sample; use `jax.vmap` for a batch. It composes with
    `eqx.nn.Sequential`.

    **Arguments:**

    - `in_size`: number of inputs.
    - `out_size`: number of neurons.
    - `n_spikes`: capacity of the output buffer (this layer's spikes, all neurons together).
    - `t_max`: simulation horizon in seconds.
    - `params`: the [`eqsnn.LIFParameters`][] (default: the reference's defaults).
    - `key`: a `jax.random.PRNGKey` for the weight initialisation (keyword-only).
    - `mean`, `std`: the initial weights are drawn from $\mathcal N(\mathrm{mean}, \mathrm{std}^2)$.
    - `duplication`: if set to `d`, inputs come in `d` consecutive copies that start with
      equal weights (the reference's duplicated inputs); `in_size` must be a multiple of `d`.
    - `solver`: the crossing solver (default: [`eqsnn.solvers.default_solver`][]).
    - `engine`: how the spikes are found (default [`eqsnn.AutoEngine`][]: the
      [`eqsnn.WindowScan`][] with `max_spikes_per_neuron = ceil(n_spikes / out_size)`,
      the output buffer shared evenly). [`eqsnn.IntervalScan`][] scans the input
      intervals with all neurons together; [`eqsnn.EventLoop`][] is the recurrent layers'
      loop. A neuron that could spike again after its budget adds one to `dropped`; the
      default budget can lose spikes while the buffer has room, and the warning of
      `overflow` says so. See [Spike budgets](../concepts/budgets.md).
    - `adjoint`: how gradients are computed: [`eqsnn.AutoDiff`][] (default) or
      [`eqsnn.EventProp`][].
    - `overflow`: an [`eqsnn.Overflow`][]: warn about lost spikes (default), count them
      silently, or raise.
    - `delays`: synaptic delays, trained with the weights (stored in `weights.delays`):
      `None` (default, no delay), `"synapse"` or `"source"` (zeros of shape
      `(in_size, out_size)` or `(in_size,)`), or an array of either shape in seconds
      (finite, >= 0). Input `i`'s spike at $t$ reaches neuron $n$ at $t + d_{in}$ (per
      synapse) or $t + d_i$ (per source, axonal). See
      [Trainable parameters and delays](../concepts/trainable.md).
    - `max_spikes_per_neuron`, `max_spikes_per_interval`: deprecated spellings of
      `engine=eqsnn.WindowScan(max_spikes_per_neuron=...)` and
      `engine=eqsnn.IntervalScan(max_spikes_per_interval=...)` (a `DeprecationWarning`).

    **Returns (from `__call__`):** the output [`eqsnn.Spikes`][], `n_spikes` slots, sorted by
    time, indices `0..out_size-1`, empty slots `idx == -1`, `time == inf`. Its `dropped` is
    the number of spikes this layer lost (a lower bound, 0 exactly when none was lost; see
    [Spike budgets](../concepts/budgets.md)) plus the input's `dropped`.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.LIF(2, 3, n_spikes=15, t_max=0.05, key=jax.random.PRNGKey(0), mean=2.0)
    out = layer(eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1])))
    ```
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        n_spikes: int,
        t_max: float,
        params: LIFParameters | None = None,
        *,
        key: PRNGKeyArray,
        mean: float = 0.5,
        std: float = 2.0,
        duplication: int | None = None,
        solver: AbstractCrossingSolver | None = None,
        engine: AbstractEngine | None = None,
        adjoint: AbstractAdjoint | None = None,
        overflow: Overflow = Overflow.WARN,
        delays=None,
        max_spikes_per_neuron: int | None = None,
        max_spikes_per_interval: int | None = None,
    ):
        who = type(self).__name__
        engine = engine_from_keywords(who, engine, max_spikes_per_neuron, max_spikes_per_interval)
        self._init_layer(
            in_size, out_size, n_spikes, t_max, params, key, mean, std, duplication, delays
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
            layers=(self.out_size,),
        )

    def simulation_weights(self):
        """The `(in_size, out_size)` input weights, or the [`eqsnn.InputWeights`][] with
        their delays."""
        if self.weights.delays is None:
            return self.weights.input
        return self.weights

    @property
    def max_spikes_per_neuron(self) -> int | None:
        """The window scan's per-neuron budget (`None` for another engine)."""
        return getattr(self.engine, "max_spikes_per_neuron", None)

    @property
    def max_spikes_per_interval(self) -> int | None:
        """The interval scan's per-interval budget (`None` for another engine)."""
        return getattr(self.engine, "max_spikes_per_interval", None)


class EventPropLIF(LIF):
    r"""A feed-forward LIF layer whose gradients come from the EventProp adjoint.

    The seed's name for `eqsnn.LIF(..., adjoint=eqsnn.EventProp(per_step=wrap_only_step))`.

    The forward pass is that of [`eqsnn.LIF`][] (same spikes, bit for bit). The backward
    pass is EventProp (Wunderlich & Pehle, 2021): instead of differentiating through the
    simulation, the adjoint $(\lambda_V, \lambda_I)$ is integrated backwards from
    $t_\mathrm{max}$ event by event, with its closed-form flow
    ([`eqsnn.eventprop.adjoint_lif_exponential_flow`][]) and jumps at the output spikes
    ([`eqsnn.eventprop.adjoint_transition_without_recurrence`][]), and the gradients are
    read off at the input spikes ([`eqsnn.eventprop.adjoint_input_transition`][]):

    $$
    \frac{\partial L}{\partial W_{in}} = -\tau_\mathrm{syn}\sum_{t_k:\ \text{input } i}
        \lambda_{I,n}(t_k), \qquad
    \frac{\partial L}{\partial t_k} = \sum_n W_{in}\,(\lambda_{V,n} - \lambda_{I,n})(t_k).
    $$

    The forward pass stores only the spike record (times, currents, occurrence per input
    interval and neuron), not the root solver's computation graph. Gradients equal those of
    autodiff through [`eqsnn.LIF`][] up to rounding, for any number of spikes per neuron
    and any finite `v_reset`. They flow to the weights and to the input spike times, so
    `eqx.nn.Sequential` stacks of `EventPropLIF` train end to end. Losses may depend on the
    output spikes' `time` and `current`; empty slots get zero gradient whatever the loss
    does with their `+inf` times. See [EventProp](../concepts/eventprop.md).

    Like every custom VJP, the layer supports reverse mode (`jax.grad`, `jax.vjp`) but not
    forward mode (`jax.jvp`, `jax.jacfwd`); use [`eqsnn.LIF`][] for those.

    **Arguments:** as [`eqsnn.LIF`][], plus

    - `wrap_only_step`: if `False` (default), one custom VJP covers the whole trajectory
      (the backward pass is one closed-form adjoint); if `True`, each step of the engine
      has its own custom VJP and JAX's autodiff chains them (by default this selects the
      interval scan, `eqsnn.IntervalScan(max_spikes_per_interval=1)`). Both give the same
      gradients. See [`eqsnn.EventProp`][] (`per_step`).

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.EventPropLIF(2, 3, n_spikes=15, t_max=0.05, key=jax.random.PRNGKey(0), mean=2.0)
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))


    def loss(layer):
        out = layer(spikes)
        return jnp.sum(jnp.where(out.valid, out.time, 0.0))


    grads = eqx.filter_grad(loss)(layer)
    ```
    """

    def __init__(self, *args, wrap_only_step: bool = False, **kwargs):
        adjoint = seed_adjoint(type(self).__name__, wrap_only_step, kwargs, "LIF")
        super().__init__(*args, adjoint=adjoint, **kwargs)

    @property
    def wrap_only_step(self) -> bool:
        """Whether each step has its own custom VJP (`adjoint.per_step`)."""
        return self.adjoint.per_step
