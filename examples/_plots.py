"""Plots of the examples: training curves, a spike raster, a decision map (matplotlib)."""

from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
from _common import Network

from eqsnn.loss import predict


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
