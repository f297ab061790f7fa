"""The training loop of the examples: checkpoints, revival of silent neurons, progress bar,
the per-epoch evaluation and the command-line run."""

import argparse
import json
import time
from pathlib import Path

import _plots
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import Metrics, Network, bump, make_optimiser, make_sample_loss, trainable

from eqsnn import datasets, training

# --- Checkpoints -------------------------------------------------------------------------

RUN_SETTINGS = ("epochs", "out", "resume", "stop_at", "no_plots", "no_progress", "devices")
"""Options that may change on --resume; every other option comes from the checkpoint."""


def save_checkpoint(out: Path, network, opt_state, cfg, history: list[dict]) -> None:
    """`checkpoint.eqx` (network and optimiser state) and `checkpoint.json` (epoch, history,
    options); each is written to a temporary file first, so a crash keeps the old pair."""
    out.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(out / "checkpoint.eqx.tmp", (network, opt_state))
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()}
    info = {"epoch": len(history), "config": settings, "history": history}
    (out / "checkpoint.json.tmp").write_text(json.dumps(info, indent=1))
    (out / "checkpoint.eqx.tmp").replace(out / "checkpoint.eqx")
    (out / "checkpoint.json.tmp").replace(out / "checkpoint.json")


def load_settings(out: Path, cfg: argparse.Namespace) -> tuple[argparse.Namespace, list[dict]]:
    """The options saved in `out` (with this run's RUN_SETTINGS) and the history so far."""
    path = out / "checkpoint.json"
    if not path.exists():
        raise SystemExit(f"--resume: no checkpoint in {out} (expected {path}).")
    info = json.loads(path.read_text())
    saved = {**vars(cfg), **info["config"]}  # options newer than the checkpoint: this run's
    saved.update({k: getattr(cfg, k) for k in RUN_SETTINGS})
    return argparse.Namespace(**saved), info["history"]


def load_checkpoint(out: Path, network, opt_state):
    """Fill `(network, opt_state)`, built with the saved options, from `checkpoint.eqx`."""
    return eqx.tree_deserialise_leaves(out / "checkpoint.eqx", (network, opt_state))


# --- The training loop -------------------------------------------------------------------


def revive(cfg, network, aux: Metrics):
    """Wake neurons that fell silent: a neuron that never spikes gets no gradient.

    If more than `cfg.quiet_hidden` of the hidden neurons were quiet in the last batch, all
    weights into the hidden layer grow by `cfg.bump` (as in Wunderlich & Pehle's EventProp
    training). If output neuron `k` stayed silent for more than a fraction `cfg.quiet_output`
    of the samples of class `k`, its incoming weights grow by `cfg.bump`."""
    if not cfg.bump:
        return network
    hidden = cfg.bump if float(aux.quiet_hidden) > cfg.quiet_hidden else 0.0
    missed = np.asarray(aux.missed) * len(aux.missed)  # ~ per class, for balanced classes
    output = np.where(missed > cfg.quiet_output, cfg.bump, 0.0).astype(np.float32)
    if not hidden and not output.any():
        return network
    return bump(network, jnp.asarray(hidden, jnp.float32), jnp.asarray(output))


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)


def device_mesh(cfg):
    """The mesh of the first `cfg.devices` local devices (all if None), for
    data-parallel training; the batch size must be divisible by the device count."""
    available = jax.local_devices()
    n = len(available) if cfg.devices is None else cfg.devices
    if not 1 <= n <= len(available):
        raise SystemExit(f"--devices {n}: this process has {len(available)} device(s).")
    if cfg.batch_size % n:
        raise SystemExit(
            f"--batch-size {cfg.batch_size} does not split evenly over {n} devices; "
            f"use a multiple of {n} (or --devices)."
        )
    return training.data_parallel_mesh(available[:n])


def fit(cfg, network, train, test, *, history: list[dict], opt_state=None, log=print):
    """Train `network` for the remaining epochs of `cfg.epochs`; evaluate on `test` after
    every epoch, checkpoint to `cfg.out`. Returns `(network, opt_state, history)`.

    The batches are split over the devices of `device_mesh(cfg)` (one device: the same
    code path); `network` and `opt_state` are replicated on each."""
    sample_loss = make_sample_loss(cfg)
    steps = len(train) // cfg.batch_size
    optimiser = make_optimiser(cfg, steps)
    if opt_state is None:
        opt_state = optimiser.init(trainable(network))
    mesh = device_mesh(cfg)
    network, opt_state = training.replicate((network, opt_state), mesh)
    key = jax.random.fold_in(jax.random.key(cfg.seed), 1)  # the shuffling stream
    start, wall0 = time.perf_counter(), history[-1]["wall_s"] if history else 0.0
    cpu_start, cpu0 = time.process_time(), history[-1]["cpu_s"] if history else 0.0
    for epoch in range(len(history), cfg.epochs):
        bar = _progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", not cfg.no_progress)
        sums, train_s = np.zeros(4), 0.0
        batches = datasets.batches(train, cfg.batch_size, key=jax.random.fold_in(key, epoch))
        for i, batch in enumerate(batches):
            tick = time.perf_counter()  # the step, until its loss is on the host
            network, opt_state, loss, aux = training.train_step(
                network, opt_state, batch, sample_loss=sample_loss, optimiser=optimiser, mesh=mesh
            )
            loss = float(loss)
            train_s += time.perf_counter() - tick
            # aux.dropped is a batch mean: times the batch size, the spikes lost in it.
            lost = float(aux.dropped) * cfg.batch_size
            sums += [loss, float(aux.accuracy), float(aux.spikes), lost]
            network = revive(cfg, network, aux)
            if bar is not None:
                loss_, acc, spk, _ = sums / (i + 1)
                bar.set_postfix(
                    loss=f"{loss_:.3f}", acc=f"{acc:.1%}", spikes=f"{spk:.0f}",
                    dropped=f"{sums[3]:.0f}",
                )  # fmt: skip
                bar.update()
        if bar is not None:
            bar.close()
        test_loss, test_aux = training.evaluate(network, test, sample_loss=sample_loss, mesh=mesh)
        row = dict(
            epoch=epoch + 1,
            wall_s=wall0 + time.perf_counter() - start,
            cpu_s=cpu0 + time.process_time() - cpu_start,  # all threads: 2 cores, up to 2x wall
            devices=mesh.size,
            samples_per_s=steps * cfg.batch_size / train_s,  # training steps only
            train_loss=sums[0] / steps,
            train_accuracy=sums[1] / steps,
            train_spikes=sums[2] / steps,
            train_dropped=round(sums[3]),  # spikes lost by any layer, summed over the epoch
            test_loss=test_loss,
            test_accuracy=test_aux.accuracy,
            test_spikes=test_aux.spikes,
            test_quiet_hidden=test_aux.quiet_hidden,
            test_quiet_output=test_aux.quiet_output,
            test_missed=float(np.sum(test_aux.missed)),
            test_dropped=round(test_aux.dropped * len(test)),
        )
        history.append(row)
        log(
            f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  "
            f"train {row['train_accuracy']:.2%}  test {row['test_accuracy']:.2%}  "
            f"spikes/sample {row['test_spikes']:.1f}  dropped {row['train_dropped']} train / "
            f"{row['test_dropped']} test  wall {row['wall_s']:.0f} s"
        )
        if cfg.out is not None:
            save_checkpoint(cfg.out, network, opt_state, cfg, history)
        if cfg.stop_at is not None and row["test_accuracy"] >= cfg.stop_at:
            break
    return network, opt_state, history


def summary(history: list[dict], target: float = 0.97) -> str:
    """The final summary line: test accuracy, wall time, time to `target` accuracy."""
    last = history[-1]
    reached = next((r for r in history if r["test_accuracy"] >= target), None)
    when = (
        f"{target:.0%} at epoch {reached['epoch']} ({reached['wall_s']:.0f} s)"
        if reached
        else f"{target:.0%} not reached"
    )
    best = max(r["test_accuracy"] for r in history)
    return (
        f"test accuracy {last['test_accuracy']:.2%} after {last['epoch']} epochs "
        f"(best {best:.2%}); wall {last['wall_s']:.0f} s incl. compile; {when}; "
        + throughput(history)
        + "; "
        + dropped_summary(history)
    )


def dropped_summary(history: list[dict]) -> str:
    """Spikes lost by any layer (`Spikes.dropped` of the output), over all epochs."""
    rows = [r for r in history if "train_dropped" in r]  # older checkpoints lack it
    if not rows:
        return "dropped spikes not recorded"
    lost = sum(r["train_dropped"] for r in rows)
    worst = max(rows, key=lambda r: r["train_dropped"])
    if not lost:
        return f"no spike dropped in {len(rows)} epochs"
    return (
        f"{lost} spikes dropped in training over {len(rows)} epochs (most in epoch "
        f"{worst['epoch']}: {worst['train_dropped']}); raise the spike budgets"
    )


def throughput(history: list[dict]) -> str:
    """Training samples per second: median over the epochs after the first (whose first
    step compiles), or the first epoch's if it is the only one."""
    rows = [r for r in history if "samples_per_s" in r]  # older checkpoints lack it
    if not rows:
        return "throughput not recorded"
    warm = [r for r in rows if r["epoch"] > 1] or rows
    rate = float(np.median([r["samples_per_s"] for r in warm]))
    note = "" if warm[0]["epoch"] > 1 else ", incl. compile"
    return f"{rate:.0f} samples/s on {rows[-1]['devices']} device(s){note}"


def setup_jax(cfg: argparse.Namespace) -> None:
    """float64 if asked for (float32 otherwise, JAX's default)."""
    jax.config.update("jax_enable_x64", bool(cfg.x64))


# --- The command-line run ------------------------------------------------------------------


def resume_settings(cfg: argparse.Namespace) -> tuple[argparse.Namespace, list[dict]]:
    """With --resume, the saved options and history; else `cfg` and an empty history."""
    if not cfg.resume:
        return cfg, []
    saved, history = load_settings(cfg.out, cfg)
    saved.out = Path(saved.out)
    return saved, history


def describe_loss(cfg) -> str:
    parts = []
    if cfg.ttfs_weight:
        parts.append(
            f"{cfg.ttfs_weight:g} x ttfs(T={cfg.temperature:g}, early={cfg.early_weight:g})"
        )
    if cfg.mse_weight:
        parts.append(f"{cfg.mse_weight:g} x mse")
    return " + ".join(parts) or "none"


def run(cfg, history, train, test, title: str, plot=None, target: float = 0.97) -> list[dict]:
    """Build (or resume) the network, train, save the history and plots, print a summary.

    `plot(network, out)` draws the example's own plots."""
    start = time.perf_counter()
    network = Network(cfg, train.n_features, train.n_classes, key=jax.random.key(cfg.seed))
    opt_state = None
    if cfg.resume:
        optimiser = make_optimiser(cfg, len(train) // cfg.batch_size)
        network, opt_state = load_checkpoint(cfg.out, network, optimiser.init(trainable(network)))
    sizes = "-".join(map(str, [train.n_features * cfg.duplication, cfg.hidden, train.n_classes]))
    print(
        f"{title}: {len(train)} train / {len(test)} test samples; {sizes} {cfg.style} network, "
        f"{cfg.method} gradients, loss {describe_loss(cfg)}, lr {cfg.lr}, batch {cfg.batch_size}, "
        f"seed {cfg.seed}, {'float64' if cfg.x64 else 'float32'}"
        + (f"; resuming after epoch {len(history)}" if history else "")
    )
    network, opt_state, history = fit(
        cfg, network, train, test, history=history, opt_state=opt_state
    )
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "history.json").write_text(json.dumps(history, indent=1))
    if not cfg.no_plots:
        _plots.plot_curves(history, cfg.out / "curves.png")
        if plot is not None:
            plot(network, cfg.out)
    print(summary(history, target), f"(this session {time.perf_counter() - start:.0f} s)")
    print(f"outputs in {cfg.out}/")
    return history
