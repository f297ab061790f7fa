"""Plots of the examples: training curves, spike raster and voltage traces, first-spike
histograms, a decision map (matplotlib; the raster, traces and histograms by `eqsnn.plot`)."""

from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from _common import Network

import eqsnn
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
    """Input, hidden and output spikes of one sample against time, and the voltages of the
    output neurons (`eqsnn.plot.raster`, `eqsnn.traces` and `eqsnn.plot.traces`)."""
    plt = _pyplot()
    spikes = jax.tree.map(lambda x: x[0], forward(network, np.asarray(features)[None]))
    fig, axes = plt.subplots(4, 1, figsize=(6, 8), sharex=True, height_ratios=[1, 3, 1, 2])
    for ax, s, title in zip(axes[:3], spikes, ["input", "hidden", "output"], strict=True):
        eqsnn.plot.raster(s, ax=ax, label=title, color="k", marker_size=12)
        ax.set_xlabel("")
    times, state, out, neurons = _output_traces(network, spikes)
    params = network.layers[-1].params
    eqsnn.plot.traces(times, state, neurons=neurons, v_th=params.v_th, spikes=out, ax=axes[3])
    # A reset far below rest (v_reset = -1000: one spike per neuron) would flatten the rest.
    v, theta = np.asarray(state.v)[:, neurons], params.v_th - params.v_leak
    low = max(float(v.min()), params.v_leak - 1.5 * theta)
    axes[3].set_ylim(low - 0.05 * theta, max(float(v.max()), params.v_th) + 0.1 * theta)
    first = np.asarray(spikes[2].first_spike_times(network.n_classes))
    prediction = int(np.argmin(first)) if np.isfinite(first).any() else -1

    def name(c):
        return names[c] if names and c >= 0 else str(c)

    axes[0].set_title(f"label {name(label)}, predicted {name(prediction)}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _output_traces(network: Network, spikes, n_times: int = 501):
    """V(t) and I(t) of the output neurons (exact, `eqsnn.traces`) on a grid that holds
    their spike times: `(times, state, the layer's spikes, the output neurons' indices)`."""
    spikes_in, hidden, _ = jax.tree.map(jnp.asarray, spikes)
    if len(network.layers) == 2:  # feed-forward: the output layer, driven by the hidden one
        layer, inputs, first = network.layers[1], hidden, 0
    else:  # recurrent: the output population of the one layer
        (layer,) = network.layers
        inputs, first = spikes_in, network.n_hidden
    out = layer(inputs)
    grid = jnp.linspace(0.0, layer.t_max, n_times, dtype=out.time.dtype)
    times = jnp.sort(jnp.concatenate([grid, jnp.where(out.valid, out.time, 0.0)]))
    state = eqsnn.traces(layer, inputs, times)
    return times, state, out, list(range(first, first + network.n_classes))


def plot_first_spikes(network: Network, data, path: Path, names=None) -> None:
    """Histograms of the output neurons' first spike times over `data`, per class
    (`eqsnn.plot.first_spike_histogram`)."""
    plt = _pyplot()
    output = forward(network, data.inputs)[2]
    first = np.asarray(output.first_spike_times(network.n_classes))
    ax = eqsnn.plot.first_spike_histogram(first, np.asarray(data.labels), names=names)
    ax.set_title("first output spikes (coloured: the label's neuron)")
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=120)
    plt.close(ax.figure)


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
