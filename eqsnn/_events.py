"""Shared event plumbing: input validation and ordering, overflow policy, output buffers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._checks import is_concrete
from ._overflow import Overflow, report_dropped
from ._spikes import EMPTY_INDEX, Spikes


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


def check_input(spikes: Spikes, in_size: int, who: str) -> Spikes:
    """Static and value checks of one sample of input spikes for a layer with `in_size` inputs.

    `who` names the layer in the messages ([`layer_name`][eqsnn._checks.layer_name]). A
    buffer whose `n_sources` differs from `in_size` raises a `ValueError` at once (also when
    traced). Concrete spikes are checked on the host (`ValueError` with the caller's
    traceback); traced ones with `eqx.error_if`. A buffer of zero slots is replaced by one
    empty slot."""
    if not isinstance(spikes, Spikes):
        raise TypeError(f"{who}: expected `spikes` to be an eqsnn.Spikes, got {type(spikes)}.")
    if spikes.time.ndim != 1:
        raise ValueError(
            f"{who}: `spikes` must be one sample with arrays of shape (n,), got time.shape="
            f"{spikes.time.shape}; use jax.vmap over the layer for a batch."
        )
    if spikes.n_sources is not None and spikes.n_sources != in_size:
        raise ValueError(
            f"{who}: got spikes from a source of {spikes.n_sources} neurons "
            f"(spikes.n_sources={spikes.n_sources}) but in_size={in_size}."
        )
    if spikes.time.shape[0] == 0:
        # An empty buffer is one empty slot: every engine needs at least one input slot.
        spikes = Spikes(
            time=jnp.zeros((1,), spikes.time.dtype),
            idx=jnp.full((1,), EMPTY_INDEX, spikes.idx.dtype),
            current=jnp.zeros((1,), spikes.current.dtype),
            dropped=spikes.dropped,
            n_sources=spikes.n_sources,
        )
    time_text = f"{who}: input spike times must be non-negative and not NaN"
    idx_text = f"{who}: input spike indices must lie in [-1, in_size={in_size})"
    if is_concrete(spikes.time, spikes.idx):
        time, idx = np.asarray(spikes.time), np.asarray(spikes.idx)
        bad_idx = (idx < EMPTY_INDEX) | (idx >= in_size)
        if bad_idx.any():
            k = int(np.argmax(bad_idx))
            raise ValueError(f"{idx_text}, got idx[{k}]={idx[k]}.")
        bad_time = (idx >= 0) & (np.isnan(time) | (time < 0))
        if bad_time.any():
            k = int(np.argmax(bad_time))
            raise ValueError(f"{time_text}, got time[{k}]={time[k]}.")
        return spikes
    used = spikes.idx >= 0
    time = eqx.error_if(
        spikes.time, jnp.any(used & (jnp.isnan(spikes.time) | (spikes.time < 0))), time_text + "."
    )
    idx = eqx.error_if(
        spikes.idx, jnp.any((spikes.idx < EMPTY_INDEX) | (spikes.idx >= in_size)), idx_text + "."
    )
    return eqx.tree_at(lambda s: (s.time, s.idx), spikes, (time, idx))


def sort_inputs(spikes: Spikes, t_max: float) -> SortedInputs:
    """Order input spikes by time and compute interval ends (the next input or `t_max`)."""
    valid = (spikes.idx >= 0) & (spikes.time < t_max)
    key = jnp.where(valid, spikes.time, t_max)
    order = jnp.argsort(key, stable=True)
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
    _, pick = jax.lax.top_k(-key, n_spikes)
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
    overflow: Overflow,
    who: str,
) -> Spikes:
    """Keep the `n_spikes` earliest valid candidates, sorted, padded with empty slots."""
    time, neuron, current, valid = pad_candidates(n_spikes, time, neuron, current, valid)
    pick, kept = select_spikes(time, valid, n_spikes)
    dropped = jnp.maximum(jnp.sum(valid, dtype=jnp.int32) - n_spikes, 0) + extra_dropped
    out_time = jnp.where(kept, time[pick], jnp.inf)
    if overflow is Overflow.ERROR:
        out_time = eqx.error_if(
            out_time,
            dropped > 0,
            f"{who}: more spikes than the buffer holds (n_spikes={n_spikes}); increase "
            "`n_spikes` (or the per-neuron spike budget), or use overflow=Overflow.WARN "
            "or Overflow.COUNT.",
        )
    return Spikes(
        time=out_time,
        idx=jnp.where(kept, neuron[pick], EMPTY_INDEX).astype(jnp.int32),
        current=jnp.where(kept, current[pick], 0.0),
        dropped=dropped.astype(jnp.int32),
    )


@eqx.filter_jit
def compiled(simulate, layer, spikes: Spikes) -> Spikes:
    """`simulate(layer, spikes)`, compiled once per layer configuration.

    Layers route their simulation through this so that a call outside `jax.jit` (a
    notebook, an eager `jax.grad`) runs one compiled program instead of dispatching the
    event loops op by op, which recompiles every `lax.scan` body at every call. Inside a
    user's `jax.jit` it is inlined. `simulate` must be a module-level function (it is
    hashed as part of the cache key).

    `simulate` returns the spikes that the layer lost itself in `dropped`; here the layer's
    `overflow` policy is applied to them ([`report_dropped`][eqsnn._overflow.report_dropped])
    and the input's `dropped` (the losses upstream) is added, so that the last buffer of a
    network counts the losses of every layer.
    """
    out = report_dropped(simulate(layer, spikes), layer)
    return eqx.tree_at(lambda s: s.dropped, out, out.dropped + spikes.dropped)


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
