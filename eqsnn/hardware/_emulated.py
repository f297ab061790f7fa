r"""A seeded model of analog neuromorphic hardware, for training when no chip is at hand."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .._flow import check_lif, membrane
from .._params import LIFParameters
from .._weights import RecurrentWeights
from ._backend import BACKEND_RUNS_LIF, Backend


def _check_fraction(name: str, value, who: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: `{name}` must be a number >= 0, got {value!r}.") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"{who}: `{name}` must be a finite number >= 0, got {value!r}.")
    return value


def _check_positive_or_none(name: str, value, who: str) -> float | None:
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"{who}: `{name}` must be a positive number or None, got {value!r}."
        ) from None
    if not 0 < value < float("inf"):
        raise ValueError(f"{who}: `{name}` must be a positive number or None, got {value!r}.")
    return value


class EmulatedBackend(Backend):
    r"""A seeded model of an analog neuromorphic chip (BrainScaleS-2-like non-idealities).

    The network of the [`Backend`][eqsnn.hardware.Backend] contract is simulated on a fine
    time grid (step `dt`, with the exact LIF propagator over each step, input and recurrent
    spikes applied at their exact times within a step, threshold crossings found on the
    grid and placed by linear interpolation), with these non-idealities, each off when set
    to `0`/`None`:

    - **weight quantisation**: weights become integers of `weight_bits` magnitude bits plus
      a sign, times `weight_scale` (the current of one weight step): $w \mapsto
      \mathrm{clip}(\mathrm{round}(w/s), -(2^b - 1), 2^b - 1)\, s$. With `weight_scale=None`
      the scale is set per call so that the largest $|w|$ of the layer maps to $2^b - 1$
      (a per-layer gain calibration);
    - **fixed-pattern variation**: every neuron has its own $\tau_\mathrm{mem}$,
      $\tau_\mathrm{syn}$ and threshold $v_\mathrm{th}$: the nominal value times
      $1 + \sigma z$ with $z \sim \mathcal N(0, 1)$ drawn once from `seed` (and the layer's
      shape, so that two layers of different shapes sit on different neurons) and clipped
      to $|\sigma z| \le 3\sigma$; the threshold varies relative to $v_\mathrm{leak}$;
    - **spike-time jitter**: Gaussian noise of standard deviation `jitter` seconds on every
      reported spike time, fresh on every call (trial-to-trial noise; it does not change
      the recurrent input the network itself sees);
    - **clock quantisation**: reported spike times are rounded down to multiples of
      `clock` seconds (the time stamp of the clock cycle in which the spike happened).

    Recurrent spikes reach their targets at the end of the grid step they fall in (a
    delay below `dt`, like the routing delay of a chip); after a spike the neuron restarts
    from $v_\mathrm{reset}$ at the crossing, integrating its current to first order for the
    rest of that step. Spikes that jitter moves below 0 are reported at 0; those moved to
    or past `t_max` are lost (not counted in `dropped`). The grid finds at most one spike
    per neuron and step, and misses a crossing that returns below threshold within one
    step. With `dt = 2e-5` s and the default time constants, spike times of an ideal
    emulation are within about 1e-6 s of eqsnn's exact ones.

    **Arguments:**

    - `seed`: seed of the fixed pattern and of the jitter stream.
    - `weight_bits`: magnitude bits of a weight (6 on BrainScaleS-2), or `None` for
      unquantised weights.
    - `weight_scale`: current of one weight step, or `None` (per-call calibration).
    - `tau_mem_variation`, `tau_syn_variation`, `v_th_variation`: relative standard
      deviations $\sigma$ of the fixed pattern.
    - `jitter`: standard deviation of the spike-time jitter in seconds.
    - `clock`: clock period in seconds, or `None`.
    - `dt`: step of the emulation grid in seconds (default: the smaller time constant / 250).

    **Example:**

    ```python
    from eqsnn.hardware import EmulatedBackend

    chip = EmulatedBackend(
        seed=0,
        weight_bits=6,
        tau_mem_variation=0.05,
        tau_syn_variation=0.05,
        v_th_variation=0.02,
        jitter=2e-5,
        clock=1e-5,
    )
    ```
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        weight_bits: int | None = 6,
        weight_scale: float | None = None,
        tau_mem_variation: float = 0.0,
        tau_syn_variation: float = 0.0,
        v_th_variation: float = 0.0,
        jitter: float = 0.0,
        clock: float | None = None,
        dt: float | None = None,
    ):
        who = type(self).__name__
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"{who}: `seed` must be an int, got {seed!r}.")
        if weight_bits is not None and (
            isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or weight_bits < 1
        ):
            raise ValueError(
                f"{who}: `weight_bits` must be an int >= 1 or None, got {weight_bits!r}."
            )
        self.seed = seed
        self.weight_bits = weight_bits
        self.weight_scale = _check_positive_or_none("weight_scale", weight_scale, who)
        self.tau_mem_variation = _check_fraction("tau_mem_variation", tau_mem_variation, who)
        self.tau_syn_variation = _check_fraction("tau_syn_variation", tau_syn_variation, who)
        self.v_th_variation = _check_fraction("v_th_variation", v_th_variation, who)
        self.jitter = _check_fraction("jitter", jitter, who)
        self.clock = _check_positive_or_none("clock", clock, who)
        self.dt = _check_positive_or_none("dt", dt, who)
        self._rng = np.random.default_rng([seed, 1])
        self.calls = 0
        """How many times `run` was called (one per batch)."""

    def quantise(self, weights: np.ndarray, scale: float | None = None) -> np.ndarray:
        """The weights as the chip applies them (see the weight quantisation above).

        **Arguments:**

        - `weights`: a NumPy array of weights.
        - `scale`: the weight step (default: `weight_scale`, or the per-call calibration).

        **Returns:** the quantised weights, same shape and dtype.
        """
        if self.weight_bits is None:
            return weights
        top = 2**self.weight_bits - 1
        if scale is None:
            scale = self.weight_scale
        if scale is None:
            largest = float(np.max(np.abs(weights), initial=0.0))
            scale = largest / top if largest > 0 else 1.0
        return (np.clip(np.round(weights / scale), -top, top) * scale).astype(weights.dtype)

    def fixed_pattern(self, params: LIFParameters, in_size: int, n: int):
        """Per-neuron `(tau_mem, tau_syn, v_th)` of a layer of `n` neurons and `in_size`
        inputs: the same on every call (drawn from `seed` and the shape)."""
        rng = np.random.default_rng([self.seed, 0, in_size, n])

        def vary(nominal, sigma):
            z = np.clip(rng.standard_normal(n), -3.0, 3.0)
            return nominal * (1.0 + sigma * z)

        tau_mem = vary(params.tau_mem, self.tau_mem_variation)
        tau_syn = vary(params.tau_syn, self.tau_syn_variation)
        theta = vary(params.v_th - params.v_leak, self.v_th_variation)
        return tau_mem, tau_syn, theta + params.v_leak

    def run(self, weights, input_time, input_idx, *, params, t_max, n_spikes):
        """Emulate the batch; see [`Backend.run`][eqsnn.hardware.Backend.run]."""
        check_lif(params, f"{self.name}.run", BACKEND_RUNS_LIF)
        self.calls += 1
        dtype = input_time.dtype
        w_in = np.asarray(weights.input)
        in_size, n = w_in.shape
        recurrent = isinstance(weights, RecurrentWeights)
        w_rec = np.asarray(weights.recurrent) if recurrent else np.zeros((n, n), dtype)
        if self.weight_bits is not None and self.weight_scale is None:
            both = np.concatenate([w_in.ravel(), w_rec.ravel()])
            scale = max(float(np.max(np.abs(both), initial=0.0)), 1e-300) / (
                2**self.weight_bits - 1
            )
        else:
            scale = None
        w_in, w_rec = self.quantise(w_in, scale), self.quantise(w_rec, scale)
        tau_mem, tau_syn, v_th = self.fixed_pattern(params, in_size, n)
        dt = self.dt or min(params.tau_mem, params.tau_syn) / 250
        n_steps = int(np.ceil(t_max / dt))
        time, idx, dropped = _emulate(
            *(jnp.asarray(a, dtype) for a in (w_in, w_rec, tau_mem, tau_syn, v_th)),
            jnp.asarray(input_time),
            jnp.asarray(input_idx),
            dt,
            n_steps,
            params.v_leak,
            params.v_reset,
            n_spikes,
            recurrent,
        )
        time, idx, dropped = np.asarray(time), np.asarray(idx), np.asarray(dropped)
        valid = idx >= 0
        if self.jitter:
            time = time + self.jitter * self._rng.standard_normal(time.shape)
            time = np.maximum(time, 0.0)
        if self.clock:
            time = np.floor(time / self.clock) * self.clock
        valid &= time < t_max
        key = np.where(valid, time, np.inf)
        order = np.argsort(key, axis=-1, kind="stable")
        time = np.take_along_axis(key, order, axis=-1).astype(dtype)
        idx = np.take_along_axis(np.where(valid, idx, -1), order, axis=-1)
        return time, idx, dropped


@functools.partial(jax.jit, static_argnums=(7, 8, 9, 10, 11, 12))
def _emulate(
    w_in,
    w_rec,
    tau_mem,
    tau_syn,
    v_th,
    input_time,
    input_idx,
    dt,
    n_steps,
    v_leak,
    v_reset,
    n_spikes,
    recurrent,
):
    """The time-grid emulation of a batch; spikes in grid order (sorted later)."""
    batch, _ = input_time.shape
    n = w_in.shape[1]
    dtype = w_in.dtype
    theta = v_th - v_leak
    u_reset = v_reset - v_leak
    decay_u, decay_i = jnp.exp(-dt / tau_mem), jnp.exp(-dt / tau_syn)
    coupling = membrane(0.0, 1.0, dt, tau_mem, tau_syn)
    # Input spikes: the grid step they fall in, and their effect at the end of that step.
    valid_in = (input_idx >= 0) & jnp.isfinite(input_time)
    step_in = jnp.where(valid_in, jnp.floor(input_time / dt), -1).astype(jnp.int32)
    rest = jnp.where(valid_in, (step_in + 1).astype(dtype) * dt - input_time, 0.0)[
        ..., None
    ]  # (B, K, 1)
    rows = jnp.where(valid_in[..., None], w_in[jnp.maximum(input_idx, 0)], 0.0)  # (B, K, n)
    in_i = rows * jnp.exp(-rest / tau_syn)
    in_u = rows * membrane(0.0, 1.0, rest, tau_mem, tau_syn)

    # Scattered onto the grid once: (steps, B, n) jumps at the end of each step.
    where = jnp.where(valid_in, step_in, n_steps)  # invalid inputs: dropped below
    b = jnp.broadcast_to(jnp.arange(batch, dtype=jnp.int32)[:, None], where.shape)
    grid_u = jnp.zeros((n_steps, batch, n), dtype).at[where, b].add(in_u, mode="drop")
    grid_i = jnp.zeros((n_steps, batch, n), dtype).at[where, b].add(in_i, mode="drop")

    def body(carry, x):
        u, i = carry
        k, jump_u, jump_i = x
        u1 = decay_u * u + coupling * i + jump_u
        i1 = decay_i * i + jump_i
        spike = u1 >= theta
        frac = jnp.clip((theta - u) / jnp.where(spike, u1 - u, 1.0), 0.0, 1.0)
        # Reset at the crossing; the neuron then integrates its current for the rest of
        # the step (to first order in the rest, a fraction of dt).
        rest = (1.0 - frac) * dt
        u1 = jnp.where(spike, u_reset * jnp.exp(-rest / tau_mem) + rest / tau_mem * i1, u1)
        if recurrent:  # arrives at the end of the step: a delay below dt
            i1 = i1 + jnp.where(spike, 1.0, 0.0) @ w_rec
        t_spike = jnp.where(spike, (k.astype(dtype) + frac) * dt, jnp.inf)
        return (u1, i1), t_spike

    zeros = jnp.zeros((batch, n), dtype)
    steps = jnp.arange(n_steps, dtype=jnp.int32)
    _, times = jax.lax.scan(body, (zeros, zeros), (steps, grid_u, grid_i))
    # (steps, B, n) -> per sample, the first n_spikes spikes in grid order (a linear-time
    # compaction; the host sorts them by time).
    times = jnp.moveaxis(times, 1, 0).reshape(batch, -1)
    fired = jnp.isfinite(times)

    def first(row, fired_row):
        (pos,) = jnp.nonzero(fired_row, size=n_spikes, fill_value=0)
        kept = jnp.arange(n_spikes) < jnp.sum(fired_row)
        return jnp.where(kept, row[pos], jnp.inf), jnp.where(kept, pos % n, -1).astype(jnp.int32)

    time, idx = jax.vmap(first)(times, fired)
    count = jnp.sum(fired, axis=1, dtype=jnp.int32)
    return time, idx, jnp.maximum(count - n_spikes, 0)
