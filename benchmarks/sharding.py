"""Data-parallel training throughput: samples/s of `eqsnn.training.train_step` by device count.

```
python -m benchmarks.sharding [--devices 1,2,4] [--batch-sizes 64,256] [--hidden 200]
    [--steps 10] [--rounds 5] [--platform cpu|gpu] [--write] [--json PATH] [--from-json PATH]
```

The workload is the network of `examples/yinyang.py` with its defaults (5 -> hidden -> 3
`eqsnn.LIF` layers with `adjoint=eqsnn.EventProp()` on the window scan, one spike per
neuron, cross-entropy on first-spike times, Adam, float32), trained on Yin-Yang batches.
For every device count `n` a fresh process builds a mesh of `n` devices
(`eqsnn.training.data_parallel_mesh`), replicates the model and times
`train_step(..., mesh=mesh)` on a chain of batches (each step takes the previous step's
model; the batch transfer and split are part of the step):

- **compile**: the first step (tracing, XLA compilation, one run);
- **samples/s**: `rounds` rounds of `steps` steps after one warm-up step, each round
  ending in `jax.block_until_ready`; the median round's `steps * batch / seconds`
  (and the fastest round's);
- at one device also the step without a mesh (`mesh=None`), the cost of the sharded
  code path itself.

`--platform cpu` (default): process `n` runs with
`XLA_FLAGS=--xla_force_host_platform_device_count=n`: the forced host devices share the
machine's cores, so this checks the sharded path and its overhead, not a speed-up.
`--platform gpu`: meshes of the first `n` GPUs (counts above the number of GPUs are
skipped). With `--write`, the platform's table in the section "Data-parallel throughput"
of `benchmarks/RESULTS.md` is replaced (the other platform's table and other sections
are kept).
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._report import _cpu_model, eqsnn_version, merge_sections

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("RESULTS.md")
TITLE = "Data-parallel throughput"
PLATFORM_TITLES = {"cpu": "CPU, forced host devices", "gpu": "GPU"}


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=_csv_ints, default=[1, 2, 4])
    parser.add_argument("--batch-sizes", type=_csv_ints, default=[64, 256])
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--platform", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--write", action="store_true", help="update benchmarks/RESULTS.md")
    parser.add_argument("--json", type=Path, help="save the records")
    parser.add_argument("--from-json", type=Path, help="render saved records, measure nothing")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)  # one device count
    return parser.parse_args(argv)


# --- One process, one device count ---------------------------------------------------------


def _network(cfg_args: list[str]):
    """The Yin-Yang example's network, loss and optimiser (its own code, its defaults)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import _common
    import jax
    import yinyang

    cfg = yinyang.build_parser().parse_args(cfg_args)  # the options only: no run folder
    network = _common.build_network(cfg, 5, 3, key=jax.random.key(cfg.seed))
    return cfg, network, _common.make_sample_loss(cfg), _common.make_optimiser(cfg, 100)


def _time_rounds(step, model, opt_state, batches, steps: int, rounds: int) -> list[float]:
    import jax

    seconds, i = [], 0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(steps):
            model, opt_state, loss, _ = step(model, opt_state, batches[i % len(batches)])
            i += 1
        jax.block_until_ready((model, loss))
        seconds.append(time.perf_counter() - start)
    return seconds


def measure(n_devices: int, args: argparse.Namespace) -> list[dict]:
    """Records for `n_devices` devices, every batch size (and without a mesh at 1 device)."""
    import equinox as eqx
    import jax

    from eqsnn import datasets, training

    available = jax.devices()
    if n_devices > len(available):
        return [dict(devices=n_devices, skipped=f"only {len(available)} device(s)")]
    mesh = training.data_parallel_mesh(available[:n_devices])
    cfg, network, sample_loss, optimiser = _network(["--hidden", str(args.hidden)])
    records = []
    for batch_size in args.batch_sizes:
        data = datasets.yinyang(jax.random.key(0), batch_size * 8)
        batches = list(datasets.batches(data, batch_size, key=jax.random.key(1)))
        for with_mesh in [True, False] if n_devices == 1 else [True]:
            use = mesh if with_mesh else None
            step = training.make_step(sample_loss, optimiser, mesh=use)
            model, opt_state = network, optimiser.init(eqx.filter(network, eqx.is_array))
            if with_mesh:
                model, opt_state = training.replicate((model, opt_state), mesh)
            start = time.perf_counter()
            model, opt_state, loss, _ = step(model, opt_state, batches[0])
            jax.block_until_ready(loss)
            compile_s = time.perf_counter() - start
            model, opt_state, _, _ = step(model, opt_state, batches[1])  # warm-up
            seconds = _time_rounds(step, model, opt_state, batches, args.steps, args.rounds)
            rates = [args.steps * batch_size / s for s in seconds]
            records.append(
                dict(
                    devices=n_devices,
                    mesh=with_mesh,
                    batch=batch_size,
                    hidden=cfg.hidden,
                    compile_s=compile_s,
                    samples_per_s=statistics.median(rates),
                    best_samples_per_s=max(rates),
                    step_ms=1e3 * statistics.median(seconds) / args.steps,
                    loss=float(loss),
                    device_kind=available[0].device_kind,
                    platform=available[0].platform,
                )
            )
    return records


# --- The driver ---------------------------------------------------------------------------------


def _run_worker(n: int, args: argparse.Namespace, argv: list[str]) -> list[dict]:
    env = dict(os.environ)
    if args.platform == "cpu":
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
        env["JAX_PLATFORMS"] = "cpu"
    command = [sys.executable, "-m", "benchmarks.sharding", *argv, "--worker", str(n)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode:
        return [dict(devices=n, skipped=f"failed: {result.stderr.strip()[-300:]}")]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _table(records: list[dict]) -> str:
    base = {r["batch"]: r["samples_per_s"] for r in records if r.get("devices") == 1 and r["mesh"]}
    lines = [
        "| devices | batch | path | samples/s (median) | fastest | ms/step | vs 1 device "
        "| compile (s) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(records, key=lambda r: (r.get("batch", 0), r["devices"], not r.get("mesh"))):
        if "skipped" in r:
            lines.append(f"| {r['devices']} | | skipped: {r['skipped']} | | | | | |")
            continue
        path = "mesh" if r["mesh"] else "no mesh"
        ratio = r["samples_per_s"] / base[r["batch"]] if r["batch"] in base else float("nan")
        lines.append(
            f"| {r['devices']} | {r['batch']} | {path} | {r['samples_per_s']:.0f} | "
            f"{r['best_samples_per_s']:.0f} | {r['step_ms']:.1f} | {ratio:.2f}x | "
            f"{r['compile_s']:.1f} |"
        )
    return "\n".join(lines)


def _machine(args, meta: dict) -> str:
    done = [r for r in meta["records"] if "skipped" not in r]
    kind = f"{done[0]['platform']}:{done[0]['device_kind']}" if done else "unknown"
    lines = [
        f"- Machine: {meta['cpu']}, {meta['cores']} logical cores; devices: {kind}",
        f"- eqsnn {meta['version']}; command: `{meta['command']}`",
        f"- Date: {meta['started']} (UTC start); load average at start {meta['load']}",
        f"- Network: `examples/yinyang.py` defaults, hidden {args.hidden}, float32; "
        f"{args.rounds} rounds of {args.steps} steps per point",
    ]
    if args.platform == "cpu":
        lines.append(
            f"- The forced host devices share the {meta['cores']} cores: more devices can at "
            "best put cores to work that one device leaves idle. This checks the sharded "
            "path and its overhead; it says nothing about scaling over real devices."
        )
    if meta["busy"]:
        lines.append(
            "- **Loaded machine**: other work ran alongside (load average above half the "
            "core count), so the numbers are noisy, and the device counts, each measured in "
            "its own process at a different time, saw different load."
        )
    return "\n".join(lines)


def render(args, meta: dict) -> str:
    return f"{_machine(args, meta)}\n\n{_table(meta['records'])}"


def write_results(platform: str, body: str, path: Path = RESULTS) -> None:
    """Replace this platform's `###` block of the section, keep the other platform's."""
    text = path.read_text() if path.exists() else ""
    old = ""
    if f"## {TITLE}" in text:
        old = text.split(f"## {TITLE}", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for part in old.split("\n### ")[1:]:
        title, _, content = part.partition("\n")
        blocks[title.strip()] = content.strip()
    blocks[PLATFORM_TITLES[platform]] = body
    intro = (
        "Samples per second of `eqsnn.training.train_step` with a `mesh`, the Yin-Yang "
        "example's network (`python -m benchmarks.sharding`; see its docstring and the "
        "how-to *Multiple devices and hosts*)."
    )
    ordered = [t for t in PLATFORM_TITLES.values() if t in blocks]
    section = intro + "".join(f"\n\n### {t}\n\n{blocks[t]}" for t in ordered)
    path.write_text(merge_sections(text, {TITLE: section}))


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker is not None:
        print(json.dumps(measure(args.worker, args)))
        return
    if args.from_json is not None:
        meta = json.loads(args.from_json.read_text())
        args = argparse.Namespace(**{**vars(args), **meta["args"], "write": args.write})
    else:
        load = os.getloadavg()
        meta = dict(
            started=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
            version=eqsnn_version(),
            cpu=_cpu_model(),
            cores=os.cpu_count(),
            load=", ".join(f"{x:.1f}" for x in load),
            command="python -m benchmarks.sharding " + " ".join(argv),
            args={
                k: v
                for k, v in vars(args).items()
                if k in ("devices", "batch_sizes", "hidden", "steps", "rounds", "platform")
            },
            records=[],
        )
        for n in args.devices:
            print(f"{n} device(s) ...", file=sys.stderr, flush=True)
            meta["records"] += _run_worker(n, args, [a for a in argv if a != "--write"])
        meta["busy"] = max(load[0], os.getloadavg()[0]) > (os.cpu_count() or 1) / 2
    if args.json is not None:
        args.json.write_text(json.dumps(meta, indent=1))
    body = render(args, meta)
    print(body)
    if args.write:
        write_results(args.platform, body)


if __name__ == "__main__":
    main()
