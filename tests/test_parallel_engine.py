"""The parallel engine (`max_spikes_per_neuron`) and its closed-form EventProp adjoint."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn

T_MAX = 0.04
KEYS = jax.random.split(jax.random.PRNGKey(7), 4)
INPUT = eqsnn.Spikes(
    time=jax.random.uniform(KEYS[2], (12,)) * 0.02, idx=jax.random.randint(KEYS[3], (12,), -1, 6)
)
# (tau_mem / tau_syn, v_reset, spike budget, hidden and output weight means and std). The
# multi-spike budgets are large enough that neither engine drops a spike (asserted), so the
# two engines' different budget semantics do not matter.
CASES = {
    "one-spike-ttfs": (2.0, -1000.0, 1, 1.5, 1.0, 1.0),
    "one-spike-lambertw": (1.0, -1000.0, 1, 1.5, 1.0, 1.0),
    "multi-ttfs": (2.0, -0.3, 10, 0.6, 0.5, 0.5),
    "multi-bracketed": (1.5, -0.3, 10, 0.6, 0.5, 0.5),
}


def _params(ratio, v_reset):
    return eqsnn.LIFParameters(
        tau_syn=5e-3, tau_mem=5e-3 * ratio, v_th=0.6, v_leak=-0.1, v_reset=v_reset
    )


def _net(cls, case, budget_name, budget=None):
    """Two layers of `cls` for `case`; `budget` replaces the case's spike budget."""
    ratio, v_reset, case_budget, mean_h, mean_o, std = CASES[case]
    budget = case_budget if budget is None else budget
    p = _params(ratio, v_reset)
    # The sequential engine unrolls its per-interval budget (compile time grows with it);
    # 3 per interval suffices here (no spike dropped, asserted below).
    kw = {budget_name: budget if budget_name == "max_spikes_per_neuron" else min(budget, 3)}
    return eqx.nn.Sequential(
        [
            cls(6, 5, 30, T_MAX, p, key=KEYS[0], mean=mean_h, std=std, **kw),
            cls(5, 3, 20, T_MAX, p, key=KEYS[1], mean=mean_o, std=std, **kw),
        ]
    )


def _loss(net, time):
    out = net(eqsnn.Spikes(time=time, idx=INPUT.idx))
    # All spike times and currents enter the loss; empty slots (time +inf) are masked.
    return jnp.sum(jnp.where(out.idx >= 0, (out.time - 0.01) ** 2 + 0.1 * out.current, 0.0))


@eqx.filter_jit
def _forward_and_grad(net, time):
    out = jax.vmap(lambda t: net(eqsnn.Spikes(time=t, idx=INPUT.idx)))(time[None])
    return out, eqx.filter_grad(lambda nt: _loss(nt[0], nt[1]))((net, time))


@pytest.mark.parametrize("case", CASES)
def test_parallel_engine_equals_sequential_engine(case):
    seq_out, seq_grad = _forward_and_grad(
        _net(eqsnn.LIF, case, "max_spikes_per_interval"), INPUT.time
    )
    for cls in (eqsnn.LIF, eqsnn.EventPropLIF):
        out, grad = _forward_and_grad(_net(cls, case, "max_spikes_per_neuron"), INPUT.time)
        assert int(out.count()[0]) >= 3  # the case is not vacuous
        assert int(seq_out.dropped[0]) == 0
        # Exact gradients from autodiff (IFT) and the closed-form adjoint: 1e-8 relative.
        _assert_same_run(out, grad, seq_out, seq_grad, grad_rtol=1e-8)


def _assert_same_run(out, grad, ref_out, ref_grad, grad_rtol):
    """Nothing dropped, the same spikes to rounding (1e-12 relative: the same events by
    another exact route), and every gradient leaf within `grad_rtol` of its largest entry."""
    assert int(out.dropped[0]) == 0
    np.testing.assert_array_equal(out.idx, ref_out.idx)
    np.testing.assert_allclose(
        jnp.where(out.idx >= 0, out.time, 0.0),
        jnp.where(ref_out.idx >= 0, ref_out.time, 0.0),
        rtol=1e-12,
    )
    for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(ref_grad), strict=True):
        scale = float(jnp.max(jnp.abs(b)))
        assert scale > 0
        assert float(jnp.max(jnp.abs(a - b))) <= grad_rtol * scale


def test_eventprop_gradient_matches_finite_differences():
    net = _net(eqsnn.EventPropLIF, "multi-bracketed", "max_spikes_per_neuron")
    _, grad = _forward_and_grad(net, INPUT.time)
    loss = jax.jit(_loss)
    w = net.layers[0].weights.input
    h = 1e-6
    for i, n in [(0, 0), (2, 3), (5, 1)]:
        plus = eqx.tree_at(lambda m: m.layers[0].weights.input, net, w.at[i, n].add(h))
        minus = eqx.tree_at(lambda m: m.layers[0].weights.input, net, w.at[i, n].add(-h))
        fd = (loss(plus, INPUT.time) - loss(minus, INPUT.time)) / (2 * h)
        got = grad[0].layers[0].weights.input[i, n]
        # Central differences, h = 1e-6: O(h^2) truncation plus ~1e-10 rounding.
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-9)


def test_per_neuron_budget_overflow_is_counted_and_can_raise():
    p = _params(2.0, 0.0)
    layer = eqsnn.LIF(6, 5, 60, T_MAX, p, key=KEYS[0], mean=1.5, std=1.0, max_spikes_per_neuron=1)
    out = layer(INPUT)
    # With v_reset = 0 above v_leak the neurons burst (up to ~25 spikes in T_MAX), so the
    # reference run needs room for all of them: 40 per neuron and 60 output slots.
    roomy = eqsnn.LIF(6, 5, 60, T_MAX, p, key=KEYS[0], mean=1.5, std=1.0, max_spikes_per_neuron=40)
    full = roomy(INPUT)
    assert int(full.dropped) == 0
    assert int(jnp.sum(full.idx >= 0)) > 30  # bursts: far more than one spike per neuron
    bursting = int(jnp.sum(jnp.bincount(full.idx[full.idx >= 0], length=5) > 1))
    assert bursting >= 1 and int(out.dropped) == bursting  # one per neuron that wanted more
    strict = eqsnn.LIF(
        6,
        5,
        60,
        T_MAX,
        p,
        key=KEYS[0],
        mean=1.5,
        std=1.0,
        max_spikes_per_neuron=1,
        overflow=eqsnn.Overflow.ERROR,
    )
    with pytest.raises(Exception, match="more spikes than the buffer holds"):
        jax.block_until_ready(eqx.filter_jit(strict)(INPUT))


@pytest.mark.parametrize("budget", [2, 5])
def test_tight_budget_keeps_each_neurons_first_spikes(budget):
    # Bursting neurons (v_reset = 0 > v_leak); the budget sets the window scan's window
    # (12 inputs: 6 and 3 intervals), so every path through the scan is exercised.
    p = _params(2.0, 0.0)
    kw = dict(key=KEYS[0], mean=1.5, std=1.0)
    full = eqsnn.LIF(6, 5, 200, T_MAX, p, **kw, max_spikes_per_neuron=60)(INPUT)
    out = eqsnn.LIF(6, 5, 200, T_MAX, p, **kw, max_spikes_per_neuron=budget)(INPUT)
    assert int(full.dropped) == 0
    counts = np.bincount(np.asarray(full.idx[full.idx >= 0]), minlength=5)
    assert counts.max() > budget  # the budget binds
    # Each neuron's first `budget` spikes of the roomy run (the same arithmetic, fused
    # differently by XLA for other window lengths: an ulp or so); one dropped per neuron
    # that had more.
    expected = np.sort(
        np.concatenate([np.sort(np.asarray(full.time[full.idx == n]))[:budget] for n in range(5)])
    )
    got = np.asarray(out.time[out.idx >= 0])
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    assert int(out.dropped) == int(np.sum(counts > budget))


def test_window_scan_does_not_depend_on_the_budget():
    # Budgets 8 and 40 give windows of 2 and 1 intervals over the 12 inputs; with no
    # spike dropped, the spikes and the EventProp gradients are the same up to rounding.
    (ref_out, ref_grad), (out, grad) = (
        _forward_and_grad(
            _net(eqsnn.EventPropLIF, "multi-bracketed", "max_spikes_per_neuron", budget),
            INPUT.time,
        )
        for budget in (8, 40)
    )
    # Same spikes, sums in a different order: rounding-level agreement.
    _assert_same_run(out, grad, ref_out, ref_grad, grad_rtol=1e-10)


def test_default_budget_and_engine():
    # No budget: the parallel engine, the output buffer shared evenly between the neurons.
    layer = eqsnn.LIF(6, 4, 10, T_MAX, key=KEYS[0])
    assert (layer.max_spikes_per_neuron, layer.max_spikes_per_interval) == (3, None)
    layer = eqsnn.EventPropLIF(6, 4, 4, T_MAX, key=KEYS[0])
    assert (layer.max_spikes_per_neuron, layer.max_spikes_per_interval) == (1, None)
    # `max_spikes_per_interval` or `wrap_only_step=True` select the sequential engine.
    layer = eqsnn.LIF(6, 4, 10, T_MAX, key=KEYS[0], max_spikes_per_interval=2)
    assert (layer.max_spikes_per_neuron, layer.max_spikes_per_interval) == (None, 2)
    layer = eqsnn.EventPropLIF(6, 4, 10, T_MAX, key=KEYS[0], wrap_only_step=True)
    assert (layer.max_spikes_per_neuron, layer.max_spikes_per_interval) == (None, 1)


def test_budget_arguments_are_exclusive():
    with pytest.raises(ValueError, match="choose one spike budget"):
        eqsnn.LIF(2, 2, 4, T_MAX, key=KEYS[0], max_spikes_per_neuron=1, max_spikes_per_interval=2)
    with pytest.raises(ValueError, match="max_spikes_per_neuron"):
        eqsnn.LIF(2, 2, 4, T_MAX, key=KEYS[0], max_spikes_per_neuron=0)
    with pytest.raises(ValueError, match="wrap_only_step"):
        eqsnn.EventPropLIF(
            2, 2, 4, T_MAX, key=KEYS[0], max_spikes_per_neuron=1, wrap_only_step=True
        )
