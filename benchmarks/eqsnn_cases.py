"""eqsnn on the peers' Yin-Yang workload, as `PeerCase`s.

The builders here return the same `PeerCase` as `benchmarks.peers`, on the identical work:
the weights, input spike times and targets of `yinyang_workload`, the loss
`mse_first_spike_loss`, float32. The 5 features are 5 inputs, each delivering its spike
`DUPLICATION = 5` times (25 input events, tied weights `w_in` of shape `(5, hidden)`), as
jaxsnn's `Linear` and eventax's `(5, duplication)` spike arrays do.

eqsnn layers simulate one sample; the batch is a `jax.vmap`. A case is a layer kind
(`EqsnnLayer`: the layer class and its gradient method) and an engine (`Engine`): the
builders pass the engine as a value (`engine=eqsnn.WindowScan(max_spikes_per_neuron=...)`,
`eqsnn.IntervalScan(max_spikes_per_interval=...)` or `eqsnn.EventLoop()`) with the budgets
of `Budgets`, and `case_name` names the case (the names match the rows of
`benchmarks/RESULTS.md`). If eqsnn does not import, a builder raises `PeerUnavailable`, so
the driver reports it as skipped.
"""

import enum
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from benchmarks.peers import (
    DUPLICATION,
    N_CLASSES,
    N_FEATURES,
    T_MAX,
    TAU_MEM,
    TAU_SYN,
    V_RESET_SINGLE_SPIKE,
    V_TH,
    PeerCase,
    PeerUnavailable,
    mse_first_spike_loss,
    yinyang_workload,
)


class EqsnnLayer(enum.Enum):
    """The eqsnn layer a case uses (value: its name in the case names, the seed's class
    name for that layer and gradient method)."""

    LIF = "LIF"
    """Feed-forward `eqsnn.LIF` layers, gradients by autodiff (`eqsnn.AutoDiff()`)."""
    EVENTPROP = "EventPropLIF"
    """Feed-forward `eqsnn.LIF` layers with `adjoint=eqsnn.EventProp()`."""
    RECURRENT_EVENTPROP = "RecurrentEventPropLIF"
    """One `eqsnn.RecurrentLIF([hidden, 3], adjoint=eqsnn.EventProp())` (layered
    connectivity)."""


class Engine(enum.Enum):
    """The engine a case runs (value: the suffix of its case name, `[value]`; the names are
    those of the budget keywords that chose the engine before engines were values, kept so
    that the rows of `benchmarks/RESULTS.md` keep their names)."""

    DEFAULT = ""
    """The default engine of the layer with explicit budgets: `eqsnn.WindowScan` with
    `*_per_neuron` (one budget per population for a recurrent layer)."""
    INTERVAL_SCAN = "max_spikes_per_interval"
    """`eqsnn.IntervalScan` with `*_per_interval` (feed-forward layers)."""
    EVENT_LOOP = "n_spikes"
    """`eqsnn.EventLoop()`: a recurrent layer's global event loop, bounded by its `n_spikes`
    only."""


def case_name(kind: EqsnnLayer, engine: Engine = Engine.DEFAULT) -> str:
    """The name of a case, e.g. `eqsnn EventPropLIF [max_spikes_per_interval]`."""
    return f"eqsnn {kind.value}" + (f" [{engine.value}]" if engine.value else "")


class Budgets(NamedTuple):
    """Spike budgets of the hidden and the output population, per sample.

    `*_per_neuron` is the most spikes one neuron emits, `*_per_interval` the most one
    neuron emits between two consecutive inputs of its layer (the older budget semantics),
    `*_spikes` the most spikes of the whole population (the layer's `n_spikes`).
    """

    hidden_per_neuron: int
    output_per_neuron: int
    hidden_per_interval: int
    output_per_interval: int
    hidden_spikes: int
    output_spikes: int

    def engine(self, engine: Engine, population: int | None):
        """The eqsnn engine value of `engine` with the budgets of `population` (0: hidden,
        1: output, `None`: both, one per population of a recurrent layer)."""
        import eqsnn

        if engine is Engine.EVENT_LOOP:
            return eqsnn.EventLoop()
        if engine is Engine.INTERVAL_SCAN:
            if population is None:
                raise ValueError("the interval scan runs feed-forward layers only")
            return eqsnn.IntervalScan(max_spikes_per_interval=self[2 + population])
        per_neuron = self[:2] if population is None else self[population]
        return eqsnn.WindowScan(max_spikes_per_neuron=per_neuron)


def single_spike_budgets(hidden: int) -> Budgets:
    """One spike per neuron (`v_reset = -1000`): buffers of one slot per neuron."""
    return Budgets(1, 1, 1, 1, hidden, N_CLASSES)


def lif_parameters(multi_spike: bool):
    """The workload's neuron parameters; `multi_spike` sets `v_reset = 0`."""
    import eqsnn

    v_reset = 0.0 if multi_spike else V_RESET_SINGLE_SPIKE
    return eqsnn.LIFParameters(
        tau_syn=TAU_SYN, tau_mem=TAU_MEM, v_th=V_TH, v_leak=0.0, v_reset=v_reset
    )


def eqsnn_input_spikes(feature_times: np.ndarray):
    """Batched `eqsnn.Spikes`: every feature spike `DUPLICATION` times from its input."""
    import jax.numpy as jnp

    import eqsnn

    batch = feature_times.shape[0]
    times = np.repeat(feature_times, DUPLICATION, axis=1)
    idx = np.repeat(np.arange(N_FEATURES), DUPLICATION)[None].repeat(batch, 0)
    return eqsnn.Spikes(time=jnp.asarray(times), idx=jnp.asarray(idx, dtype=jnp.int32))


def _layer(kind: EqsnnLayer):
    """The layer class and the gradient method of `kind`."""
    try:
        import eqsnn
    except Exception as err:
        raise PeerUnavailable(f"import eqsnn failed: {err!r}") from err
    if kind is EqsnnLayer.RECURRENT_EVENTPROP:
        return eqsnn.RecurrentLIF, eqsnn.EventProp()
    return eqsnn.LIF, eqsnn.EventProp() if kind is EqsnnLayer.EVENTPROP else eqsnn.AutoDiff()


def _feedforward_model(layer, work, params, budgets: Budgets, key, engine: Engine):
    """Two feed-forward layers; `layer` is `(class, adjoint)`."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    cls, adjoint = layer
    k1, k2 = jax.random.split(key)
    hidden = work.w_in.shape[1]
    common = dict(t_max=T_MAX, params=params, adjoint=adjoint)
    hid, out = (budgets.engine(engine, population) for population in (0, 1))
    hidden_layer = cls(N_FEATURES, hidden, budgets.hidden_spikes, key=k1, engine=hid, **common)
    output_layer = cls(hidden, N_CLASSES, budgets.output_spikes, key=k2, engine=out, **common)
    hidden_layer = eqx.tree_at(lambda m: m.weights.input, hidden_layer, jnp.asarray(work.w_in))
    output_layer = eqx.tree_at(lambda m: m.weights.input, output_layer, jnp.asarray(work.w_out))
    return (hidden_layer, output_layer)


def _feedforward_spikes(model, spikes):
    hidden_layer, output_layer = model
    hidden_spikes = hidden_layer(spikes)
    return hidden_spikes, output_layer(hidden_spikes)


def _recurrent_model(layer, work, params, budgets: Budgets, key, engine: Engine):
    """One recurrent layer `[hidden, 3]`; `layer` is `(class, adjoint)`."""
    import equinox as eqx
    import jax.numpy as jnp

    cls, adjoint = layer
    hidden = work.w_in.shape[1]
    n = hidden + N_CLASSES
    layer = cls(
        N_FEATURES,
        [hidden, N_CLASSES],
        budgets.hidden_spikes + budgets.output_spikes,
        T_MAX,
        params,
        key=key,
        engine=budgets.engine(engine, None),
        adjoint=adjoint,
    )
    w_in = np.zeros((N_FEATURES, n), np.float32)
    w_in[:, :hidden] = work.w_in
    w_rec = np.zeros((n, n), np.float32)
    w_rec[:hidden, hidden:] = work.w_out
    return eqx.tree_at(
        lambda m: (m.weights.input, m.weights.recurrent),
        layer,
        (jnp.asarray(w_in), jnp.asarray(w_rec)),
    )


def _feedforward_weight_grads(value_and_grad):
    hidden_layer, output_layer = value_and_grad[1]
    return hidden_layer.weights.input, output_layer.weights.input


def _recurrent_weight_grads(value_and_grad):
    weights = value_and_grad[1].weights
    hidden = weights.recurrent.shape[0] - N_CLASSES
    return weights.input[:, :hidden], weights.recurrent[:hidden, hidden:]


def _recurrent_spikes(layer, spikes):
    out = layer(spikes)
    return layer.population_spikes(out, 0), layer.population_spikes(out, -1)


class SpikeStats(NamedTuple):
    """What one batch emitted: the budgets it needs, and the spikes lost to the budgets."""

    counts: Budgets
    """Maxima over the samples (a `Budgets` that would drop nothing)."""
    dropped: int
    """Spikes lost, summed over the batch and both populations (`Spikes.dropped`)."""


def _most_per_neuron(idx: np.ndarray, n: int) -> int:
    hits = idx[..., None] == np.arange(n)
    return int(hits.sum(axis=-2).max(initial=0))


def _most_per_interval(time, idx, in_time, in_valid, n: int) -> int:
    """Most spikes of one neuron between two consecutive inputs, over the samples."""
    most = 0
    for t, i, t_in, v_in in zip(time, idx, in_time, in_valid, strict=True):
        inputs = np.sort(t_in[v_in])
        interval = np.searchsorted(inputs, t[i >= 0], side="right")
        keys = interval * n + i[i >= 0]
        most = max(most, int(np.unique(keys, return_counts=True)[1].max(initial=0)))
    return most


def spike_counts(hid, out, in_time: np.ndarray, hidden: int) -> Budgets:
    """The `Budgets` a batch needs, from its hidden and output `Spikes` (batched)."""
    hid_t, hid_i = np.asarray(hid.time), np.asarray(hid.idx)
    out_t, out_i = np.asarray(out.time), np.asarray(out.idx)
    return Budgets(
        max(_most_per_neuron(hid_i, hidden), 1),
        max(_most_per_neuron(out_i, N_CLASSES), 1),
        max(_most_per_interval(hid_t, hid_i, in_time, np.isfinite(in_time), hidden), 1),
        max(_most_per_interval(out_t, out_i, hid_t, hid_i >= 0, N_CLASSES), 1),
        max(int((hid_i >= 0).sum(axis=-1).max()), 1),
        max(int((out_i >= 0).sum(axis=-1).max()), 1),
    )


def _spike_stats(simulate: Callable[..., Any], model, spikes, hidden: int) -> SpikeStats:
    import equinox as eqx
    import jax

    hid, out = eqx.filter_jit(jax.vmap(simulate, in_axes=(None, 0)))(model, spikes)
    dropped = int(np.sum(np.asarray(hid.dropped)) + np.sum(np.asarray(out.dropped)))
    if simulate is _recurrent_spikes:  # one buffer: population views share `dropped`
        dropped = int(np.sum(np.asarray(out.dropped)))
    return SpikeStats(spike_counts(hid, out, np.asarray(spikes.time), hidden), dropped)


def _build(kind: EqsnnLayer, batch, hidden, multi_spike: bool, budgets, seed, engine: Engine):
    import jax

    work = yinyang_workload(batch, hidden, seed)
    layer = _layer(kind)
    args = (layer, work, lif_parameters(multi_spike), budgets, jax.random.PRNGKey(seed), engine)
    if kind is EqsnnLayer.RECURRENT_EVENTPROP:
        return _recurrent_model(*args), _recurrent_spikes, work
    return _feedforward_model(*args), _feedforward_spikes, work


@functools.cache
def multi_spike_budgets(batch: int, hidden: int, seed: int = 0, tries: int = 4) -> Budgets:
    """Budgets that drop nothing with `v_reset = 0`: the counts of a probe simulation.

    The probe is eqsnn's recurrent LIF layer with layered connectivity (the same network,
    one global event loop bounded only by its buffer, `Engine.EVENT_LOOP`, autodiff), with a
    buffer of 16 spikes per neuron, doubled until nothing is dropped. Cached per argument set.
    """
    import jax

    import eqsnn

    layer = (eqsnn.RecurrentLIF, eqsnn.AutoDiff())
    work = yinyang_workload(batch, hidden, seed)
    spikes = eqsnn_input_spikes(work.feature_times)
    n_spikes = 16 * (hidden + N_CLASSES)
    for _ in range(tries):
        probe = Budgets(1, 1, 1, 1, n_spikes, 0)
        model = _recurrent_model(
            layer, work, lif_parameters(True), probe, jax.random.PRNGKey(seed), Engine.EVENT_LOOP
        )
        stats = _spike_stats(_recurrent_spikes, model, spikes, hidden)
        if stats.dropped == 0:
            return stats.counts
        n_spikes *= 2
    raise RuntimeError(f"a probe buffer of {n_spikes // 2} spikes still dropped spikes")


def eqsnn_yinyang(
    batch: int = 64,
    hidden: int = 100,
    kind: EqsnnLayer = EqsnnLayer.EVENTPROP,
    multi_spike: bool = False,
    budgets: Budgets | None = None,
    seed: int = 0,
    engine: Engine = Engine.DEFAULT,
) -> PeerCase:
    """eqsnn Yin-Yang case: `5 -> hidden -> 3`, the workload of `benchmarks.peers`.

    `budgets` defaults to one spike per neuron (single-spike regime) or to
    `multi_spike_budgets` (`multi_spike=True`, `v_reset = 0`). `engine` picks the engine
    (`Engine.DEFAULT`: the window scan; another one shows in the case name, `case_name`).
    `meta["spike_stats"]` is a thunk returning the `SpikeStats` of the case (to check
    `dropped == 0`); `meta["weight_grads"]` maps the output of `value_and_grad` to the
    gradients of the loss with respect to `(w_in, w_out)` of the workload.
    """

    if budgets is None:
        budgets = (
            multi_spike_budgets(batch, hidden, seed)
            if multi_spike
            else single_spike_budgets(hidden)
        )
    model, simulate, work = _build(kind, batch, hidden, multi_spike, budgets, seed, engine)
    meta = {
        "engine": engine.name.lower(),
        "multi_spike": multi_spike,
        "weight_grads": (
            _recurrent_weight_grads
            if kind is EqsnnLayer.RECURRENT_EVENTPROP
            else _feedforward_weight_grads
        ),
    }
    return _peer_case(case_name(kind, engine), model, simulate, work, meta)


def _peer_case(name: str, model, simulate, work, meta: dict) -> PeerCase:
    """The `PeerCase` of an eqsnn model on the workload `work`: forward (first output spike
    times of the batch, `simulate` `vmap`ped) and the MSE first-spike loss's value and
    gradient, both `eqx.filter_jit`; `meta` gains `spike_stats`."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    spikes = eqsnn_input_spikes(work.feature_times)
    targets = jnp.asarray(work.target_times)
    hidden = work.w_in.shape[1]

    def forward(model, spikes):
        _, out = jax.vmap(simulate, in_axes=(None, 0))(model, spikes)
        return out.first_spike_times(N_CLASSES)

    def loss(model, spikes, targets):
        return mse_first_spike_loss(forward(model, spikes), targets)

    return PeerCase(
        name=name,
        forward=eqx.filter_jit(forward),
        forward_args=(model, spikes),
        value_and_grad=eqx.filter_jit(eqx.filter_value_and_grad(loss)),
        grad_args=(model, spikes, targets),
        meta=meta | {"spike_stats": lambda: _spike_stats(simulate, model, spikes, hidden)},
    )


RECURRENT_CASE = "eqsnn RecurrentEventPropLIF [n_spikes, recurrent]"
"""The name of `eqsnn_recurrent_yinyang`'s case: a genuinely recurrent hidden population on
the event loop (`[n_spikes]`, as `case_name(EqsnnLayer.RECURRENT_EVENTPROP,
Engine.EVENT_LOOP)`)."""


def recurrent_connectivity(hidden: int):
    """The `eqsnn.ConnectivityMask` of the recurrent Yin-Yang network, layers `[hidden, 3]`:
    inputs -> hidden, hidden -> hidden (diagonal included) and hidden -> output; the
    output neurons reach no one."""
    import eqsnn

    n = hidden + N_CLASSES
    mask_in = np.zeros((N_FEATURES, n), bool)
    mask_in[:, :hidden] = True
    mask_rec = np.zeros((n, n), bool)
    mask_rec[:hidden, :] = True
    return eqsnn.ConnectivityMask(mask_in, mask_rec)


def _recurrent_yinyang_weight_grads(value_and_grad):
    """`(w_in, w_rec, w_out)` gradients, in the layout of the workload and of
    `benchmarks.peers.recurrent_weights`."""
    weights = value_and_grad[1].weights
    hidden = weights.recurrent.shape[0] - N_CLASSES
    rec = weights.recurrent
    return weights.input[:, :hidden], rec[:hidden, :hidden], rec[:hidden, hidden:]


def eqsnn_recurrent_yinyang(batch: int = 64, hidden: int = 100, seed: int = 0) -> PeerCase:
    """eqsnn's recurrent Yin-Yang case, the network of `peers.jaxsnn_yinyang(recurrent=True)`.

    One `eqsnn.RecurrentLIF(5, [hidden, 3], hidden + 3, T_MAX, params,
    connectivity=recurrent_connectivity(hidden), engine=eqsnn.EventLoop(),
    adjoint=eqsnn.EventProp())`, one spike per neuron (`v_reset = -1000`, so `hidden + 3`
    output slots hold every spike), with the workload's `w_in`, `w_out` and
    `peers.recurrent_weights(hidden, seed)` as the hidden -> hidden block. Named
    `RECURRENT_CASE`; `meta` as `eqsnn_yinyang`'s, `weight_grads` giving `(w_in, w_rec,
    w_out)`.
    """
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from benchmarks.peers import recurrent_weights

    cls, adjoint = _layer(EqsnnLayer.RECURRENT_EVENTPROP)  # PeerUnavailable without eqsnn
    import eqsnn

    work = yinyang_workload(batch, hidden, seed)
    n = hidden + N_CLASSES
    model = cls(
        N_FEATURES,
        [hidden, N_CLASSES],
        n,
        T_MAX,
        lif_parameters(False),
        key=jax.random.PRNGKey(seed),
        connectivity=recurrent_connectivity(hidden),
        engine=eqsnn.EventLoop(),
        adjoint=adjoint,
    )
    w_in = np.zeros((N_FEATURES, n), np.float32)
    w_in[:, :hidden] = work.w_in
    w_rec = np.zeros((n, n), np.float32)
    w_rec[:hidden, :hidden] = recurrent_weights(hidden, seed)
    w_rec[:hidden, hidden:] = work.w_out
    model = eqx.tree_at(
        lambda m: (m.weights.input, m.weights.recurrent),
        model,
        (jnp.asarray(w_in), jnp.asarray(w_rec)),
    )
    meta = {
        "engine": Engine.EVENT_LOOP.name.lower(),
        "multi_spike": False,
        "recurrent": True,
        "weight_grads": _recurrent_yinyang_weight_grads,
    }
    return _peer_case(RECURRENT_CASE, model, _recurrent_spikes, work, meta)
