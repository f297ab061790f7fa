"""Initial weights: normal draws, duplicated inputs, blocks of a layered recurrent layer."""

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import check_size
from ._connectivity import population_bounds
from ._weights import RecurrentWeights


def normal_weights(
    key: PRNGKeyArray,
    in_size: int,
    out_size: int,
    mean: float,
    std: float,
    duplication: int | None,
    who: str,
) -> Float[Array, "in_size out_size"]:
    """Draw weights from N(mean, std); with `duplication=d`, draw `in_size // d` rows and
    repeat each `d` times, so that the `d` copies of an input start with the same weights."""
    for name, value in (("mean", mean), ("std", std)):
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise ValueError(f"{who}: `{name}` must be a finite number, got {value!r}.")
    if duplication is None:
        rows = in_size
    else:
        check_size("duplication", duplication, who)
        if in_size % duplication:
            raise ValueError(
                f"{who}: `in_size` ({in_size}) must be a multiple of `duplication` ({duplication})."
            )
        rows = in_size // duplication
    w = mean + std * jax.random.normal(key, (rows, out_size))
    if duplication is not None:
        w = jnp.repeat(w, duplication, axis=0)
    return w


def per_block(name: str, value, n_blocks: int, who: str) -> tuple[float, ...]:
    """`mean`/`std`: one number per weight block (input block first), or one for all."""
    values = (value,) * n_blocks if isinstance(value, int | float | np.number) else value
    try:
        values = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"{who}: `{name}` must be a number or a sequence of numbers, got {value!r}."
        ) from None
    if len(values) != n_blocks or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"{who}: `{name}` must hold one finite number per weight block (input block "
            f"first, then population k -> k+1: {n_blocks} in all), got {value!r}."
        )
    return values


def layered_weights(key, in_size, layers, mean, std, duplication, mask, who):
    """N(mean[0], std[0]) input -> population 0, N(mean[k+1], std[k+1]) population k -> k+1,
    zeros elsewhere; then the mask is applied. Assembled in numpy (no per-shape compiles)."""
    keys = jax.random.split(key, len(layers))
    n = sum(layers)
    first = normal_weights(keys[0], in_size, layers[0], mean[0], std[0], duplication, who)
    dtype = first.dtype
    w_in = np.zeros((in_size, n), dtype)
    w_in[:, : layers[0]] = np.asarray(first)
    w_rec = np.zeros((n, n), dtype)
    bounds = population_bounds(layers)
    pairs = zip(bounds[:-1], bounds[1:], strict=True)
    for k, ((start, stop), (nxt_start, nxt_stop)) in enumerate(pairs):
        block = normal_weights(
            keys[k + 1], stop - start, nxt_stop - nxt_start, mean[k + 1], std[k + 1], None, who
        )
        w_rec[start:stop, nxt_start:nxt_stop] = np.asarray(block)
    return RecurrentWeights(
        input=jnp.asarray(np.where(mask.input, w_in, 0.0), dtype),
        recurrent=jnp.asarray(np.where(mask.recurrent, w_rec, 0.0), dtype),
    )
