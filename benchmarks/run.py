"""eqsnn against its peers on the Yin-Yang network, in one process, interleaved.

```
python -m benchmarks.run [--short] [--hidden 50,100,...] [--multi-hidden 50,100,...]
    [--budget-scales 1,2,4] [--budget-hidden 100] [--runs N] [--time-budget S]
    [--only NAMES] [--write] [--json PATH]
```

Three sweeps on the identical workload (`benchmarks.peers.yinyang_workload`: batch 64,
5x5 duplicated inputs -> hidden -> 3, float32): one spike per neuron over `--hidden`;
multi-spike (`v_reset = 0`) over `--multi-hidden`; multi-spike at `--budget-hidden` with
every spike budget scaled by `--budget-scales` (cost against budget). At each point every
case is built, then measured:

- **compile**: tracing + lowering + XLA compilation of the forward and of the
  forward+gradient executables (`jax.jit(...).lower(...).compile()`, ahead of time);
- **fwd / fwd+grad**: median of `--runs` calls of the compiled executables after 2
  warm-up rounds, `jax.block_until_ready` on each call. The cases are timed
  *interleaved* (round-robin, one call per case per round), so load that drifts during the
  run affects every library alike and the ratios stay meaningful on a busy machine;
- **memory**: XLA's buffer assignment of each compiled executable
  (`compiled.memory_analysis()`: arguments + outputs + temporaries - aliased), the peak
  of live XLA buffers during one call. It is per executable, deterministic, works in one
  process and on every backend (the process RSS or the device allocator's peak counter
  cannot be attributed to one case when several share a process);
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
event-loop length (`max_event_steps`). `--short` (CI, GPU smoke run): one spike per neuron
at hidden 100 and 400 only, 10 runs. With `--write` the sections "Peers" and "Scaling" of
`benchmarks/RESULTS.md` are replaced after every point (other sections are kept).
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

from benchmarks import eqsnn_cases as ec
from benchmarks import floor, peers
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


def _hidden_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--short", action="store_true", help="one-spike hidden 100, 400 only; 10 runs"
    )
    parser.add_argument("--hidden", type=_hidden_list, help="one-spike sizes, e.g. 50,100")
    parser.add_argument("--multi-hidden", type=_hidden_list, help="multi-spike sizes ('' none)")
    parser.add_argument(
        "--budget-scales", type=_hidden_list, help="spike-budget sweep, e.g. 1,2,4 ('' none)"
    )
    parser.add_argument(
        "--budget-hidden", type=int, default=100, help="hidden size of the spike-budget sweep"
    )
    parser.add_argument("--runs", type=int, help="timed calls per case (default 20; short 10)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument(
        "--time-budget",
        type=float,
        help="seconds one case may take at one point, extrapolated (default 600; short 60)",
    )
    parser.add_argument("--only", help="comma-separated substrings of the case names")
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--json", type=Path, help="save the records and machine info (JSON)")
    parser.add_argument("--from-json", type=Path, help="only print (--write) a saved run's tables")
    args = parser.parse_args(argv)
    if args.hidden is None:
        args.hidden = SHORT_HIDDEN if args.short else DEFAULT_HIDDEN
    if args.multi_hidden is None:
        args.multi_hidden = SHORT_MULTI_HIDDEN if args.short else DEFAULT_MULTI_HIDDEN
    if args.budget_scales is None:
        args.budget_scales = SHORT_BUDGET_SCALES if args.short else DEFAULT_BUDGET_SCALES
    if args.runs is None:
        args.runs = 10 if args.short else 20
    if args.time_budget is None:
        args.time_budget = 60.0 if args.short else 600.0
    return args


def _info(args, command: str, started: str, load, version: str, records) -> str:
    """Machine, versions, command and date, then the method paragraph."""
    reference = reference_record(records)
    method = METHOD.format(
        batch=args.batch,
        runs=args.runs,
        warmup=N_WARMUP,
        reference=" or ".join(REFERENCE) if reference is None else reference["case"],
    )
    return machine_info(command, started, load, version) + "\n\n" + method


def _emit(args, info: str, records, final: bool) -> None:
    """Print (final only) and save the tables; `--write` merges them into RESULTS.md."""
    if not final:
        info += "\n\n**Partial results: the run was still in progress when this was written.**"
    sections = {PEERS_TITLE: peers_section(records, info), SCALING_TITLE: scaling_section(records)}
    if final:
        for title, body in sections.items():
            print(f"## {title}\n\n{body}\n")
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
    specs = SPECS
    if args.only:
        wanted = args.only.split(",")
        specs = tuple(s for s in SPECS if any(w in s.name for w in wanted))
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

    records = measure(
        specs,
        args.batch,
        args.hidden,
        regimes,
        args.runs,
        args.time_budget,
        args.budget_hidden,
        on_point=report,
    )
    report(records, final=True)
    return records


if __name__ == "__main__":
    main()
