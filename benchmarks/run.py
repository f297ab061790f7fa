"""eqsnn against its peers on the Yin-Yang network, in one process, interleaved.

`python -m benchmarks.run [--short] [--hidden 50,100,...] [--runs N] [--write]`

For each regime (one spike per neuron; multi-spike with `v_reset = 0`) and hidden size, it
builds every case on the identical workload (`benchmarks.peers.yinyang_workload`: batch 64,
5x5 duplicated inputs -> hidden -> 3, float32), then measures:

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
  spikes), and its loss value; eqsnn's `dropped` spike count (must be 0).

Ratios are `case time / eqsnn reference time`, the reference being `eqsnn EventPropLIF`
(or `eqsnn LIF` when EventPropLIF does not exist). A peer that is not installed is reported
as skipped. A case whose extrapolated cost (compile + all runs, quadratic in hidden size
from the previous size) exceeds `--budget` seconds is skipped as too slow at that size and
above. Multi-spike budgets come from an exact probe (`eqsnn_cases.multi_spike_budgets`) and
are given to every library: eqsnn's per-layer buffers and per-neuron budgets, jaxsnn's
per-layer event counts (`n_steps`), eventax's event-loop length (`max_event_steps`).
"""

import argparse
import copy
import datetime
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmarks import eqsnn_cases as ec
from benchmarks import peers
from benchmarks._report import (
    METHOD,
    PEERS_TITLE,
    REFERENCE,
    SCALING_TITLE,
    Regime,
    machine_info,
    merge_sections,
    peers_section,
    reference_record,
    scaling_section,
)
from benchmarks.peers import PeerCase, PeerUnavailable

DEFAULT_HIDDEN = (50, 100, 200, 400, 800, 1600)
DEFAULT_MULTI_HIDDEN = (50, 100, 200)
SHORT_HIDDEN = (100, 400)
SHORT_MULTI_HIDDEN = ()
DEFAULT_BUDGET_SCALES = (1, 2, 4)
SHORT_BUDGET_SCALES = ()
RESULTS = Path(__file__).with_name("RESULTS.md")
N_WARMUP = 2


class Spec(NamedTuple):
    """One benchmarked implementation: `build(batch, hidden, regime, budgets)`."""

    name: str
    build: Callable[[int, int, Regime, ec.Budgets | None], PeerCase]


def _eqsnn(kind: ec.EqsnnLayer, keyword: str | None = None) -> Spec:
    def build(batch, hidden, regime, budgets):
        return ec.eqsnn_yinyang(
            batch, hidden, kind, regime.multi_spike, budgets, budget_keyword=keyword
        )

    return Spec(f"eqsnn {kind.value}" + ("" if keyword is None else f" [{keyword}]"), build)


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
    # The sequential engine (scan over input intervals) while the layers still offer it.
    _eqsnn(ec.EqsnnLayer.EVENTPROP, "max_spikes_per_interval"),
    _eqsnn(ec.EqsnnLayer.RECURRENT_EVENTPROP),
    _jaxsnn(peers.JaxsnnGradient.AUTODIFF),
    _jaxsnn(peers.JaxsnnGradient.EVENTPROP),
    _eventax(),
)


class Compiled(NamedTuple):
    """A case compiled ahead of time: `forward()` and `value_and_grad()` take no args."""

    forward: Callable[[], Any]
    value_and_grad: Callable[[], Any]


def _compile(fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Callable[[], Any], dict]:
    """AOT-compile `fn(*args)` over its array leaves; time it and read its memory use."""
    import equinox as eqx
    import jax

    dynamic, static = eqx.partition(args, eqx.is_array)
    start = time.perf_counter()
    lowered = jax.jit(lambda dyn: fn(*eqx.combine(dyn, static))).lower(dynamic)
    compiled = lowered.compile()
    seconds = time.perf_counter() - start
    mem = compiled.memory_analysis()
    peak = None
    if mem is not None:
        peak = (
            mem.argument_size_in_bytes
            + mem.output_size_in_bytes
            + mem.temp_size_in_bytes
            - mem.alias_size_in_bytes
        )
    return (lambda: compiled(dynamic)), {"compile_s": seconds, "memory_bytes": peak}


def _prepare(case: PeerCase) -> tuple[Compiled, dict[str, Any]]:
    forward, fwd = _compile(case.forward, case.forward_args)
    value_and_grad, vag = _compile(case.value_and_grad, case.grad_args)
    record = {
        "compile_fwd_s": fwd["compile_s"],
        "compile_grad_s": vag["compile_s"],
        "memory_fwd_bytes": fwd["memory_bytes"],
        "memory_grad_bytes": vag["memory_bytes"],
    }
    return Compiled(forward, value_and_grad), record


class Reference(NamedTuple):
    """What the other cases are checked against: eqsnn LIF's outputs and weight gradients."""

    first_spikes: np.ndarray
    weight_grads: tuple[np.ndarray, np.ndarray] | None


def _outputs(case: PeerCase, compiled: Compiled) -> tuple[float, Reference]:
    """The loss, the first output spike times and the `(w_in, w_out)` gradients of a case."""
    loss_and_grads = compiled.value_and_grad()
    grads = None
    if "weight_grads" in case.meta:
        grads = tuple(np.asarray(g, np.float64) for g in case.meta["weight_grads"](loss_and_grads))
    first = np.asarray(compiled.forward(), dtype=np.float64)
    return float(loss_and_grads[0]), Reference(first, grads)


def _grad_difference(grads, reference) -> float:
    """max |g - g_ref| / max |g_ref| over both weight matrices."""
    scale = max(float(np.max(np.abs(g))) for g in reference)
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(grads, reference, strict=True))
    return diff / scale if scale > 0 else diff


def _check(case: PeerCase, compiled: Compiled, reference: Reference | None) -> dict[str, Any]:
    """Loss, outputs and gradients vs eqsnn LIF's, and eqsnn's dropped spikes."""
    loss, mine = _outputs(case, compiled)
    out = mine.first_spikes
    spiking = np.isfinite(out) & (out < peers.T_MAX)
    record: dict[str, Any] = {"loss": loss, "frac_outputs_spiking": float(np.mean(spiking))}
    if reference is not None and reference.weight_grads and mine.weight_grads:
        record["grad_rel_diff"] = _grad_difference(mine.weight_grads, reference.weight_grads)
    if reference is not None:
        reference = reference.first_spikes
        ref_spiking = np.isfinite(reference) & (reference < peers.T_MAX)
        both = spiking & ref_spiking
        diff = np.abs(out[both] - reference[both])
        record["max_abs_dt_s"] = float(diff.max()) if diff.size else 0.0
        record["spike_mismatch"] = int(np.sum(spiking != ref_spiking))
    if "spike_stats" in case.meta:
        stats = case.meta["spike_stats"]()
        record["dropped"] = stats.dropped
        record["spike_counts"] = stats.counts._asdict()
    return record


def _time_interleaved(compiled: dict[str, Compiled], n_runs: int) -> dict[str, dict]:
    """Median/min seconds per case and kind, round-robin over the cases."""
    import jax

    runs: dict[str, dict[str, list[float]]] = {
        name: {"fwd": [], "fwd_grad": []} for name in compiled
    }
    for round_ in range(N_WARMUP + n_runs):
        for kind in ("fwd", "fwd_grad"):
            for name, c in compiled.items():
                fn = c.forward if kind == "fwd" else c.value_and_grad
                start = time.perf_counter()
                jax.block_until_ready(fn())
                if round_ >= N_WARMUP:
                    runs[name][kind].append(time.perf_counter() - start)
    return {
        name: {f"{kind}_s": statistics.median(times) for kind, times in kinds.items()}
        | {f"{kind}_min_s": min(times) for kind, times in kinds.items()}
        | {"n_runs": n_runs}
        for name, kinds in runs.items()
    }


def _error(err: Exception) -> str:
    """One line: the exception type, its first and last informative message lines."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("File ", "Traceback", "^", "~"))]
    text = " … ".join(dict.fromkeys(lines[:1] + lines[-1:]))
    return f"{type(err).__name__}: {text}"[:300].replace("|", "/")


def _where(point: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in point.items())


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _too_slow(
    record: dict[str, Any], axis: str, new_value: int, n_runs: int, budget_s: float
) -> str | None:
    """Reason to skip a case at `axis = new_value` (`axis`: "hidden" or "budget_scale")
    from its measured cost at `record[axis]`, extrapolated quadratically; `None` if none."""
    if "fwd_grad_s" not in record:
        return None
    cost = record["compile_fwd_s"] + record["compile_grad_s"]
    cost += (N_WARMUP + n_runs) * (record["fwd_s"] + record["fwd_grad_s"])
    estimate = cost * (new_value / record[axis]) ** 2
    if estimate <= budget_s:
        return None
    where = f"{axis.replace('_', ' ')} {record[axis]}"
    return f"too slow (> {budget_s:g} s: {estimate:.0f} s extrapolated from {where})"


def _build_all(specs, batch, point, regime, budgets, skip) -> tuple[dict, dict, dict]:
    """Build and compile every case; returns (records, compiled, cases) keyed by name."""
    records, compiled, cases = {}, {}, {}
    hidden = point["hidden"]
    for spec in specs:
        records[spec.name] = {"case": spec.name, "regime": regime.name.lower(), **point}
        if spec.name in skip:
            records[spec.name]["skipped"] = skip[spec.name]
            continue
        _log(f"{regime.name.lower()} {_where(point)}: build + compile {spec.name}")
        try:
            case = spec.build(batch, hidden, regime, budgets)
            compiled[spec.name], measured = _prepare(case)
        except PeerUnavailable as err:
            records[spec.name]["skipped"] = err.reason
            continue
        except Exception as err:  # a peer failing must not end the run
            records[spec.name]["failed"] = _error(err)
            continue
        cases[spec.name] = case
        records[spec.name] |= measured | {
            k: v for k, v in case.meta.items() if isinstance(v, str | int | float | bool)
        }
    return records, compiled, cases


def measure_point(
    specs: Sequence[Spec],
    batch: int,
    hidden: int,
    regime: Regime,
    n_runs: int,
    skip: dict[str, str],
    budget_scale: int = 1,
) -> list[dict[str, Any]]:
    """All cases at one hidden size and regime: compile, check, time interleaved.

    In the multi-spike regimes every budget is the probe's count times `budget_scale`.
    """
    point: dict[str, Any] = {"hidden": hidden}
    budgets = None
    if regime.multi_spike:
        _log(f"{regime.name.lower()} hidden={hidden}: probing spike budgets")
        budgets = ec.multi_spike_budgets(batch, hidden)
        budgets = ec.Budgets(*(budget_scale * b for b in budgets))
        point["budget_scale"] = budget_scale
        _log(f"{regime.name.lower()} {_where(point)}: {budgets}")
    records, compiled, cases = _build_all(specs, batch, point, regime, budgets, skip)
    reference = None
    if "eqsnn LIF" in compiled:
        reference = _outputs(cases["eqsnn LIF"], compiled["eqsnn LIF"])[1]
    for name in list(compiled):
        try:
            records[name] |= _check(cases[name], compiled[name], reference)
        except Exception as err:
            records[name]["failed"] = _error(err)
            del compiled[name]
    _log(f"{regime.name.lower()} {_where(point)}: timing {len(compiled)} cases interleaved")
    for name, timing in _time_interleaved(compiled, n_runs).items():
        records[name] |= timing
    if budgets is not None:
        for record in records.values():
            record["budgets"] = budgets._asdict()
    return list(records.values())


def measure(
    specs: Sequence[Spec],
    batch: int,
    hidden_sizes: Sequence[int],
    regimes: dict[Regime, Sequence[int]] | None = None,
    n_runs: int = 20,
    budget_s: float = 600.0,
    budget_hidden: int = 100,
    on_point: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every case over the sweep of each regime: hidden sizes, or (`Regime.BUDGET`) budget
    scales at `budget_hidden`. `regimes` defaults to `{Regime.SINGLE: hidden_sizes}`.
    `on_point(records so far)` is called after each point (e.g. to save partial results)."""
    regimes = {Regime.SINGLE: hidden_sizes} if regimes is None else regimes
    records = []
    for regime, values in regimes.items():
        axis = regime.axis
        skip: dict[str, str] = {}
        last: dict[str, dict[str, Any]] = {}
        for value in sorted(values):
            for name, record in last.items():
                reason = _too_slow(record, axis, value, n_runs, budget_s)
                if reason and name not in skip:
                    skip[name] = reason
            if regime is Regime.BUDGET:
                point = measure_point(specs, batch, budget_hidden, regime, n_runs, skip, value)
            else:
                point = measure_point(specs, batch, value, regime, n_runs, skip)
            last |= {r["case"]: r for r in point if "fwd_grad_s" in r}
            records += point
            if on_point is not None:
                on_point(records)
    return records


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
    parser.add_argument("--budget-hidden", type=int, default=100, help="hidden size of it")
    parser.add_argument("--runs", type=int, help="timed calls per case (default 20; short 10)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--budget", type=float, help="seconds per case (default 600; short 60)")
    parser.add_argument("--only", help="comma-separated substrings of the case names")
    parser.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--json", type=Path, help="write the raw records (JSON) here")
    args = parser.parse_args(argv)
    if args.hidden is None:
        args.hidden = SHORT_HIDDEN if args.short else DEFAULT_HIDDEN
    if args.multi_hidden is None:
        args.multi_hidden = SHORT_MULTI_HIDDEN if args.short else DEFAULT_MULTI_HIDDEN
    if args.budget_scales is None:
        args.budget_scales = SHORT_BUDGET_SCALES if args.short else DEFAULT_BUDGET_SCALES
    if args.runs is None:
        args.runs = 10 if args.short else 20
    if args.budget is None:
        args.budget = 60.0 if args.short else 600.0
    return args


def _report(args, command: str, started: str, load, records, final: bool) -> None:
    """Print (final only) and save the tables; `--write` merges them into RESULTS.md."""
    reference = reference_record(records)
    method = METHOD.format(
        batch=args.batch,
        runs=args.runs,
        warmup=N_WARMUP,
        reference=" or ".join(REFERENCE) if reference is None else reference["case"],
    )
    info = machine_info(command, started, load) + "\n\n" + method
    if not final:
        info += "\n\n**Partial results: the run was still in progress when this was written.**"
    sections = {PEERS_TITLE: peers_section(records, info), SCALING_TITLE: scaling_section(records)}
    if final:
        for title, body in sections.items():
            print(f"## {title}\n\n{body}\n")
    if args.json:
        args.json.write_text(json.dumps(records, indent=1, default=str))
    if args.write:
        text = args.results.read_text() if args.results.exists() else ""
        args.results.write_text(merge_sections(text, sections))
        _log(f"wrote {args.results}" + ("" if final else " (partial)"))


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; print the tables; with `--write`, update RESULTS.md (after every
    point, so an interrupted run leaves its partial results, marked as such)."""
    args = _parse(argv)
    command = "python -m benchmarks.run " + " ".join(sys.argv[1:] if argv is None else argv)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load = os.getloadavg()
    specs = SPECS
    if args.only:
        wanted = args.only.split(",")
        specs = tuple(s for s in SPECS if any(w in s.name for w in wanted))
    regimes = {
        Regime.SINGLE: args.hidden,
        Regime.MULTI: args.multi_hidden,
        Regime.BUDGET: args.budget_scales,
    }

    def partial(records):
        _report(args, command, started, load, records, final=False)

    records = measure(
        specs, args.batch, args.hidden, regimes, args.runs, args.budget, args.budget_hidden, partial
    )
    _report(args, command, started, load, records, final=True)
    return records


if __name__ == "__main__":
    main()
