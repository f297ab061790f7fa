"""Forward+gradient time and memory of EventProp versus autodiff on feed-forward `LIF` layers.

Workload: a batch (`jax.vmap`) of random input spike trains, 25 input events on 5 channels
within `2 tau_syn`; `5 -> hidden -> 3` feed-forward layers; loss = squared first-spike
times of the 3 outputs (silent outputs excluded), mean over the batch; gradient with
respect to both layers' weights; float32. Two spike-budget regimes:

- `one`: one spike per neuron (`v_reset = -1000`), hidden buffer `n_spikes = hidden`;
- `multi`: bursting neurons (`v_reset = 0`, about 8 spikes per hidden neuron), hidden
  buffer `n_spikes = 10 * hidden`, at most 40 spikes per neuron
  (`eqsnn.WindowScan(max_spikes_per_neuron=40)`, enough that none is dropped; with
  `--engine interval-scan`, `eqsnn.IntervalScan(max_spikes_per_interval=3)`, which drops
  some).

`--engine` picks the layers' engine: `window-scan` (the default engine, with the
closed-form adjoint) or `interval-scan` (a scan over the input intervals). Both gradient
methods (`adjoint=eqsnn.AutoDiff()` and `adjoint=eqsnn.EventProp()`) run the same
forward pass; they differ only in the backward pass. For each
configuration the script reports the first call (trace + compile + run), the median of
`--runs` further calls of the compiled forward+gradient, and XLA's memory plan of that compiled
program (`Compiled.memory_analysis()`: arguments + outputs + temporaries, i.e. the peak
buffer memory of one call; it is exact and comparable within one process, unlike the
process' max RSS on CPU). Ratios are `autodiff / EventProp` (> 1: EventProp is better).

Run from the repository root: `python -m benchmarks.eventprop_vs_autodiff` (default: hidden
50 and 800, both regimes: about 2 minutes of CPU time, mostly compilation), or e.g.
`python -m benchmarks.eventprop_vs_autodiff --hidden 50 100 200 400 800 --regimes multi`.
"""

import argparse
import json
import time
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

import eqsnn
from benchmarks._timing import time_median

TAU_SYN = 5e-3  # s
T_MAX = 4 * TAU_SYN  # s
N_CHANNELS, N_EVENTS, N_OUT = 5, 25, 3
REGIMES = {"one": (-1000.0, 1, 1, 1, 1.5), "multi": (0.0, 40, 3, 10, 0.5)}
"""name: (v_reset, max_spikes_per_neuron, max_spikes_per_interval, buffer slots per neuron,
mean hidden weight)."""
ENGINES = ("window-scan", "interval-scan")
"""`--engine` values: `eqsnn.WindowScan` and `eqsnn.IntervalScan`."""
_KEY_INPUTS = jax.random.PRNGKey(1)


class Measurement(NamedTuple):
    first_call_s: float  # trace + compile + one run
    median_s: float  # median of the warm calls
    memory_bytes: int  # XLA's plan: arguments + outputs + temporaries


def _engine(name: str, regime: str) -> eqsnn.AbstractEngine:
    _, per_neuron_budget, per_interval, _, _ = REGIMES[regime]
    if name == "window-scan":
        return eqsnn.WindowScan(max_spikes_per_neuron=per_neuron_budget)
    return eqsnn.IntervalScan(max_spikes_per_interval=per_interval)


def _network(adjoint, hidden, regime, key, engine="window-scan"):
    v_reset, _, _, per_neuron, mean = REGIMES[regime]
    params = eqsnn.LIFParameters(tau_syn=TAU_SYN, tau_mem=2 * TAU_SYN, v_th=1.0, v_reset=v_reset)
    k1, k2 = jax.random.split(key)
    common = dict(params=params, engine=_engine(engine, regime), adjoint=adjoint)
    return eqx.nn.Sequential(
        [
            eqsnn.LIF(N_CHANNELS, hidden, per_neuron * hidden, T_MAX, key=k1, mean=mean, **common),
            eqsnn.LIF(
                hidden, N_OUT, per_neuron * N_OUT, T_MAX, key=k2, mean=6.0 / hidden**0.5, **common
            ),
        ]
    )


def _inputs(batch, key):
    k_time, k_idx = jax.random.split(key)
    time = jax.random.uniform(k_time, (batch, N_EVENTS), maxval=2 * TAU_SYN, dtype=jnp.float32)
    idx = jax.random.randint(k_idx, (batch, N_EVENTS), 0, N_CHANNELS)
    return time, idx


def _loss(net, time, idx):
    def one(t, i):
        first = net(eqsnn.Spikes(t, i)).first_spike_times(N_OUT)
        return jnp.sum(jnp.where(jnp.isfinite(first), (first / TAU_SYN) ** 2, 0.0))

    return jnp.mean(jax.vmap(one)(time, idx))


@eqx.filter_jit
def _value_and_grad(net, time, idx):
    return eqx.filter_value_and_grad(_loss)(net, time, idx)


@eqx.filter_jit
def _hidden_stats(net, time, idx):
    out = jax.vmap(lambda t, i: net.layers[0](eqsnn.Spikes(t, i)))(time, idx)
    return jnp.mean(out.count()), jnp.mean(out.dropped)


def _memory_bytes(compiled) -> int:
    stats = compiled.compiled.memory_analysis()  # an eqx Compiled wraps a jax one
    return int(
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


def measure(adjoint, hidden, regime, batch, runs, engine="window-scan") -> Measurement:
    """Time and memory of one gradient method on one configuration (fresh compile)."""
    net = _network(adjoint, hidden, regime, jax.random.PRNGKey(0), engine)
    time_, idx = _inputs(batch, _KEY_INPUTS)
    start = time.perf_counter()
    compiled = _value_and_grad.lower(net, time_, idx).compile()
    jax.block_until_ready(compiled(net, time_, idx))
    first = time.perf_counter() - start
    median, _ = time_median(compiled, net, time_, idx, n_runs=runs, n_warmup=0)
    return Measurement(first, median, _memory_bytes(compiled))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, nargs="+", default=[50, 800])
    parser.add_argument("--regimes", nargs="+", choices=sorted(REGIMES), default=["one", "multi"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3, help="warm calls timed")
    parser.add_argument("--engine", choices=ENGINES, default="window-scan")
    parser.add_argument("--json", action="store_true", help="one JSON line per configuration")
    args = parser.parse_args()
    print(
        f"# {jax.devices()[0].device_kind}, batch {args.batch}, float32, median of "
        f"{args.runs}, {args.engine} engine"
    )
    header = (
        f"{'regime':>6} {'hidden':>6} {'spikes':>7} {'dropped':>7} | "
        f"{'LIF ms':>8} {'EP ms':>8} {'ratio':>6} | {'LIF MiB':>8} {'EP MiB':>8} {'ratio':>6} | "
        f"{'compile LIF s':>13} {'EP s':>6}"
    )
    if not args.json:
        print(header)
    for regime in args.regimes:
        for hidden in args.hidden:
            lif = measure(eqsnn.AutoDiff(), hidden, regime, args.batch, args.runs, args.engine)
            ep = measure(eqsnn.EventProp(), hidden, regime, args.batch, args.runs, args.engine)
            net = _network(eqsnn.AutoDiff(), hidden, regime, jax.random.PRNGKey(0), args.engine)
            spikes, dropped = map(float, _hidden_stats(net, *_inputs(args.batch, _KEY_INPUTS)))
            row = dict(
                engine=args.engine,
                regime=regime,
                hidden=hidden,
                hidden_spikes=spikes,
                hidden_dropped=dropped,
                lif=lif._asdict(),
                eventprop=ep._asdict(),
                time_ratio=lif.median_s / ep.median_s,
                memory_ratio=lif.memory_bytes / ep.memory_bytes,
            )
            if args.json:
                print(json.dumps(row), flush=True)
                continue
            mib = 2.0**20
            print(
                f"{regime:>6} {hidden:>6} {spikes:>7.1f} {dropped:>7.1f} | "
                f"{1e3 * lif.median_s:>8.2f} {1e3 * ep.median_s:>8.2f} {row['time_ratio']:>6.2f} | "
                f"{lif.memory_bytes / mib:>8.2f} {ep.memory_bytes / mib:>8.2f} "
                f"{row['memory_ratio']:>6.2f} | {lif.first_call_s:>13.1f} {ep.first_call_s:>6.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
