"""The `Spikes` pytree: a fixed-length, padded buffer of spike events."""

import dataclasses

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int

from ._checks import as_int
from ._sort import stable_argsort

EMPTY_INDEX = -1
"""Index that marks an empty slot of a [`eqsnn.Spikes`][] buffer."""


class Spikes(eqx.Module):
    r"""A fixed-length buffer of spike events (time, neuron index, synaptic current).

    This is the type that every eqsnn layer takes and returns. All three arrays
    have the same trailing length `n` (the buffer size); under `jax.vmap` they
    carry a leading batch axis.

    **Empty slots.** A slot with `idx == -1` holds no spike. Layers write
    `time == +inf` and `current == 0` into empty slots, so that sorting by time
    puts them last and the first-spike time of a silent neuron is `+inf`. Input
    buffers built by users may hold any time in empty slots: layers ignore it.
    Spikes at or after the layer's `t_max` are ignored as well.

    **Arguments:**

    - `time`: spike times in seconds, shape `(n,)`.
    - `idx`: neuron index of each spike, integer, shape `(n,)`; `-1` for an empty slot.
    - `current`: synaptic current of the spiking neuron at the spike time, shape
      `(n,)`. EventProp needs it; it defaults to zeros for input spikes.
    - `dropped`: spikes lost before `t_max` by the layer that produced this buffer and
      by every layer before it (each layer adds its own losses to its input's count, so
      the output of a network counts them all); 0-d integer array, defaults to 0. A spike
      is lost when the output buffer is full or a neuron exceeds its per-neuron budget.
      The count is a lower bound on the spikes lost, and 0 exactly when none was lost
      (exact where [Spike budgets](../concepts/budgets.md) says so).
    - `n_sources`: the size of the index space, i.e. the number of neurons that may have
      emitted these spikes (keyword-only, static; `None` = unknown). Layers set it to
      their number of neurons and the encoders to their number of inputs; a layer given
      spikes whose `n_sources` differs from its `in_size` raises a `ValueError` when it
      is called or traced. Buffers built by hand may leave it at `None`; the indices of
      every buffer are checked against `in_size` when the layer runs.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn

    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 4e-3, 2e-3]), idx=jnp.array([0, 2, 1]))
    spikes.sort().idx  # Array([0, 1, 2], dtype=int32)
    ```
    """

    time: Float[Array, "*batch n"]
    idx: Int[Array, "*batch n"]
    current: Float[Array, "*batch n"]
    dropped: Int[Array, "*batch"]
    n_sources: int | None = eqx.field(static=True)

    def __init__(
        self,
        time: Float[ArrayLike, "*batch n"],
        idx: Int[ArrayLike, "*batch n"],
        current: Float[ArrayLike, "*batch n"] | None = None,
        dropped: Int[ArrayLike, "*batch"] | int = 0,
        *,
        n_sources: int | None = None,
    ):
        time = jnp.asarray(time)
        if not jnp.issubdtype(time.dtype, jnp.floating):
            time = time.astype(jnp.result_type(float))
        idx = jnp.asarray(idx)
        if not jnp.issubdtype(idx.dtype, jnp.integer):
            if isinstance(idx, np.ndarray | Array) and jnp.issubdtype(idx.dtype, jnp.floating):
                raise TypeError(
                    f"Spikes: `idx` must hold integers, got an array of dtype {idx.dtype}."
                )
            idx = idx.astype(jnp.int32)
        if time.ndim < 1:
            raise ValueError(f"Spikes: `time` must have at least one axis, got shape {time.shape}.")
        if idx.shape != time.shape:
            raise ValueError(
                "Spikes: `time` and `idx` must have the same shape, got "
                f"time.shape={time.shape} and idx.shape={idx.shape}."
            )
        if current is None:
            current = jnp.zeros_like(time)
        else:
            current = jnp.asarray(current, dtype=time.dtype)
            if current.shape != time.shape:
                raise ValueError(
                    "Spikes: `current` must have the same shape as `time`, got "
                    f"current.shape={current.shape} and time.shape={time.shape}."
                )
        if isinstance(dropped, int | np.integer | np.ndarray) and np.any(np.asarray(dropped) < 0):
            raise ValueError(f"Spikes: `dropped` must be non-negative, got {dropped!r}.")
        if n_sources is not None:
            n_sources = as_int(n_sources, "n_sources", "Spikes", minimum=1)
        self.time = time
        self.idx = idx
        self.current = current
        self.dropped = jnp.broadcast_to(jnp.asarray(dropped, dtype=jnp.int32), time.shape[:-1])
        self.n_sources = n_sources

    @property
    def n_slots(self) -> int:
        """The buffer length `n` (number of slots, valid or empty)."""
        return self.time.shape[-1]

    @property
    def valid(self) -> Int[Array, "*batch n"]:
        """Boolean mask of the slots that hold a spike (`idx >= 0`)."""
        return self.idx >= 0

    def count(self) -> Int[Array, "*batch"]:
        """Number of valid spikes in the buffer."""
        return jnp.sum(self.valid, axis=-1)

    def sort(self) -> "Spikes":
        """Return the buffer ordered by time, empty slots last.

        Ties keep their original order (stable sort).
        """
        key = jnp.where(self.valid, self.time, jnp.inf)
        order = stable_argsort(key)

        def take(x):
            return jnp.take_along_axis(x, order, axis=-1)

        return Spikes(
            time=take(self.time),
            idx=take(self.idx),
            current=take(self.current),
            dropped=self.dropped,
            n_sources=self.n_sources,
        )

    def first_spike_times(self, n_neurons: int) -> Float[Array, "*batch n_neurons"]:
        """First spike time of each neuron `0..n_neurons-1`; `+inf` for a silent neuron.

        **Arguments:**

        - `n_neurons`: number of neurons (static).

        **Returns:** an array of shape `(*batch, n_neurons)`.
        """
        n_neurons = as_int(n_neurons, "n_neurons", "first_spike_times", minimum=1)
        neurons = jnp.arange(n_neurons, dtype=self.idx.dtype)
        hit = self.idx[..., None, :] == neurons[:, None]
        masked = jnp.where(hit, self.time[..., None, :], jnp.inf)
        return jnp.min(masked, axis=-1)


def with_sources(spikes: Spikes, n_sources: int) -> Spikes:
    """`spikes` with `n_sources` set (a layer marks its output with its number of neurons).

    As `dataclasses.replace`, but without re-running `Spikes.__init__` on arrays that are
    already valid: the new module is assembled as `jax.tree_util` unflattens one (80 us
    less per eager layer call)."""
    new = object.__new__(Spikes)
    for field in dataclasses.fields(Spikes):
        object.__setattr__(new, field.name, getattr(spikes, field.name))
    object.__setattr__(new, "n_sources", n_sources)
    return new
