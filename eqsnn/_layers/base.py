r"""What every layer shares: its settings, its checks at the boundary, one compiled call.

A layer holds its weights, the neuron parameters, a crossing solver, an engine (how the
events are found), an adjoint (how gradients flow back) and an overflow policy. Calling
it checks the input once, here, builds the small [`eqsnn.SimulationConfig`][] that the
engine reads, and runs `adjoint.simulate(engine, config, weights, spikes)` as one compiled
program. Nothing below this boundary knows which layer called it: errors name the layer
here.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from .._adjoint.base import AbstractAdjoint, AutoDiff
from .._checks import check_layer_weights, check_size, check_t_max, is_concrete, layer_name
from .._engine.auto import resolve_engine
from .._engine.base import AbstractEngine, SimulationConfig
from .._engine.event_loop import EventLoop
from .._engine.window_scan import WindowScan
from .._overflow import Overflow, report_dropped
from .._params import LIFParameters
from .._spikes import EMPTY_INDEX, Spikes, with_sources
from ..neurons._model import AbstractNeuronModel
from ..solvers import AbstractCrossingSolver, default_solver
from ..solvers._select import check_solver_ratio


class AbstractLayer(eqx.Module):
    """Base class of every layer: sizes, horizon, neuron parameters, weight checks.

    **Fields:** `in_size` (the number of inputs), `n_spikes` (the capacity of the output
    buffer), `t_max` (the simulation horizon in seconds) and `params` (the
    [`eqsnn.LIFParameters`][]); subclasses add their weights and say how they look.
    """

    in_size: int = eqx.field(static=True)
    n_spikes: int = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    params: LIFParameters

    def _init_sizes(self, in_size, n_spikes, t_max, params) -> None:
        """Check and set the fields every layer has (called by `__init__`)."""
        who = type(self).__name__
        self.in_size = check_size("in_size", in_size, who)
        self.n_spikes = check_size("n_spikes", n_spikes, who)
        self.t_max = check_t_max(t_max, who)
        self.params = LIFParameters() if params is None else params
        if not isinstance(self.params, LIFParameters | AbstractNeuronModel):
            raise TypeError(
                f"{who}: `params` must be an eqsnn.LIFParameters or another neuron model "
                f"(eqsnn.ALIFParameters, eqsnn.IFParameters, ...), got {params!r}."
            )

    @property
    @abc.abstractmethod
    def size(self) -> int:
        """The number of neurons of the layer."""

    @abc.abstractmethod
    def _check_weight_shapes(self, who: str) -> None:
        """Raise a `ValueError` naming `who` if the weights have the wrong shapes."""

    def __check_init__(self):
        self._check_weight_shapes(type(self).__name__)


class AbstractSimulatedLayer(AbstractLayer):
    """Base class of the layers that eqsnn simulates ([`eqsnn.LIF`][],
    [`eqsnn.RecurrentLIF`][]).

    Calling such a layer runs one sample of input spikes through
    `adjoint.simulate(engine, config, weights, spikes)` (see
    [Architecture](../concepts/architecture.md)).

    **Fields** (besides those of [`eqsnn.AbstractLayer`][]):

    - `solver`: the crossing solver.
    - `engine`: the engine that runs (an [`eqsnn.AutoEngine`][] is resolved when the layer
      is built).
    - `adjoint`: the gradient method ([`eqsnn.AutoDiff`][] or [`eqsnn.EventProp`][]).
    - `overflow`: the [`eqsnn.Overflow`][] policy for lost spikes.
    """

    solver: AbstractCrossingSolver = eqx.field(static=True)
    engine: AbstractEngine = eqx.field(static=True)
    adjoint: AbstractAdjoint = eqx.field(static=True)
    overflow: Overflow = eqx.field(static=True)

    def _init_settings(self, solver, engine, adjoint, overflow) -> None:
        """Check and set the simulation settings (after `_init_sizes`); the engine is set by
        `_resolve_engine` once the layer's configuration is known."""
        who = type(self).__name__
        self.params.check_size(self.size, who)
        if isinstance(self.params, AbstractNeuronModel) and solver is not None:
            raise ValueError(
                f"{who}: `solver` chooses how LIF crossings are found; the crossings of "
                f"{type(self.params).__name__} are found by eqsnn.neurons.first_crossing. "
                f"Leave `solver` out (got solver={solver!r})."
            )
        self.solver = default_solver(self.params) if solver is None else solver
        if not isinstance(self.solver, AbstractCrossingSolver):
            raise TypeError(f"{who}: `solver` must be a crossing solver, got {solver!r}.")
        check_solver_ratio(self.solver, self.params, who)
        if not isinstance(overflow, Overflow):
            raise TypeError(f"{who}: `overflow` must be an eqsnn.Overflow, got {overflow!r}.")
        self.overflow = overflow
        self.adjoint = AutoDiff() if adjoint is None else adjoint
        if not isinstance(self.adjoint, AbstractAdjoint):
            raise TypeError(
                f"{who}: `adjoint` must be eqsnn.AutoDiff() or eqsnn.EventProp(...), got "
                f"{adjoint!r}."
            )
        if engine is not None and not isinstance(engine, AbstractEngine):
            raise TypeError(
                f"{who}: `engine` must be an eqsnn engine (eqsnn.AutoEngine(), "
                f"eqsnn.WindowScan(...), eqsnn.IntervalScan(...), eqsnn.EventLoop()), got "
                f"{engine!r}."
            )

    def _resolve_engine(self, engine) -> None:
        """Set `engine` from the layer's configuration (after the connectivity is set)."""
        who = type(self).__name__
        config = self.config()
        self.engine = resolve_engine(engine, config, self.adjoint)
        self.engine.check(config, who)
        self.adjoint.check(self.engine, who)
        if isinstance(self.params, AbstractNeuronModel) and not isinstance(self.engine, WindowScan):
            raise ValueError(
                f"{who}: neurons of {type(self.params).__name__} are simulated by the window "
                "scan (eqsnn.WindowScan(...)): feed-forward layers and recurrent layers whose "
                "populations are connected feed-forward (Connectivity.LAYERED); "
                f"engine={self.engine!r} runs LIF neurons only."
            )
        features = self.features()
        if features and not isinstance(self.engine, WindowScan | EventLoop):
            raise ValueError(
                f"{who}: {' and '.join(features)} are simulated by the window scan "
                "(eqsnn.WindowScan(...)) and the event loop (eqsnn.EventLoop()), and are not "
                f"yet supported on engine={self.engine!r}."
            )
        if features and getattr(self.adjoint, "per_step", False):
            raise ValueError(
                f"{who}: {' and '.join(features)} have no per-step EventProp; use "
                "adjoint=eqsnn.EventProp() (per_step=False) or eqsnn.AutoDiff()."
            )

    def features(self) -> tuple[str, ...]:
        """What this layer uses beyond the seed's neuron: per-neuron or trainable
        parameters, a refractory period, delays (for messages and summaries)."""
        found = []
        if self.params.arrays:
            names = ", ".join(f"params.{name}" for name in self.params.arrays)
            found.append(f"array parameters ({names})")
        if self.params.refractory:
            found.append("a refractory period (params.t_ref)")
        if getattr(self.weights, "delays", None) is not None:
            found.append("synaptic delays")
        if getattr(self.weights, "recurrent_delays", None) is not None:
            found.append("recurrent delays")
        return tuple(found)

    @abc.abstractmethod
    def config(self) -> SimulationConfig:
        """The [`eqsnn.SimulationConfig`][] that the engine receives."""

    @abc.abstractmethod
    def simulation_weights(self):
        """The weights as the engine receives them."""

    def __call__(self, spikes: Spikes, *, key: PRNGKeyArray | None = None) -> Spikes:
        """Simulate the layer for one sample of input spikes (`key` is unused).

        **Returns:** the output [`eqsnn.Spikes`][], `n_spikes` slots sorted by time, with
        indices `0..size-1` and empty slots `idx == -1`, `time == inf`. Its `dropped` is
        the number of spikes this layer lost (a lower bound, 0 exactly when none was
        lost; see [Spike budgets](../concepts/budgets.md)) plus the input's `dropped`.
        """
        who = layer_name(self)
        # `eqx.tree_at` bypasses `__check_init__`; this static check costs nothing.
        self._check_weight_shapes(who)
        spikes = check_input(spikes, self.in_size, who)
        layer = check_layer_weights(self, who)
        run = _with_overflow if staged() else compiled
        return with_sources(run(_simulate, layer, spikes), self.size)


def _simulate(layer: AbstractSimulatedLayer, spikes: Spikes) -> Spikes:
    """Where the engine and the adjoint meet."""
    return layer.adjoint.simulate(layer.engine, layer.config(), layer.simulation_weights(), spikes)


def check_input(spikes: Spikes, in_size: int, who: str) -> Spikes:
    """Static and value checks of one sample of input spikes for a layer with `in_size` inputs.

    `who` names the layer in the messages (`layer_name`). A
    buffer whose `n_sources` differs from `in_size` raises a `ValueError` at once (also when
    traced). Concrete spikes are checked on the host (`ValueError` with the caller's
    traceback); traced ones with `eqx.error_if`. A buffer of zero slots is replaced by one
    empty slot."""
    if not isinstance(spikes, Spikes):
        raise TypeError(f"{who}: expected `spikes` to be an eqsnn.Spikes, got {type(spikes)}.")
    if spikes.time.ndim != 1:
        raise ValueError(
            f"{who}: `spikes` must be one sample with arrays of shape (n,), got time.shape="
            f"{spikes.time.shape}; use jax.vmap over the layer for a batch."
        )
    if spikes.n_sources is not None and spikes.n_sources != in_size:
        raise ValueError(
            f"{who}: got spikes from a source of {spikes.n_sources} neurons "
            f"(spikes.n_sources={spikes.n_sources}) but in_size={in_size}."
        )
    if spikes.time.shape[0] == 0:
        # An empty buffer is one empty slot: every engine needs at least one input slot.
        spikes = Spikes(
            time=jnp.zeros((1,), spikes.time.dtype),
            idx=jnp.full((1,), EMPTY_INDEX, spikes.idx.dtype),
            current=jnp.zeros((1,), spikes.current.dtype),
            dropped=spikes.dropped,
            n_sources=spikes.n_sources,
        )
    time_text = f"{who}: input spike times must be non-negative and not NaN"
    idx_text = f"{who}: input spike indices must lie in [-1, in_size={in_size})"
    if is_concrete(spikes.time, spikes.idx):
        time, idx = np.asarray(spikes.time), np.asarray(spikes.idx)
        bad_idx = (idx < EMPTY_INDEX) | (idx >= in_size)
        if bad_idx.any():
            k = int(np.argmax(bad_idx))
            raise ValueError(f"{idx_text}, got idx[{k}]={idx[k]}.")
        bad_time = (idx >= 0) & (np.isnan(time) | (time < 0))
        if bad_time.any():
            k = int(np.argmax(bad_time))
            raise ValueError(f"{time_text}, got time[{k}]={time[k]}.")
        return spikes
    used = spikes.idx >= 0
    time = eqx.error_if(
        spikes.time, jnp.any(used & (jnp.isnan(spikes.time) | (spikes.time < 0))), time_text + "."
    )
    idx = eqx.error_if(
        spikes.idx, jnp.any((spikes.idx < EMPTY_INDEX) | (spikes.idx >= in_size)), idx_text + "."
    )
    return eqx.tree_at(lambda s: (s.time, s.idx), spikes, (time, idx))


def staged() -> bool:
    """Whether the caller is being traced into a program (inside `jax.jit`, `lax.scan`,
    `jax.make_jaxpr`, ...), as opposed to running eagerly, transformed or not (an eager
    `jax.grad` or `jax.vmap`).

    Reads JAX's trace stack through its private `jax._src.core` (no public API says this);
    if that changes, the answer is `False`, which is always safe (see `compiled`)."""
    try:
        from jax._src import core
        from jax._src.interpreters.partial_eval import DynamicJaxprTrace

        stack = core.unsafe_get_trace_stack(core.unsafe_get_current_trace())
    except Exception:  # a JAX without these internals
        return False
    return any(isinstance(trace, DynamicJaxprTrace) for trace in stack)


def _with_overflow(simulate, layer, spikes: Spikes) -> Spikes:
    """`simulate(layer, spikes)` with the layer's `overflow` policy applied to the spikes it
    lost itself (`report_dropped`) and the input's `dropped` (the losses upstream) added, so
    that the last buffer of a network counts the losses of every layer."""
    out = report_dropped(simulate(layer, spikes), layer)
    return eqx.tree_at(lambda s: s.dropped, out, out.dropped + spikes.dropped)


compiled = eqx.filter_jit(_with_overflow)
"""`_with_overflow(simulate, layer, spikes)`, compiled once per layer configuration.

Layers run their simulation through this when called eagerly (a notebook, an eager
`jax.grad` or `jax.vmap`), so that such a call runs one compiled program instead of
dispatching the event loops op by op, which recompiles every `lax.scan` body at every call.
Inside a program being traced (`staged()`: a user's `jax.jit`, a scan body) they call
`_with_overflow` directly: the enclosing program compiles it anyway, and a nested `jit`
would make JAX re-trace its body through every transformation around it (`vmap`, `jvp`,
the transpose): about 30-45 % of the tracing time of a layer under
`jit(vmap(value_and_grad))`, with the same compiled program and results bit for bit. (One
staged context runs eagerly: `jax.checkpoint` outside `jax.jit` evaluates its body op by
op, so a layer inside it does too; put the `jax.jit` outside.) `simulate` must be a
module-level function (it is hashed as part of the cache key).
"""
