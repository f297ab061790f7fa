r"""The contract of an external executor (a [`Backend`][eqsnn.hardware.Backend]) and the
callback that runs it from traced JAX code.

The layer calls its backend through `jax.pure_callback` with `vmap_method="expand_dims"`:
under `jax.vmap` the callback receives the whole batch at once, so a batch of samples is
one backend call (one experiment run), not one per sample. The callback checks what the
backend returns and turns any problem into a [`BackendError`][eqsnn.hardware.BackendError]
that names the backend.
"""

import abc
import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int

from .._params import LIFParameters
from .._weights import InputWeights, RecurrentWeights

BACKEND_RUNS_LIF = (
    "a backend runs LIF neurons (see eqsnn.hardware.Backend), so hardware layers take "
    "eqsnn.LIFParameters only; simulate other neuron models with eqsnn.LIF or a layered "
    "eqsnn.RecurrentLIF"
)
"""Why hardware layers and backends refuse other neuron models (`check_lif`)."""


class BackendError(RuntimeError):
    """A backend raised an exception or returned output that breaks the
    [`Backend`][eqsnn.hardware.Backend] contract. The message names the backend.

    Under `jax.jit` the error surfaces wrapped in JAX's runtime error, whose message
    contains this one.
    """


class Backend(abc.ABC):
    r"""An executor of the forward pass: a neuromorphic chip, an emulator or a simulator.

    A hardware layer ([`eqsnn.HardwareLIF`][], [`eqsnn.HardwareRecurrentLIF`][]) hands its
    weights and a whole batch of input spikes to
    [`run`][eqsnn.hardware.Backend.run] and uses the spike times it returns as the forward
    pass; the gradients come from a software replay of those spikes (see
    [Hardware in the loop](../concepts/hardware.md)). Subclass this and implement `run`;
    see [Write a backend](../howto/write_a_backend.md).

    **The network to run.** Neurons follow the LIF dynamics of [`eqsnn.LIFParameters`][]
    ($\tau_\mathrm{mem}\dot V = v_\mathrm{leak} - V + I$, $\tau_\mathrm{syn}\dot I = -I$,
    spike and reset $V \leftarrow v_\mathrm{reset}$ at $V = v_\mathrm{th}$), from rest at
    $t = 0$. An input spike of input `i` adds `weights.input[i, n]` to the current of
    neuron `n`; with recurrent weights, a spike of neuron `j` adds
    `weights.recurrent[j, n]` (diagonal included). Spikes at or after `t_max` do not count.

    **Units.** Times in seconds (model time: a backend that runs faster than real time,
    like BrainScaleS-2, scales them itself), weights in the units of the current $I$, so
    that the voltage response follows from `params` exactly as in eqsnn's simulator.

    Backends are compared by identity and must be hashable (the layer holds its backend
    as a static field, so a new backend object means a new trace under `jax.jit`).
    """

    @property
    def name(self) -> str:
        """How errors refer to this backend (default: the class name)."""
        return type(self).__name__

    @abc.abstractmethod
    def run(
        self,
        weights: InputWeights | RecurrentWeights,
        input_time: Float[np.ndarray, "batch n_in_slots"],
        input_idx: Int[np.ndarray, "batch n_in_slots"],
        *,
        params: LIFParameters,
        t_max: float,
        n_spikes: int,
    ) -> tuple[np.ndarray, np.ndarray] | tuple[np.ndarray, np.ndarray, np.ndarray]:
        r"""Run the network on a batch of input spike trains.

        **Arguments:**

        - `weights`: an [`eqsnn.InputWeights`][] (feed-forward layer: `input` of shape
          `(in_size, n)`) or an [`eqsnn.RecurrentWeights`][] (recurrent layer: also
          `recurrent` of shape `(n, n)`), with NumPy arrays as leaves. Weights outside a
          recurrent layer's connectivity are zero.
        - `input_time`: input spike times in seconds, shape `(batch, n_in_slots)`, each row
          sorted ascending; empty slots (and spikes at or after `t_max`) come last with
          time `+inf`.
        - `input_idx`: input index of each spike, integer, same shape; `-1` in empty slots.
        - `params`: the neuron parameters (time constants in seconds).
        - `t_max`: the horizon in seconds; spikes at or after it are not reported.
        - `n_spikes`: the number of output slots per sample.

        **Returns:** `(time, idx)` or `(time, idx, dropped)`:

        - `time`: floating array of shape `(batch, n_spikes)`: spike times in seconds in
          `[0, t_max)`, the valid slots first and sorted ascending (ties in any order);
          the values of empty slots are ignored (they may be `+inf`, never read).
        - `idx`: integer array of shape `(batch, n_spikes)`: the neuron of each spike, in
          `[0, n)`; `-1` marks an empty slot, and all empty slots follow the valid ones.
        - `dropped` (optional, default 0): integer array of shape `(batch,)`: spikes
          before `t_max` that did not fit into the `n_spikes` slots.

        Anything else (wrong shape or dtype, NaN, unsorted times, out-of-range indices)
        or an exception raises a [`BackendError`][eqsnn.hardware.BackendError].
        """


def _fail(backend: Backend, message: str):
    raise BackendError(f"backend {backend.name}: {message}")


def validate_output(
    backend: Backend, result, batch: int, n_spikes: int, n_neurons: int, t_max: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check a backend's result against the contract; return `(time, idx, dropped)`."""
    if not isinstance(result, tuple | list) or len(result) not in (2, 3):
        _fail(
            backend,
            f"run() must return a tuple (time, idx) or (time, idx, dropped), got {type(result)}.",
        )
    time, idx = np.asarray(result[0]), np.asarray(result[1])
    dropped = np.zeros(batch, np.int64) if len(result) == 2 else np.asarray(result[2])
    expected = (batch, n_spikes)
    for name, value, shape in (("time", time, expected), ("idx", idx, expected)):
        if value.shape != shape:
            _fail(
                backend, f"`{name}` must have shape (batch, n_spikes)={shape}, got {value.shape}."
            )
    if dropped.shape != (batch,):
        _fail(backend, f"`dropped` must have shape (batch,)=({batch},), got {dropped.shape}.")
    if not np.issubdtype(time.dtype, np.floating):
        _fail(backend, f"`time` must be a floating array, got dtype {time.dtype}.")
    for name, value in (("idx", idx), ("dropped", dropped)):
        if not np.issubdtype(value.dtype, np.integer):
            _fail(backend, f"`{name}` must be an integer array, got dtype {value.dtype}.")
    if np.any((idx < -1) | (idx >= n_neurons)):
        bad = idx[(idx < -1) | (idx >= n_neurons)]
        _fail(backend, f"`idx` must lie in [-1, {n_neurons}), got e.g. {bad.flat[0]}.")
    valid = idx >= 0
    if np.any(valid[:, 1:] & ~valid[:, :-1]):
        _fail(backend, "empty slots (idx == -1) must follow all valid slots in each row.")
    if np.any(valid & np.isnan(time)):
        _fail(backend, "`time` holds NaN in valid slots.")
    if np.any(valid & ~((time >= 0) & (time < t_max))):
        bad = time[valid & ~((time >= 0) & (time < t_max))]
        _fail(backend, f"spike times must lie in [0, t_max={t_max}), got e.g. {bad.flat[0]}.")
    both = valid[:, 1:] & valid[:, :-1]
    if np.any(both & (np.diff(np.where(valid, time, 0.0), axis=-1) < 0)):
        _fail(backend, "spike times must be sorted ascending in each row.")
    if np.any(dropped < 0):
        _fail(backend, "`dropped` must be non-negative.")
    return np.where(valid, time, np.inf), np.where(valid, idx, -1), dropped


def _run_checked(backend, weights, time, idx, params, t_max, n_spikes, n_neurons):
    try:
        result = backend.run(weights, time, idx, params=params, t_max=t_max, n_spikes=n_spikes)
    except BackendError:
        raise
    except Exception as error:
        raise BackendError(
            f"backend {backend.name} raised {type(error).__name__}: {error}"
        ) from error
    return validate_output(backend, result, time.shape[0], n_spikes, n_neurons, t_max)


def _host(backend, params, t_max, n_spikes, n_neurons, weights, time, idx):
    """The host side of the callback: any number of leading (batch) axes, one backend call
    if the weights are shared by the batch, one per sample otherwise."""
    weights = jax.tree.map(np.asarray, weights)
    # Every argument has the same vmap axes in front (size 1 where it is not batched);
    # `time` and `idx` then have the sample's own axis of size 1 (see `call_backend`).
    time, idx = np.asarray(time)[..., 0, :], np.asarray(idx)[..., 0, :]
    w_leaves = jax.tree.leaves(weights)
    w_lead = [leaf.shape[:-2] for leaf in w_leaves]
    lead = np.broadcast_shapes(time.shape[:-1], *w_lead)
    k = time.shape[-1]
    flat_time = np.broadcast_to(time, (*lead, k)).reshape(-1, k)
    flat_idx = np.broadcast_to(idx, (*lead, k)).reshape(-1, k)
    batch = flat_time.shape[0]
    if all(math.prod(shape) == 1 for shape in w_lead):
        shared = jax.tree.map(lambda w: w.reshape(w.shape[-2:]), weights)
        outputs = [
            _run_checked(backend, shared, flat_time, flat_idx, params, t_max, n_spikes, n_neurons)
        ]
    else:  # weights batched too (e.g. vmap over an ensemble of layers): one call per sample
        flat_w = jax.tree.map(lambda w: np.broadcast_to(w, (*lead, *w.shape[-2:])), weights)
        flat_w = jax.tree.map(lambda w: w.reshape(batch, *w.shape[-2:]), flat_w)
        outputs = [
            _run_checked(
                backend,
                jax.tree.map(lambda w, b=b: w[b], flat_w),
                flat_time[b : b + 1],
                flat_idx[b : b + 1],
                params,
                t_max,
                n_spikes,
                n_neurons,
            )
            for b in range(batch)
        ]
    out_time, out_idx, dropped = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
    out_time, out_idx = _cast_times(out_time, out_idx, time.dtype, t_max)
    return (
        out_time.reshape(*lead, 1, n_spikes),
        out_idx.reshape(*lead, 1, n_spikes).astype(np.int32),
        dropped.reshape(*lead, 1).astype(np.int32),
    )


def _cast_times(time: np.ndarray, idx: np.ndarray, dtype, t_max: float):
    """The backend's times in the layer's dtype. A time just below `t_max` may round up to
    `t_max` (float64 to float32): such a spike is no longer before `t_max`, so its slot
    becomes empty (as in the simulator, spikes at or after `t_max` do not count). Sorted
    times stay sorted, so the empty slots still follow the valid ones."""
    cast = time.astype(dtype)
    late = (cast >= np.asarray(t_max, dtype)) | (cast.astype(np.float64) >= t_max)
    return np.where(late, np.inf, cast).astype(dtype), np.where(late, -1, idx)


def call_backend(
    backend: Backend,
    weights: InputWeights | RecurrentWeights,
    input_time: Float[Array, " k"],
    input_idx: Int[Array, " k"],
    params: LIFParameters,
    t_max: float,
    n_spikes: int,
) -> tuple[Float[Array, " n_spikes"], Int[Array, " n_spikes"], Int[Array, ""]]:
    """Run `backend` on one sample (a batch under `jax.vmap`, in one call) from traced code.

    No gradient flows through the call (its arguments are `stop_gradient`-ed).
    """
    weights, input_time, input_idx = jax.lax.stop_gradient((weights, input_time, input_idx))
    n_neurons = weights.input.shape[-1]
    result = (
        jax.ShapeDtypeStruct((1, n_spikes), input_time.dtype),
        jax.ShapeDtypeStruct((1, n_spikes), jnp.int32),
        jax.ShapeDtypeStruct((1,), jnp.int32),
    )

    def host(weights, time, idx):
        return _host(backend, params, t_max, n_spikes, n_neurons, weights, time, idx)

    time, idx, dropped = jax.pure_callback(
        host, result, weights, input_time[None], input_idx[None], vmap_method="expand_dims"
    )
    return time[0], idx[0], dropped[0]
