"""The training loop of the examples: checkpoints and saved models, revival of silent
neurons, progress bar, the per-epoch evaluation, the command-line run and --evaluate."""

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import _cli
import _plots
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import (
    Metrics,
    Network,
    build_network,
    bump,
    learning_rate,
    make_optimiser,
    make_sample_loss,
    trainable,
)

from eqsnn import datasets, training

# --- Checkpoints and saved models ----------------------------------------------------------


def save_checkpoint(out: Path, network, opt_state, averaged, cfg, history: list[dict]) -> None:
    """`checkpoint.eqx` (network, optimiser state and averaged network) and
    `checkpoint.json` (epoch, history, options); each is written to a temporary file first,
    so a crash keeps the old pair."""
    out.mkdir(parents=True, exist_ok=True)
    eqx.tree_serialise_leaves(out / "checkpoint.eqx.tmp", (network, opt_state, averaged))
    info = {"epoch": len(history), "config": _cli.settings(cfg), "history": history}
    (out / "checkpoint.json.tmp").write_text(json.dumps(info, indent=1))
    (out / "checkpoint.eqx.tmp").replace(out / "checkpoint.eqx")
    (out / "checkpoint.json.tmp").replace(out / "checkpoint.json")


def save_models(out: Path, network: Network, cfg, history: list[dict]) -> None:
    """`model-last.eqx` after every epoch, and `model-best.eqx` after an epoch whose
    validation accuracy beats every earlier one: the public model (`network.to_model()`)
    with the run's settings, loadable by `eqsnn.training.load` in any script."""
    row = history[-1]
    hyperparameters = {
        "settings": _cli.settings(cfg),
        "epoch": row["epoch"],
        "validation_accuracy": row.get("validation_accuracy"),
        "test_accuracy": row["test_accuracy"],
    }
    model = network.to_model()
    training.save(out / "model-last.eqx", model, hyperparameters=hyperparameters)
    if row.get("validation_accuracy") is None:
        return
    earlier = [r.get("validation_accuracy") for r in history[:-1]]
    earlier = [a for a in earlier if a is not None]
    if row["validation_accuracy"] > max(earlier, default=-1.0):
        training.save(out / "model-best.eqx", model, hyperparameters=hyperparameters)


def load_checkpoint(out: Path, network, opt_state):
    """`(network, opt_state, averaged)` from `checkpoint.eqx`; `network` and `opt_state`,
    built with the saved options, give the structure. A checkpoint of an earlier version
    holds no averaged network: the averaging restarts from the saved network."""
    path = out / "checkpoint.eqx"
    try:
        return eqx.tree_deserialise_leaves(path, (network, opt_state, network))
    except Exception:  # the file ends early: the (network, opt_state) of an earlier version
        network, opt_state = eqx.tree_deserialise_leaves(path, (network, opt_state))
        return network, opt_state, network


@eqx.filter_jit
def average(averaged, network, decay):
    """The exponential moving average of the weights: `decay * averaged + (1 - decay) *
    network`, leaf by leaf (the leaves that are not floating-point arrays stay those of
    `averaged`)."""
    mean, rest = eqx.partition(averaged, eqx.is_inexact_array)
    new = eqx.filter(network, eqx.is_inexact_array)
    mean = jax.tree.map(lambda a, n: decay * a + (1 - decay) * n, mean, new)
    return eqx.combine(mean, rest)


# --- The training loop -------------------------------------------------------------------


class Recipe(NamedTuple):
    """The parts of a run that an example may replace; the defaults are `_common`'s.

    - `build(cfg, n_features, n_classes, *, key) -> Network`: the initial network.
    - `optimiser(cfg, steps_per_epoch) -> optax.GradientTransformation`.
    - `constrain(network) -> network`, applied after every optimiser step (e.g. clamping
      trained delays to >= 0), or `None`.
    - `models`: whether to write `model-last.eqx` and `model-best.eqx` (`False` where
      `eqsnn.training.save` cannot describe the network; the checkpoint is written anyway).
    """

    build: Callable = build_network
    optimiser: Callable = make_optimiser
    constrain: Callable | None = None
    models: bool = True


DEFAULT_RECIPE = Recipe()
"""The recipe of the Yin-Yang and digits examples."""


def revive(cfg, network, aux: Metrics, scale: float = 1.0):
    """Wake neurons that fell silent: a neuron that never spikes gets no gradient.

    A hidden neuron that was silent in at least a fraction `cfg.quiet_hidden` of the last
    batch's samples gets `scale * cfg.bump` added to each of its incoming weights. If output
    neuron `k` stayed silent for more than a fraction `cfg.quiet_output` of the samples of
    class `k`, its incoming weights grow by the same amount. `scale` is the learning
    rate's current fraction of its peak, so that the revival, like the optimiser's steps,
    fades with the schedule. Returns `(network, revived hidden neurons, revived outputs)`."""
    if not cfg.bump:
        return network, 0, 0
    hidden = np.asarray(aux.silent_hidden) >= cfg.quiet_hidden
    missed = np.asarray(aux.missed) * len(aux.missed)  # ~ per class, for balanced classes
    output = missed > cfg.quiet_output
    if not hidden.any() and not output.any():
        return network, 0, 0
    size = np.float32(cfg.bump * scale)
    network = bump(network, jnp.asarray(hidden * size), jnp.asarray(output * size))
    return network, int(hidden.sum()), int(output.sum())


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


EVALUATION_BATCH = 128
"""Samples per evaluation call: on a 2-core CPU, 1000 Yin-Yang test samples take 0.08 s in
batches of 64 or 128 and 0.15 s in batches of 256."""


def fit(
    cfg,
    network,
    train,
    test,
    *,
    history,
    validation=None,
    augment=None,
    log=print,
    recipe: Recipe = DEFAULT_RECIPE,
):
    """Train `network` for the remaining epochs of `cfg.epochs`; evaluate on `validation`
    (if any) and `test` after every epoch; checkpoint to `cfg.out` and save the last and
    the best model (by validation accuracy). Returns `(averaged, opt_state, history)`.

    What is evaluated, saved and returned is `averaged`, the exponential moving average of
    the weights over the steps with decay `cfg.average` (Polyak averaging; `network` itself
    for `cfg.average == 0`; starts as a copy of `network`). The optimiser steps `network`,
    whose state after the last step `checkpoint.eqx` keeps. With `cfg.resume` the network,
    optimiser state and average continue from `cfg.out`'s checkpoint (`network` gives the
    structure).

    `augment(rng, batch) -> batch`, if given, transforms every training batch (a
    `numpy.random.Generator` seeded by `cfg.seed` and the epoch: a resumed run draws the
    same transformations).

    The batches are split over the devices of `device_mesh(cfg)` (one device: the same
    code path); `network` and `opt_state` are replicated on each. `recipe` gives the
    optimiser, the constraint applied after every step and whether models are saved."""
    sample_loss = make_sample_loss(cfg)
    steps = len(train) // cfg.batch_size
    optimiser = recipe.optimiser(cfg, steps)
    schedule = learning_rate(cfg, steps)
    opt_state, averaged = optimiser.init(trainable(network)), network
    if cfg.resume:
        network, opt_state, averaged = load_checkpoint(cfg.out, network, opt_state)
    mesh = device_mesh(cfg)
    network, opt_state, averaged = training.replicate((network, opt_state, averaged), mesh)
    key = jax.random.fold_in(jax.random.key(cfg.seed), 1)  # the shuffling stream
    start, wall0 = time.perf_counter(), history[-1]["wall_s"] if history else 0.0
    cpu_start, cpu0 = time.process_time(), history[-1]["cpu_s"] if history else 0.0
    for epoch in range(len(history), cfg.epochs):
        bar = _progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", not cfg.no_progress)
        sums, train_s, revived = np.zeros(4), 0.0, np.zeros(2, int)
        batches = datasets.batches(train, cfg.batch_size, key=jax.random.fold_in(key, epoch))
        rng = np.random.default_rng([cfg.seed, epoch])
        for i, batch in enumerate(batches):
            if augment is not None:
                batch = augment(rng, batch)
            tick = time.perf_counter()  # the step, until its loss is on the host
            network, opt_state, loss, aux = training.train_step(
                network, opt_state, batch, sample_loss=sample_loss, optimiser=optimiser, mesh=mesh
            )
            if recipe.constrain is not None:
                network = recipe.constrain(network)
            loss = float(loss)
            train_s += time.perf_counter() - tick
            # aux.dropped is a batch mean: times the batch size, the spikes lost in it.
            lost = float(aux.dropped) * cfg.batch_size
            sums += [loss, float(aux.accuracy), float(aux.spikes), lost]
            scale = float(schedule(epoch * steps + i)) / cfg.lr
            network, *counts = revive(cfg, network, aux, scale)
            revived += counts
            averaged = average(averaged, network, cfg.average) if cfg.average else network
            if bar is not None:
                loss_, acc, spk, _ = sums / (i + 1)
                bar.set_postfix(
                    loss=f"{loss_:.3f}", acc=f"{acc:.1%}", spikes=f"{spk:.0f}",
                    dropped=f"{sums[3]:.0f}",
                )  # fmt: skip
                bar.update()
        if bar is not None:
            bar.close()
        checked = (None, None)
        evaluate = dict(sample_loss=sample_loss, mesh=mesh, batch_size=EVALUATION_BATCH)
        test_loss, test_aux = training.evaluate(averaged, test, **evaluate)
        if validation is not None:
            checked = training.evaluate(averaged, validation, **evaluate)
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
            revived_hidden=int(revived[0]),  # hidden neurons bumped, summed over the steps
            revived_output=int(revived[1]),  # output neurons bumped, summed over the steps
            validation_loss=checked[0],
            validation_accuracy=None if checked[1] is None else checked[1].accuracy,
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
            f"train {row['train_accuracy']:.2%}  {_validation(row)}"
            f"test {row['test_accuracy']:.2%}  "
            f"spikes/sample {row['test_spikes']:.1f}  dropped {row['train_dropped']} train / "
            f"{row['test_dropped']} test  wall {row['wall_s']:.0f} s"
        )
        if cfg.out is not None:
            save_checkpoint(cfg.out, network, opt_state, averaged, cfg, history)
            if recipe.models:
                save_models(cfg.out, averaged, cfg, history)
        if cfg.stop_at is not None and row["test_accuracy"] >= cfg.stop_at:
            break
    return averaged, opt_state, history


def _validation(row: dict) -> str:
    accuracy = row.get("validation_accuracy")
    return "" if accuracy is None else f"validation {accuracy:.2%}  "


def summary(history: list[dict], target: float = 0.97) -> str:
    """The final summary line: test accuracy, wall time, time to `target` accuracy."""
    last = history[-1]
    reached = next((r for r in history if r["test_accuracy"] >= target), None)
    when = (
        f"{target:.0%} at epoch {reached['epoch']} ({reached['wall_s']:.0f} s)"
        if reached
        else f"{target:.0%} not reached"
    )
    checked = [r for r in history if r.get("validation_accuracy") is not None]
    best = max(checked, key=lambda r: r["validation_accuracy"], default=None)
    chosen = (
        f"best validation accuracy {best['validation_accuracy']:.2%} at epoch {best['epoch']} "
        f"(test {best['test_accuracy']:.2%}: model-best.eqx)"
        if best
        else "no validation set"
    )
    return (
        f"test accuracy {last['test_accuracy']:.2%} after {last['epoch']} epochs; {chosen}; "
        f"wall {last['wall_s']:.0f} s incl. compile; {when}; "
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


def describe_loss(cfg) -> str:
    parts = []
    if cfg.ttfs_weight:
        parts.append(
            f"{cfg.ttfs_weight:g} x ttfs(T={cfg.temperature:g}, early={cfg.early_weight:g})"
        )
    if cfg.mse_weight:
        parts.append(f"{cfg.mse_weight:g} x mse")
    return " + ".join(parts) or "none"


def run(
    cfg,
    history,
    data,
    title: str,
    plot=None,
    target: float = 0.97,
    augment=None,
    recipe: Recipe = DEFAULT_RECIPE,
) -> list[dict]:
    """Build (or resume) the network, train, save the history and plots, print a summary.

    `data` is `(train, validation, test)` (`validation` may be `None`); `plot(network, out)`
    draws the example's own plots; `augment` transforms the training batches and `recipe`
    replaces parts of the training (see `fit`)."""
    start = time.perf_counter()
    train, validation, test = data
    network = recipe.build(cfg, train.n_features, train.n_classes, key=jax.random.key(cfg.seed))
    sizes = "-".join(map(str, [train.n_features * cfg.duplication, cfg.hidden, train.n_classes]))
    print(
        f"{title}: {describe_data(data)}; {sizes} {cfg.style} network, {cfg.method} gradients, "
        f"loss {describe_loss(cfg)}, lr {cfg.lr}, batch {cfg.batch_size}, seed {cfg.seed}, "
        f"{'float64' if cfg.x64 else 'float32'}"
        + (f"; resuming after epoch {len(history)}" if history else "")
    )
    network, _, history = fit(
        cfg,
        network,
        train,
        test,
        history=history,
        validation=validation,
        augment=augment,
        recipe=recipe,
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


def describe_data(data) -> str:
    """`5000 train / 500 validation / 1000 test samples`."""
    names = ("train", "validation", "test")
    return (
        " / ".join(f"{len(d)} {n}" for n, d in zip(names, data, strict=True) if d is not None)
        + " samples"
    )


def evaluate_saved(cfg, test, backend=None) -> dict:
    """--evaluate: the test accuracy of the model saved in `cfg.evaluate` (settings and
    data as saved with it; `backend` for hardware layers)."""
    try:
        model = training.load(cfg.evaluate, backend=backend)
    except (OSError, ValueError) as error:
        raise SystemExit(f"--evaluate: {error}") from None
    network = Network.from_model(model)
    loss, aux = training.evaluate(network, test, sample_loss=make_sample_loss(cfg))
    saved = training.load_hyperparameters(cfg.evaluate)
    result = dict(test_loss=loss, test_accuracy=aux.accuracy, test_spikes=aux.spikes)
    print(
        f"{cfg.evaluate} (saved after epoch {saved.get('epoch')}): test accuracy "
        f"{aux.accuracy:.2%} on {len(test)} samples, loss {loss:.4f}, "
        f"{aux.spikes:.1f} spikes/sample, {round(aux.dropped * len(test))} dropped"
    )
    return result
