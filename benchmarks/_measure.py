"""Measurement core of `benchmarks.run`: AOT compilation, checks, interleaved timing.

See `benchmarks/run.py` for what is measured and how.
"""

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from benchmarks import _memory, peers
from benchmarks import eqsnn_cases as ec
from benchmarks._report import Regime
from benchmarks.peers import PeerCase, PeerUnavailable

N_WARMUP = 2
"""Untimed rounds before the timed ones."""


class Spec(NamedTuple):
    """One benchmarked implementation: `build(batch, hidden, regime, budgets)`."""

    name: str
    build: Callable[[int, int, Regime, ec.Budgets | None], PeerCase]


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
    return (lambda: compiled(dynamic)), {"compile_s": seconds} | xla_memory(compiled)


MEMORY_FIELDS = ("argument", "output", "temp", "alias", "generated_code")
"""The `<field>_size_in_bytes` of XLA's `CompiledMemoryStats` kept in a record."""


def xla_memory(compiled) -> dict[str, Any]:
    """XLA's buffer assignment of a compiled executable: `memory_bytes` (arguments +
    outputs + temporaries - aliased: every buffer a call allocates; the temporaries are
    one block, already packed by XLA's heap simulation) and the `MEMORY_FIELDS`.

    `None` and `{}` where the backend gives no analysis (`memory_analysis()` returns
    `None` or raises). `peak_memory_in_bytes` is not used: on jax 0.10.2's CPU backend
    it leaves the temporaries out (2.0 MiB for a gradient with 6 MiB of temporaries).
    """
    import jax

    try:
        mem = compiled.memory_analysis()
    except (NotImplementedError, jax.errors.JaxRuntimeError):
        mem = None
    if mem is None:
        return {"memory_bytes": None, "memory_analysis": {}}
    fields = {f: getattr(mem, f"{f}_size_in_bytes") for f in MEMORY_FIELDS}
    total = fields["argument"] + fields["output"] + fields["temp"] - fields["alias"]
    return {"memory_bytes": total, "memory_analysis": fields}


def _prepare(case: PeerCase) -> tuple[Compiled, dict[str, Any]]:
    forward, fwd = _compile(case.forward, case.forward_args)
    value_and_grad, vag = _compile(case.value_and_grad, case.grad_args)
    record = {
        "compile_fwd_s": fwd["compile_s"],
        "compile_grad_s": vag["compile_s"],
        "memory_fwd_bytes": fwd["memory_bytes"],
        "memory_grad_bytes": vag["memory_bytes"],
        "memory_grad_analysis": vag["memory_analysis"],
    }
    return Compiled(forward, value_and_grad), record


CHECK_REFERENCES = ("eqsnn LIF", ec.RECURRENT_CASE)
"""The case the others of a point are checked against: the first of these built there
(eqsnn `LIF` on the feed-forward network, eqsnn's recurrent case on the recurrent one)."""


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
    """Loss, outputs and gradients vs the reference's (eqsnn LIF's, see `CHECK_REFERENCES`),
    and eqsnn's dropped spikes."""
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


def log(message: str) -> None:
    """Progress on stderr, time-stamped."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _too_slow(
    record: dict[str, Any], axis: str, new_value: int, n_runs: int, budget_s: float
) -> str | None:
    """Reason to skip a case at `axis = new_value` (`axis`: "hidden" or "budget_scale")
    from its measured cost at `record[axis]`; `None` if none. The timed calls are
    extrapolated quadratically; the compile time is taken as it was (XLA compiles the same
    program for another size: on the H200 it was 2.4 s at hidden 100 and 400 alike, and
    extrapolating it quadratically skipped every hidden-400 case of `--short` there)."""
    if "fwd_grad_s" not in record:
        return None
    compile_s = record["compile_fwd_s"] + record["compile_grad_s"]
    calls_s = (N_WARMUP + n_runs) * (record["fwd_s"] + record["fwd_grad_s"])
    estimate = compile_s + calls_s * (new_value / record[axis]) ** 2
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
        log(f"{regime.name.lower()} {_where(point)}: build + compile {spec.name}")
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
    memory_rss: bool = False,
) -> list[dict[str, Any]]:
    """All cases at one hidden size and regime: compile, check, time interleaved.

    In the multi-spike regimes every budget is the probe's count times `budget_scale`.
    With `memory_rss`, after the timing, each measured case runs once more in its own
    process for its peak RSS (`benchmarks._memory.case_memory`).
    """
    point: dict[str, Any] = {"hidden": hidden}
    budgets = None
    if regime.multi_spike:
        log(f"{regime.name.lower()} hidden={hidden}: probing spike budgets")
        budgets = ec.multi_spike_budgets(batch, hidden)
        budgets = ec.Budgets(*(budget_scale * b for b in budgets))
        point["budget_scale"] = budget_scale
        log(f"{regime.name.lower()} {_where(point)}: {budgets}")
    records, compiled, cases = _build_all(specs, batch, point, regime, budgets, skip)
    reference, checked = None, {}
    for ref in CHECK_REFERENCES:
        if ref in compiled:
            reference = _outputs(cases[ref], compiled[ref])[1]
            checked = {"checked_against": ref}
            break
    for name in list(compiled):
        try:
            records[name] |= _check(cases[name], compiled[name], reference) | checked
        except Exception as err:
            records[name]["failed"] = _error(err)
            del compiled[name]
    log(f"{regime.name.lower()} {_where(point)}: timing {len(compiled)} cases interleaved")
    for name, timing in _time_interleaved(compiled, n_runs).items():
        records[name] |= timing
    for name in compiled if memory_rss else ():
        log(f"{regime.name.lower()} {_where(point)}: process memory of {name}")
        counts = None if budgets is None else tuple(budgets)
        records[name] |= _memory.case_memory(name, batch, hidden, regime.name.lower(), counts)
        if "memory_rss_failed" in records[name]:
            log(f"process memory of {name} failed: {records[name]['memory_rss_failed']}")
    if budgets is not None:
        for record in records.values():
            record["budgets"] = budgets._asdict()
    return list(records.values())


def _reused(records: list[dict[str, Any]], hidden: int) -> list[dict[str, Any]]:
    """The multi-spike records at `hidden` (budget scale 1), relabelled for the budget sweep."""
    return [
        r | {"regime": Regime.BUDGET.name.lower()}
        for r in records
        if r["regime"] == Regime.MULTI.name.lower() and r["hidden"] == hidden
    ]


def measure(
    specs: Sequence[Spec],
    batch: int,
    hidden_sizes: Sequence[int],
    regimes: dict[Regime, Sequence[int]] | None = None,
    n_runs: int = 20,
    budget_s: float = 600.0,
    budget_hidden: int = 100,
    on_point: Callable[[list[dict[str, Any]]], None] | None = None,
    memory_rss: bool = False,
) -> list[dict[str, Any]]:
    """Every case over the sweep of each regime: hidden sizes, or (`Regime.BUDGET`) budget
    scales at `budget_hidden`. `regimes` defaults to `{Regime.SINGLE: hidden_sizes}`.
    `on_point(records so far)` is called after each point (e.g. to save partial results).
    Budget scale 1 reuses the multi-spike point at `budget_hidden` when there is one.
    `memory_rss`: see `measure_point`."""
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
                point = _reused(records, budget_hidden) if value == 1 else []
                point = point or measure_point(
                    specs, batch, budget_hidden, regime, n_runs, skip, value, memory_rss
                )
            else:
                point = measure_point(
                    specs, batch, value, regime, n_runs, skip, memory_rss=memory_rss
                )
            last |= {r["case"]: r for r in point if "fwd_grad_s" in r}
            records += point
            if on_point is not None:
                on_point(records)
    return records
