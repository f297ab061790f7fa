"""Generic timing helpers for the benchmarks.

All helpers block on the result with `jax.block_until_ready`, so that JAX's
asynchronous dispatch does not make a call look faster than it is.

**Memory.** `tracemalloc` only sees Python allocations, not XLA buffers, so it
is not used. `peak_memory_bytes` asks the device for `memory_stats()` (GPU/TPU
report `peak_bytes_in_use`); the CPU backend returns `None` there, in which
case it falls back to the process' maximum resident set size from
`resource.getrusage`. Max RSS never decreases within a process, so the CPU
figure of `measure_peak_memory` is the *growth of the process peak* during the
measured call: exact for the first, largest workload of a process, a lower
bound (possibly zero) for any later, smaller one. Run one workload per process
when the CPU memory figure matters.
"""

import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax


class Timing(NamedTuple):
    """Wall-clock timings of one callable, in seconds."""

    first_call_s: float
    """First call, including tracing and XLA compilation."""
    median_s: float
    """Median of `n_runs` calls after warm-up."""
    min_s: float
    """Fastest of the `n_runs` calls."""
    n_runs: int


def _call(fn: Callable[..., Any], args: tuple[Any, ...]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def time_first_call(fn: Callable[..., Any], *args: Any) -> float:
    """Seconds taken by the first call of a jitted `fn`, compilation included.

    Call it on a freshly jitted function; a cached executable makes it a plain
    run time.
    """
    return _call(fn, args)


def time_median(
    fn: Callable[..., Any], *args: Any, n_runs: int = 20, n_warmup: int = 2
) -> tuple[float, float]:
    """Median and minimum seconds of `n_runs` calls after `n_warmup` calls."""
    if n_runs < 1:
        raise ValueError(f"n_runs must be >= 1, got {n_runs}")
    for _ in range(n_warmup):
        _call(fn, args)
    runs = [_call(fn, args) for _ in range(n_runs)]
    return statistics.median(runs), min(runs)


def time_callable(
    fn: Callable[..., Any], *args: Any, n_runs: int = 20, n_warmup: int = 2
) -> Timing:
    """First-call (compile) time, then median/min of `n_runs` warm calls."""
    first = time_first_call(fn, *args)
    median, fastest = time_median(fn, *args, n_runs=n_runs, n_warmup=n_warmup)
    return Timing(first, median, fastest, n_runs)


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss if sys.platform == "darwin" else rss * 1024


def peak_memory_bytes(device: jax.Device | None = None) -> tuple[int, str]:
    """Current peak memory and where it was read from.

    **Returns:** `(bytes, source)` with `source` either
    `"device.memory_stats"` (the device's `peak_bytes_in_use`) or
    `"max_rss"` (process maximum resident set size, CPU fallback).
    """
    device = jax.devices()[0] if device is None else device
    stats = device.memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "device.memory_stats"
    return _max_rss_bytes(), "max_rss"


def measure_peak_memory(fn: Callable[..., Any], *args: Any) -> tuple[int, str]:
    """Peak memory attributable to one call of `fn` (see module docstring).

    On devices with `memory_stats()` this is the device peak after the call
    (the allocator's peak counter cannot be reset from Python, so run the
    largest workload first or in its own process); on CPU it is the growth of
    the process' max RSS during the call.
    """
    before, source = peak_memory_bytes()
    jax.block_until_ready(fn(*args))
    after, _ = peak_memory_bytes()
    return (after - before if source == "max_rss" else after), source
