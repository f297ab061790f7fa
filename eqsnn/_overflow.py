"""Spikes a layer cannot keep: the `Overflow` policy, the `dropped` count, the warning.

Every layer reports the spikes it lost in [`eqsnn.Spikes`][]`.dropped` of its output, added
to the count of its input buffer, so that the last buffer of a network counts the losses
of every layer. With the default `Overflow.WARN`, a call that lost spikes also issues a
[`eqsnn.SpikesDroppedWarning`][] from inside the compiled program: a host callback behind
a `lax.cond`, so that the host is only called when spikes were lost (once per `vmap`
batch).
"""

import enum
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._checks import layer_name
from ._spikes import Spikes


class Overflow(enum.Enum):
    """What a layer does when it loses spikes (see [Spike budgets](../concepts/budgets.md)).

    A layer loses spikes when its output buffer (`n_spikes`) is full, or when a neuron
    would spike more often than its engine's per-neuron budget
    (`WindowScan(max_spikes_per_neuron=...)` or `IntervalScan(max_spikes_per_interval=...)`)
    allows. Whatever the policy, the output keeps the spikes
    that fit and [`eqsnn.Spikes`][]`.dropped` counts the lost ones.

    - `Overflow.WARN` (the default): count them, and issue a
      [`eqsnn.SpikesDroppedWarning`][] (also under `jit` and `vmap`) when a call lost
      any. The warning names the layer, the number lost and the setting to raise; it is
      shown once per layer configuration and setting (see the warning's docstring).
    - `Overflow.COUNT`: count them silently (for when you read `dropped` yourself, or
      expect losses).
    - `Overflow.ERROR`: raise a runtime error (through `eqx.error_if`, also under `jit`),
      for when any lost spike is a bug.
    """

    WARN = "warn"
    COUNT = "count"
    ERROR = "error"


class SpikesDroppedWarning(UserWarning):
    """Issued when a layer with `overflow=Overflow.WARN` (the default) lost spikes.

    The message names the layer (class, sizes and budgets), the number of spikes it lost
    in the call (under `jax.vmap`: in the whole batch, in one message) and the setting to
    raise: the engine's per-neuron budget, as you would spell it
    (`WindowScan(max_spikes_per_neuron=...)` or `IntervalScan(max_spikes_per_interval=...)`),
    for samples whose output buffer had room, `n_spikes` (or the budget) for those whose
    buffer was full; an engine without a per-neuron budget (`EventLoop`) names `n_spikes`
    only, and so does the error of `Overflow.ERROR`. The count is the layer's own (a lower
    bound, see [`eqsnn.Spikes`][]), not that of the layers before it.

    **At most once per layer configuration and setting:** after one warning for a layer
    configuration (its class, sizes and budgets) and a setting to raise, later losses of
    the same kind are only counted, until [`eqsnn.reset_dropped_warnings`][] re-arms all
    warnings (for example once per training epoch). Python's warning filters apply as
    usual.

    **Example:**

    ```python
    import warnings

    import eqsnn

    warnings.simplefilter("error", eqsnn.SpikesDroppedWarning)  # a lost spike raises
    ```
    """


_WARNED: set[tuple[str, str]] = set()
"""The (layer, setting) pairs that have warned since the last `reset_dropped_warnings`."""


def reset_dropped_warnings() -> None:
    """Re-arm every [`eqsnn.SpikesDroppedWarning`][]: the next loss of each layer
    configuration and setting warns again (each warns once between two resets)."""
    _WARNED.clear()


def _layer_text(layer) -> str:
    """The layer's class, sizes and budgets, e.g. `LIF(in_size=2, out_size=3, n_spikes=6,
    engine=WindowScan(max_spikes_per_neuron=2))`."""
    budgets = [f"n_spikes={layer.n_spikes}"]
    engine = getattr(layer, "engine", None)
    if engine is not None:
        budgets.append(f"engine={engine!r}")
    return layer_name(layer, *budgets)


def _per_neuron_setting(layer) -> str:
    """The per-neuron budget that limits `layer`, as the engine spelling a user changes
    (`WindowScan(max_spikes_per_neuron=...)`), or `n_spikes` if its engine has none."""
    engine = getattr(layer, "engine", None)
    settings = getattr(engine, "budget_settings", {})
    name = next(iter(settings), None)
    return "n_spikes" if name is None else f"{type(engine).__name__}({name}=...)"


def _quote(setting: str) -> str:
    """`setting` in backticks if it is code (`n_spikes`, `WindowScan(...=...)`)."""
    return f"`{setting}`" if setting.isidentifier() or setting.endswith("=...)") else setting


def _warn(layer_text: str, per_neuron: str, dropped, full) -> None:
    """Host side of the warning: `dropped` and `full` per sample (any shape)."""
    dropped, full = np.broadcast_arrays(np.asarray(dropped), np.asarray(full))
    total = int(dropped.sum())
    if total == 0:
        return
    by_buffer = int(dropped[full].sum())
    parts = []
    if total - by_buffer:  # the buffer had room: only the per-neuron budget can be short
        parts.append(((per_neuron,), f"{total - by_buffer} with room left in the buffer"))
    if by_buffer:  # a full buffer: n_spikes is short (and perhaps the per-neuron budget)
        parts.append((("n_spikes", per_neuron), f"{by_buffer} with a full output buffer"))
    names = dict.fromkeys(name for settings, _ in parts for name in settings)
    settings = " or ".join(_quote(name) for name in names)
    key = (layer_text, settings)
    if key in _WARNED:
        return
    _WARNED.add(key)
    how = ", ".join(text for _, text in parts)
    samples = f"{int(np.count_nonzero(dropped))} of {dropped.size} samples"
    warnings.warn(
        f"{layer_text} lost {total} spikes in one call ({samples}; {how}): raise "
        f"{settings}. The layers after it no longer see the true dynamics. "
        "`Spikes.dropped` counts such losses; overflow=Overflow.COUNT counts them silently, "
        "Overflow.ERROR raises. Shown once per layer configuration and setting "
        "(eqsnn.reset_dropped_warnings() re-arms it).",
        SpikesDroppedWarning,
        stacklevel=1,  # called from a host callback: no user frame to point at
    )


def _emit(callback, dropped: Int[Array, ""], full: Bool[Array, ""], dtype) -> Float[Array, ""]:
    """Call `callback(dropped, full)` on the host if any `dropped` is non-zero.

    **Returns:** a zero of `dtype` that the host computed when it was called. Adding it to
    an output keeps the call in the program (a `pure_callback` whose result is unused is
    removed), without the cost of an effect: a program with effects leaves JAX's fast
    dispatch path, which costs more than the simulation of a small layer. Under
    `jax.vmap` the callback gets the whole batch in one call, and the `lax.cond` keeps the
    host call off the path of a call that lost nothing.
    """
    zero = jax.ShapeDtypeStruct((), dtype)

    def host(dropped, full):
        callback(dropped, full)
        return np.zeros((), dtype)

    def call(dropped, full):
        def warn():
            return jax.pure_callback(host, zero, dropped, full, vmap_method="sequential")

        return jax.lax.cond(jnp.any(dropped > 0), warn, lambda: jnp.zeros((), dtype))

    @jax.custom_batching.custom_vmap
    def emit(dropped, full):
        return call(dropped, full)

    @emit.def_vmap
    def _batched(axis_size, in_batched, dropped, full):
        del axis_size, in_batched
        return call(dropped, full), False

    @jax.custom_jvp
    def constant(dropped, full):  # a host call has no derivative: the zero is a constant
        return emit(dropped, full)

    @constant.defjvp
    def _constant_jvp(primals, tangents):
        del tangents
        zero = constant(*primals)
        return zero, jnp.zeros_like(zero)

    return constant(dropped, jnp.asarray(full))


def report_dropped(out: Spikes, layer, *, per_neuron: str | None = None) -> Spikes:
    """Apply the layer's `overflow` policy to the spikes it lost in one call (traced code).

    **Arguments:**

    - `out`: the layer's output; its `dropped` counts the spikes the layer itself lost.
    - `layer`: the layer (its class, sizes, budgets and `overflow` are read; a layer
      without an `overflow` field warns).
    - `per_neuron`: the name of the per-neuron budget for the message (default: the
      first of the layer engine's `budget_settings`, else `n_spikes`).

    **Returns:** `out`, unchanged in value. With `Overflow.ERROR` a runtime error is
    raised (`eqx.error_if`) when `out.dropped` is non-zero. With `Overflow.WARN` a host
    callback warns when `out.dropped` is non-zero (see [`eqsnn.SpikesDroppedWarning`][]),
    when the output buffer was full naming `n_spikes` as a setting to raise.
    `Overflow.COUNT` does nothing.
    """
    overflow = getattr(layer, "overflow", Overflow.WARN)
    if overflow is Overflow.ERROR:
        per_neuron = _per_neuron_setting(layer) if per_neuron is None else per_neuron
        budget = "" if per_neuron == "n_spikes" else " or than a neuron's budget allows"
        increase = "`n_spikes`" + ("" if per_neuron == "n_spikes" else f" or {_quote(per_neuron)}")
        time = eqx.error_if(
            out.time,
            out.dropped > 0,
            f"{_layer_text(layer)}: more spikes than the buffer holds{budget}; increase "
            f"{increase}, or use overflow=Overflow.WARN or Overflow.COUNT.",
        )
        return eqx.tree_at(lambda s: s.time, out, time)
    if overflow is not Overflow.WARN:
        return out
    text = _layer_text(layer)
    per_neuron = _per_neuron_setting(layer) if per_neuron is None else per_neuron

    def callback(dropped, full):
        _warn(text, per_neuron, dropped, full)

    zero = _emit(callback, out.dropped, out.count() == out.n_slots, out.time.dtype)
    return eqx.tree_at(lambda s: s.time, out, out.time + zero)
