"""The feed-forward LIF layer."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._checks import check_layer_weights, layer_name
from ._events import Overflow, check_input, compiled
from ._feedforward import simulate_feedforward
from ._feedforward_parallel import simulate_feedforward_parallel
from ._params import LIFParameters
from ._spikes import Spikes, with_sources
from ._weights import InputWeights, check_size, check_t_max, normal_weights, spike_budget
from .solvers import AbstractCrossingSolver, default_solver


class LIF(eqx.Module):
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
    - `max_spikes_per_neuron`: the most spikes one neuron emits (default:
      `ceil(n_spikes / out_size)`, the output buffer shared evenly; 1 in the one-spike
      regime). The layer uses the parallel engine: each neuron scans the input intervals
      on its own, solving several at once, in work linear in inputs and spikes. A neuron
      that could spike again after its budget adds one to `dropped`; the spikes it did
      emit are exact. The default can lose spikes while the buffer has room (a budget of
      `n_spikes` never does, at a cost); the warning of `overflow` says so. See
      [Spike budgets](../concepts/budgets.md).
    - `max_spikes_per_interval`: if set, use the sequential engine instead (a scan over the
      input intervals, all neurons together), with at most this many spikes per neuron
      between two consecutive inputs. Cannot be combined with `max_spikes_per_neuron`.
      A crossing beyond the budget is lost but counted, and the neuron is reset at it.
    - `overflow`: an [`eqsnn.Overflow`][]: warn about lost spikes (default), count them
      silently, or raise.

    **Returns (from `__call__`):** the output [`eqsnn.Spikes`][], `n_spikes` slots, sorted by
    time, indices `0..out_size-1`, empty slots `idx == -1`, `time == inf`. Its `dropped` is
    the number of spikes this layer lost (a lower bound, 0 exactly when none was lost; see
    [Spike budgets](../concepts/budgets.md)) plus the input's `dropped`.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.LIF(2, 3, n_spikes=6, t_max=0.05, key=jax.random.PRNGKey(0), mean=2.0)
    out = layer(eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1])))
    ```
    """

    weights: InputWeights
    in_size: int = eqx.field(static=True)
    out_size: int = eqx.field(static=True)
    n_spikes: int = eqx.field(static=True)
    t_max: float = eqx.field(static=True)
    params: LIFParameters
    solver: AbstractCrossingSolver = eqx.field(static=True)
    max_spikes_per_neuron: int | None = eqx.field(static=True)
    max_spikes_per_interval: int | None = eqx.field(static=True)
    overflow: Overflow = eqx.field(static=True)

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
        max_spikes_per_neuron: int | None = None,
        max_spikes_per_interval: int | None = None,
        overflow: Overflow = Overflow.WARN,
    ):
        who = type(self).__name__
        self.in_size = check_size("in_size", in_size, who)
        self.out_size = check_size("out_size", out_size, who)
        self.n_spikes = check_size("n_spikes", n_spikes, who)
        self.t_max = check_t_max(t_max, who)
        self.params = LIFParameters() if params is None else params
        if not isinstance(self.params, LIFParameters):
            raise TypeError(f"{who}: `params` must be an eqsnn.LIFParameters, got {params!r}.")
        self.solver = default_solver(self.params) if solver is None else solver
        if not isinstance(self.solver, AbstractCrossingSolver):
            raise TypeError(f"{who}: `solver` must be a crossing solver, got {solver!r}.")
        self.max_spikes_per_neuron, self.max_spikes_per_interval = spike_budget(
            max_spikes_per_neuron, max_spikes_per_interval, self.n_spikes, self.out_size, who
        )
        if not isinstance(overflow, Overflow):
            raise TypeError(f"{who}: `overflow` must be an eqsnn.Overflow, got {overflow!r}.")
        self.overflow = overflow
        w = normal_weights(key, self.in_size, self.out_size, mean, std, duplication, who)
        self.weights = InputWeights(input=w)

    def __check_init__(self):
        shape = jnp.shape(self.weights.input)
        if shape != (self.in_size, self.out_size):
            raise ValueError(
                f"{type(self).__name__}: `weights.input` must have shape "
                f"(in_size, out_size)=({self.in_size}, {self.out_size}), got {shape}."
            )

    def __call__(self, spikes: Spikes, *, key: PRNGKeyArray | None = None) -> Spikes:
        """Simulate the layer for one sample of input spikes (`key` is unused)."""
        who = layer_name(self)
        shape = jnp.shape(self.weights.input)
        if shape != (self.in_size, self.out_size):
            # `eqx.tree_at` bypasses `__check_init__`; this static check costs nothing.
            raise ValueError(
                f"{who}: `weights.input` must have shape (in_size, out_size)="
                f"({self.in_size}, {self.out_size}), got {shape}."
            )
        spikes = check_input(spikes, self.in_size, who)
        layer = check_layer_weights(self, who)
        return with_sources(compiled(simulate_layer, layer, spikes), self.out_size)


def simulate_layer(layer: LIF, spikes: Spikes) -> Spikes:
    """Simulate `layer` with the engine that its budget selects (see `spike_budget`)."""
    if layer.max_spikes_per_interval is None:
        engine, budget = simulate_feedforward_parallel, layer.max_spikes_per_neuron
    else:
        engine, budget = simulate_feedforward, layer.max_spikes_per_interval
    return engine(
        layer.weights.input,
        spikes,
        layer.params,
        layer.solver,
        layer.n_spikes,
        layer.t_max,
        budget,
        layer.overflow,
        type(layer).__name__,
    )
