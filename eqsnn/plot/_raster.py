"""Spike raster: the spikes of one sample, neuron against time."""

import numpy as np

from .._spikes import Spikes
from ._common import new_axes, one_sample, time_factor


def raster(
    spikes: Spikes,
    *,
    sample: int | None = None,
    n_neurons: int | None = None,
    ax=None,
    time_unit: str = "ms",
    color=None,
    marker_size: float = 30.0,
    label: str | None = None,
):
    """Spike raster of one sample: a mark at (spike time, neuron index) for every spike.

    Empty slots (`idx == -1`) are not shown. The y axis spans the neurons `0` to
    `n_neurons - 1` (default: the buffer's `n_sources`, else up to the largest index).

    **Arguments:**

    - `spikes`: an [`eqsnn.Spikes`][] buffer: one sample, or a batch with `sample` set.
    - `sample`: the index of the sample to show when `spikes` is a batch (`None` for one
      sample).
    - `n_neurons`: the number of neurons on the y axis (default: `spikes.n_sources`).
    - `ax`: the matplotlib `Axes` to draw into; `None` creates a new figure
      (`plt.subplots`).
    - `time_unit`: the unit of the time axis, `"s"`, `"ms"` (default) or `"us"`.
    - `color`: the marker colour (default: matplotlib's first colour).
    - `marker_size`: the marker area in points², as `Axes.scatter`'s `s`.
    - `label`: the y axis label (default `"neuron"`).

    **Returns:** the matplotlib `Axes` (its figure is `ax.figure`). Nothing is shown or
    saved: call `ax.figure.savefig(...)` or `plt.show()`.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn

    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 4e-3, 2e-3]), idx=jnp.array([0, 2, 1]))
    ax = eqsnn.plot.raster(spikes)
    ax.figure.savefig("raster.png")
    ```
    """
    time, idx = one_sample(spikes, sample, "spikes", "raster")
    factor = time_factor(time_unit, "raster")
    ax = new_axes("raster", ax)
    ax.scatter(factor * time, idx, s=marker_size, marker="|", color=color or "C0", linewidths=1.5)
    n = n_neurons if n_neurons is not None else spikes.n_sources
    if n is None:
        n = int(idx.max()) + 1 if idx.size else 1
    ax.set_ylim(-0.5, n - 0.5)
    if n <= 20:
        ax.set_yticks(np.arange(n))
    ax.set_xlabel(f"time ({time_unit})")
    ax.set_ylabel(label or "neuron")
    return ax
