"""What the engines share: input spikes in time order, output buffers, cotangent plumbing."""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from .._sort import stable_argsort
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
