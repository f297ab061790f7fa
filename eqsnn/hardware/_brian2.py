"""A backend that runs the network in Brian2, an independent simulator (extra `eqsnn[brian2]`)."""

import numpy as np

from .._flow import check_lif
from .._weights import RecurrentWeights
from ._backend import BACKEND_RUNS_LIF, Backend


def _import_brian2():
    try:
        import brian2
    except ImportError as error:  # also numpy >= 2.4, which brian2 2.9 does not import with
        raise ImportError(
            "Brian2Backend needs brian2 (pip install 'eqsnn[brian2]', or in a clone of the "
            "repository pip install -e '.[brian2]', which also pins numpy < 2.4); importing it "
            f"failed: {error}"
        ) from error
    return brian2


class Brian2Backend(Backend):
    r"""A backend that simulates the network with [Brian2](https://briantime.org).

    The batch becomes one Brian2 network: `batch` copies of the layer's neurons (a
    `NeuronGroup` with the LIF equations, integrated exactly between time steps), fed by a
    `SpikeGeneratorGroup` through `Synapses` that add the weight to $I$ (and, for a
    recurrent layer, synapses among the copies of each sample), run once for `t_max`.
    This exercises the hardware loop against a simulator this project did not write.

    Brian2 works on a time grid: input spikes are moved to the grid and a spike is
    reported at the first grid point at or after its crossing, so spike times are late by
    up to about `dt` (errors add up through the layer; a crossing that returns below
    threshold within one step is missed). Recurrent spikes take effect at the next step.

    **Arguments:**

    - `dt`: the Brian2 time step in seconds (default `1e-6`).
    - `target`: Brian2's code generation target (`brian2.prefs.codegen.target`, set on
      each call; default `"numpy"`, which needs no compiler).

    **Example:**

    ```python
    from eqsnn.hardware import Brian2Backend

    backend = Brian2Backend(dt=1e-6)  # needs eqsnn[brian2]
    ```
    """

    def __init__(self, *, dt: float = 1e-6, target: str = "numpy"):
        who = type(self).__name__
        try:
            dt = float(dt)
        except (TypeError, ValueError):
            raise ValueError(f"{who}: `dt` must be a positive number, got {dt!r}.") from None
        if not 0 < dt < float("inf"):
            raise ValueError(f"{who}: `dt` must be a positive number, got {dt!r}.")
        if not isinstance(target, str):
            raise TypeError(f"{who}: `target` must be a string, got {target!r}.")
        _import_brian2()
        self.dt = dt
        self.target = target
        self.calls = 0
        """How many times `run` was called (one per batch)."""

    def run(self, weights, input_time, input_idx, *, params, t_max, n_spikes):
        """Simulate the batch in Brian2; see [`Backend.run`][eqsnn.hardware.Backend.run]."""
        check_lif(params, f"{self.name}.run", BACKEND_RUNS_LIF)
        b2 = _import_brian2()
        self.calls += 1
        b2.prefs.codegen.target = self.target
        w_in = np.asarray(weights.input, np.float64)
        in_size, n = w_in.shape
        batch = input_time.shape[0]
        dt = self.dt * b2.second
        eqs = (
            f"dv/dt = ({params.v_leak!r} - v + I) / ({params.tau_mem!r} * second) : 1\n"
            f"dI/dt = -I / ({params.tau_syn!r} * second) : 1\n"
        )
        neurons = b2.NeuronGroup(
            batch * n,
            eqs,
            threshold=f"v >= {params.v_th!r}",
            reset=f"v = {params.v_reset!r}",
            method="exact",
            dt=dt,
        )
        neurons.v = params.v_leak
        objects = [neurons]
        used = (input_idx >= 0) & (input_time < t_max)
        sample, slot = np.nonzero(used)
        if sample.size:
            # One generator channel per (sample, input); Brian2 moves spikes to the grid.
            source = sample * in_size + input_idx[sample, slot]
            times = np.round(input_time[sample, slot] / self.dt) * self.dt
            generator = b2.SpikeGeneratorGroup(batch * in_size, source, times * b2.second, dt=dt)
            pre, post = np.meshgrid(np.arange(in_size), np.arange(n), indexing="ij")
            synapses = b2.Synapses(generator, neurons, "w : 1", on_pre="I += w", dt=dt)
            offsets = np.arange(batch)[:, None, None]
            synapses.connect(i=(offsets * in_size + pre).ravel(), j=(offsets * n + post).ravel())
            synapses.w = np.broadcast_to(w_in, (batch, in_size, n)).ravel()
            objects += [generator, synapses]
        if isinstance(weights, RecurrentWeights):
            w_rec = np.asarray(weights.recurrent, np.float64)
            pre, post = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
            recurrent = b2.Synapses(neurons, neurons, "w : 1", on_pre="I += w", dt=dt)
            offsets = np.arange(batch)[:, None, None]
            recurrent.connect(i=(offsets * n + pre).ravel(), j=(offsets * n + post).ravel())
            recurrent.w = np.broadcast_to(w_rec, (batch, n, n)).ravel()
            objects.append(recurrent)
        monitor = b2.SpikeMonitor(neurons)
        network = b2.Network(*objects, monitor)
        network.run(t_max * b2.second, namespace={})
        return _collect(
            np.asarray(monitor.i), np.asarray(monitor.t / b2.second), batch, n, n_spikes, t_max
        )


def _collect(neuron, time, batch, n, n_spikes, t_max):
    """Per-sample, sorted, padded buffers from Brian2's flat spike record."""
    out_time = np.full((batch, n_spikes), np.inf)
    out_idx = np.full((batch, n_spikes), -1, np.int64)
    dropped = np.zeros(batch, np.int64)
    keep = time < t_max
    neuron, time = neuron[keep], time[keep]
    for b in range(batch):
        mine = neuron // n == b
        t, j = time[mine], neuron[mine] % n
        order = np.argsort(t, kind="stable")
        t, j = t[order], j[order]
        m = min(len(t), n_spikes)
        out_time[b, :m], out_idx[b, :m] = t[:m], j[:m]
        dropped[b] = len(t) - m
    return out_time, out_idx, dropped
