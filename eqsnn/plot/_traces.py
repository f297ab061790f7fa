"""Voltage (and current) traces against time, with the threshold and the spikes."""

import numpy as np
from jaxtyping import ArrayLike, Float

from .._flow import LIFState
from .._spikes import Spikes
from ._common import new_axes, one_sample, time_factor


def traces(
    times: Float[ArrayLike, " n_times"],
    state: LIFState,
    *,
    neurons=None,
    v_th: float | None = None,
    spikes: Spikes | None = None,
    current: bool = False,
    ax=None,
    time_unit: str = "ms",
):
    r"""Membrane voltage traces against time, with the threshold and the spikes marked.

    Plots what [`eqsnn.traces`][] returns: one line per neuron (colour `C{k}` for the
    `k`-th neuron shown), a dashed line at `v_th`, and a dot at each spike of the neurons
    shown (at $V = v_\mathrm{th}$; without `v_th`, on the voltage line). With
    `current=True` the synaptic currents go on a second `Axes` below.

    The traces are drawn through the sampled points: the exact peak at a spike shows only
    if the spike time is one of `times` (append the spike times to a grid, e.g.
    `jnp.sort(jnp.concatenate([grid, jnp.where(out.valid, out.time, grid[-1])]))`).

    **Arguments:**

    - `times`: the times in seconds, shape `(n_times,)`.
    - `state`: an [`eqsnn.LIFState`][] with `v` (and `i`) of shape `(n_times, n_neurons)`.
    - `neurons`: the indices of the neurons to show (default: all).
    - `v_th`: the threshold voltage to draw (e.g. `layer.params.v_th`); `None` draws none.
    - `spikes`: the layer's output [`eqsnn.Spikes`][] (one sample) to mark; `None` marks none.
    - `current`: also plot the synaptic current $I(t)$, on a second `Axes`.
    - `ax`: the `Axes` to draw into (two, for the voltage and the current, with
      `current=True`); `None` creates a new figure.
    - `time_unit`: the unit of the time axis, `"s"`, `"ms"` (default) or `"us"`.

    **Returns:** the voltage `Axes`, or a list `[voltage_axes, current_axes]` with
    `current=True`. Nothing is shown or saved.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn

    layer = eqsnn.LIF(2, 3, n_spikes=15, t_max=0.02, key=jax.random.PRNGKey(0), mean=2.0)
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))
    times = jnp.linspace(0.0, 0.02, 401)
    state = eqsnn.traces(layer, spikes, times)
    ax = eqsnn.plot.traces(times, state, v_th=layer.params.v_th, spikes=layer(spikes))
    ```
    """
    who = "traces"
    factor = time_factor(time_unit, who)
    if not isinstance(state, LIFState):
        raise TypeError(
            f"eqsnn.plot.{who}: `state` must be an eqsnn.LIFState, got {type(state).__name__}."
        )
    times, v, i = np.asarray(times), np.asarray(state.v), np.asarray(state.i)
    if times.ndim != 1 or v.ndim != 2 or v.shape[0] != times.shape[0] or i.shape != v.shape:
        raise ValueError(
            f"eqsnn.plot.{who}: `state.v` and `state.i` must have shape (n_times, n_neurons) "
            f"with n_times = len(times) = {times.shape}, got {v.shape} and {i.shape}."
        )
    shown = _neurons(neurons, v.shape[1], who)
    axes = new_axes(who, ax, 2 if current else 1, sharex=True)
    ax_v = axes[0] if current else axes
    for k, n in enumerate(shown):
        ax_v.plot(factor * times, v[:, n], color=f"C{k}", label=f"neuron {n}")
        if current:
            axes[1].plot(factor * times, i[:, n], color=f"C{k}")
    if v_th is not None:
        ax_v.axhline(v_th, color="0.4", linestyle="--", linewidth=1, label="threshold")
    if spikes is not None:
        spike_time, spike_idx = one_sample(spikes, None, "spikes", who)
        for k, n in enumerate(shown):
            t = spike_time[spike_idx == n]
            y = np.full(t.shape, v_th) if v_th is not None else np.interp(t, times, v[:, n])
            ax_v.plot(factor * t, y, "o", color=f"C{k}", markersize=4)
    ax_v.set_ylabel("voltage $V$")
    if len(shown) <= 10:
        ax_v.legend(loc="best", fontsize="small")
    last = ax_v
    if current:
        axes[1].set_ylabel("current $I$")
        last = axes[1]
    last.set_xlabel(f"time ({time_unit})")
    return axes


def _neurons(neurons, n: int, who: str) -> list[int]:
    """The neuron indices to show, checked against the `n` neurons of the state."""
    if neurons is None:
        return list(range(n))
    shown = [int(k) for k in np.atleast_1d(np.asarray(neurons))]
    bad = [k for k in shown if not 0 <= k < n]
    if bad or np.asarray(neurons).dtype.kind not in "iu":
        raise ValueError(
            f"eqsnn.plot.{who}: `neurons` must hold neuron indices in [0, {n}), got {neurons!r}."
        )
    return shown
