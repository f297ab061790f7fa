r"""EventProp on recurrent layers beyond the engine x adjoint matrix
(tests/test_engine_matrix.py, which checks EventProp against autodiff on the layered, dense
and masked networks of tests/_networks.py, over the trajectory and per step): a network
that never spikes, and the seed spelling's argument check.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _networks import T_MAX, build

import eqsnn


@pytest.mark.parametrize("per_step", [False, True], ids=["trajectory", "per-step"])
def test_silent_network_has_zero_finite_gradients(per_step):
    """No spike at all: exactly zero (not NaN) gradients, also for a cotangent that is NaN
    on the (all empty) output slots."""
    layer, spikes = build("full", eqsnn.EventLoop(), eqsnn.EventProp(per_step=per_step))
    n = layer.size
    silent = eqsnn.RecurrentWeights(-jnp.ones((layer.in_size, n)), jnp.zeros((n, n)))
    layer = eqx.tree_at(lambda m: m.weights, layer, silent)

    @eqx.filter_jit
    def gradients(layer, time):
        out, pull = eqx.filter_vjp(lambda x: x[0](eqsnn.Spikes(x[1], spikes.idx)), (layer, time))
        ones = jax.tree.map(jnp.ones_like, eqx.filter(out, eqx.is_inexact_array))
        nans = jax.tree.map(lambda x: jnp.full_like(x, jnp.nan), ones)
        return out, pull(ones)[0], pull(nans)[0]

    out, grads, nan_grads = gradients(layer, spikes.time)
    assert bool(jnp.all(out.idx == -1))
    for grad in (grads, nan_grads):
        layer_grads, time_grads = grad
        for g in jax.tree.leaves((layer_grads.weights, time_grads)):
            np.testing.assert_array_equal(g, 0.0)


def test_bad_wrap_only_step_raises():
    with pytest.raises(TypeError, match="RecurrentEventPropLIF: `wrap_only_step` must be"):
        eqsnn.RecurrentEventPropLIF(2, [3], 4, T_MAX, key=jax.random.PRNGKey(0), wrap_only_step=1)
