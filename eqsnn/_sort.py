"""A fast stable argsort of float keys (spike times), shared by the engines and `Spikes`."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


def stable_argsort(key: Float[Array, "*batch k"]) -> Int[Array, "*batch k"]:
    """`jnp.argsort(key, axis=-1, stable=True)` for a float `key`, bit for bit, from integer
    sorts.

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
    if key.size == 0 or k * k >= 2**31 or key.dtype not in (jnp.float32, jnp.float64):
        return jnp.argsort(key, axis=-1, stable=True)
    if key.dtype == jnp.float64 and not wide:
        return jnp.argsort(key, axis=-1, stable=True)
    if key.ndim != 1:
        flat = jax.vmap(stable_argsort)(key.reshape(-1, k))
        return flat.reshape(key.shape)
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
