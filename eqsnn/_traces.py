r"""Membrane voltage and synaptic current of a layer's neurons at given times.

The layer runs once to find its output spikes; then its input spikes and its own spikes
are replayed in time order with the closed-form flow between them
([`eqsnn.lif_exponential_flow`][]): an input spike of input $i$ adds `weights.input[i]`
to $I$, a spike of neuron $j$ resets $V_j$ to $v_\mathrm{reset}$ and, in a recurrent
layer, adds `weights.recurrent[j]` to $I$. The state at a time $t$ is the flow from the
last event before $t$, so the values are exact (up to rounding) and differentiable.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ._checks import is_concrete, layer_name
from ._flow import LIFState, check_lif, lif_exponential_flow
from ._layers.base import AbstractLayer
from ._layers.feedforward import AbstractFeedForwardLayer
from ._layers.recurrent import AbstractRecurrentLayer
from ._params import LIFParameters
from ._sort import stable_argsort
from ._spikes import Spikes


class _Events(eqx.Module):
    """The events of one sample in time order: inputs and the layer's own spikes."""

    time: Float[Array, " e"]  # +inf for the slots that hold no event (sorted last)
    jump: Float[Array, "e n"]  # added to the synaptic currents
    reset: Bool[Array, "e n"]  # neurons whose voltage is reset
    valid: Bool[Array, " e"]


def traces(layer: AbstractLayer, spikes: Spikes, times: Float[ArrayLike, " n_times"]) -> LIFState:
    r"""Membrane voltage $V(t)$ and synaptic current $I(t)$ of every neuron of a layer.

    The layer is run on `spikes` (one sample) to find its output spikes; then the input
    spikes and the layer's own spikes are replayed in time order, and the state at each of
    `times` is the closed-form flow ([`eqsnn.lif_exponential_flow`][]) from the last event
    before it. The values are exact up to rounding, differentiable (`jax.grad` through the
    weights, the input spike times and `times`; reverse mode only for a layer with
    [`eqsnn.EventProp`][]) and work under `jax.jit` and `jax.vmap` (a batch: `vmap` over
    `spikes`).

    **Left-continuous.** The state at a time $t$ is the state *just before* any event at
    $t$: at an output spike time $V = v_\mathrm{th}$ (the reset shows at any later time),
    and at an input spike time $I$ does not yet hold the input's weight. So
    `traces(layer, spikes, out.time)` reads the voltage at threshold and the current that
    caused each spike.

    As in the layer, events at or after `t_max` are ignored: after `t_max` the neurons
    relax freely (no threshold). The replay uses the spikes the layer reports; if it lost
    some (`dropped > 0`, see [Spike budgets](../concepts/budgets.md)), the trace of a neuron
    after its first lost spike is that of a neuron that did not spike. For a hardware layer
    ([`eqsnn.HardwareLIF`][], [`eqsnn.HardwareRecurrentLIF`][]) the trace is the model's
    state given the spikes the backend reported (what the replay of its gradient sees), not
    a voltage measured on the backend.

    For a hidden layer of a network, pass that layer's input: e.g. for
    `net = eqx.nn.Sequential([hidden, out])`, `traces(net.layers[1], hidden(spikes), times)`.

    **Arguments:**

    - `layer`: a feed-forward ([`eqsnn.LIF`][]) or recurrent ([`eqsnn.RecurrentLIF`][])
      layer of LIF neurons ([`eqsnn.LIFParameters`][]), any engine, adjoint and
      connectivity. A layer of another neuron model ([`eqsnn.ALIFParameters`][],
      [`eqsnn.IFParameters`][]) raises a `TypeError`.
    - `spikes`: one sample of input [`eqsnn.Spikes`][] (as the layer takes it).
    - `times`: the times in seconds at which to read the state, shape `(n_times,)`, in any
      order, `>= 0`.

    **Returns:** an [`eqsnn.LIFState`][] whose `v` (voltage) and `i` (current) have shape
    `(n_times, n_neurons)` (`n_neurons` is `out_size`, or `sum(layers)` in population order).

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.LIF(2, 3, n_spikes=15, t_max=0.02, key=jax.random.PRNGKey(0), mean=2.0)
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))
    state = eqsnn.traces(layer, spikes, jnp.linspace(0.0, 0.02, 201))
    state.v.shape  # (201, 3)
    ```
    """
    if not isinstance(layer, AbstractFeedForwardLayer | AbstractRecurrentLayer):
        raise TypeError(
            "traces: `layer` must be an eqsnn layer (eqsnn.LIF, eqsnn.RecurrentLIF or a "
            f"hardware layer), got {type(layer).__name__}."
        )
    who = f"traces({layer_name(layer)})"
    check_lif(
        layer.params,
        who,
        "traces replays the LIF's closed-form flow, for layers of LIF neurons only (the "
        "layer's spikes, `layer(spikes)`, are exact for every neuron model)",
    )
    if layer.params.refractory or getattr(layer.weights, "delays", None) is not None:
        raise ValueError(
            f"{who}: traces of layers with a refractory period or delays are not supported "
            "yet; eqsnn.reference.traces_diffrax(..., input_delays=...) computes them."
        )
    times = _check_times(times, who)
    out = layer(spikes)
    if isinstance(layer, AbstractRecurrentLayer):
        weights = layer.effective_weights()
        w_in, w_rec = weights.input, weights.recurrent
    else:
        w_in, w_rec = layer.weights.input, None
    return _traces(layer.params, layer.t_max, w_in, w_rec, spikes.time, spikes.idx, out, times)


def _check_times(times, who: str) -> Float[Array, " n_times"]:
    """`times` as a 1-d float array; negative or NaN times raise (`eqx.error_if` if traced)."""
    if np.ndim(times) != 1:
        raise ValueError(f"{who}: `times` must have shape (n_times,), got {np.shape(times)}.")
    times = jnp.asarray(times)
    if not jnp.issubdtype(times.dtype, jnp.floating):
        times = times.astype(jnp.result_type(float))
    text = f"{who}: `times` must be non-negative and not NaN (seconds)"
    if is_concrete(times):
        host = np.asarray(times)
        bad = ~(host >= 0)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"{text}, got times[{k}]={host[k]!r}.")
        return times
    return eqx.error_if(times, ~jnp.all(times >= 0), text + ".")


@eqx.filter_jit
def _traces(
    params: LIFParameters,
    t_max: float,
    w_in: Float[Array, "n_in n"],
    w_rec: Float[Array, "n n"] | None,
    in_time: Float[Array, " k"],
    in_idx: Int[Array, " k"],
    out: Spikes,
    times: Float[Array, " t"],
) -> LIFState:
    dtype = w_in.dtype
    events = _events(params, t_max, w_in, w_rec, in_time, in_idx, out)
    flow = lif_exponential_flow(params)
    n = w_in.shape[1]
    rest = LIFState(v=jnp.full((n,), params.v_leak, dtype), i=jnp.zeros((n,), dtype))
    safe_time = jnp.where(events.valid, events.time, 0.0)

    def step(carry, event):
        state, t_last = carry
        time, jump, reset, valid = event
        state = flow(state, jnp.where(valid, time - t_last, 0.0))
        state = LIFState(v=jnp.where(reset, params.v_reset, state.v), i=state.i + jump)
        t_last = jnp.where(valid, time, t_last)
        return (state, t_last), (state, t_last)

    start = (rest, jnp.zeros((), dtype))
    scanned = (safe_time, events.jump, events.reset, events.valid)
    _, (after, t_after) = jax.lax.scan(step, start, scanned)
    # after[k] is the state once the first k + 1 events happened; prepend the rest state.
    states = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), rest, after)
    t_event = jnp.concatenate([jnp.zeros((1,), dtype), t_after])
    times = times.astype(dtype)
    # The number of events strictly before each time: left-continuous states.
    k = jnp.searchsorted(events.time, times, side="left")
    state = jax.tree.map(lambda x: x[k], states)
    return flow(state, (times - t_event[k])[:, None])


def _events(params, t_max, w_in, w_rec, in_time, in_idx, out: Spikes) -> _Events:
    """The inputs before `t_max` and the output spikes, as jumps, sorted by time."""
    dtype = w_in.dtype
    n = w_in.shape[1]
    in_valid = (in_idx >= 0) & (in_time < t_max)
    in_jump = w_in[jnp.where(in_valid, in_idx, 0)]
    out_valid = out.idx >= 0
    neuron = jnp.where(out_valid, out.idx, 0)
    out_jump = jnp.zeros((out.n_slots, n), dtype) if w_rec is None else w_rec[neuron]
    out_reset = (neuron[:, None] == jnp.arange(n, dtype=neuron.dtype)) & out_valid[:, None]
    valid = jnp.concatenate([in_valid, out_valid])
    time = jnp.concatenate([in_time.astype(dtype), out.time.astype(dtype)])
    jump = jnp.where(valid[:, None], jnp.concatenate([in_jump, out_jump]), 0.0)
    reset = jnp.concatenate([jnp.zeros_like(in_jump, dtype=bool), out_reset])
    key = jnp.where(valid, time, jnp.inf)
    order = stable_argsort(jax.lax.stop_gradient(key))
    return _Events(time=key[order], jump=jump[order], reset=reset[order], valid=valid[order])
