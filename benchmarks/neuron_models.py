"""What a neuron model costs on the Yin-Yang step, as a ratio to the LIF's.

```
python -m benchmarks.neuron_models [--hidden 100] [--batch 64] [--runs 30]
    [--spikes 1] [--gradients eventprop,autodiff] [--json PATH]
```

The network and workload of `benchmarks.peers` (5 features x 5 copies -> hidden -> 3,
`tau_mem = 2 tau_syn`, float32, the MSE first-spike loss), both layers `eqsnn.LIF` on the
window scan, with the neurons of each model (`MODELS`):

- **LIF**: `eqsnn.LIFParameters` (the TTFS closed-form solver; today's step);
- **LIF, bracketed**: the same with `eqsnn.solvers.BracketedSolver()`, the LIF's general
  solver;
- **ALIF, beta = 0**: `eqsnn.ALIFParameters` with no adaptation: the same dynamics as the
  LIF, so the same spikes (a check of the generic engine);
- **ALIF**: `beta = 0.1`, `tau_adapt = 50 ms`;
- **IF**: `eqsnn.IFParameters` (non-leaky).

`--spikes 1` (default) is the one-spike regime of `benchmarks.run` (`v_reset = -1000`,
one spike per neuron); `--spikes S` sets `v_reset = 0` and a budget of `S` spikes per
hidden neuron (and per output neuron), where adaptation acts. Each (model, gradient) is
one executable: `eqx.filter_value_and_grad` of the loss with respect to the weights.
Compile: trace + lower + XLA compile, ahead of time. Step: median (and fastest) of
`--runs` calls after warm-up, all executables interleaved round-robin (load that drifts
hits every case alike). The ratio is each step over the LIF's with the same gradient
method. The check against the LIF: max |Δt| of the first spikes where both spike, and the
number of (sample, neuron) pairs where only one spikes.
"""

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _report, peers
from benchmarks import eqsnn_cases as ec
from benchmarks._measure import _compile, log
from benchmarks.features import Gradient, _loss, time_interleaved

TAU_ADAPT = 5e-2
BETA = 0.1


def model_params(model: str, spikes: int):
    """The parameters of `model` with the workload's values (`v_reset = -1000` for one
    spike per neuron, 0 otherwise)."""
    import eqsnn

    v_reset = ec.V_RESET_SINGLE_SPIKE if spikes == 1 else 0.0
    common = {"tau_syn": ec.TAU_SYN, "tau_mem": ec.TAU_MEM, "v_th": ec.V_TH, "v_reset": v_reset}
    if model in ("LIF", "LIF, bracketed"):
        return eqsnn.LIFParameters(**common)
    if model == "ALIF, beta = 0":
        return eqsnn.ALIFParameters(**common, tau_adapt=TAU_ADAPT, beta=0.0)
    if model == "ALIF":
        return eqsnn.ALIFParameters(**common, tau_adapt=TAU_ADAPT, beta=BETA)
    if model == "IF":
        return eqsnn.IFParameters(**common)
    raise ValueError(f"unknown model {model!r}")


MODELS = ("LIF", "LIF, bracketed", "ALIF, beta = 0", "ALIF", "IF")


def network(model: str, gradient: Gradient, work: peers.Workload, spikes: int):
    """The two layers with the workload's weights."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import eqsnn

    hidden = work.w_in.shape[1]
    shapes = (
        (peers.N_FEATURES, hidden, work.w_in),
        (hidden, peers.N_CLASSES, work.w_out),
    )
    solver = eqsnn.solvers.BracketedSolver() if model == "LIF, bracketed" else None
    layers = []
    for population, key in enumerate(jax.random.split(jax.random.PRNGKey(0))):
        n_in, n_out, weights = shapes[population]
        layer = eqsnn.LIF(
            n_in,
            n_out,
            n_out * spikes,
            peers.T_MAX,
            model_params(model, spikes),
            key=key,
            engine=eqsnn.WindowScan(max_spikes_per_neuron=spikes),
            adjoint=gradient.adjoint(),
            solver=solver,
        )
        layers.append(eqx.tree_at(lambda m: m.weights.input, layer, jnp.asarray(weights)))
    return tuple(layers)


def _spiking(t):
    return np.isfinite(t) & (t < peers.T_MAX)


def measure(batch, hidden, spikes, gradients, n_runs) -> list[dict[str, Any]]:
    """One record per (model, gradient): compile time, step times, ratio, check."""
    import equinox as eqx
    import jax.numpy as jnp

    work = peers.yinyang_workload(batch, hidden)
    args = (ec.eqsnn_input_spikes(work.feature_times), jnp.asarray(work.target_times))
    steps, records = {}, {}
    for gradient in gradients:
        for model in MODELS:
            log(f"build + compile {model} {gradient.label}")
            net = network(model, gradient, work, spikes)
            step, info = _compile(eqx.filter_value_and_grad(_loss, has_aux=True), (net, *args))
            steps[model, gradient] = step
            records[model, gradient] = {
                "model": model,
                "gradient": gradient.label,
                "compile_s": info["compile_s"],
            }
    for (model, gradient), step in steps.items():
        (loss, seen), _ = step()
        (_, ref), _ = steps["LIF", gradient]()
        dt, mismatch = 0.0, 0
        for mine, theirs in zip(seen[:2], ref[:2], strict=True):
            mine, theirs = np.asarray(mine, np.float64), np.asarray(theirs, np.float64)
            both = _spiking(mine) & _spiking(theirs)
            diff = np.abs(np.where(both, mine - theirs, 0.0))
            dt = max(dt, float(np.max(diff, initial=0.0)))
            mismatch += int(np.sum(_spiking(mine) != _spiking(theirs)))
        records[model, gradient] |= {
            "loss": float(loss),
            "dropped": int(seen.dropped),
            "max_abs_dt_s": dt,
            "spike_mismatch": mismatch,
        }
    log(f"timing {len(steps)} steps interleaved, {n_runs} runs")
    for case, timing in time_interleaved(steps, n_runs).items():
        records[case] |= timing
    for (_, gradient), record in records.items():
        lif = records["LIF", gradient]
        record["ratio"] = record["step_s"] / lif["step_s"]
        record["ratio_min"] = record["step_min_s"] / lif["step_min_s"]
    return list(records.values())


def table(records) -> str:
    """Markdown: one row per model, step time, ratio to the LIF and compile time per
    gradient method, and the check against the LIF."""
    gradients = list(dict.fromkeys(r["gradient"] for r in records))
    by_case = {(r["model"], r["gradient"]): r for r in records}
    header = ["model", *_report.step_columns(gradients, "LIF"), *_report.check_columns("LIF")]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for model in MODELS:
        mine = [by_case[model, g] for g in gradients]
        row = [model, *_report.step_cells(mine), *_report.check_cells(mine)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the machine info and the table; return the records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=30, help="timed calls per case")
    parser.add_argument("--spikes", type=int, default=1, help="budget per neuron")
    parser.add_argument("--gradients", default="eventprop,autodiff")
    parser.add_argument("--json", type=Path, help="write the records here")
    args = parser.parse_args(argv)
    gradients = [Gradient(name.strip()) for name in args.gradients.split(",") if name.strip()]
    command = "python -m benchmarks.neuron_models " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load, version = os.getloadavg(), _report.eqsnn_version()
    records = measure(args.batch, args.hidden, args.spikes, gradients, args.runs)
    info = _report.machine_info(command, started, load, version)
    text = "\n\n".join([info, table(records)])
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "records": records}, indent=1))
    return records


if __name__ == "__main__":
    main()
