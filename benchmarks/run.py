"""eqsnn against its peers on the Yin-Yang network, in one process, interleaved.

```
python -m benchmarks.run [--short] [--hidden 50,100,...] [--multi-hidden 50,100,...]
    [--budget-scales 1,2,4] [--budget-hidden 100] [--recurrent-hidden 50,100,...]
    [--runs N] [--time-budget S]
    [--only NAMES] [--memory-rss] [--write] [--json PATH] [--markdown PATH]
```

Three sweeps on the identical workload (`benchmarks.peers.yinyang_workload`: batch 64,
5x5 duplicated inputs -> hidden -> 3, float32): one spike per neuron over `--hidden`;
multi-spike (`v_reset = 0`) over `--multi-hidden`; multi-spike at `--budget-hidden` with
every spike budget scaled by `--budget-scales` (cost against budget). A fourth sweep,
`--recurrent-hidden`, runs another network, the cases `RECURRENT_SPECS`: the same one with a
genuinely recurrent hidden population (hidden -> hidden weights
`peers.recurrent_weights`, one spike per neuron), eqsnn's `RecurrentLIF` with that
`ConnectivityMask` on the event loop (`eqsnn_cases.RECURRENT_CASE`, the reference of its
checks and ratios) against jaxsnn's recurrent topology with EventProp (`jaxsnn EventProp
[recurrent]`, `peers.jaxsnn_yinyang(recurrent=True)`). At each point every case is built,
then measured:

- **compile**: tracing + lowering + XLA compilation of the forward and of the
  forward+gradient executables (`jax.jit(...).lower(...).compile()`, ahead of time);
- **fwd / fwd+grad**: median of `--runs` calls of the compiled executables after 2
  warm-up rounds, `jax.block_until_ready` on each call. The cases are timed
  *interleaved* (round-robin, one call per case per round), so load that drifts during the
  run affects every library alike and the ratios stay meaningful on a busy machine;
- **memory**: XLA's buffer assignment of each compiled executable
  (`compiled.memory_analysis()`: arguments + outputs + temporaries - aliased), the
  buffers one call allocates. It is per executable, deterministic, works in one process
  and on every backend. With `--memory-rss`, after the timing of a point, each case also
  runs once more in a fresh process (`benchmarks._memory`: build, compile and call its
  forward+gradient step) for its peak RSS above a baseline (jax imported, the inputs on
  the device), and the RSS during its calls alone; on a GPU also the device allocator's
  peak (the process RSS and that peak cannot be attributed to one case when several share
  a process);
- **correctness**: each case's output first-spike times against eqsnn `LIF` (max abs
  difference where both spike, and the number of (sample, neuron) pairs where only one
  spikes), its loss, its gradients with respect to both weight matrices against eqsnn
  `LIF`'s, and eqsnn's `dropped` spike count (must be 0).

Ratios are `case time / eqsnn reference time`, the reference being the case `eqsnn
EventPropLIF` (feed-forward `eqsnn.LIF` layers with `adjoint=eqsnn.EventProp()`), or `eqsnn
LIF` when that one was not measured. The eqsnn cases are named `eqsnn_cases.case_name`: the
seed's class name of the layer and gradient method, and in brackets an engine other than
the window scan (`[max_spikes_per_interval]`: the `eqsnn.IntervalScan`; `[n_spikes]`: the
`eqsnn.EventLoop`). A peer that is not installed is reported as skipped. A case whose
extrapolated cost (its compile time as measured at the previous point, plus all runs
extrapolated quadratically in the swept quantity) exceeds `--time-budget` seconds is
skipped as too slow from there on. Multi-spike budgets come from an exact probe
(`eqsnn_cases.multi_spike_budgets`) and are given to every library: eqsnn's per-layer
buffers and per-neuron budgets, jaxsnn's per-layer event counts (`n_steps`), eventax's
event-loop length (`max_event_steps`). `--short` (the prepared GPU run, meant to take under
5 minutes on one GPU; also runs on a CPU): the cases `SHORT_CASES` only, one spike per
neuron at hidden 100 and 400, 10 runs; it prints the JAX backend and devices first, and
refuses `--write` (its tables go to `--markdown` and `--json`, to be pasted into RESULTS.md
by hand). With `--write` the sections "Peers" and "Scaling" of `benchmarks/RESULTS.md` are
replaced after every point (other sections are kept). `--markdown PATH` saves the printed
tables, with the machine info, as Markdown.
"""

import argparse
import copy
import datetime
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import _memory, floor, peers
from benchmarks import eqsnn_cases as ec
from benchmarks._measure import N_WARMUP, Spec, log, measure
from benchmarks._report import (
    METHOD,
    PEERS_TITLE,
    REFERENCE,
    SCALING_TITLE,
    Regime,
    eqsnn_version,
    machine_info,
    merge_sections,
    peers_section,
    reference_record,
    scaling_section,
)
from benchmarks.peers import PeerCase

DEFAULT_HIDDEN = (50, 100, 200, 400, 800, 1600)
DEFAULT_MULTI_HIDDEN = (50, 100, 200)
SHORT_HIDDEN = (100, 400)
SHORT_MULTI_HIDDEN = ()
DEFAULT_BUDGET_SCALES = (1, 2, 4)
SHORT_BUDGET_SCALES = ()
DEFAULT_RECURRENT_HIDDEN = DEFAULT_HIDDEN
SHORT_RECURRENT_HIDDEN = ()
RESULTS = Path(__file__).with_name("RESULTS.md")


def _eqsnn(kind: ec.EqsnnLayer, engine: ec.Engine = ec.Engine.DEFAULT) -> Spec:
    def build(batch, hidden, regime, budgets):
        return ec.eqsnn_yinyang(batch, hidden, kind, regime.multi_spike, budgets, engine=engine)

    return Spec(ec.case_name(kind, engine), build)


def _jaxsnn_weight_grads(value_and_grad):
    grads = value_and_grad[1]
    return grads["syn1"], grads["syn2"]


def _eventax_weight_grads(value_and_grad):
    """eventax's one weight matrix: rows [neurons..., inputs...], columns neurons."""
    weights = value_and_grad[1].neuron_model.weights
    hidden = weights.shape[1] - peers.N_CLASSES
    return weights[weights.shape[1] :, :hidden], weights[:hidden, hidden:]


def _jaxsnn(method: peers.JaxsnnGradient) -> Spec:
    def build(batch, hidden, regime, budgets):
        steps = {}
        if regime.multi_spike:  # events per layer: its inputs and its own spikes
            n_in = peers.N_FEATURES * peers.DUPLICATION
            steps = {
                "n_steps_hidden": n_in + budgets.hidden_spikes,
                "n_steps_output": budgets.hidden_spikes + budgets.output_spikes,
            }
        case = peers.jaxsnn_yinyang(batch, hidden, method, regime.multi_spike, **steps)
        return case._replace(meta=case.meta | {"weight_grads": _jaxsnn_weight_grads})

    autodiff = method is peers.JaxsnnGradient.AUTODIFF
    return Spec("jaxsnn " + ("LIF" if autodiff else "EventProp"), build)


def _with_event_budget(case: PeerCase, steps: int) -> PeerCase:
    """`case` with its eventax model's `max_event_steps` set to `steps`.

    `peers.eventax_yinyang` sizes the budget for two spikes per neuron, too few for the
    multi-spike regime (eventax then raises "Reached max event steps"). The field is
    static and eventax's constructor is not a dataclass one, so it is set on a copy.
    """
    model = copy.copy(case.forward_args[0])
    object.__setattr__(model, "max_event_steps", steps)
    return case._replace(
        forward_args=(model, *case.forward_args[1:]),
        grad_args=(model, *case.grad_args[1:]),
        meta=case.meta | {"max_event_steps": steps},
    )


def _eventax() -> Spec:
    def build(batch, hidden, regime, budgets):
        case = peers.eventax_yinyang(batch, hidden, True, regime.multi_spike)
        if regime.multi_spike:  # one event loop: inputs, hidden and output spikes
            n_in = peers.N_FEATURES * peers.DUPLICATION
            case = _with_event_budget(case, n_in + budgets.hidden_spikes + budgets.output_spikes)
        return case._replace(meta=case.meta | {"weight_grads": _eventax_weight_grads})

    return Spec("eventax EventProp", build)


SPECS = (
    _eqsnn(ec.EqsnnLayer.LIF),
    _eqsnn(ec.EqsnnLayer.EVENTPROP),
    # The interval scan (eqsnn.IntervalScan: a scan over the input intervals).
    _eqsnn(ec.EqsnnLayer.EVENTPROP, ec.Engine.INTERVAL_SCAN),
    # The window scan per population, then the global event loop (eqsnn.EventLoop).
    _eqsnn(ec.EqsnnLayer.RECURRENT_EVENTPROP),
    _eqsnn(ec.EqsnnLayer.RECURRENT_EVENTPROP, ec.Engine.EVENT_LOOP),
    _jaxsnn(peers.JaxsnnGradient.AUTODIFF),
    _jaxsnn(peers.JaxsnnGradient.EVENTPROP),
    _eventax(),
    # The minimal arithmetic as plain vectorised JAX (one spike per neuron only).
    floor.spec(),
)


def _jaxsnn_recurrent_weight_grads(value_and_grad):
    """jaxsnn's `(w_in, w_rec, w_out)` gradients: its projections syn1, syn3, syn2."""
    grads = value_and_grad[1]
    return grads["syn1"], grads["syn3"], grads["syn2"]


def _recurrent_specs() -> tuple[Spec, Spec]:
    """eqsnn's and jaxsnn's EventProp on the recurrent network (one spike per neuron)."""

    def eqsnn_build(batch, hidden, regime, budgets):
        return ec.eqsnn_recurrent_yinyang(batch, hidden)

    def jaxsnn_build(batch, hidden, regime, budgets):
        case = peers.jaxsnn_yinyang(batch, hidden, peers.JaxsnnGradient.EVENTPROP, recurrent=True)
        return case._replace(meta=case.meta | {"weight_grads": _jaxsnn_recurrent_weight_grads})

    return (
        Spec(ec.RECURRENT_CASE, eqsnn_build),
        Spec("jaxsnn EventProp [recurrent]", jaxsnn_build),
    )


RECURRENT_SPECS = _recurrent_specs()
"""The cases of the `--recurrent-hidden` sweep (`Regime.RECURRENT`): the recurrent network,
eqsnn (the reference of the checks and ratios) and jaxsnn."""

SHORT_CASES = (
    ec.case_name(ec.EqsnnLayer.LIF),  # the reference of the spike and gradient checks
    ec.case_name(ec.EqsnnLayer.EVENTPROP),  # the reference of the ratios
    ec.case_name(ec.EqsnnLayer.RECURRENT_EVENTPROP, ec.Engine.EVENT_LOOP),
    "jaxsnn EventProp",
    floor.NAME,
)
"""The cases of `--short` (issue 20's headline: eqsnn's EventProp step against jaxsnn's
EventProp and the floor; the dense recurrent event loop; eqsnn `LIF`, the reference that
the spike times and gradients of the others are checked against)."""


def _hidden_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--short",
        action="store_true",
        help="the GPU preset: SHORT_CASES at one-spike hidden 100, 400 only; 10 runs",
    )
    parser.add_argument("--hidden", type=_hidden_list, help="one-spike sizes, e.g. 50,100")
    parser.add_argument("--multi-hidden", type=_hidden_list, help="multi-spike sizes ('' none)")
    parser.add_argument(
        "--budget-scales", type=_hidden_list, help="spike-budget sweep, e.g. 1,2,4 ('' none)"
    )
    parser.add_argument(
        "--budget-hidden", type=int, default=100, help="hidden size of the spike-budget sweep"
    )
    parser.add_argument(
        "--recurrent-hidden",
        type=_hidden_list,
        help="sizes of the recurrent-network sweep, RECURRENT_SPECS ('' none)",
    )
    parser.add_argument("--runs", type=int, help="timed calls per case (default 20; short 10)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--time-budget",
        type=float,
        help="seconds one case may take at one point, extrapolated (default 600; short 60)",
    )
    parser.add_argument("--only", help="comma-separated substrings of the case names")
    parser.add_argument(
        "--memory-rss",
        action="store_true",
        help="also each case's peak RSS in its own process (benchmarks._memory)",
    )
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--json", type=Path, help="save the records and machine info (JSON)")
    parser.add_argument("--markdown", type=Path, help="save the printed tables (Markdown)")
    parser.add_argument("--from-json", type=Path, help="only print (--write) a saved run's tables")
    args = parser.parse_args(argv)
    if args.short and args.write:
        parser.error("--short does not --write RESULTS.md; save it with --markdown, --json")
    if args.hidden is None:
        args.hidden = SHORT_HIDDEN if args.short else DEFAULT_HIDDEN
    if args.multi_hidden is None:
        args.multi_hidden = SHORT_MULTI_HIDDEN if args.short else DEFAULT_MULTI_HIDDEN
    if args.budget_scales is None:
        args.budget_scales = SHORT_BUDGET_SCALES if args.short else DEFAULT_BUDGET_SCALES
    if args.recurrent_hidden is None:
        args.recurrent_hidden = SHORT_RECURRENT_HIDDEN if args.short else DEFAULT_RECURRENT_HIDDEN
    if args.runs is None:
        args.runs = 10 if args.short else 20
    if args.time_budget is None:
        args.time_budget = 60.0 if args.short else 600.0
    return args


RSS_METHOD = (
    " Process memory (`--memory-rss`): each case once more in a fresh process that imports "
    "jax and puts the inputs on the device (the baseline), then builds the case, compiles its "
    "forward+gradient step and calls it {calls} times; RSS peak = the process's highest peak "
    "RSS of those phases minus the baseline's (library import, build, XLA compilation and "
    "calls, whichever was highest); during calls = the peak RSS during the calls minus the "
    "RSS before them; device peak (GPU) = the allocator's peak minus its baseline peak."
)


def _backend() -> str:
    """The JAX backend and its devices, e.g. `gpu (cuda:NVIDIA H200 x1)`."""
    import jax

    kinds = sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()})
    return f"{jax.default_backend()} ({', '.join(kinds)} x{len(jax.devices())})"


def select_specs(args: argparse.Namespace) -> tuple[Spec, ...]:
    """The cases to run: `--only`'s (substrings of the names), else `SHORT_CASES` with
    `--short`, else all of `SPECS`."""
    if args.only:
        wanted = args.only.split(",")
        return tuple(s for s in SPECS if any(w in s.name for w in wanted))
    if args.short:
        return tuple(s for s in SPECS if s.name in SHORT_CASES)
    return SPECS


def select_recurrent_specs(args: argparse.Namespace) -> tuple[Spec, ...]:
    """The cases of the recurrent sweep: `RECURRENT_SPECS`, those `--only` names if given."""
    if args.only:
        wanted = args.only.split(",")
        return tuple(s for s in RECURRENT_SPECS if any(w in s.name for w in wanted))
    return RECURRENT_SPECS


def _info(args, command: str, started: str, load, version: str, records) -> str:
    """Machine, versions, command and date, then the method paragraph."""
    reference = reference_record(records)
    method = METHOD.format(
        batch=args.batch,
        runs=args.runs,
        warmup=N_WARMUP,
        reference=" or ".join(REFERENCE) if reference is None else reference["case"],
    )
    if args.memory_rss:
        method += RSS_METHOD.format(calls=_memory.CALLS)
    return machine_info(command, started, load, version) + "\n\n" + method


def _emit(args, info: str, records, final: bool) -> None:
    """Print (final only) and save the tables (`--markdown`, after every point); `--write`
    merges them into RESULTS.md."""
    if not final:
        info += "\n\n**Partial results: the run was still in progress when this was written.**"
    sections = {PEERS_TITLE: peers_section(records, info), SCALING_TITLE: scaling_section(records)}
    text = "".join(f"## {title}\n\n{body}\n\n" for title, body in sections.items())
    if final:
        print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)
    if args.write:
        text = args.results.read_text() if args.results.exists() else ""
        args.results.write_text(merge_sections(text, sections))
        log(f"wrote {args.results}" + ("" if final else " (partial)"))


def _rerender(args) -> list[dict[str, Any]]:
    """`--from-json`: the tables of a saved run (its own machine info and command)."""
    saved = json.loads(args.from_json.read_text())
    if isinstance(saved, list):  # records only
        saved = {
            "info": f"(Re-rendered from `{args.from_json}`; no machine info saved.)",
            "records": saved,
        }
    _emit(args, saved["info"], saved["records"], final=True)
    return saved["records"]


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; print the tables; with `--write`, update RESULTS.md (after every
    point, so an interrupted run leaves its partial results, marked as such)."""
    args = _parse(argv)
    if args.from_json:
        return _rerender(args)
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load = os.getloadavg()
    version = eqsnn_version()
    specs = select_specs(args)
    recurrent_specs = select_recurrent_specs(args) if args.recurrent_hidden else ()
    names = ", ".join(s.name for s in specs + recurrent_specs)
    log(f"JAX backend {_backend()}; cases: {names}")
    regimes = {
        Regime.SINGLE: args.hidden,
        Regime.MULTI: args.multi_hidden,
        Regime.BUDGET: args.budget_scales,
    }

    def report(records, final=False):
        info = _info(args, command, started, load, version, records)
        if args.json:
            args.json.write_text(json.dumps({"info": info, "records": records}, default=str))
        _emit(args, info, records, final)

    records = []
    if specs:
        records = measure(
            specs,
            args.batch,
            args.hidden,
            regimes,
            args.runs,
            args.time_budget,
            args.budget_hidden,
            on_point=report,
            memory_rss=args.memory_rss,
        )
    if recurrent_specs:  # another network: its own cases, after the others
        first = records
        records = first + measure(
            recurrent_specs,
            args.batch,
            args.recurrent_hidden,
            {Regime.RECURRENT: args.recurrent_hidden},
            args.runs,
            args.time_budget,
            on_point=lambda recurrent: report(first + recurrent),
            memory_rss=args.memory_rss,
        )
    report(records, final=True)
    return records


if __name__ == "__main__":
    main()
