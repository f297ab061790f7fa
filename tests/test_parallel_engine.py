"""The window scan's per-neuron budget (`eqsnn.WindowScan(max_spikes_per_neuron=...)`):
lost spikes counted and raised, tight budgets that keep each neuron's first spikes, the
automatic choice of engine, and bad budgets. The window scan against the other engines,
with autodiff and EventProp, is in tests/test_engine_matrix.py.
"""

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


def _params(ratio, v_reset):
    return eqsnn.LIFParameters(
        tau_syn=5e-3, tau_mem=5e-3 * ratio, v_th=0.6, v_leak=-0.1, v_reset=v_reset
    )


def _window_scan(budget):
    return eqsnn.WindowScan(max_spikes_per_neuron=budget)


def test_per_neuron_budget_overflow_is_counted_and_can_raise():
    p = _params(2.0, 0.0)
    kw = dict(key=KEYS[0], mean=1.5, std=1.0, overflow=eqsnn.Overflow.COUNT)
    layer = eqsnn.LIF(6, 5, 60, T_MAX, p, engine=_window_scan(1), **kw)
    out = layer(INPUT)
    # With v_reset = 0 above v_leak the neurons burst (up to ~25 spikes in T_MAX), so the
    # reference run needs room for all of them: 40 per neuron and 60 output slots.
    roomy = eqsnn.LIF(6, 5, 60, T_MAX, p, engine=_window_scan(40), **kw)
    full = roomy(INPUT)
    assert int(full.dropped) == 0
    assert int(jnp.sum(full.idx >= 0)) > 30  # bursts: far more than one spike per neuron
    bursting = int(jnp.sum(jnp.bincount(full.idx[full.idx >= 0], length=5) > 1))
    assert bursting >= 1 and int(out.dropped) == bursting  # one per neuron that wanted more
    kw["overflow"] = eqsnn.Overflow.ERROR
    strict = eqsnn.LIF(6, 5, 60, T_MAX, p, engine=_window_scan(1), **kw)
    with pytest.raises(Exception, match="more spikes than the buffer holds"):
        jax.block_until_ready(eqx.filter_jit(strict)(INPUT))


@pytest.mark.parametrize("budget", [2, 5])
def test_tight_budget_keeps_each_neurons_first_spikes(budget):
    # Bursting neurons (v_reset = 0 > v_leak); the budget sets the window scan's window
    # (12 inputs: 6 and 3 intervals), so every path through the scan is exercised.
    p = _params(2.0, 0.0)
    kw = dict(key=KEYS[0], mean=1.5, std=1.0, overflow=eqsnn.Overflow.COUNT)
    full = eqsnn.LIF(6, 5, 200, T_MAX, p, engine=_window_scan(60), **kw)(INPUT)
    out = eqsnn.LIF(6, 5, 200, T_MAX, p, engine=_window_scan(budget), **kw)(INPUT)
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


def test_the_automatic_engine():
    # No engine: the window scan, the output buffer shared evenly between the neurons.
    layer = eqsnn.LIF(6, 4, 10, T_MAX, key=KEYS[0])
    assert layer.engine == _window_scan(3)
    assert (layer.max_spikes_per_neuron, layer.max_spikes_per_interval) == (3, None)
    layer = eqsnn.LIF(6, 4, 4, T_MAX, key=KEYS[0], adjoint=eqsnn.EventProp())
    assert layer.engine == _window_scan(1)
    # A window scan without a budget gets the same default.
    layer = eqsnn.LIF(6, 4, 10, T_MAX, key=KEYS[0], engine=eqsnn.WindowScan())
    assert layer.engine == _window_scan(3)
    # The per-step EventProp needs the interval scan's steps.
    layer = eqsnn.LIF(6, 4, 10, T_MAX, key=KEYS[0], adjoint=eqsnn.EventProp(per_step=True))
    seed = eqsnn.EventPropLIF(6, 4, 10, T_MAX, key=KEYS[0], wrap_only_step=True)
    assert layer.engine == seed.engine == eqsnn.IntervalScan(max_spikes_per_interval=1)
    assert layer.adjoint == seed.adjoint == eqsnn.EventProp(per_step=True) and seed.wrap_only_step
    assert (seed.max_spikes_per_neuron, seed.max_spikes_per_interval) == (None, 1)
    # A recurrent layer: the event loop; a window scan gets one budget per population.
    assert eqsnn.RecurrentLIF(6, [3, 2], 10, T_MAX, key=KEYS[0]).engine == eqsnn.EventLoop()
    layer = eqsnn.RecurrentLIF(6, [3, 2], 10, T_MAX, key=KEYS[0], engine=eqsnn.WindowScan())
    assert layer.engine == _window_scan((2, 2)) and layer.max_spikes_per_neuron == (2, 2)
    # The rule, inspectable.
    config = eqsnn.SimulationConfig(
        eqsnn.LIFParameters(), eqsnn.solvers.TTFSSolver(), 12, 0.05, layers=(4,)
    )
    assert eqsnn.AutoEngine().select_engine(config) == _window_scan(3)
    per_step = eqsnn.EventProp(per_step=True)
    assert eqsnn.AutoEngine().select_engine(config, per_step) == eqsnn.IntervalScan()
    # The engine a layer stores is the one the automatic choice selects.
    layer = eqsnn.LIF(6, 4, 12, T_MAX, key=KEYS[0], engine=eqsnn.AutoEngine())
    assert layer.engine == _window_scan(3)


def test_bad_budgets_raise():
    for bad in (0, -1, 1.5, True):
        with pytest.raises((TypeError, ValueError), match="WindowScan: `max_spikes_per_neuron`"):
            eqsnn.WindowScan(max_spikes_per_neuron=bad)
        with pytest.raises(
            (TypeError, ValueError), match="IntervalScan: `max_spikes_per_interval`"
        ):
            eqsnn.IntervalScan(max_spikes_per_interval=bad)
