"""What the plots share: matplotlib imported on first use, axes, time units, host arrays."""

import importlib

import numpy as np

from .._spikes import Spikes

INSTALL_HINT = (
    'pip install "eqsnn[plots]" (in a clone of the repository: pip install -e ".[plots]")'
)
"""How to install matplotlib, the optional dependency of `eqsnn.plot`."""

TIME_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}
"""Factors from seconds to the time units the plots can show."""


def matplotlib(who: str):
    """The `matplotlib` module, or an `ImportError` that says how to install it."""
    try:
        return importlib.import_module("matplotlib")
    except ImportError as error:
        raise ImportError(f"eqsnn.plot.{who} needs matplotlib: {INSTALL_HINT}.") from error


def new_axes(who: str, ax, n: int = 1, **kwargs):
    """`ax` if given (checked to be a matplotlib `Axes`), else new axes from
    `plt.subplots(n, 1, ...)` (one `Axes`, or an array of `n`)."""
    mpl = matplotlib(who)
    if ax is None:
        plt = importlib.import_module("matplotlib.pyplot")
        _, ax = plt.subplots(n, 1, squeeze=n == 1, **kwargs)
        return ax if n == 1 else list(ax[:, 0])
    axes = [ax] if n == 1 else list(np.ravel(np.asarray(ax, dtype=object)))
    if len(axes) != n or not all(isinstance(a, mpl.axes.Axes) for a in axes):
        what = "a matplotlib Axes" if n == 1 else f"{n} matplotlib Axes"
        raise TypeError(f"eqsnn.plot.{who}: `ax` must be {what} (or None), got {ax!r}.")
    return ax if n == 1 else axes


def time_factor(time_unit: str, who: str) -> float:
    """The factor from seconds to `time_unit` (a `ValueError` naming the argument)."""
    if time_unit not in TIME_UNITS:
        raise ValueError(
            f"eqsnn.plot.{who}: `time_unit` must be one of {sorted(TIME_UNITS)}, got {time_unit!r}."
        )
    return TIME_UNITS[time_unit]


def one_sample(spikes: Spikes, sample: int | None, name: str, who: str):
    """The host arrays `(time, idx)` of the valid spikes of one sample of `spikes`.

    A batch (`time` of shape `(batch, n)`) needs `sample`, the index of the sample; one
    sample takes `sample=None`."""
    if not isinstance(spikes, Spikes):
        raise TypeError(
            f"eqsnn.plot.{who}: `{name}` must be an eqsnn.Spikes, got {type(spikes).__name__}."
        )
    time, idx = np.asarray(spikes.time), np.asarray(spikes.idx)
    if time.ndim == 2:
        if sample is None:
            raise ValueError(
                f"eqsnn.plot.{who}: `{name}` holds a batch of {time.shape[0]} samples; "
                "pass `sample=` (the index of the one to plot)."
            )
        if isinstance(sample, bool) or not isinstance(sample, int | np.integer):
            raise TypeError(f"eqsnn.plot.{who}: `sample` must be an int, got {sample!r}.")
        if not -time.shape[0] <= sample < time.shape[0]:
            raise ValueError(
                f"eqsnn.plot.{who}: `sample`={sample} is out of range for a batch of "
                f"{time.shape[0]} samples."
            )
        time, idx = time[sample], idx[sample]
    elif time.ndim != 1:
        raise ValueError(
            f"eqsnn.plot.{who}: `{name}` must be one sample or a batch (time of shape (n,) "
            f"or (batch, n)), got time of shape {time.shape}."
        )
    elif sample is not None:
        raise ValueError(
            f"eqsnn.plot.{who}: `{name}` is one sample; `sample` must be None, got {sample!r}."
        )
    valid = idx >= 0
    return time[valid], idx[valid]
