"""Shared parts of the training examples: the network, the loop, checkpoints and plots.

`examples/yinyang.py` and `examples/digits.py` differ only in their data and settings;
everything they share lives here. tqdm and matplotlib are imported where they are used.
"""

import argparse
import enum
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

import eqsnn
from eqsnn import datasets, training
from eqsnn.encode import spatio_temporal_encode, target_temporal_encode
from eqsnn.loss import accuracy, first_spike_times, mse_loss, predict, ttfs_loss


class Method(enum.Enum):
    """How the gradients are computed."""

    EVENTPROP = "eventprop"  # the EventProp adjoint (eqsnn.EventPropLIF)
    AUTODIFF = "autodiff"  # jax.grad through the exact simulation (eqsnn.LIF)


class Style(enum.Enum):
    """Network architecture."""

    FEEDFORWARD = "feedforward"  # two feed-forward layers: inputs -> hidden -> output
    RECURRENT = "recurrent"  # one RecurrentLIF [hidden, output], all-to-all weights from 0


def has_eventprop() -> bool:
    return hasattr(eqsnn, "EventPropLIF")


def layer_classes(method: Method, style: Style):
    """The eqsnn layer class for a gradient method and a network style."""
    names = {
        (Method.AUTODIFF, Style.FEEDFORWARD): "LIF",
        (Method.EVENTPROP, Style.FEEDFORWARD): "EventPropLIF",
        (Method.AUTODIFF, Style.RECURRENT): "RecurrentLIF",
        (Method.EVENTPROP, Style.RECURRENT): "RecurrentEventPropLIF",
    }
    name = names[method, style]
    if not hasattr(eqsnn, name):
        raise SystemExit(
            f"--method {method.value} --style {style.value} needs eqsnn.{name}, which this "
            "version of eqsnn does not have yet."
        )
    return getattr(eqsnn, name)


class Metrics(NamedTuple):
    """Per-sample metrics, averaged over batches by eqsnn.training."""

    accuracy: jax.Array
    spikes: jax.Array  # spikes of all layers in this sample
    quiet_hidden: jax.Array  # fraction of hidden neurons without a spike
    quiet_output: jax.Array  # fraction of output neurons without a spike
    missed: jax.Array  # one-hot of the label if the correct output neuron did not spike


class Network(eqx.Module):
    """Latency encoder, then LIF layers; returns (input, hidden, output) spikes of one sample."""

    layers: tuple[eqx.Module, ...]
    n_hidden: int = eqx.field(static=True)
    n_classes: int = eqx.field(static=True)
    t_late: float = eqx.field(static=True)
    duplication: int | None = eqx.field(static=True)

    def __init__(self, cfg: argparse.Namespace, n_features: int, n_classes: int, *, key):
        method, style = Method(cfg.method), Style(cfg.style)
        params = lif_parameters(cfg)
        t_max = cfg.t_max_syn * cfg.tau_syn
        d = cfg.duplication if cfg.duplication > 1 else None
        n_in = n_features * (d or 1)
        hidden_init = dict(mean=cfg.w_hidden[0] / (d or 1), std=cfg.w_hidden[1] / (d or 1))
        layer_class = layer_classes(method, style)
        k_hidden, k_out = jax.random.split(key)
        if style is Style.FEEDFORWARD:
            hidden = layer_class(
                n_in,
                cfg.hidden,
                cfg.hidden,
                t_max,
                params,
                key=k_hidden,
                duplication=d,
                **hidden_init,
            )
            out = layer_class(
                cfg.hidden,
                n_classes,
                n_classes,
                t_max,
                params,
                key=k_out,
                mean=cfg.w_out[0],
                std=cfg.w_out[1],
            )
            self.layers = (hidden, out)
        else:
            self.layers = (
                layer_class(
                    n_in,
                    [cfg.hidden, n_classes],
                    cfg.hidden + n_classes,
                    t_max,
                    params,
                    key=key,
                    duplication=d,
                    mean=[hidden_init["mean"], cfg.w_out[0]],
                    std=[hidden_init["std"], cfg.w_out[1]],
                    connectivity=eqsnn.Connectivity.FULL,
                ),
            )
        self.n_hidden, self.n_classes = cfg.hidden, n_classes
        self.t_late, self.duplication = cfg.t_late_syn * cfg.tau_syn, d

    def __call__(self, features):
        spikes_in = spatio_temporal_encode(
            features, self.t_late, self.duplication, self.duplication is not None
        )
        if len(self.layers) == 2:
            hidden = self.layers[0](spikes_in)
            return spikes_in, hidden, self.layers[1](hidden)
        (layer,) = self.layers
        both = layer(spikes_in)
        return spikes_in, layer.population_spikes(both, 0), layer.population_spikes(both, 1)


@eqx.filter_jit
def bump(network: Network, hidden, output) -> Network:
    """Add `hidden` to every weight into the hidden neurons and `output[k]` to every weight
    from the hidden neurons to output neuron `k`: revives neurons that stopped spiking."""
    if len(network.layers) == 2:
        w_hidden, w_out = network.layers[0].weights.input, network.layers[1].weights.input
        return eqx.tree_at(
            lambda n: (n.layers[0].weights.input, n.layers[1].weights.input),
            network,
            (w_hidden + hidden, w_out + output),
        )
    h, w = network.n_hidden, network.layers[0].weights
    return eqx.tree_at(
        lambda n: (n.layers[0].weights.input, n.layers[0].weights.recurrent),
        network,
        (w.input.at[:, :h].add(hidden), w.recurrent.at[:h, h:].add(output)),
    )


def trainable(network):
    """The arrays of `network` that the optimiser sees."""
    return eqx.filter(network, eqx.is_array)


def lif_parameters(cfg: argparse.Namespace) -> eqsnn.LIFParameters:
    return eqsnn.LIFParameters(
        tau_syn=cfg.tau_syn, tau_mem=cfg.tau_mem, v_th=cfg.v_th, v_reset=cfg.v_reset
    )


def _quiet(spikes, n: int, t_max: float):
    return jnp.mean(first_spike_times(spikes, n, t_max=t_max) >= t_max)


def make_sample_loss(cfg: argparse.Namespace) -> training.SampleLoss:
    """`sample_loss(network, features, label) -> (loss, Metrics)` for `eqsnn.training`:
    `cfg.ttfs_weight` x cross-entropy (plus the early term) + `cfg.mse_weight` x MSE."""
    t_max, n_hidden = cfg.t_max_syn * cfg.tau_syn, cfg.hidden

    def sample_loss(network: Network, features, label):
        _, hidden, out = network(features)
        n = network.n_classes
        t_correct = first_spike_times(out, n, t_max=t_max)[label]
        missed = t_correct >= t_max
        loss = 0.0
        if cfg.ttfs_weight:
            ttfs = ttfs_loss(
                out, label, n, t_max=t_max, tau_mem=cfg.tau_syn, temperature=cfg.temperature
            )
            early = jnp.expm1(t_correct / cfg.early_tau)  # Goeltz et al. 2021
            # A silent correct neuron gets no gradient; the others would only be pushed
            # later, silencing the network. Skip the sample; `revive` wakes the neuron.
            loss = jnp.where(missed, 0.0, cfg.ttfs_weight * (ttfs + cfg.early_weight * early))
        if cfg.mse_weight:
            t_correct, t_wrong = cfg.t_correct_syn * cfg.tau_syn, cfg.t_wrong_syn * cfg.tau_syn
            targets = target_temporal_encode(label, n, t_correct, t_wrong)
            loss = loss + cfg.mse_weight * mse_loss(out, targets, t_max=t_max, tau_mem=cfg.tau_mem)
        correct = accuracy(out, label, n, t_max=t_max)
        n_spikes = (hidden.count() + out.count()).astype(correct.dtype)
        quiet_hidden = _quiet(hidden, n_hidden, t_max).astype(correct.dtype)
        quiet_output = _quiet(out, n, t_max).astype(correct.dtype)
        missed_one_hot = (jnp.arange(n) == label) & missed
        return loss, Metrics(
            correct, n_spikes, quiet_hidden, quiet_output, missed_one_hot.astype(correct.dtype)
        )

    return sample_loss


def make_optimiser(cfg: argparse.Namespace, steps_per_epoch: int):
    """Adam with a cosine (or constant) learning rate; the hidden layer's rate is
    `cfg.lr_hidden` times larger (its weights are larger), optionally clipped gradients."""
    if cfg.schedule == "cosine":
        lr = optax.cosine_decay_schedule(cfg.lr, cfg.epochs * steps_per_epoch, alpha=0.01)
    else:
        lr = optax.constant_schedule(cfg.lr)

    def adam(factor: float):
        clip = [] if cfg.clip is None else [optax.clip_by_global_norm(cfg.clip)]
        return optax.chain(*clip, optax.adam(lambda step: factor * lr(step)))

    transforms = {"hidden": adam(cfg.lr_hidden), "output": adam(1.0)}
    return optax.multi_transform(transforms, _layer_labels)


def _layer_labels(params):
    """ "hidden" for the weights into the hidden neurons, "output" for the others."""
    two_layers = len(params.layers) == 2

    def label(path, _):
        names = [getattr(k, "name", getattr(k, "idx", None)) for k in path]
        into_hidden = names[:2] == ["layers", 0] and (two_layers or names[-1] == "input")
        return "hidden" if into_hidden else "output"

    return jax.tree_util.tree_map_with_path(label, params)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options shared by the examples (each example sets its defaults)."""
    add = parser.add_argument
    add("--seed", type=int, default=0, help="seed of data, initial weights and shuffling")
    add("--epochs", type=int, help="training epochs")
    add("--hidden", type=int, help="hidden neurons")
    default_method = Method.EVENTPROP if has_eventprop() else Method.AUTODIFF
    add("--method", choices=[m.value for m in Method], default=default_method.value)
    add("--style", choices=[s.value for s in Style], default=Style.FEEDFORWARD.value)
    add("--ttfs-weight", type=float, default=1.0, help="weight of the cross-entropy loss")
    add("--mse-weight", type=float, default=0.0, help="weight of the MSE-to-targets loss")
    add("--lr", type=float, help="Adam learning rate (peak of the schedule)")
    add("--schedule", choices=["cosine", "constant"], default="cosine")
    add("--batch-size", type=int, default=64)
    add("--lr-hidden", type=float, default=2.0, help="hidden layer lr = this x --lr")
    add("--clip", type=float, help="clip the gradient to this global norm")
    add("--out", type=Path, help="output folder (checkpoint, history, plots)")
    add("--resume", action="store_true", help="continue from the checkpoint in --out")
    add("--stop-at", type=float, help="stop once the test accuracy reaches this fraction")
    add("--x64", action="store_true", help="float64 instead of float32")
    add("--no-plots", action="store_true", help="skip the PNG plots")
    add("--no-progress", action="store_true", help="no progress bar (one line per epoch)")
    add("--temperature", type=float, default=0.2, help="ttfs: temperature (x tau_syn)")
    add("--early-weight", type=float, default=3e-3, help="ttfs: weight of exp(t_correct/tau)")
    add("--early-tau", type=float, default=6.4e-3, help="ttfs: that tau in seconds")
    add("--bump", type=float, default=1e-3, help="weight bump that revives quiet neurons")
    add("--quiet-hidden", type=float, default=0.1, help="bump above this quiet fraction")
    add("--quiet-output", type=float, default=0.05, help="bump above this missed fraction")
    add("--duplication", type=int, default=1, help="copies of each input spike (own neurons)")
    for name, value in [("tau-syn", 5e-3), ("tau-mem", 1e-2), ("v-th", 1.0), ("v-reset", -1000.0)]:
        add(f"--{name}", type=float, default=value)
    # Times in units of tau_syn.
    add("--t-max-syn", type=float, default=4.0, help="t_max / tau_syn")
    add("--t-late-syn", type=float, default=2.0, help="latest input spike time / tau_syn")
    add("--t-correct-syn", type=float, default=0.8, help="mse target of the correct class")
    add("--t-wrong-syn", type=float, default=1.2, help="mse target of the other classes")
    add("--w-hidden", type=float, nargs=2, metavar=("MEAN", "STD"), help="hidden weights")
    add("--w-out", type=float, nargs=2, metavar=("MEAN", "STD"), help="output weights")


# --- Checkpoints -------------------------------------------------------------------------

RUN_SETTINGS = ("epochs", "out", "resume", "stop_at", "no_plots", "no_progress")
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


def fit(cfg, network, train, test, *, history: list[dict], opt_state=None, log=print):
    """Train `network` for the remaining epochs of `cfg.epochs`; evaluate on `test` after
    every epoch, checkpoint to `cfg.out`. Returns `(network, opt_state, history)`."""
    sample_loss = make_sample_loss(cfg)
    steps = len(train) // cfg.batch_size
    optimiser = make_optimiser(cfg, steps)
    if opt_state is None:
        opt_state = optimiser.init(trainable(network))
    key = jax.random.fold_in(jax.random.key(cfg.seed), 1)  # the shuffling stream
    start, wall0 = time.perf_counter(), history[-1]["wall_s"] if history else 0.0
    cpu_start, cpu0 = time.process_time(), history[-1]["cpu_s"] if history else 0.0
    for epoch in range(len(history), cfg.epochs):
        bar = _progress(steps, f"epoch {epoch + 1}/{cfg.epochs}", not cfg.no_progress)
        sums = np.zeros(3)
        batches = datasets.batches(train, cfg.batch_size, key=jax.random.fold_in(key, epoch))
        for i, batch in enumerate(batches):
            network, opt_state, loss, aux = training.train_step(
                network, opt_state, batch, sample_loss=sample_loss, optimiser=optimiser
            )
            sums += [float(loss), float(aux.accuracy), float(aux.spikes)]
            network = revive(cfg, network, aux)
            if bar is not None:
                loss_, acc, spk = sums / (i + 1)
                bar.set_postfix(loss=f"{loss_:.3f}", acc=f"{acc:.1%}", spikes=f"{spk:.0f}")
                bar.update()
        if bar is not None:
            bar.close()
        test_loss, test_aux = training.evaluate(network, test, sample_loss=sample_loss)
        row = dict(
            epoch=epoch + 1,
            wall_s=wall0 + time.perf_counter() - start,
            cpu_s=cpu0 + time.process_time() - cpu_start,  # all threads: 2 cores, up to 2x wall
            train_loss=sums[0] / steps,
            train_accuracy=sums[1] / steps,
            train_spikes=sums[2] / steps,
            test_loss=test_loss,
            test_accuracy=test_aux.accuracy,
            test_spikes=test_aux.spikes,
            test_quiet_hidden=test_aux.quiet_hidden,
            test_quiet_output=test_aux.quiet_output,
            test_missed=float(np.sum(test_aux.missed)),
        )
        history.append(row)
        log(
            f"epoch {row['epoch']:3d}  loss {row['train_loss']:.4f}  "
            f"train {row['train_accuracy']:.2%}  test {row['test_accuracy']:.2%}  "
            f"spikes/sample {row['test_spikes']:.1f}  wall {row['wall_s']:.0f} s"
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
        f"(best {best:.2%}); wall {last['wall_s']:.0f} s incl. compile; {when}"
    )


def setup_jax(cfg: argparse.Namespace) -> None:
    """float64 if asked for (float32 otherwise, JAX's default)."""
    jax.config.update("jax_enable_x64", bool(cfg.x64))


# --- Plots (matplotlib, imported here only) ------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(history: list[dict], path: Path) -> None:
    plt = _pyplot()
    epochs = [r["epoch"] for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train")
    ax_loss.plot(epochs, [r["test_loss"] for r in history], label="test")
    positive = all(r["train_loss"] > 0 and r["test_loss"] > 0 for r in history)
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="log" if positive else "linear")
    ax_acc.plot(epochs, [100 * r["train_accuracy"] for r in history], label="train")
    ax_acc.plot(epochs, [100 * r["test_accuracy"] for r in history], label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


@eqx.filter_jit
def _forward_batch(network: Network, features):
    return jax.vmap(network)(features)


def forward(network: Network, features, chunk: int = 1000):
    """(input, hidden, output) spikes of many samples, `chunk` at a time (one compilation)."""
    features = np.asarray(features)
    n = len(features)
    padded = np.concatenate([features, np.repeat(features[:1], -n % chunk, axis=0)])
    outs = [_forward_batch(network, padded[i : i + chunk]) for i in range(0, len(padded), chunk)]
    return jax.tree.map(lambda *parts: np.concatenate(parts)[:n], *outs)


def plot_raster(network: Network, features, label: int, path: Path, names=None) -> None:
    """Input, hidden and output spikes of one sample against time."""
    plt = _pyplot()
    spikes = jax.tree.map(lambda x: x[0], forward(network, np.asarray(features)[None]))
    fig, axes = plt.subplots(3, 1, figsize=(6, 6), sharex=True, height_ratios=[1, 3, 1])
    titles = ["input", "hidden", "output"]
    for ax, s, title in zip(axes, spikes, titles, strict=True):
        valid = np.asarray(s.idx) >= 0
        ax.scatter(1e3 * np.asarray(s.time)[valid], np.asarray(s.idx)[valid], s=6, c="k")
        ax.set_ylabel(title)
    first = np.full(network.n_classes, np.inf)
    np.minimum.at(first, spikes[2].idx[spikes[2].idx >= 0], spikes[2].time[spikes[2].idx >= 0])
    prediction = int(np.argmin(first)) if np.isfinite(first).any() else -1

    def name(c):
        return names[c] if names and c >= 0 else str(c)

    axes[0].set_title(f"label {name(label)}, predicted {name(prediction)}")
    axes[-1].set_xlabel("time (ms)")
    axes[-1].set_yticks(range(network.n_classes))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_decision_map(
    network: Network, to_features: Callable, data, path: Path, names=None, n: int = 100
) -> None:
    """The predicted class over the unit square (features from `to_features(xy)`), with the
    test points on top; undecided points are white."""
    plt = _pyplot()
    grid = np.stack(np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n)), -1).reshape(-1, 2)
    features = to_features(grid).astype(np.asarray(data.inputs).dtype)
    classes = np.asarray(predict(forward(network, features)[2], network.n_classes))
    image = np.ma.masked_less(classes.reshape(n, n), 0)
    fig, ax = plt.subplots(figsize=(5, 5))
    from matplotlib.colors import ListedColormap, to_rgba

    k = network.n_classes
    cmap = ListedColormap([to_rgba(f"C{c}", 0.35) for c in range(k)])
    ax.imshow(image, origin="lower", extent=(0, 1, 0, 1), cmap=cmap, vmin=-0.5, vmax=k - 0.5)
    xy = np.asarray(data.inputs[:, :2])
    for c in range(network.n_classes):
        chosen = np.asarray(data.labels) == c
        label = names[c] if names else str(c)
        ax.scatter(*xy[chosen].T, s=4, label=label, color=f"C{c}")
    ax.set(xlabel="x", ylabel="y", title="decision map (background) and test points")
    ax.legend(loc="upper right", markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


def run(cfg, history, train, test, title: str, plot=None) -> list[dict]:
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
        plot_curves(history, cfg.out / "curves.png")
        if plot is not None:
            plot(network, cfg.out)
    print(summary(history), f"(this session {time.perf_counter() - start:.0f} s)")
    print(f"outputs in {cfg.out}/")
    return history
