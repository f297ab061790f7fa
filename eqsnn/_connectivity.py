"""Which weights of a recurrent layer exist: `Connectivity`, `ConnectivityMask`, populations."""

import enum
from collections.abc import Sequence

import numpy as np
from jaxtyping import ArrayLike, Bool

Sources = tuple[tuple[bool, tuple[int, ...]], ...]
"""Per population: `(driven by the external inputs, the earlier populations that reach it)`."""


def population_bounds(layers: Sequence[int]) -> list[tuple[int, int]]:
    """`[(start, stop), ...]`: the neuron index range of each population."""
    stops = np.cumsum(layers).tolist()
    return list(zip([0, *stops[:-1]], stops, strict=True))


def feedforward_sources(
    mask_input: np.ndarray, mask_recurrent: np.ndarray, layers: Sequence[int]
) -> Sources | None:
    """What drives each population, or `None` if the populations are not feed-forward.

    They are feed-forward when no recurrent weight reaches a population from itself or
    from a later population (`mask_recurrent[j, m]` is `False` whenever `j` is not in an
    earlier population than `m`). Blocks whose mask is all `False` are left out.
    """
    bounds = population_bounds(layers)
    sources = []
    for b, (start, stop) in enumerate(bounds):
        if mask_recurrent[start:, start:stop].any():
            return None
        external = bool(mask_input[:, start:stop].any())
        earlier = tuple(
            a
            for a, (first, last) in enumerate(bounds[:b])
            if mask_recurrent[first:last, start:stop].any()
        )
        sources.append((external, earlier))
    return tuple(sources)


class Connectivity(enum.Enum):
    """Which weights of a [`eqsnn.RecurrentLIF`][] exist (and are trained).

    - `Connectivity.LAYERED`: inputs reach the first population, population `k` reaches
      population `k + 1`; a stack of feed-forward layers simulated in one loop (default).
    - `Connectivity.FULL`: every weight exists: inputs reach every neuron, and every neuron
      reaches every neuron, itself included.

    For any other pattern pass a [`eqsnn.ConnectivityMask`][].
    """

    LAYERED = "layered"
    FULL = "full"


class ConnectivityMask:
    """Boolean masks of the weights of a [`eqsnn.RecurrentLIF`][] that exist.

    Masked-out weights (`False`) are zero in the simulation, receive exactly zero gradient
    and are initialised to zero, so an optimiser keeps them at zero. The masks are constants
    of the layer (a static field), not trainable leaves. Instances are immutable and
    hashable.

    **Arguments:**

    - `input`: boolean array of shape `(in_size, n)`.
    - `recurrent`: boolean array of shape `(n, n)`; `recurrent[j, k]` allows neuron `j` to
      reach neuron `k`.
    """

    __slots__ = ("input", "recurrent", "_hash")

    def __init__(self, input: Bool[ArrayLike, "in_size n"], recurrent: Bool[ArrayLike, "n n"]):
        masks = {}
        for name, value in (("input", input), ("recurrent", recurrent)):
            array = np.asarray(value)
            if array.dtype != np.bool_:
                raise TypeError(
                    f"ConnectivityMask: `{name}` must be a boolean array, got dtype {array.dtype}."
                )
            if array.ndim != 2:
                raise ValueError(
                    f"ConnectivityMask: `{name}` must be 2-d, got shape {array.shape}."
                )
            array = array.copy()
            array.flags.writeable = False
            masks[name] = array
        n = masks["recurrent"].shape[0]
        if masks["recurrent"].shape != (n, n) or masks["input"].shape[1] != n:
            raise ValueError(
                "ConnectivityMask: `recurrent` must have shape (n, n) and `input` shape "
                f"(in_size, n), got {masks['recurrent'].shape} and {masks['input'].shape}."
            )
        object.__setattr__(self, "input", masks["input"])
        object.__setattr__(self, "recurrent", masks["recurrent"])
        key = tuple((a.shape, a.tobytes()) for a in (self.input, self.recurrent))
        object.__setattr__(self, "_hash", hash(key))

    def __setattr__(self, name, value):
        raise AttributeError("ConnectivityMask is immutable.")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        if not isinstance(other, ConnectivityMask):
            return NotImplemented
        return all(
            a.shape == b.shape and np.array_equal(a, b)
            for a, b in ((self.input, other.input), (self.recurrent, other.recurrent))
        )

    def __repr__(self) -> str:
        return (
            f"ConnectivityMask(input: {self.input.shape}, {int(self.input.sum())} allowed; "
            f"recurrent: {self.recurrent.shape}, {int(self.recurrent.sum())} allowed)"
        )


def make_mask(connectivity, in_size: int, layers: tuple[int, ...], who: str):
    n = sum(layers)
    if connectivity is Connectivity.FULL:
        return ConnectivityMask(np.ones((in_size, n), bool), np.ones((n, n), bool))
    if connectivity is Connectivity.LAYERED:
        bounds = population_bounds(layers)
        w_in = np.zeros((in_size, n), bool)
        w_in[:, : layers[0]] = True
        w_rec = np.zeros((n, n), bool)
        for (start, stop), (nxt_start, nxt_stop) in zip(bounds[:-1], bounds[1:], strict=True):
            w_rec[start:stop, nxt_start:nxt_stop] = True
        return ConnectivityMask(w_in, w_rec)
    if isinstance(connectivity, ConnectivityMask):
        expected = ((in_size, n), (n, n))
        if (connectivity.input.shape, connectivity.recurrent.shape) != expected:
            raise ValueError(
                f"{who}: `connectivity` masks must have shapes input={expected[0]} and "
                f"recurrent={expected[1]} for in_size={in_size}, layers={list(layers)}; got "
                f"{connectivity.input.shape} and {connectivity.recurrent.shape}."
            )
        return connectivity
    raise TypeError(
        f"{who}: `connectivity` must be an eqsnn.Connectivity or an eqsnn.ConnectivityMask, "
        f"got {connectivity!r}."
    )
