"""Process memory of one benchmark case, each case in a fresh process (`--memory-rss`).

XLA's buffer assignment (`compiled.memory_analysis()`, read by `benchmarks._measure` for
every case) is the memory of the compiled step alone. A training process needs more: the
library's import, tracing and XLA compilation (on a CPU, LLVM's working memory), the
executable and the buffers of the calls. A process's peak resident set size (RSS, Linux
`VmHWM`) never goes down, so it cannot be attributed to one case when several share a
process; here every case runs in its own process, `python -m benchmarks._memory`, which

1. imports jax and builds the workload's inputs (`peers.yinyang_workload`, put on the
   device, which initialises the backend): the **baseline**, the peak RSS of the process
   up to the end of this phase (the figure a process that stopped here would report; the
   counter is reset at the phase's start, so that a reused process's history is left out);
2. **build**: builds the case (imports its library, constructs the model and its inputs);
3. **compile**: traces, lowers and compiles its forward+gradient program ahead of time (the
   forward alone is not compiled: the step of training is the forward+gradient);
4. **calls**: calls that program `CALLS` times, `jax.block_until_ready` on each.

Before phases 1-4 the peak counter is reset to the current RSS (Linux: "5" written to
`/proc/self/clear_refs`), so each phase has its own peak. Reported, in bytes:

- `rss_peak_bytes`: the highest peak of phases 2-4 minus the baseline (0 if none exceeds
  it): what the case adds to a process that holds jax and the inputs (import + build +
  compile + calls, whichever phase was highest; on a CPU usually the compilation);
- `rss_calls_bytes`: the peak during the calls minus the RSS just before them: the host
  memory a call of the compiled step takes beyond what the process already held (on a CPU
  its XLA buffers, on a GPU host-side staging only); `None` where the counter cannot be
  reset (then `rss_peak_bytes` is the final peak minus the baseline);
- `rss_build_bytes`, `rss_compile_bytes`: the same for phases 2 and 3 (JSON only);
- `device_peak_bytes` (backends whose `memory_stats()` has `peak_bytes_in_use`: GPUs): the
  device allocator's peak at the end minus its peak at the baseline. The process is started
  with `XLA_PYTHON_CLIENT_PREALLOCATE=false`, so it allocates on demand beside the parent.

The process's allocator and Python may keep freed memory, and RSS counts pages touched, not
bytes used: the figures are what the operating system sees, to within a few MiB.
"""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CALLS = 3
"""Calls of the compiled forward+gradient program in phase 4."""

TIMEOUT_S = 900
"""Seconds a case's process may take before it is given up (and reported as failed)."""

ROOT = Path(__file__).resolve().parents[1]
_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(field: str) -> int | None:
    """`VmRSS` or `VmHWM` of this process from `/proc/self/status`, in bytes (Linux)."""
    try:
        match = re.search(rf"^{field}:\s*(\d+) kB", _STATUS.read_text(), re.MULTILINE)
    except OSError:
        return None
    return None if match is None else 1024 * int(match.group(1))


def peak_rss() -> int:
    """The process's peak RSS in bytes (since the last `reset_peak`, where supported)."""
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else 1024 * rss  # macOS: bytes, Linux: KiB


def reset_peak() -> int | None:
    """Reset the peak RSS to the current RSS; returns the current RSS in bytes, or `None`
    where the counter cannot be reset (not Linux, or `/proc/self/clear_refs` not writable)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return None
    return _status_bytes("VmRSS")


def _device_peak() -> int | None:
    import jax

    stats = jax.devices()[0].memory_stats()
    return None if not stats or "peak_bytes_in_use" not in stats else stats["peak_bytes_in_use"]


def phases(spec, batch: int, hidden: int, regime: str, budgets=None) -> dict[str, Any]:
    """Phases 1-4 of `spec` (a `benchmarks._measure.Spec`) in this process, as the module
    docstring says; returns the memory fields of its record. Meaningful as the first and
    only work of a fresh process (`case_memory` runs it so)."""
    import jax
    import numpy as np

    from benchmarks import peers

    reset_peak()  # the baseline is this phase's peak, not the process's history (if any)
    work = peers.yinyang_workload(batch, hidden)
    jax.block_until_ready(jax.device_put([np.asarray(x) for x in work]))
    baseline, device_baseline = peak_rss(), _device_peak()
    peaks, phase = {}, {}

    def end(name, before):
        peaks[name] = peak_rss()
        phase[name] = None if before is None else peaks[name] - before

    before = reset_peak()
    from benchmarks import _measure, eqsnn_cases
    from benchmarks._report import Regime

    budgets = None if budgets is None else eqsnn_cases.Budgets(*budgets)
    case = spec.build(batch, hidden, Regime[regime.upper()], budgets)
    end("build", before)
    before = reset_peak()
    step, _ = _measure._compile(case.value_and_grad, case.grad_args)
    end("compile", before)
    before = reset_peak()
    for _ in range(CALLS):
        jax.block_until_ready(step())
    end("calls", before)
    device = _device_peak()
    return {
        "rss_baseline_bytes": baseline,
        "rss_peak_bytes": max(max(peaks.values()) - baseline, 0),
        "rss_build_bytes": phase["build"],
        "rss_compile_bytes": phase["compile"],
        "rss_calls_bytes": phase["calls"],
    } | ({} if device is None else {"device_peak_bytes": device - (device_baseline or 0)})


def case_memory(
    case_name: str, batch: int, hidden: int, regime: str, budgets: Sequence[int] | None = None
) -> dict[str, Any]:
    """Run `case_name` (a case of `benchmarks.run.SPECS` or `RECURRENT_SPECS`) in a fresh
    process and return its memory fields (see the module docstring), or
    `{"memory_rss_failed": reason}`."""
    from benchmarks import run

    if not any(s.name == case_name for s in run.SPECS + run.RECURRENT_SPECS):
        return {"memory_rss_failed": "not a case of benchmarks.run"}
    command = [sys.executable, "-m", "benchmarks._memory", "--case", case_name]
    command += ["--batch", str(batch), "--hidden", str(hidden), "--regime", regime]
    if budgets is not None:
        command += ["--budgets", json.dumps(list(budgets))]
    env = os.environ | {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return {"memory_rss_failed": f"no result within {TIMEOUT_S} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        err = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return {"memory_rss_failed": f"exit {done.returncode}: {(err or [''])[-1][:200]}"}
    return json.loads(lines[-1])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The worker: print one case's memory fields as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", required=True, help="a case name of benchmarks.run")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--regime", default="single", help="single, multi, budget or recurrent")
    parser.add_argument("--budgets", type=json.loads, help="eqsnn_cases.Budgets as a list")
    args = parser.parse_args(argv)
    from benchmarks import run

    spec = next(s for s in run.SPECS + run.RECURRENT_SPECS if s.name == args.case)
    record = phases(spec, args.batch, args.hidden, args.regime, args.budgets)
    print(json.dumps(record))
    return record


if __name__ == "__main__":
    main()
