"""What the issue-17 features cost on the one-spike Yin-Yang step, as ratios to today's.

```
python -m benchmarks.features [--hidden 100] [--batch 64] [--runs 30]
    [--gradients eventprop,autodiff] [--variants a,b,c,d] [--json PATH]
```

The network and workload of `benchmarks.peers` (5 features x 5 copies -> hidden -> 3,
`tau_mem = 2 tau_syn`, `v_reset = -1000`: one spike per neuron, float32, the MSE
first-spike loss), both layers `eqsnn.LIF` on the window scan with one spike per neuron,
in four variants (`Variant`):

- **(a)** today's network: every parameter a float, no delays (the step of
  `benchmarks.run`'s `eqsnn LIF` / `eqsnn EventPropLIF`);
- **(b)** `tau_syn`, `tau_mem` and `v_th` per-neuron trainable arrays in both layers;
- **(c)** per-synapse delays (`delays="synapse"`, zeros) in both layers;
- **(d)** (b) and (c) together, plus a per-neuron `t_ref` array (zeros).

(b), (c) and (d) hold the values of (a), so they must find the same spikes; they take the
per-neuron path (`eqsnn/_engine/per_neuron.py`: each neuron's window scan under `vmap`,
its arrivals sorted per neuron) and, with array time constants, the bracketed crossing
solver instead of the TTFS closed form, so their spike times equal (a)'s up to rounding.

Each (variant, gradient) is one executable: the training step `eqx.filter_value_and_grad`
of the loss (gradients with respect to every array of the network: weights, and the
parameter and delay arrays where there are some), by `eqsnn.EventProp()` or
`eqsnn.AutoDiff()`, returning as well the first spike time of every hidden and output
neuron for the check. Compile: trace + lower + XLA compile, ahead of time
(`benchmarks._measure`). Step: median (and fastest) of `--runs` calls after
`benchmarks._measure.N_WARMUP` warm-up rounds, all executables interleaved round-robin, so
load that drifts during the run hits every case alike. Check against (a) with the same
gradient: max |Δt| over the hidden and output first spikes where both spike, the number of
(sample, neuron) pairs where only one spikes, and the weight gradients' max |g - g_a| /
max |g_a|.

`--variants` runs a subset, by letter (default all four: `a,b,c,d`); (a) is always run, as
the reference of the checks and the ratios (`--variants d` runs (a) and (d)). The table
and the headline show the variants run.
"""

import argparse
import dataclasses
import datetime
import enum
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from benchmarks import _report, peers
from benchmarks import eqsnn_cases as ec
from benchmarks._measure import N_WARMUP, _compile, _grad_difference, log


class Variant(enum.Enum):
    """A network of the benchmark (value: its row label)."""

    TODAY = "(a) today: float parameters, no delays"
    PARAMETERS = "(b) per-neuron tau_syn, tau_mem, v_th"
    DELAYS = "(c) per-synapse delays"
    ALL = "(d) (b) + (c) + per-neuron t_ref"

    @property
    def letter(self) -> str:
        """The variant's `--variants` name: `a`, `b`, `c` or `d`."""
        return self.value[1]

    @classmethod
    def parse(cls, names: str) -> "tuple[Variant, ...]":
        """The variants named by comma-separated letters, with (a) (the reference) always
        included, in table order."""
        letters = {name.strip().strip("()").lower() for name in names.split(",")} - {""}
        unknown = letters - {v.letter for v in cls}
        if unknown:
            raise ValueError(f"unknown variants {sorted(unknown)}: choose from a, b, c, d")
        return tuple(v for v in cls if v is cls.TODAY or v.letter in letters)

    @property
    def arrays(self) -> tuple[str, ...]:
        """The `LIFParameters` fields that are per-neuron arrays in both layers."""
        names = {Variant.PARAMETERS: ("tau_syn", "tau_mem", "v_th")}
        names[Variant.ALL] = (*names[Variant.PARAMETERS], "t_ref")
        return names.get(self, ())

    @property
    def delays(self) -> str | None:
        """The layers' `delays` argument."""
        return "synapse" if self in (Variant.DELAYS, Variant.ALL) else None


class Gradient(enum.Enum):
    """How the step's gradient is computed (value: the `--gradients` name)."""

    EVENTPROP = "eventprop"
    AUTODIFF = "autodiff"

    def adjoint(self):
        import eqsnn

        return eqsnn.EventProp() if self is Gradient.EVENTPROP else eqsnn.AutoDiff()

    @property
    def label(self) -> str:
        return "EventProp" if self is Gradient.EVENTPROP else "AutoDiff"


class FirstSpikes(NamedTuple):
    """What a step returns besides the loss: first spike times `(batch, n)` (`inf`:
    silent) of both layers, and the spikes lost to the budgets."""

    hidden: Any
    output: Any
    dropped: Any


def layer_params(variant: Variant, n: int):
    """The benchmark's one-spike parameters, with `variant.arrays` as `(n,)` float32 arrays
    of the same values."""
    import jax.numpy as jnp

    base = ec.lif_parameters(multi_spike=False)
    arrays = {name: jnp.full((n,), getattr(base, name), jnp.float32) for name in variant.arrays}
    return dataclasses.replace(base, **arrays)


def network(variant: Variant, gradient: Gradient, work: peers.Workload, seed: int = 0):
    """The two `eqsnn.LIF` layers of `variant` with the workload's weights."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import eqsnn

    hidden = work.w_in.shape[1]
    budgets = ec.single_spike_budgets(hidden)
    shapes = (
        (peers.N_FEATURES, hidden, budgets.hidden_spikes, work.w_in),
        (hidden, peers.N_CLASSES, budgets.output_spikes, work.w_out),
    )
    layers = []
    for population, key in enumerate(jax.random.split(jax.random.PRNGKey(seed))):
        n_in, n_out, n_spikes, weights = shapes[population]
        layer = eqsnn.LIF(
            n_in,
            n_out,
            n_spikes,
            peers.T_MAX,
            layer_params(variant, n_out),
            key=key,
            engine=budgets.engine(ec.Engine.DEFAULT, population),
            adjoint=gradient.adjoint(),
            delays=variant.delays,
        )
        layers.append(eqx.tree_at(lambda m: m.weights.input, layer, jnp.asarray(weights)))
    return tuple(layers)


def _loss(model, spikes, targets):
    import jax

    hid, out = jax.vmap(ec._feedforward_spikes, in_axes=(None, 0))(model, spikes)
    first = out.first_spike_times(peers.N_CLASSES)
    seen = FirstSpikes(hid.first_spike_times(model[0].out_size), first, out.dropped.sum())
    return peers.mse_first_spike_loss(first, targets), seen


def compiled_step(variant: Variant, gradient: Gradient, work: peers.Workload):
    """The compiled training step of a case (no arguments) and its record: compile time
    (s) and the layers' crossing solver."""
    import equinox as eqx
    import jax.numpy as jnp

    model = network(variant, gradient, work)
    args = (model, ec.eqsnn_input_spikes(work.feature_times), jnp.asarray(work.target_times))
    step, info = _compile(eqx.filter_value_and_grad(_loss, has_aux=True), args)
    solver = "/".join(dict.fromkeys(type(layer.solver).__name__ for layer in model))
    return step, {"compile_s": info["compile_s"], "solver": solver}


def _spiking(t: np.ndarray) -> np.ndarray:
    return np.isfinite(t) & (t < peers.T_MAX)


def check(result, reference) -> dict[str, Any]:
    """Loss, dropped spikes, and the differences to the reference step's result."""
    (loss, seen), grads = result
    (_, ref_seen), ref_grads = reference
    record = {"loss": float(loss), "dropped": int(seen.dropped)}
    dt, mismatch = 0.0, 0
    for mine, theirs in zip(seen[:2], ref_seen[:2], strict=True):
        mine, theirs = np.asarray(mine, np.float64), np.asarray(theirs, np.float64)
        both = _spiking(mine) & _spiking(theirs)
        diff = np.abs(np.where(both, mine, 0.0) - np.where(both, theirs, 0.0))
        dt = max(dt, float(np.max(diff, initial=0.0)))
        mismatch += int(np.sum(_spiking(mine) != _spiking(theirs)))
    weights = [
        tuple(np.asarray(layer.weights.input, np.float64) for layer in g)
        for g in (grads, ref_grads)
    ]
    return record | {
        "max_abs_dt_s": dt,
        "spike_mismatch": mismatch,
        "grad_rel_diff": _grad_difference(*weights),
    }


def time_interleaved(steps: dict[Any, Callable[[], Any]], n_runs: int) -> dict[Any, dict]:
    """Median and fastest seconds of each step, round-robin over the steps."""
    import jax

    runs: dict[Any, list[float]] = {case: [] for case in steps}
    for round_ in range(N_WARMUP + n_runs):
        for case, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step())
            if round_ >= N_WARMUP:
                runs[case].append(time.perf_counter() - start)
    return {
        case: {"step_s": statistics.median(times), "step_min_s": min(times)}
        for case, times in runs.items()
    }


def measure(
    batch: int,
    hidden: int,
    gradients: Sequence[Gradient],
    n_runs: int,
    variants: Sequence[Variant] = tuple(Variant),
) -> list[dict[str, Any]]:
    """One record per (variant, gradient): compile time, step times, check against (a)
    (always measured, whether `variants` names it or not)."""
    work = peers.yinyang_workload(batch, hidden)
    variants = [v for v in Variant if v is Variant.TODAY or v in variants]
    cases = [(variant, gradient) for gradient in gradients for variant in variants]
    steps, records = {}, {}
    for variant, gradient in cases:
        log(f"build + compile {variant.name} {gradient.label}")
        steps[variant, gradient], built = compiled_step(variant, gradient, work)
        records[variant, gradient] = {"variant": variant.value, "gradient": gradient.label}
        records[variant, gradient] |= built
    references = {gradient: steps[Variant.TODAY, gradient]() for gradient in gradients}
    for variant, gradient in cases:
        records[variant, gradient] |= check(steps[variant, gradient](), references[gradient])
    log(f"timing {len(steps)} steps interleaved, {n_runs} runs")
    for case, timing in time_interleaved(steps, n_runs).items():
        records[case] |= timing
    for (_, gradient), record in records.items():
        today = records[Variant.TODAY, gradient]
        record["ratio"] = record["step_s"] / today["step_s"]
        record["ratio_min"] = record["step_min_s"] / today["step_min_s"]
    return list(records.values())


def table(records: Sequence[dict[str, Any]]) -> str:
    """Markdown: one row per variant, the step time and ratio of each gradient method."""
    gradients = list(dict.fromkeys(r["gradient"] for r in records))
    by_case = {(r["variant"], r["gradient"]): r for r in records}
    header = [
        "case",
        "solver",
        *_report.step_columns(gradients, "(a)"),
        *_report.check_columns("(a)", grad_rel_diff=True),
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for variant in Variant:
        if (variant.value, gradients[0]) not in by_case:
            continue  # not run (`--variants`)
        mine = [by_case[variant.value, g] for g in gradients]
        row = [variant.value, mine[0]["solver"], *_report.step_cells(mine)]
        row += _report.check_cells(mine, grad_rel_diff=True)
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def headline(records: Sequence[dict[str, Any]], hidden: int, batch: int) -> str:
    """One line: each feature's step time as a multiple of today's, per gradient method."""
    features = {
        Variant.PARAMETERS: "per-neuron parameters",
        Variant.DELAYS: "per-synapse delays",
        Variant.ALL: "both with t_ref",
    }
    parts = []
    for gradient in dict.fromkeys(r["gradient"] for r in records):
        ratios = {r["variant"]: r["ratio"] for r in records if r["gradient"] == gradient}
        shown = [
            f"{name} {ratios[v.value]:.2f}x" for v, name in features.items() if v.value in ratios
        ]
        parts.append(f"{gradient}: " + (", ".join(shown) or "only (a) run"))
    return (
        f"Yin-Yang step (one spike per neuron, hidden {hidden}, batch {batch}) against "
        f"today's float-parameter step, medians: " + "; ".join(parts) + "."
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=30, help="timed calls per case")
    parser.add_argument(
        "--gradients",
        default="eventprop,autodiff",
        help="comma-separated gradient methods: eventprop, autodiff",
    )
    parser.add_argument(
        "--variants",
        default="a,b,c,d",
        type=Variant.parse,
        help="comma-separated variants to run: a (today), b (per-neuron parameters), "
        "c (per-synapse delays), d (both, with t_ref); (a), the reference, always runs",
    )
    parser.add_argument("--json", type=Path, help="write the records here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark, print the machine info, the table and the headline; return the
    records."""
    args = _parse(argv)
    gradients = [Gradient(name.strip()) for name in args.gradients.split(",") if name.strip()]
    command = "python -m benchmarks.features " + " ".join(sys.argv[1:] if argv is None else argv)
    started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")
    load, version = os.getloadavg(), _report.eqsnn_version()
    records = measure(args.batch, args.hidden, gradients, args.runs, args.variants)
    info = _report.machine_info(command, started, load, version)
    text = "\n\n".join([info, table(records), headline(records, args.hidden, args.batch)])
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "records": records}, indent=1))
    return records


if __name__ == "__main__":
    main()
