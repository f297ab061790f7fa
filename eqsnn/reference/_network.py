r"""The checked network the reference simulates: per-neuron constants, weights and delays.

`prepare` checks the arguments of [`eqsnn.reference.simulate_diffrax`][] and
[`eqsnn.reference.traces_diffrax`][] (errors name the public function) and pads the
neurons to a power of two, so that one compilation of the ODE solve serves networks of
similar size. Padded neurons copy the last neuron's constants, get no weights and no
arrivals (their delays are $+\infty$), so they rest at $v_\mathrm{leak}$ (the IF at
$v_\mathrm{init}$) and never spike.
"""

from typing import NamedTuple

import diffrax
import jax.numpy as jnp
import numpy as np

from ._crossing import SolverConfig
from ._models import AnyConstants, Constants, checks, constants_type

_MIN_BUCKET = 8
"""Neurons are padded to a power of two (at least this), so that one compilation serves
networks of similar size."""


class Network(NamedTuple):
    """A checked network, ready for `run`: everything padded to `n_pad` neurons.

    `d_in` (`(n_in, n_pad)`) and `d_rec` (`(n_pad, n_pad)`) are the delays per synapse in
    seconds, `inf` for padded targets, or `None` for no delay; `t_ref` is `(n_pad,)`."""

    consts: AnyConstants
    config: SolverConfig
    w_in: np.ndarray
    w_rec: np.ndarray | None
    d_in: np.ndarray | None
    d_rec: np.ndarray | None
    t_ref: np.ndarray
    n: int
    dtype: np.dtype
    max_simulated_spikes: int
    who: str  # the public function, for error messages


def _per_neuron(params, kind: type, n: int, who: str) -> dict[str, np.ndarray]:
    """Every parameter of the model (the fields of its constants `kind`, and `t_ref`) as a
    float64 array of shape `(n,)`, checked. Only the LIF has a refractory period."""
    values = {}
    for name in (*kind._fields, "t_ref"):
        if name == "t_ref":
            value = getattr(params, name, 0.0) if kind is Constants else 0.0
        else:
            value = getattr(params, name)
        array = np.asarray(value, dtype=np.float64)
        try:
            values[name] = np.broadcast_to(array, (n,))
        except ValueError:
            raise ValueError(
                f"{who}: `params.{name}` must be a scalar or an array of shape ({n},) (one "
                f"value per neuron), got shape {array.shape}."
            ) from None
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{who}: `params.{name}` must be finite, got {array.tolist()}.")
    for name, predicate, what in checks(kind):
        ok = predicate(values)
        if not np.all(ok):
            bad = int(np.flatnonzero(~ok)[0])
            raise ValueError(
                f"{who}: `params.{name}` must be {what}, got {float(values[name][bad])!r} for "
                f"neuron {bad}."
            )
    return values


def _delays(delays, n_sources: int, n: int, name: str, who: str) -> np.ndarray | None:
    """`delays` of shape `(n_sources,)` or `(n_sources, n)` as `(n_sources, n)`, checked."""
    if delays is None:
        return None
    d = np.asarray(delays, dtype=np.float64)
    if d.shape == (n_sources,):
        d = np.repeat(d[:, None], n, axis=1)
    elif d.shape != (n_sources, n):
        raise ValueError(
            f"{who}: `{name}` must have shape ({n_sources},) (per source) or "
            f"({n_sources}, {n}) (per synapse), got shape {d.shape}."
        )
    bad = ~(np.isfinite(d) & (d >= 0))
    if np.any(bad):
        raise ValueError(
            f"{who}: `{name}` must be finite and >= 0 (seconds), got {d[bad].tolist()} "
            f"at {[tuple(k) for k in np.argwhere(bad).tolist()]}."
        )
    return d


def _check_arguments(input_spikes, input_weights, recurrent_weights, t_max, who: str):
    if input_spikes.time.ndim != 1:
        raise ValueError(
            f"{who}: `input_spikes` must be a single unbatched buffer, got time "
            f"of shape {input_spikes.time.shape}; use a Python loop over the batch."
        )
    if input_weights.ndim != 2:
        raise ValueError(
            f"{who}: `input_weights` must have shape (n_in, n_neurons), got "
            f"shape {input_weights.shape}."
        )
    n = input_weights.shape[1]
    if recurrent_weights is not None and recurrent_weights.shape != (n, n):
        raise ValueError(
            f"{who}: `recurrent_weights` must have shape ({n}, {n}), got "
            f"shape {recurrent_weights.shape}."
        )
    if not (np.isfinite(t_max) and t_max > 0):
        raise ValueError(f"{who}: `t_max` must be positive and finite, got {t_max!r}.")


def _check_solver_settings(rtol, atol, v_th, max_simulated_spikes, dtype, who: str):
    if (
        isinstance(max_simulated_spikes, bool)
        or not isinstance(max_simulated_spikes, (int, np.integer))
        or max_simulated_spikes < 1
    ):
        raise ValueError(
            f"{who}: `max_simulated_spikes` must be a positive int, got {max_simulated_spikes!r}."
        )
    resolution = float(jnp.finfo(dtype).eps)
    if rtol < resolution or atol < resolution * float(np.max(np.abs(v_th))):
        raise ValueError(
            f"{who}: `rtol`={rtol!r} / `atol`={atol!r} are below the resolution "
            f"of {dtype} ({resolution:.1e}); enable float64 with "
            '`jax.config.update("jax_enable_x64", True)` or loosen the tolerances.'
        )


def _pad(array: np.ndarray, shape: tuple[int, ...], fill: float, dtype) -> np.ndarray:
    padded = np.full(shape, fill, dtype)
    padded[tuple(slice(0, k) for k in array.shape)] = array
    return padded


def prepare(
    params,
    input_spikes,
    input_weights,
    t_max,
    who: str,
    *,
    recurrent_weights,
    input_delays,
    recurrent_delays,
    rtol,
    atol,
    dt0,
    max_steps,
    solver,
    max_simulated_spikes,
) -> Network:
    """Check the arguments (errors name `who`) and pad the network to a power of two."""
    input_weights = jnp.asarray(input_weights)
    if not jnp.issubdtype(input_weights.dtype, jnp.floating):
        input_weights = input_weights.astype(jnp.result_type(float))
    dtype = input_weights.dtype
    if recurrent_weights is not None:
        recurrent_weights = jnp.asarray(recurrent_weights, dtype)
    _check_arguments(input_spikes, input_weights, recurrent_weights, t_max, who)
    n_in, n = input_weights.shape
    kind = constants_type(params, who)
    values = _per_neuron(params, kind, n, who)
    _check_solver_settings(rtol, atol, values["v_th"], max_simulated_spikes, dtype, who)
    if recurrent_delays is not None and recurrent_weights is None:
        raise ValueError(f"{who}: `recurrent_delays` needs `recurrent_weights`.")
    d_in = _delays(input_delays, n_in, n, "input_delays", who)
    d_rec = _delays(recurrent_delays, n, n, "recurrent_delays", who)
    n_pad = max(_MIN_BUCKET, 1 << (n - 1).bit_length())
    w_in = _pad(np.asarray(input_weights), (n_in, n_pad), 0.0, dtype)
    w_rec = None
    if recurrent_weights is not None:
        w_rec = _pad(np.asarray(recurrent_weights), (n_pad, n_pad), 0.0, dtype)
    if d_in is not None:
        d_in = _pad(d_in, (n_in, n_pad), np.inf, np.float64)
    if d_rec is not None:
        d_rec = _pad(d_rec, (n_pad, n_pad), np.inf, np.float64)
    padded = {k: np.pad(v, (0, n_pad - n), mode="edge") for k, v in values.items()}
    consts = kind(*(jnp.asarray(padded[f], dtype) for f in kind._fields))
    config = SolverConfig(solver or diffrax.Tsit5(), float(rtol), float(atol), dt0, int(max_steps))
    return Network(
        consts,
        config,
        w_in,
        w_rec,
        d_in,
        d_rec,
        padded["t_ref"],
        n,
        dtype,
        int(max_simulated_spikes),
        who,
    )
