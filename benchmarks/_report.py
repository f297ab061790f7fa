"""Markdown report of `benchmarks.run`: tables, machine and versions, RESULTS.md merging."""

import enum
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.eqsnn_cases import RECURRENT_CASE


class Regime(enum.Enum):
    """Spiking regime of the workload."""

    SINGLE = "one spike per neuron"
    MULTI = "multi-spike (v_reset = 0)"
    BUDGET = "multi-spike (v_reset = 0), spike budgets scaled"
    RECURRENT = "one spike per neuron, recurrent hidden population"
    """The hidden population also reaches itself (`benchmarks.run.RECURRENT_SPECS`)."""

    @property
    def multi_spike(self) -> bool:
        """Whether neurons reset to 0 (and may spike many times)."""
        return self in (Regime.MULTI, Regime.BUDGET)

    @property
    def axis(self) -> str:
        """The record key this regime sweeps: `"hidden"` or `"budget_scale"`."""
        return "budget_scale" if self is Regime.BUDGET else "hidden"


REFERENCE = ("eqsnn EventPropLIF", "eqsnn LIF", RECURRENT_CASE)
"""The ratio denominator: the first of these that was measured (the recurrent regime's
points hold only `RECURRENT_CASE` of them)."""

RECURRENT_NOTE = (
    "The hidden population also reaches itself: weights hidden -> hidden "
    "`benchmarks.peers.recurrent_weights` (N(0, 0.1^2), diagonal included), the other weights "
    "as above; eqsnn: one `RecurrentLIF([hidden, 3])` with that `ConnectivityMask` on the event "
    "loop, jaxsnn: its recurrent topology (`lif1 -> syn3 -> lif1`, EventProp). Correctness and "
    "ratios against {reference}; the gradients compared are those of the input, recurrent and "
    "output weights."
)


METHOD = (
    "Identical workload for every library (`benchmarks/peers.py`: same weights, input spikes, "
    "targets and loss, float32, batch {batch}). Compile: trace + lower + XLA compile, ahead of "
    "time. fwd / fwd+grad: median of {runs} calls after {warmup} warm-up rounds, with "
    "`block_until_ready`; all cases of a table are timed interleaved (round-robin), so machine "
    "load hits them alike and the ratios stay meaningful even when absolute times are noisy; "
    "the fastest run (in parentheses) is the better estimate of the intrinsic cost on a loaded "
    "machine. Memory: XLA buffer assignment of the compiled executable (arguments + outputs + "
    "temporaries). Correctness: output first-spike times against eqsnn LIF (max abs difference "
    "where both spike; spike mismatch = (sample, output) pairs where only one of the two spikes"
    " before t_max); gradients of the loss with respect to both weight matrices against eqsnn "
    "LIF's autodiff gradients (max |g - g_ref| / max |g_ref|); dropped = spikes eqsnn lost to "
    "its budgets (must be 0). Ratio = case time / {reference} time."
)


# --- Report -------------------------------------------------------------------------------


def reference_record(records: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    for name in REFERENCE:
        for record in records:
            if record["case"] == name and "fwd_grad_s" in record:
                return record
    return None


def _status(record: dict[str, Any]) -> str | None:
    if "skipped" in record:
        return f"skipped: {record['skipped']}"
    if "failed" in record:
        return f"failed: {record['failed']}"
    if "fwd_grad_s" not in record:
        return "not measured"
    return None


def _short_status(record: dict[str, Any] | None) -> str:
    """A scaling-table cell for a point without timings (details are in the Peers tables)."""
    if record is None:
        return "—"
    if "skipped" in record:
        return "too slow" if record["skipped"].startswith("too slow") else "skipped"
    return "failed" if "failed" in record else "not measured"


def _ms(seconds: float) -> str:
    ms = 1e3 * seconds
    return f"{ms:.0f}" if ms >= 1000 else f"{ms:.3g}"


def _sci(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2e}"


def _mib(n_bytes: int | None) -> str:
    return "n/a" if n_bytes is None else f"{n_bytes / 2**20:.3g}"


def _ratio(record, reference, key) -> str:
    if reference is None:
        return "n/a"
    return f"{record[key] / reference[key]:.3g}"


def _min_key(key: str) -> str:
    return key.removesuffix("_s") + "_min_s"


def _time_cell(record, key: str) -> str:
    """Median, and the fastest run in parentheses when recorded, in ms."""
    fastest = record.get(_min_key(key))
    return _ms(record[key]) + ("" if fastest is None else f" ({_ms(fastest)})")


def _ratio_cell(record, reference, key: str) -> str:
    """Ratio of medians, and of the fastest runs in parentheses when recorded."""
    cell = _ratio(record, reference, key)
    if reference is not None and _min_key(key) in record and _min_key(key) in reference:
        cell += f" ({_ratio(record, reference, _min_key(key))})"
    return cell


# --- Per-gradient tables (benchmarks.features, benchmarks.neuron_models) -------------------


def step_columns(gradients: Sequence[str], reference: str) -> list[str]:
    """The headers of `step_cells`: each gradient method's step time, its ratio to the
    `reference` row and its compile time."""
    return [
        c for g in gradients for c in (f"{g} step (ms)", f"{g} × {reference}", f"{g} compile (s)")
    ]


def step_cells(records: Sequence[dict[str, Any]]) -> list[str]:
    """For each record (one per gradient method): the median step time and the fastest in
    parentheses (ms), the ratios of both to the reference row, the compile time (s)."""
    return [
        cell
        for r in records
        for cell in (
            f"{_ms(r['step_s'])} ({_ms(r['step_min_s'])})",
            f"{r['ratio']:.2f} ({r['ratio_min']:.2f})",
            f"{r['compile_s']:.1f}",
        )
    ]


def check_columns(reference: str, grad_rel_diff: bool = False) -> list[str]:
    """The headers of `check_cells`."""
    grad = [f"grad rel. diff vs {reference}"] if grad_rel_diff else []
    return [f"max abs Δt vs {reference} (s)", "spike mismatch", *grad, "dropped"]


def check_cells(records: Sequence[dict[str, Any]], grad_rel_diff: bool = False) -> list[str]:
    """The checks of one row's records against the reference row: the largest spike-time
    difference, spike mismatch and dropped count over the records, and with `grad_rel_diff`
    each record's gradient difference."""
    grad = [" / ".join(_sci(r["grad_rel_diff"]) for r in records)] if grad_rel_diff else []
    return [
        _sci(max(r["max_abs_dt_s"] for r in records)),
        str(max(r["spike_mismatch"] for r in records)),
        *grad,
        str(max(r["dropped"] for r in records)),
    ]


POINT_HEADER = (
    "| case | compile fwd / grad (s) | fwd (ms) | fwd+grad (ms) | fwd ratio | fwd+grad ratio "
    "| XLA memory fwd / grad (MiB) | loss | max abs Δt vs eqsnn LIF (s) | spike mismatch "
    "| grad rel. diff vs eqsnn LIF | dropped |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


MEMORY_COLUMNS = (
    ("rss_peak_bytes", "RSS above baseline: peak / during calls (MiB)", "rss_calls_bytes"),
    ("device_peak_bytes", "device peak above baseline (MiB)", None),
)
"""Optional columns `(key, title, second key)`, shown when a record of the table has `key`:
the per-case process measurements of `benchmarks._memory` (`--memory-rss`)."""


def point_table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown table of one (regime, hidden) point; ratios are case / reference time."""
    reference = reference_record(records)
    extra = [c for c in MEMORY_COLUMNS if any(c[0] in r for r in records)]
    checked = next((r["checked_against"] for r in records if "checked_against" in r), None)
    header = POINT_HEADER if checked is None else POINT_HEADER.replace("eqsnn LIF", checked)
    head, rule = header.split("\n")
    rows = [head + "".join(f" {c[1]} |" for c in extra) + "\n" + rule + "---|" * len(extra)]
    for r in records:
        status = _status(r)
        if status is not None:
            rows.append(f"| {r['case']} | {status} |" + " |" * (10 + len(extra)))
            continue
        cells = "".join(
            f" {_mib(r.get(key))}" + ("" if second is None else f" / {_mib(r.get(second))}") + " |"
            for key, _, second in extra
        )
        rows.append(
            f"| {r['case']} | {r['compile_fwd_s']:.1f} / {r['compile_grad_s']:.1f} "
            f"| {_time_cell(r, 'fwd_s')} | {_time_cell(r, 'fwd_grad_s')} "
            f"| {_ratio_cell(r, reference, 'fwd_s')} | {_ratio_cell(r, reference, 'fwd_grad_s')} "
            f"| {_mib(r['memory_fwd_bytes'])} / {_mib(r['memory_grad_bytes'])} "
            f"| {r['loss']:.6g} | {_sci(r.get('max_abs_dt_s'))} "
            f"| {r.get('spike_mismatch', 'n/a')} | {_sci(r.get('grad_rel_diff'))} "
            f"| {r.get('dropped', 'n/a')} |" + cells
        )
    ref = "none measured" if reference is None else reference["case"]
    rows.append(
        f"\nTimes: median (fastest run). Ratios: case time / {ref} time, of the medians "
        "(of the fastest runs); > 1: slower than eqsnn."
    )
    rows += headline(records, reference)
    return "\n".join(rows)


HEADLINE_CASES = ("jaxsnn EventProp", "floor (vectorised closed form)")
"""The cases the reference is held against in `headline` (issue 20's targets: 10x
jaxsnn's EventProp, within 3x of the floor)."""


def headline(records: Sequence[dict[str, Any]], reference: dict[str, Any] | None) -> list[str]:
    """One line per measured case of `HEADLINE_CASES`: the reference's forward+gradient
    (and forward) time against it, e.g. `eqsnn EventPropLIF is 5.77x faster than jaxsnn
    EventProp`, `eqsnn EventPropLIF takes 1.72x the floor's time`, then the XLA memory of
    both forward+gradient executables."""
    if reference is None:
        return []
    lines = []
    for name in HEADLINE_CASES:
        other = next((r for r in records if r["case"] == name and "fwd_grad_s" in r), None)
        if other is None:
            continue
        grad = reference["fwd_grad_s"], other["fwd_grad_s"]
        fwd = reference["fwd_s"], other["fwd_s"]
        memory = (
            f" XLA memory of the forward+gradient step: {_mib(reference.get('memory_grad_bytes'))}"
            f" MiB against {_mib(other.get('memory_grad_bytes'))} MiB."
        )
        if name.startswith("floor"):
            lines.append(
                f"{reference['case']} takes {grad[0] / grad[1]:.2f}x the floor's time "
                f"forward+gradient ({fwd[0] / fwd[1]:.2f}x forward)." + memory
            )
        else:
            lines.append(
                f"{reference['case']} is {grad[1] / grad[0]:.2f}x faster than {name} "
                f"forward+gradient ({fwd[1] / fwd[0]:.2f}x forward)." + memory
            )
    return [""] + lines if lines else []


def _exponent(points: Sequence[tuple[int, float]]) -> str:
    """Least-squares slope of log(time) over log(size): 1 is linear growth."""
    if len(points) < 2:
        return "n/a"
    x, y = np.log([p[0] for p in points]), np.log([p[1] for p in points])
    return f"{np.polyfit(x, y, 1)[0]:.2f}"


def _label(axis: str, value: int) -> str:
    return f"budgets ×{value}" if axis == "budget_scale" else f"hidden {value}"


def scaling_table(records: Sequence[dict[str, Any]], key: str, axis: str = "hidden") -> str:
    """Rows: cases; columns: values of `axis`; cells: time in ms (ratio to the reference)."""
    sizes = sorted({r[axis] for r in records})
    names = list(dict.fromkeys(r["case"] for r in records))
    head = "| case | " + " | ".join(_label(axis, h) for h in sizes) + " | growth exponent |"
    rows = [head, "|---" * (len(sizes) + 2) + "|"]
    for name in names:
        cells, points = [], []
        for hidden in sizes:
            at = [r for r in records if r[axis] == hidden]
            r = next((r for r in at if r["case"] == name), None)
            if r is None or _status(r) is not None:
                cells.append(_short_status(r))
                continue
            points.append((hidden, r[key]))
            cells.append(f"{_ms(r[key])} ({_ratio(r, reference_record(at), key)}×)")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {_exponent(points)} |")
    return "\n".join(rows)


def _group(records, regime: Regime) -> dict[int, list[dict[str, Any]]]:
    """The records of `regime`, by the value of its sweep axis."""
    groups: dict[int, list[dict[str, Any]]] = {}
    for r in records:
        if r["regime"] == regime.name.lower():
            groups.setdefault(r[regime.axis], []).append(r)
    return groups


def _budget_line(records: Sequence[dict[str, Any]]) -> str:
    budgets = next((r["budgets"] for r in records if "budgets" in r), None)
    if budgets is None:
        return ""
    return "Spike budgets (the probe's maxima over the batch, times the scale): " + ", ".join(
        f"{k} = {v}" for k, v in budgets.items()
    )


def peers_section(records: Sequence[dict[str, Any]], info: str) -> str:
    """The "Peers" section: machine, versions, command, then one table per point."""
    parts = [info]
    for regime in Regime:
        for value, group in sorted(_group(records, regime).items()):
            where = f"hidden {group[0]['hidden']}"
            if regime is Regime.BUDGET:
                where += f", {_label(regime.axis, value)}"
            parts.append(f"### {regime.value}, {where}\n\n{point_table(group)}")
            if regime is Regime.RECURRENT:
                parts.append(RECURRENT_NOTE.format(reference=RECURRENT_CASE))
            if regime.multi_spike:
                parts.append(_budget_line(group))
    return "\n\n".join(p for p in parts if p)


def scaling_section(records: Sequence[dict[str, Any]]) -> str:
    """The "Scaling" section: time against hidden size, per regime, with growth exponents."""
    parts = [
        "Cells: median time in ms (ratio to the eqsnn reference at that point). Growth "
        "exponent: least-squares slope of log(time) over log(hidden size), or over "
        "log(budget scale) for the spike-budget sweep (every per-neuron budget and buffer "
        "times the scale, at a fixed hidden size), across the measured points (1 = linear). "
        "Same run, machine and command as the Peers section."
    ]
    for regime in Regime:
        group = [r for rs in _group(records, regime).values() for r in rs]
        if not group:
            continue
        for key, title in (("fwd_grad_s", "forward+gradient"), ("fwd_s", "forward")):
            table = scaling_table(group, key, regime.axis)
            parts.append(f"### {regime.value}: {title}\n\n{table}")
    return "\n\n".join(parts)


# --- Machine, versions, RESULTS.md --------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def eqsnn_version() -> str:
    """`__version__`, the commit, and the uncommitted files of the package (if any)."""
    import eqsnn

    rev = _git("describe", "--always", "--dirty") or "unknown commit"
    changed = [
        line.split(None, 1)[-1]
        for line in _git("status", "--porcelain", "--", "eqsnn").splitlines()
    ]
    if changed:
        rev += f"; uncommitted in eqsnn/: {', '.join(changed)}"
    return f"{eqsnn.__version__} ({rev})"


def machine_info(
    command: str, started: str, load: tuple[float, ...], version: str | None = None
) -> str:
    """Markdown list: machine, JAX backend and devices, versions, command, date, load.

    `version` is eqsnn's, as `eqsnn_version()` read when the run started (default: now):
    the working tree may change while a run goes on.
    """
    version = eqsnn_version() if version is None else version
    import jax

    devices = ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in ("jax", "jaxlib", "equinox", "diffrax", "numpy", "jaxsnn", "eventax")
    )
    now = os.getloadavg()
    now_load = ", ".join(f"{x:.1f}" for x in now)
    cores = os.cpu_count() or 1
    busy = max(load[0], now[0]) > cores / 2
    note = (
        f"- **Loaded machine**: other work ran alongside (load average up to "
        f"{max(load[0], now[0]):.1f} on {cores} cores), so absolute times are inflated and "
        "noisy; the ratios, from interleaved timing, are the numbers to compare."
    )
    return "\n".join(
        [
            f"- Machine: {_cpu_model()}, {os.cpu_count()} logical cores, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
            f"- JAX backend: {jax.default_backend()}; devices: {devices} (x{len(jax.devices())})",
            f"- Versions: eqsnn {version} (at the start of the run), {versions}",
            f"- Command: `{command}`",
            f"- Date: {started} (UTC start); load average (1, 5, 15 min) at start "
            f"{', '.join(f'{x:.1f}' for x in load)}, at end {now_load}",
        ]
        + ([note] if busy else [])
    )


def merge_sections(text: str, sections: dict[str, str]) -> str:
    """Replace (or append) the `## title` sections of a Markdown text, keeping the others."""
    lines = text.splitlines()
    heads = [i for i, line in enumerate(lines) if line.startswith("## ")] + [len(lines)]
    preamble = "\n".join(lines[: heads[0]]).strip() or "# Benchmark results"
    blocks = [
        (lines[a][3:].strip(), "\n".join(lines[a + 1 : b]).strip())
        for a, b in zip(heads, heads[1:], strict=False)
    ]
    out, done = [], set()
    for title, body in blocks:
        if title in sections:
            body, done = sections[title], done | {title}
        out.append((title, body))
    out += [(title, body) for title, body in sections.items() if title not in done]
    return preamble + "\n\n" + "\n\n".join(f"## {t}\n\n{b}" for t, b in out) + "\n"


PEERS_TITLE = "Peers (Yin-Yang, batch 64)"
SCALING_TITLE = "Scaling"
