"""A RecurrentLIF run by the window scan population after population
(`engine=eqsnn.WindowScan(...)`, feed-forward populations) when its per-neuron budget
binds, under `jax.vmap`, and with budgets that do not fit the layer. Against the global
event loop with nothing lost, with autodiff and EventProp, see tests/test_engine_matrix.py
(the `mask` network of tests/_networks.py, used here too).

Tolerances (float64): population 0 sees only the inputs, so its first spikes are those of
the event loop, found along another route: 1e-12 relative (a few ulps per event).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _networks import T_MAX, build

import eqsnn


def test_tight_budget_is_counted_and_vmaps():
    reference, inputs = build("mask", eqsnn.EventLoop())
    routed, _ = build("mask", eqsnn.WindowScan(max_spikes_per_neuron=1))
    full = eqx.filter_jit(reference)(inputs)
    out = eqx.filter_jit(routed)(inputs)
    # Each neuron keeps at most one spike. Population 0 sees only the inputs, so it keeps
    # each of its neurons' first spike of the roomy run; the loss is counted, at least one
    # per population-0 neuron that spiked again (the engine counts one per such neuron).
    assert int(jnp.max(jnp.bincount(out.idx[out.valid], length=routed.size))) == 1
    n_first = len(routed.population(0))
    first, ref_first = (
        routed.population_spikes(s, 0).first_spike_times(n_first) for s in (out, full)
    )
    np.testing.assert_allclose(first, ref_first, rtol=1e-12)
    ref_idx = np.asarray(full.idx[full.valid])
    repeated = int(np.sum(np.bincount(ref_idx[ref_idx < n_first], minlength=n_first) > 1))
    assert repeated > 0 and int(out.dropped) >= repeated
    batch = eqsnn.Spikes(
        time=jnp.stack([inputs.time, inputs.time[::-1]]),
        idx=jnp.stack([inputs.idx, inputs.idx[::-1]]),
    )
    batched = eqx.filter_jit(jax.vmap(routed))(batch)
    np.testing.assert_array_equal(batched.idx[0], out.idx)
    # The batched program is fused differently from the single-sample one: one ulp.
    np.testing.assert_allclose(batched.time[0], out.time, rtol=2.3e-16)


def test_budgets_that_do_not_fit_the_layer_raise():
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match=r"^RecurrentLIF: `max_spikes_per_neuron` .*one per"):
        eqsnn.RecurrentLIF(
            2, [3, 2], 8, T_MAX, key=key, engine=eqsnn.WindowScan(max_spikes_per_neuron=(2, 2, 2))
        )
    # (The window scan refuses connectivity that is not feed-forward between populations:
    # tests/test_engine_matrix.py::test_invalid_pairs_raise.)
