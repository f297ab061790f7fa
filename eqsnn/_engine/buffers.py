"""What the engines share: input spikes in time order, output buffers, cotangent plumbing."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from .._spikes import EMPTY_INDEX, Spikes


class SortedInputs(eqx.Module):
    """Input spikes in time order, with the end of each inter-spike interval.

    Slots that are empty (`idx == -1`) or at/after `t_max` are moved to the end, with time
    `t_max` and a zero-length interval.
    """

    time: Float[Array, " k"]
    end: Float[Array, " k"]
    idx: Int[Array, " k"]
    valid: Bool[Array, " k"]
    order: Int[Array, " k"]
    """`order[k]` is the slot of the input buffer that holds the k-th spike in time."""


def stable_argsort(key: Float[Array, " k"]) -> Int[Array, " k"]:
    """`jnp.argsort(key, stable=True)` for a 1-d float `key`, bit for bit, from integer sorts.

    XLA on CPU sorts a single integer array several times faster than it sorts a float
    key together with its indices (a comparator call per comparison), so the order is
    built from integer sorts: the floats are mapped to integers in the same order (`-0.0`
    as `0.0`, every NaN as one NaN, last), sorted; each key's rank is the position of its
    first equal key in that sorted array, `searchsorted`; and one more sort of
    `rank * k + position` gives the stable order (equal keys keep their positions). With
    64-bit integers enabled, a float32 key and its position fit one 64-bit integer, and
    one sort does. Keys that are not float32 or float64, and buffers of 46341 or more
    entries (`k * k` must fit an int32), use `jnp.argsort`.
    """
    k = key.shape[-1]
    wide = jax.config.jax_enable_x64
    if key.ndim != 1 or k * k >= 2**31 or key.dtype not in (jnp.float32, jnp.float64):
        return jnp.argsort(key, stable=True)
    if key.dtype == jnp.float64 and not wide:
        return jnp.argsort(key, stable=True)
    itype = jnp.int32 if key.dtype == jnp.float32 else jnp.int64
    key = jnp.where(key == 0, jnp.zeros((), key.dtype), key)
    key = jnp.where(jnp.isnan(key), jnp.full((), jnp.nan, key.dtype), key)
    bits = jax.lax.bitcast_convert_type(key, itype)
    # Negative floats order backwards as integers: flip all their bits but the sign.
    bits = bits ^ ((bits >> (np.dtype(itype).itemsize * 8 - 1)) & np.iinfo(itype).max)
    position = jnp.arange(k, dtype=jnp.int32)
    if itype == jnp.int32 and wide:
        packed = (bits.astype(jnp.int64) << 32) | position.astype(jnp.int64)
        return (jnp.sort(packed) & 0xFFFFFFFF).astype(jnp.int32)
    rank = jnp.searchsorted(jnp.sort(bits), bits, side="left").astype(jnp.int32)
    return jnp.sort(rank * k + position) % k


def sort_inputs(spikes: Spikes, t_max: float) -> SortedInputs:
    """Order input spikes by time and compute interval ends (the next input or `t_max`)."""
    valid = (spikes.idx >= 0) & (spikes.time < t_max)
    key = jnp.where(valid, spikes.time, t_max)
    order = stable_argsort(key)
    time = key[order]
    end = jnp.concatenate([time[1:], jnp.full((1,), t_max, time.dtype)])
    return SortedInputs(
        time=time,
        end=end,
        idx=jnp.where(valid, spikes.idx, 0)[order],
        valid=valid[order],
        order=order,
    )


def select_spikes(
    time: Float[Array, " c"], valid: Bool[Array, " c"], n_spikes: int
) -> tuple[Int[Array, " n_spikes"], Bool[Array, " n_spikes"]]:
    """Indices of the `n_spikes` earliest valid candidates (time order), and which are real.

    Candidates must number at least `n_spikes` (pad first). Equal times keep candidate order.
    """
    key = jnp.where(valid, jax.lax.stop_gradient(time), jnp.inf)
    pick = stable_argsort(key)[:n_spikes]
    return pick, valid[pick]


def pad_candidates(n_spikes: int, *arrays):
    """Pad candidate arrays (time, neuron, current, valid) to at least `n_spikes` entries."""
    n_cand = arrays[0].shape[0]
    if n_cand >= n_spikes:
        return arrays
    pad = n_spikes - n_cand
    return tuple(jnp.concatenate([a, jnp.zeros(pad, a.dtype)]) for a in arrays)


def collect_spikes(
    time: Float[Array, " c"],
    neuron: Int[Array, " c"],
    current: Float[Array, " c"],
    valid: Bool[Array, " c"],
    n_spikes: int,
    extra_dropped: Int[Array, ""],
) -> Spikes:
    """Keep the `n_spikes` earliest valid candidates, sorted, padded with empty slots."""
    time, neuron, current, valid = pad_candidates(n_spikes, time, neuron, current, valid)
    pick, kept = select_spikes(time, valid, n_spikes)
    dropped = jnp.maximum(jnp.sum(valid, dtype=jnp.int32) - n_spikes, 0) + extra_dropped
    out_time = jnp.where(kept, time[pick], jnp.inf)
    return Spikes(
        time=out_time,
        idx=jnp.where(kept, neuron[pick], EMPTY_INDEX).astype(jnp.int32),
        current=jnp.where(kept, current[pick], 0.0),
        dropped=dropped.astype(jnp.int32),
    )


def zeros_if_none(grad, like):
    """A custom VJP's cotangent, or zeros like `like` where JAX passes `None` (no use)."""
    return jnp.zeros_like(like) if grad is None else grad


def input_cotangent(spikes: Spikes, sorted_in: SortedInputs, t_max, grad_sorted):
    """Cotangent of an input buffer from that of its time-sorted times (`sort_inputs`).

    Routes `grad_sorted` (one entry per sorted slot; invalid slots ignored) back to the
    caller's slots through the sort, and gives the input currents a zero cotangent. The
    result is `eqx.filter(spikes, eqx.is_inexact_array)`-shaped, as a custom VJP returns it.
    """

    def sorted_time(time):
        return sort_inputs(eqx.tree_at(lambda s: s.time, spikes, time), t_max).time

    _, pull = jax.vjp(sorted_time, spikes.time)
    (grad_time,) = pull(jnp.where(sorted_in.valid, grad_sorted, 0.0))
    return eqx.tree_at(
        lambda s: (s.time, s.current),
        eqx.filter(spikes, eqx.is_inexact_array),
        (grad_time, jnp.zeros_like(spikes.current)),
    )


def record_cotangents(collect, record, grad_out: Spikes):
    """Route the cotangents of an output buffer back to the record it was collected from.

    **Arguments:**

    - `collect`: `collect(record) -> Spikes`, the engine's gathering of its output buffer
      (differentiable in the record's `time` and `current`).
    - `record`: the engine's spike record, a module with `time` and `current` arrays.
    - `grad_out`: the cotangent of the output buffer (`None` leaves where unused).

    Empty output slots (`idx == -1`, time `+inf`) may carry NaN/inf cotangents from a loss
    evaluated on `+inf`; they are masked to zero.

    **Returns:** the cotangents of `record.time` and `record.current`.
    """

    def select(time, current):
        out = collect(eqx.tree_at(lambda r: (r.time, r.current), record, (time, current)))
        return (out.time, out.current), out.idx

    (time, current), pull, idx = jax.vjp(select, record.time, record.current, has_aux=True)
    kept = idx >= 0
    grad_time = jnp.where(kept, zeros_if_none(grad_out.time, time), 0.0)
    grad_current = jnp.where(kept, zeros_if_none(grad_out.current, current), 0.0)
    return pull((grad_time, grad_current))
