"""The engines' shared buffers: the fast stable argsort behind input sorting and output
selection must give `jnp.argsort(stable=True)`'s and `lax.top_k`'s order exactly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from eqsnn._engine.buffers import select_spikes
from eqsnn._sort import stable_argsort

# Few distinct values make ties likely; the special values are where an integer view of
# a float could order differently from the float comparison.
SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.5e-3, 1e-45, -1e-45, np.inf, -np.inf, np.nan, -np.nan]


LENGTH = 48  # one length: one compilation per mode


def _keys(dtype):
    pool = st.sampled_from(SPECIAL)
    floats = st.floats(width=np.dtype(dtype).itemsize * 8, allow_nan=True)
    return hnp.arrays(dtype, LENGTH, elements=st.one_of(pool, floats))


_argsort = jax.jit(lambda key: jnp.argsort(key, stable=True))
_fast = jax.jit(stable_argsort)


# The three paths of `stable_argsort`: float32 packed with its position into one int64
# (64-bit mode), float32 through two int32 sorts (32-bit mode), float64 through int64.
@pytest.mark.parametrize(
    "dtype, x64", [(np.float32, True), (np.float32, False), (np.float64, True)]
)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_stable_argsort_is_jnp_argsort(dtype, x64, data):
    key = data.draw(_keys(dtype))
    with jax.enable_x64(x64):
        want = np.asarray(_argsort(jnp.asarray(key)))
        got = np.asarray(_fast(jnp.asarray(key)))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("x64", [True, False], ids=["x64", "x32"])
def test_stable_argsort_batched_and_select_spikes_match_top_k(x64):
    rng = np.random.default_rng(0)
    # times on a coarse grid: many ties; some candidates invalid
    time = rng.integers(0, 8, (16, 40)).astype(np.float32) * 1e-3
    valid = rng.random((16, 40)) < 0.7
    with jax.enable_x64(x64):
        order = jax.jit(jax.vmap(stable_argsort))(jnp.asarray(time))
        np.testing.assert_array_equal(order, np.argsort(time, axis=-1, kind="stable"))
        # leading axes without vmap (as `Spikes.sort` and the encoders call it)
        cube = time.reshape(4, 4, 40)
        np.testing.assert_array_equal(
            stable_argsort(jnp.asarray(cube)), np.argsort(cube, axis=-1, kind="stable")
        )
        pick, kept = jax.jit(jax.vmap(lambda t, v: select_spikes(t, v, 25)))(time, valid)
        key = np.where(valid, time, np.inf)
        _, want = jax.lax.top_k(-jnp.asarray(key), 25)
    np.testing.assert_array_equal(pick, want)
    np.testing.assert_array_equal(kept, np.take_along_axis(valid, np.asarray(want), -1))
