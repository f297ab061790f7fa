"""Histograms of the first-spike times of the output neurons, over many samples."""

import numpy as np
from jaxtyping import ArrayLike, Float, Int

from .._spikes import Spikes
from ._common import new_axes, time_factor


def first_spike_histogram(
    first_times: Float[ArrayLike, "n_samples n_out"] | Spikes,
    labels: Int[ArrayLike, " n_samples"] | None = None,
    *,
    bins: int = 30,
    names=None,
    ax=None,
    time_unit: str = "ms",
):
    """Histograms of the first-spike times of each output neuron over many samples.

    Without `labels`: one histogram per output neuron `k` (colour `C{k}`). With `labels`
    (a classifier whose neuron `k` stands for class `k`): for each class `k`, the first
    spikes of neuron `k` on the samples of class `k` (colour `C{k}`), and in grey those of
    every other neuron on every sample: a trained time-to-first-spike classifier shows
    the coloured histograms early and the grey one late. Silent neurons (`+inf`) are
    not drawn; the legend counts them. The bins are shared by all histograms.

    **Arguments:**

    - `first_times`: the first-spike times in seconds, shape `(n_samples, n_out)`, `+inf`
      for a silent neuron (e.g. `jax.vmap(net)(x).first_spike_times(n_out)`); or a batch of
      output [`eqsnn.Spikes`][] whose `n_sources` is set, whose first spikes are taken.
    - `labels`: the class of each sample, integers in `[0, n_out)`, shape `(n_samples,)`;
      `None` for one histogram per neuron.
    - `bins`: the number of bins.
    - `names`: the class (or neuron) names for the legend (default: the indices).
    - `ax`: the matplotlib `Axes` to draw into; `None` creates a new figure.
    - `time_unit`: the unit of the time axis, `"s"`, `"ms"` (default) or `"us"`.

    **Returns:** the matplotlib `Axes`. Nothing is shown or saved.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn

    first = jnp.array([[1e-3, 3e-3], [2.5e-3, 1.2e-3], [0.9e-3, jnp.inf]])
    ax = eqsnn.plot.first_spike_histogram(first, jnp.array([0, 1, 0]), names=["a", "b"])
    ```
    """
    who = "first_spike_histogram"
    factor = time_factor(time_unit, who)
    first = _first_times(first_times, who)
    n_samples, n_out = first.shape
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"eqsnn.plot.{who}: `bins` must be a positive int, got {bins!r}.")
    if names is not None and len(names) != n_out:
        raise ValueError(
            f"eqsnn.plot.{who}: `names` must hold one name per output neuron ({n_out}), got "
            f"{len(names)}."
        )
    names = [str(k) for k in range(n_out)] if names is None else [str(n) for n in names]
    if labels is None:
        groups = [(first[:, k], f"neuron {names[k]}", f"C{k}") for k in range(n_out)]
    else:
        labels = _labels(labels, n_samples, n_out, who)
        own = labels[:, None] == np.arange(n_out)
        groups = [(first[labels == k, k], f"class {names[k]}", f"C{k}") for k in range(n_out)]
        groups.append((first[~own], "other neurons", "0.5"))
    finite = factor * first[np.isfinite(first)]
    edges = np.histogram_bin_edges(finite if finite.size else [0.0, 1.0], bins=bins)
    ax = new_axes(who, ax)
    for values, label, color in groups:
        silent = int(np.sum(~np.isfinite(values)))
        text = f"{label} ({silent} silent)" if silent else label
        shown = factor * values[np.isfinite(values)]
        ax.hist(shown, bins=edges, histtype="step", color=color, linewidth=1.5, label=text)
    ax.set_xlabel(f"first spike time ({time_unit})")
    ax.set_ylabel("samples")
    ax.legend(loc="best", fontsize="small")
    return ax


def _first_times(first_times, who: str) -> np.ndarray:
    """The first-spike times as a host array of shape `(n_samples, n_out)`."""
    if isinstance(first_times, Spikes):
        if first_times.n_sources is None or first_times.time.ndim != 2:
            raise ValueError(
                f"eqsnn.plot.{who}: `first_times` given as Spikes must be a batch (time of "
                "shape (batch, n)) with `n_sources` set (a layer's output); got time of shape "
                f"{first_times.time.shape} and n_sources={first_times.n_sources}."
            )
        first_times = first_times.first_spike_times(first_times.n_sources)
    first = np.asarray(first_times, dtype=float)
    if first.ndim != 2 or first.shape[0] < 1 or np.isnan(first).any():
        raise ValueError(
            f"eqsnn.plot.{who}: `first_times` must have shape (n_samples, n_out) without NaN, "
            f"got shape {first.shape}."
        )
    return first


def _labels(labels, n_samples: int, n_out: int, who: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (n_samples,) or labels.dtype.kind not in "iu":
        raise ValueError(
            f"eqsnn.plot.{who}: `labels` must be integers of shape (n_samples,)=({n_samples},), "
            f"got dtype {labels.dtype} and shape {labels.shape}."
        )
    if np.any((labels < 0) | (labels >= n_out)):
        raise ValueError(
            f"eqsnn.plot.{who}: `labels` must lie in [0, n_out={n_out}), got "
            f"{labels[(labels < 0) | (labels >= n_out)][0]!r}."
        )
    return labels
