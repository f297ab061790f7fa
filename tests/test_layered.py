"""RecurrentLIF / RecurrentEventPropLIF with `max_spikes_per_neuron`: feed-forward populations
simulated one after the other by the window scan, against the global event loop.

Tolerances (float64): both are closed-form simulations of the same events; they differ in
how often a state is re-evolved (a few ulps per event) and in the root bracket, as the
feed-forward engines do against each other (tests/test_parallel_engine.py): spike times
agree to 1e-12 relative, currents to 1e-11, gradients to 1e-9 relative (an ulp-level time
difference enters the gradient through 1/dV/dt at the crossing).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqsnn import (
    Connectivity,
    ConnectivityMask,
    LIFParameters,
    RecurrentEventPropLIF,
    RecurrentLIF,
    Spikes,
)

T_MAX = 0.05
MULTI_SPIKE = LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=0.0)
IN_SIZE, N_INPUTS = 4, 12


def _skip_mask():
    """Three populations [5, 4, 3]: inputs reach populations 0 and 1; 0 -> 1, 0 -> 2 and
    1 -> 2 (a skip connection). Feed-forward, but not `Connectivity.LAYERED`."""
    layers = (5, 4, 3)
    w_in = np.zeros((IN_SIZE, 12), bool)
    w_in[:, :9] = True
    w_rec = np.zeros((12, 12), bool)
    w_rec[:5, 5:] = True
    w_rec[5:9, 9:] = True
    return layers, ConnectivityMask(w_in, w_rec)


def _inputs():
    rng = np.random.default_rng(1)
    return Spikes(
        time=jnp.asarray(rng.uniform(0.0, 0.02, N_INPUTS)),
        idx=jnp.asarray(rng.integers(0, IN_SIZE, N_INPUTS), jnp.int32),
    )


def _loss(model, time, idx):
    out = model(Spikes(time, idx))
    coef = 1.0 + jnp.arange(model.size, dtype=out.time.dtype) / model.size
    terms = out.time * coef[jnp.maximum(out.idx, 0)] + 1e-3 * out.current
    return jnp.sum(jnp.where(out.valid, terms, 0.0)), out


@eqx.filter_jit
def _run(model, time, idx):
    return eqx.filter_value_and_grad(_loss, has_aux=True)(model, time, idx)


def _models(cls, budget):
    layers, mask = _skip_mask()
    common = dict(key=jax.random.PRNGKey(4), mean=[1.0, 0.8, 0.6], std=0.6, connectivity=mask)
    reference = RecurrentLIF(IN_SIZE, layers, 120, T_MAX, MULTI_SPIKE, **common)
    routed = cls(IN_SIZE, layers, 120, T_MAX, MULTI_SPIKE, max_spikes_per_neuron=budget, **common)
    return reference, routed


@pytest.mark.parametrize("cls", [RecurrentLIF, RecurrentEventPropLIF])
def test_populations_one_by_one_match_the_global_loop(cls):
    reference, routed = _models(cls, [6, 8, 10])
    inputs = _inputs()
    (_, ref), ref_grad = _run(reference, inputs.time, inputs.idx)
    (_, out), grad = _run(routed, inputs.time, inputs.idx)
    assert int(ref.dropped) == 0 and int(out.dropped) == 0
    # Every population spikes, some neurons more than once: the test exercises the chain,
    # the skip connection and the per-neuron windows.
    for k in range(3):
        assert int(routed.population_spikes(out, k).count()) >= 2
    assert int(jnp.max(jnp.bincount(out.idx[out.valid]))) >= 3
    np.testing.assert_array_equal(out.idx, ref.idx)
    valid = ref.valid
    np.testing.assert_allclose(out.time[valid], ref.time[valid], rtol=1e-12)
    np.testing.assert_allclose(out.current[valid], ref.current[valid], rtol=1e-11)
    for got, want in zip(
        jax.tree.leaves(eqx.filter(grad, eqx.is_inexact_array)),
        jax.tree.leaves(eqx.filter(ref_grad, eqx.is_inexact_array)),
        strict=True,
    ):
        scale = float(jnp.max(jnp.abs(want)))
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * scale)
    # Weights outside the mask get exactly zero gradient.
    assert bool(jnp.all(jnp.where(routed.mask.recurrent, 0.0, grad.weights.recurrent) == 0))
    assert bool(jnp.all(jnp.where(routed.mask.input, 0.0, grad.weights.input) == 0))


def test_tight_budget_is_counted_and_vmaps():
    reference, routed = _models(RecurrentLIF, 1)
    inputs = _inputs()
    full = eqx.filter_jit(reference)(inputs)
    out = eqx.filter_jit(routed)(inputs)
    # Each neuron keeps at most one spike. Population 0 sees only the inputs, so it keeps
    # each of its neurons' first spike of the roomy run; the loss is counted, at least one
    # per population-0 neuron that spiked again (the engine counts one per such neuron).
    assert int(jnp.max(jnp.bincount(out.idx[out.valid], length=12))) == 1
    first, ref_first = (routed.population_spikes(s, 0).first_spike_times(5) for s in (out, full))
    np.testing.assert_allclose(first, ref_first, rtol=1e-12)
    ref_idx = np.asarray(full.idx[full.valid])
    repeated = int(np.sum(np.bincount(ref_idx[ref_idx < 5], minlength=5) > 1))
    assert repeated > 0 and int(out.dropped) >= repeated
    batch = Spikes(
        time=jnp.stack([inputs.time, inputs.time[::-1]]),
        idx=jnp.stack([inputs.idx, inputs.idx[::-1]]),
    )
    batched = eqx.filter_jit(jax.vmap(routed))(batch)
    np.testing.assert_array_equal(batched.idx[0], out.idx)
    # The batched program is fused differently from the single-sample one: one ulp.
    np.testing.assert_allclose(batched.time[0], out.time, rtol=2.3e-16)


def test_bad_budgets_raise():
    layers, mask = _skip_mask()
    common = dict(key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="feed-forward connectivity"):
        RecurrentLIF(2, [3, 2], 8, T_MAX, connectivity=Connectivity.FULL,
                     max_spikes_per_neuron=2, **common)  # fmt: skip
    with pytest.raises(ValueError, match="one per population"):
        RecurrentLIF(2, [3, 2], 8, T_MAX, max_spikes_per_neuron=[2, 2, 2], **common)
    with pytest.raises(ValueError, match="max_spikes_per_neuron"):
        RecurrentLIF(2, [3, 2], 8, T_MAX, max_spikes_per_neuron=0, **common)
    with pytest.raises(ValueError, match="wrap_only_step"):
        RecurrentEventPropLIF(2, [3, 2], 8, T_MAX, max_spikes_per_neuron=2,
                              wrap_only_step=True, **common)  # fmt: skip
    # A mask with a connection back to the same population is not feed-forward.
    back = np.array(mask.recurrent)
    back[6, 5] = True
    with pytest.raises(ValueError, match="feed-forward connectivity"):
        RecurrentLIF(IN_SIZE, layers, 8, T_MAX, max_spikes_per_neuron=2,
                     connectivity=ConnectivityMask(mask.input, back), **common)  # fmt: skip
