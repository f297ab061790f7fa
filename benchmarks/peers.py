"""Yin-Yang benchmark cases for the peer libraries jaxsnn and eventax.

Each builder returns a `PeerCase`: jitted callables plus their arguments, so a
driver can time compilation, the forward pass and forward+gradient with
`benchmarks._timing`. A peer that cannot be imported raises `PeerUnavailable`
with the reason, so the driver reports "skipped: reason".

The workload (one definition for every library, see `yinyang_workload`):
Yin-Yang points `(x, y)` in the unit square, features
`(x, y, 1 - x, 1 - y, bias=0)` encoded as spike times `feature * t_late`
(`t_late = 2 tau_syn`); every feature spike is delivered `duplication = 5`
times (25 input events, 5 input channels); 5 -> `hidden` -> 3 LIF with
`tau_syn = 5 ms`, `tau_mem = 10 ms`, `v_th = 1`, `v_reset = -1000` (one spike
per neuron), `t_max = 4 tau_syn`, float32; loss = batch mean of
`sum_k ((min(t_k, 2 tau_mem) - target_k) / tau_mem)^2` over the three output
first-spike times (jaxsnn's example `mse_loss`), targets `0.9 tau_syn` for the
correct class and `1.1 tau_syn` otherwise. Gradients are taken w.r.t. all
weights.

Run `python -m benchmarks.peers` (from the repo root, in /work/peers-venv) for
a table of all peers.
"""

import argparse
import enum
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

TAU_SYN = 5e-3  # s
TAU_MEM = 1e-2  # s
V_TH = 1.0
V_RESET_SINGLE_SPIKE = -1000.0
T_MAX = 4.0 * TAU_SYN  # s
T_LATE = 2.0 * TAU_SYN  # s, latest input spike time
T_CORRECT = 0.9 * TAU_SYN  # s
T_WRONG = 1.1 * TAU_SYN  # s
N_FEATURES = 5
N_CLASSES = 3
DUPLICATION = 5
# jaxsnn's yinyang_layered_event_prop example: N(3/5, 1.6/5) input weights
# (each input spike arrives 5 times), N(0.5, 0.8) output weights.
W_IN_MEAN, W_IN_STD = 3.0 / DUPLICATION, 1.6 / DUPLICATION
W_OUT_MEAN, W_OUT_STD = 0.5, 0.8
# jaxsnn's yinyang_recurrent_event_prop example: N(0, 0.1) hidden -> hidden weights (syn3).
W_REC_MEAN, W_REC_STD = 0.0, 0.1


class PeerUnavailable(Exception):
    """The peer library cannot be imported or cannot run this case."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class JaxsnnGradient(enum.Enum):
    """How jaxsnn computes gradients (its `Topology(backprop_method=...)`)."""

    AUTODIFF = "analytical"
    """`jax.grad` through the event scan and the analytical spike time."""
    EVENTPROP = "eventprop"
    """Custom VJP running the EventProp adjoint scan backwards."""


class PeerCase(NamedTuple):
    """Everything a driver needs to time one peer on one workload."""

    name: str
    forward: Callable[..., Any]
    """Jitted; `forward(*forward_args)` -> first output spike times (batch, 3)."""
    forward_args: tuple[Any, ...]
    value_and_grad: Callable[..., Any]
    """Jitted; `value_and_grad(*grad_args)` -> (loss, grads)."""
    grad_args: tuple[Any, ...]
    meta: dict[str, Any]


class Workload(NamedTuple):
    """Library-neutral Yin-Yang batch (numpy, float32)."""

    feature_times: np.ndarray  # (batch, 5) seconds, one spike per feature
    target_times: np.ndarray  # (batch, 3) seconds
    w_in: np.ndarray  # (5, hidden), one weight per feature (duplicates tied)
    w_out: np.ndarray  # (hidden, 3)


def yinyang_workload(batch: int, hidden: int, seed: int = 0) -> Workload:
    """Random Yin-Yang-shaped batch and initial weights, identical for all
    libraries. Class labels are random: timing does not depend on them."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0.0, 1.0, size=(batch, 2))
    features = np.concatenate([xy, 1.0 - xy, np.zeros((batch, 1))], axis=1)
    labels = rng.integers(0, N_CLASSES, size=batch)
    targets = np.where(np.eye(N_CLASSES)[labels] > 0, T_CORRECT, T_WRONG)
    w_in = rng.normal(W_IN_MEAN, W_IN_STD, size=(N_FEATURES, hidden))
    w_out = rng.normal(W_OUT_MEAN, W_OUT_STD, size=(hidden, N_CLASSES))
    f32 = np.float32
    return Workload(
        (features * T_LATE).astype(f32),
        targets.astype(f32),
        w_in.astype(f32),
        w_out.astype(f32),
    )


def recurrent_weights(hidden: int, seed: int = 0) -> np.ndarray:
    """Hidden -> hidden weights of the recurrent Yin-Yang network, `(hidden, hidden)`
    float32: `w_rec[j, k]` is added to the synaptic current of hidden neuron `k` when hidden
    neuron `j` spikes (diagonal included, as jaxsnn's recurrent example).

    Drawn from `N(W_REC_MEAN, W_REC_STD^2)` = `N(0, 0.1^2)` (the `syn3` of jaxsnn's
    `yinyang_recurrent_event_prop` example) with a generator of its own, seeded by
    `(seed, 1)`: deterministic, and `yinyang_workload(batch, hidden, seed)` is unchanged.
    """
    rng = np.random.default_rng([seed, 1])
    return rng.normal(W_REC_MEAN, W_REC_STD, size=(hidden, hidden)).astype(np.float32)


def mse_first_spike_loss(t_first, target):
    """Batch mean of jaxsnn's example `mse_loss` (no-spike times clip to
    `2 tau_mem`)."""
    import jax.numpy as jnp

    clipped = jnp.minimum(t_first, 2.0 * TAU_MEM)
    return jnp.mean(jnp.sum(jnp.square((clipped - target) / TAU_MEM), axis=-1))


def _import_jaxsnn():
    try:
        from jaxsnn.event import modules, topology, types
    except Exception as err:  # ImportError, or a broken dependency
        raise PeerUnavailable(f"import jaxsnn failed: {err!r}") from err
    if not hasattr(modules, "Source") or not hasattr(topology, "Topology"):
        raise PeerUnavailable(
            "jaxsnn lacks the Topology API (needs jaxsnn>=0.3); the 0.2 "
            "EventPropLIF/serial API is not wired up here"
        )
    return modules, topology, types


def jaxsnn_input_spikes(feature_times: np.ndarray, duplication: int):
    """jaxsnn `Spike` batch: each feature time repeated `duplication` times,
    all from the same source index, sorted by time (as jaxsnn's
    `spatio_temporal_encode(duplicate_neurons=False)` produces)."""
    import jax.numpy as jnp

    _, _, types = _import_jaxsnn()
    batch, n_in = feature_times.shape
    times = np.repeat(feature_times, duplication, axis=1)
    idx = np.repeat(np.arange(n_in), duplication)[None].repeat(batch, 0)
    order = np.argsort(times, axis=1, kind="stable")
    times = np.take_along_axis(times, order, 1)
    idx = np.take_along_axis(idx, order, 1)
    return types.Spike(
        time=jnp.asarray(times),
        idx=jnp.asarray(idx),
        current=jnp.zeros(times.shape, times.dtype),
        layer_idx=jnp.zeros(times.shape, dtype=int),
        internal=jnp.ones(times.shape, dtype=bool),
    )


def jaxsnn_first_spikes(out_spikes, n_out: int):
    """(batch, n_out) first spike time per output neuron, `inf` if none."""
    import jax.numpy as jnp

    valid = out_spikes.internal[..., None]
    hit = valid & (out_spikes.idx[..., None] == jnp.arange(n_out))
    return jnp.min(jnp.where(hit, out_spikes.time[..., None], jnp.inf), axis=-2)


def jaxsnn_yinyang(
    batch: int = 64,
    hidden: int = 100,
    method: JaxsnnGradient | str = JaxsnnGradient.EVENTPROP,
    multi_spike: bool = False,
    n_steps_hidden: int | None = None,
    n_steps_output: int | None = None,
    seed: int = 0,
    recurrent: bool = False,
) -> PeerCase:
    """jaxsnn (>=0.3 Topology API) Yin-Yang case.

    jaxsnn's `n_steps` counts *events* a layer processes (input spikes and its
    own spikes). Defaults follow its layered example: hidden
    `25 + hidden`, output `hidden + 3` (exact for one spike per neuron);
    `multi_spike=True` sets `v_reset = 0` and doubles the budgets (spikes
    beyond the budget are silently dropped by jaxsnn).

    `recurrent=True` adds the hidden -> hidden synapse of jaxsnn's
    `yinyang_recurrent_event_prop` example (`lif1 -> syn3 -> lif1`, weights
    `recurrent_weights(hidden, seed)`) and names the case `... [recurrent]`. A
    hidden spike then costs the hidden layer two events: its emission, and its
    delivery back to the layer through `syn3` (jaxsnn reads it from the layer's
    own event record like any input), so the default hidden budget is
    `25 + 2 hidden` (exact for one spike per neuron). `meta["events"]` is a
    thunk returning jaxsnn's event records (`{"lif1": Spike, "lif2": Spike}`,
    batched), to check that no budget ran full.
    """
    import jax

    modules, topology, _ = _import_jaxsnn()
    method = JaxsnnGradient(method)
    n_in_events = N_FEATURES * DUPLICATION
    factor = 2 if multi_spike else 1
    per_hidden_spike = 2 if recurrent else 1
    n_hid = n_steps_hidden or n_in_events + per_hidden_spike * factor * hidden
    n_out = n_steps_output or factor * hidden + N_CLASSES
    params = modules.LIFParameters(
        v_reset=0.0 if multi_spike else V_RESET_SINGLE_SPIKE,
        v_th=V_TH,
        tau_syn=TAU_SYN,
        tau_mem=TAU_MEM,
    )
    work = yinyang_workload(batch, hidden, seed)
    builder = topology.Topology(t_max=T_MAX, backprop_method=method.value)
    nodes = {
        "inp": modules.Source(N_FEATURES),
        "syn1": modules.Linear(pre_weights=work.w_in),
        "lif1": modules.LIF(hidden, n_hid, params),
        "syn2": modules.Linear(pre_weights=work.w_out),
        "lif2": modules.LIF(N_CLASSES, n_out, params),
    }
    edges = [("inp", "syn1"), ("syn1", "lif1"), ("lif1", "syn2"), ("syn2", "lif2")]
    if recurrent:
        nodes["syn3"] = modules.Linear(pre_weights=recurrent_weights(hidden, seed))
        edges += [("lif1", "syn3"), ("syn3", "lif1")]
    builder.add(nodes)
    builder.connect(edges)
    init_fn, apply_fn = builder.done()
    weights = init_fn(jax.random.PRNGKey(seed))
    inputs = {"inp": jaxsnn_input_spikes(work.feature_times, DUPLICATION)}
    targets = jax.numpy.asarray(work.target_times)

    def forward(weights, inputs):
        return jaxsnn_first_spikes(apply_fn(inputs, weights)["lif2"], N_CLASSES)

    def loss(weights, inputs, targets):
        return mse_first_spike_loss(forward(weights, inputs), targets)

    name = f"jaxsnn {'LIF' if method is JaxsnnGradient.AUTODIFF else 'EventProp'}"
    return PeerCase(
        name=name + (" [recurrent]" if recurrent else ""),
        forward=jax.jit(forward),
        forward_args=(weights, inputs),
        value_and_grad=jax.jit(jax.value_and_grad(loss)),
        grad_args=(weights, inputs, targets),
        meta={
            "n_steps_hidden": n_hid,
            "n_steps_output": n_out,
            "method": method.value,
            "multi_spike": multi_spike,
            "recurrent": recurrent,
            "events": lambda: jax.jit(apply_fn)(inputs, weights),
        },
    )


def eventax_yinyang(
    batch: int = 64,
    hidden: int = 100,
    eventprop: bool = True,
    multi_spike: bool = False,
    solver: Any = None,
    solver_stepsize: float = TAU_SYN / 50,
    seed: int = 0,
) -> PeerCase:
    """eventax `FFEvNN([hidden, 3])` of `LIF` neurons, Yin-Yang case.

    eventax integrates the ODE with Diffrax (default `Euler` with fixed
    `solver_stepsize`, events located by Newton root finding); inputs are
    `(5, duplication)` spike-time arrays, i.e. the same 25 input events with
    5 tied input rows. `eventprop=True` uses `eventax.EventPropAdjoint`,
    otherwise Diffrax's `RecursiveCheckpointAdjoint` (autodiff through the
    solver). `v_reset = -1000`, `reset_grad_preserve=False` for one spike
    per neuron.
    """
    try:
        import equinox as eqx
        import jax
        import jax.numpy as jnp
        from eventax.adjoint import EventPropAdjoint
        from eventax.evnn import FFEvNN
        from eventax.neuron_models import LIF
    except Exception as err:
        raise PeerUnavailable(f"import eventax failed: {err!r}") from err
    work = yinyang_workload(batch, hidden, seed)
    n_neurons = hidden + N_CLASSES
    # eventax weights: rows = [neurons..., inputs...], columns = neurons.
    w = np.zeros((n_neurons + N_FEATURES, n_neurons), np.float32)
    w[:hidden, hidden:] = work.w_out
    w[n_neurons:, :hidden] = work.w_in
    kwargs = {} if solver is None else {"solver": solver}
    model = FFEvNN(
        layers=[hidden, N_CLASSES],
        in_size=N_FEATURES,
        neuron_model=LIF,
        max_solver_time=T_MAX,
        key=jax.random.PRNGKey(seed),
        solver_stepsize=solver_stepsize,
        max_event_steps=N_FEATURES * DUPLICATION + n_neurons * (2 if multi_spike else 1) + 8,
        adjoint=EventPropAdjoint() if eventprop else None,
        init_weights=jnp.asarray(w),
        init_bias=0.0,
        thresh=V_TH,
        tsyn=TAU_SYN,
        tmem=TAU_MEM,
        vreset=0.0 if multi_spike else V_RESET_SINGLE_SPIKE,
        reset_grad_preserve=False,
        dtype=jnp.float32,
        **kwargs,
    )
    in_times = jnp.asarray(np.repeat(work.feature_times[:, :, None], DUPLICATION, axis=2))
    targets = jnp.asarray(work.target_times)

    def forward(model, in_times):
        return jax.vmap(model.ttfs)(in_times)

    def loss(model, in_times, targets):
        return mse_first_spike_loss(forward(model, in_times), targets)

    return PeerCase(
        name=f"eventax {'EventProp' if eventprop else 'autodiff'}",
        forward=eqx.filter_jit(forward),
        forward_args=(model, in_times),
        value_and_grad=eqx.filter_jit(eqx.filter_value_and_grad(loss)),
        grad_args=(model, in_times, targets),
        meta={
            "solver": type(model.solver).__name__,
            "solver_stepsize": solver_stepsize,
            "max_event_steps": model.max_event_steps,
            "multi_spike": multi_spike,
        },
    )


def _cases(batch: int, hidden: int) -> list[tuple[str, Callable[[], PeerCase]]]:
    return [
        ("jaxsnn LIF", lambda: jaxsnn_yinyang(batch, hidden, JaxsnnGradient.AUTODIFF)),
        ("jaxsnn EventProp", lambda: jaxsnn_yinyang(batch, hidden, JaxsnnGradient.EVENTPROP)),
        ("eventax EventProp", lambda: eventax_yinyang(batch, hidden, eventprop=True)),
    ]


def run_case(build: Callable[[], PeerCase], n_runs: int) -> dict[str, Any]:
    """Build and time one case; a `PeerUnavailable` becomes a skip record."""
    from benchmarks._timing import time_callable

    try:
        case = build()
    except PeerUnavailable as err:
        return {"skipped": err.reason}
    fwd = time_callable(case.forward, *case.forward_args, n_runs=n_runs)
    vag = time_callable(case.value_and_grad, *case.grad_args, n_runs=n_runs)
    t_first = np.asarray(case.forward(*case.forward_args))
    return {
        "compile_fwd_s": fwd.first_call_s,
        "fwd_s": fwd.median_s,
        "compile_grad_s": vag.first_call_s,
        "fwd_grad_s": vag.median_s,
        "loss": float(case.value_and_grad(*case.grad_args)[0]),
        "frac_outputs_spiking": float(np.mean(np.isfinite(t_first) & (t_first < T_MAX))),
        **case.meta,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, nargs="+", default=[100])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", default=None, help="substring of case name")
    args = parser.parse_args()
    import jax

    for hidden in args.hidden:
        for name, build in _cases(args.batch, hidden):
            if args.only and args.only not in name:
                continue
            record = {
                "peer": name,
                "batch": args.batch,
                "hidden": hidden,
                "backend": jax.default_backend(),
                **run_case(build, args.runs),
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
