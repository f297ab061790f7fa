"""Lost spikes are never silent: `dropped` in every engine, its sum through a network, the
`SpikesDroppedWarning` (under jit and vmap, once per layer configuration), and the per-epoch
count of `eqsnn.training.train_epoch`.

What `dropped` promises (docs/concepts/budgets.md): a lower bound on the spikes a layer lost,
0 exactly when none was lost, exact where the engine can count (buffer overflow, the
interval scan). The true losses come from the same layer with room for every spike.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqsnn
from eqsnn import Overflow, Spikes, SpikesDroppedWarning, datasets, training
from eqsnn.encode import spatio_temporal_encode
from eqsnn.loss import ttfs_loss

BURST = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_leak=0.0, v_reset=0.0)
T_MAX = 0.02
INPUTS = Spikes(jnp.array([1e-3, 2e-3, 3e-3, 4.5e-3, 6e-3]), jnp.arange(5))
ROOMY = 40
"""A per-neuron budget that no neuron of these networks reaches (asserted: dropped == 0)."""
EVENTPROP = eqsnn.EventProp()


@pytest.fixture(autouse=True)
def _rearm_warnings():
    """Every test starts with the warnings armed (the registry is process-wide)."""
    eqsnn.reset_dropped_warnings()
    yield
    eqsnn.reset_dropped_warnings()


def _bursting(per_neuron=None, overflow=Overflow.WARN, adjoint=EVENTPROP):
    """The issue's case: 5-20-3, `v_reset = 0`, hidden `n_spikes = 80` (default window
    scan budget ceil(80 / 20) = 4 per neuron). With seed 7 one hidden neuron wants a fifth
    spike. With a `per_neuron` budget, the output layer gets that budget and room for it."""
    k1, k2 = jax.random.split(jax.random.PRNGKey(7))
    common = dict(t_max=T_MAX, params=BURST, std=1.0, overflow=overflow, adjoint=adjoint)
    if per_neuron is None:
        hidden = eqsnn.LIF(5, 20, 80, key=k1, mean=1.5, **common)
        return hidden, eqsnn.LIF(20, 3, 12, key=k2, mean=0.5, **common)
    common["engine"] = eqsnn.WindowScan(max_spikes_per_neuron=per_neuron)
    hidden = eqsnn.LIF(5, 20, 80, key=k1, mean=1.5, **common)
    return hidden, eqsnn.LIF(20, 3, 3 * per_neuron, key=k2, mean=0.5, **common)


def _pairs(spikes):
    valid = np.asarray(spikes.idx) >= 0
    idx, time = np.asarray(spikes.idx)[valid], np.asarray(spikes.time)[valid]
    return set(zip(idx.tolist(), time.tolist(), strict=True))


def _run_recorded(fn, *args):
    """`fn(*args)` with every warning recorded (effects flushed before leaving)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args)
        jax.block_until_ready(out)
        jax.effects_barrier()
    return out, [w for w in caught if issubclass(w.category, SpikesDroppedWarning)]


def test_bursting_default_budget_warns_and_roomy_budget_keeps_every_spike():
    # The default keeps the fast per-neuron cap (see budgets.md, "Cost"): here it drops
    # the hidden neuron's fifth spike while the buffer has room, and says so.
    hidden, _ = _bursting()
    roomy, _ = _bursting(ROOMY)
    setting = r"room left in the buffer\): raise `WindowScan\(max_spikes_per_neuron=\.\.\.\)`\."
    with pytest.warns(SpikesDroppedWarning, match=setting) as record:
        out = hidden(INPUTS)
        jax.effects_barrier()
    ref = roomy(INPUTS)
    assert int(ref.dropped) == 0 and int(out.count()) < hidden.n_spikes
    lost = int(ref.count()) - int(out.count())
    assert lost == 1 and int(out.dropped) == lost
    assert _pairs(out) <= _pairs(ref)  # the spikes it kept are the true ones
    (message,) = [str(w.message) for w in record]
    layer = "LIF(in_size=5, out_size=20, n_spikes=80, engine=WindowScan(max_spikes_per_neuron=4))"
    assert message.startswith(layer)
    assert "lost 1 spikes" in message


def test_warning_under_jit_and_vmap_is_one_message_with_the_batch_total():
    hidden, _ = _bursting()
    batch = jax.tree.map(lambda x: jnp.stack([x, x, x]), INPUTS)
    out, caught = _run_recorded(jax.jit(jax.vmap(hidden)), batch)
    total = int(np.sum(out.dropped))
    assert total == 3 and len(caught) == 1
    assert f"lost {total} spikes" in str(caught[0].message) and "3 of 3 samples" in str(
        caught[0].message
    )


def test_no_warning_when_nothing_is_lost():
    hidden, out_layer = _bursting(ROOMY)
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), INPUTS)
    out, caught = _run_recorded(jax.jit(jax.vmap(lambda s: out_layer(hidden(s)))), batch)
    assert np.all(out.dropped == 0) and caught == []
    _, caught = _run_recorded(hidden, INPUTS)  # eager call
    assert caught == []


def test_warning_once_per_configuration_until_reset():
    hidden, _ = _bursting()
    jitted = eqx.filter_jit(lambda spikes: hidden(spikes))
    _, first = _run_recorded(jitted, INPUTS)
    _, again = _run_recorded(jitted, INPUTS)
    eqsnn.reset_dropped_warnings()
    _, rearmed = _run_recorded(jitted, INPUTS)
    assert (len(first), len(again), len(rearmed)) == (1, 0, 1)


def test_count_is_silent_and_error_raises():
    hidden, _ = _bursting(overflow=Overflow.COUNT)
    out, caught = _run_recorded(hidden, INPUTS)
    assert int(out.dropped) == 1 and caught == []
    hidden, _ = _bursting(overflow=Overflow.ERROR)
    budget = r"or than a neuron's budget allows; increase `n_spikes` or `WindowScan\(max_spikes"
    message = "more spikes than the buffer holds " + budget
    with pytest.raises(eqx.EquinoxRuntimeError, match=message):
        jax.block_until_ready(hidden(INPUTS))


def test_error_without_a_per_neuron_budget_names_only_n_spikes():
    # The event loop has no per-neuron budget: its buffer is the only thing to raise.
    k1 = jax.random.PRNGKey(7)
    common = dict(t_max=T_MAX, params=BURST, std=1.0, overflow=Overflow.ERROR)
    hidden = eqsnn.LIF(5, 20, 10, key=k1, mean=1.5, engine=eqsnn.EventLoop(), **common)
    message = r"n_spikes=10, engine=EventLoop\(\)\): more spikes than the buffer holds; increase "
    with pytest.raises(eqx.EquinoxRuntimeError, match=message + r"`n_spikes`, or use"):
        jax.block_until_ready(hidden(INPUTS))


@pytest.mark.parametrize("adjoint", [eqsnn.AutoDiff(), EVENTPROP], ids=repr)
def test_dropped_sums_over_the_layers_of_a_sequential(adjoint):
    hidden, _ = _bursting(overflow=Overflow.COUNT, adjoint=adjoint)  # silent: one warning below
    _, out_layer = _bursting(overflow=Overflow.WARN, adjoint=adjoint)
    hidden_out = hidden(INPUTS)
    alone = out_layer(Spikes(hidden_out.time, hidden_out.idx))  # the output layer's own
    jax.effects_barrier()
    eqsnn.reset_dropped_warnings()  # `alone` has warned; the network's call warns again
    out, caught = _run_recorded(eqx.nn.Sequential([hidden, out_layer]), INPUTS)
    assert int(hidden_out.dropped) == 1 and int(alone.dropped) > 0
    assert int(out.dropped) == int(hidden_out.dropped) + int(alone.dropped)
    # The warning (of the output layer) reports its own count.
    (warning,) = caught
    assert f"lost {int(alone.dropped)} spikes" in str(warning.message)


def _interval_scan_layer(per_interval, adjoint=None):
    # Neuron 0 spikes 4 times between the inputs at 8 ms and 12 ms; later inputs follow, so
    # a lost crossing whose reset were skipped would change its later spikes.
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.5, v_leak=0.0, v_reset=0.0)
    engine = eqsnn.IntervalScan(max_spikes_per_interval=per_interval)
    layer = eqsnn.LIF(
        2, 2, 40, 0.05, params, key=jax.random.PRNGKey(0), engine=engine, adjoint=adjoint,
        overflow=Overflow.COUNT,
    )  # fmt: skip
    return eqx.tree_at(lambda m: m.weights.input, layer, INTERVAL_WEIGHTS)


INTERVAL_WEIGHTS = jnp.array([[4.0, 1.0], [4.0, 2.0]])
INTERVAL_INPUTS = Spikes(jnp.array([1e-3, 8e-3, 12e-3, 20e-3, 30e-3]), jnp.array([0, 1, 0, 1, 0]))


def test_interval_scan_counts_exactly_and_resets_at_lost_crossings():
    ref = _interval_scan_layer(ROOMY)(INTERVAL_INPUTS)
    out = _interval_scan_layer(2)(INTERVAL_INPUTS)
    assert int(ref.dropped) == 0
    lost = int(ref.count()) - int(out.count())
    assert lost >= 2 and int(out.dropped) == lost
    # Every kept spike is a true one, also after the intervals with lost crossings.
    ref_pairs = sorted(_pairs(ref))
    for neuron, time in _pairs(out):
        assert any(n == neuron and abs(t - time) <= 1e-12 for n, t in ref_pairs)


@pytest.mark.parametrize("adjoint", [EVENTPROP, eqsnn.EventProp(per_step=True)], ids=repr)
def test_interval_scan_gradients_follow_the_lost_crossings(adjoint):
    # The time of the last lost crossing moves with the state (implicit-function theorem),
    # so the gradients are those of the true dynamics: autodiff and EventProp agree to
    # rounding (1e-8 relative, as in test_eventprop.py) and central differences (h = 1e-6
    # on O(1) weights: truncation and rounding ~1e-10) to 1e-6.

    def loss(weights, adjoint):
        layer = _interval_scan_layer(2, adjoint)
        layer = eqx.tree_at(lambda m: m.weights.input, layer, weights)
        out = layer(INTERVAL_INPUTS)
        return jnp.sum(jnp.where(out.idx >= 0, jnp.sin(150.0 * out.time), 0.0))

    direction = jnp.array([[1.0, 0.3], [-0.5, 0.7]])
    autodiff = jax.grad(loss)(INTERVAL_WEIGHTS, eqsnn.AutoDiff())
    eventprop = jax.grad(loss)(INTERVAL_WEIGHTS, adjoint)
    h = 1e-6
    plus = loss(INTERVAL_WEIGHTS + h * direction, eqsnn.AutoDiff())
    minus = loss(INTERVAL_WEIGHTS - h * direction, eqsnn.AutoDiff())
    scale = float(jnp.max(jnp.abs(autodiff)))
    np.testing.assert_allclose(eventprop, autodiff, rtol=0, atol=1e-8 * scale)
    fd = float((plus - minus) / (2 * h))
    assert abs(float(jnp.sum(autodiff * direction)) - fd) <= 1e-6 * abs(fd)


def test_window_scan_count_is_a_lower_bound_and_zero_exactly_without_loss():
    hidden, _ = _bursting(2, overflow=Overflow.COUNT, adjoint=eqsnn.AutoDiff())
    roomy, _ = _bursting(ROOMY, overflow=Overflow.COUNT, adjoint=eqsnn.AutoDiff())
    out, ref = hidden(INPUTS), roomy(INPUTS)
    lost = int(ref.count()) - int(out.count())
    assert lost > 0 and 0 < int(out.dropped) <= lost and int(ref.dropped) == 0


@pytest.mark.parametrize("budget", [None, (2, 12)])
def test_recurrent_count_is_a_lower_bound_and_zero_exactly_without_loss(budget):
    # None: the global event loop (the 4-neuron layer whose 80-slot buffer fills);
    # (2, 12): feed-forward populations with the window scan.
    if budget is None:
        full = dict(connectivity=eqsnn.Connectivity.FULL)
        layers, n_spikes, roomy_spikes, extra = [4], 80, 400, full
    else:
        layers, n_spikes, roomy_spikes, extra = [20, 3], 92, 23 * ROOMY, {}

    def layer(n, per_neuron):
        kw = {} if per_neuron is None else dict(engine=eqsnn.WindowScan(per_neuron))
        kw.update(extra, mean=1.5, std=1.0, overflow=Overflow.COUNT)
        made = eqsnn.RecurrentLIF(5, layers, n, T_MAX, BURST, key=jax.random.PRNGKey(7), **kw)
        if budget is None:  # all-to-all excitation: 218 spikes before t_max
            made = eqx.tree_at(lambda m: m.weights.recurrent, made, jnp.full((4, 4), 1.0))
        return made

    out = layer(n_spikes, budget)(INPUTS)
    ref = layer(roomy_spikes, None if budget is None else (ROOMY, ROOMY))(INPUTS)
    lost = int(ref.count()) - int(out.count())
    assert int(ref.dropped) == 0 and lost > 0 and 0 < int(out.dropped) <= lost


def test_hardware_layer_reports_the_backend_losses_and_adds_the_input_count():
    from eqsnn.hardware import SoftwareBackend

    key, _ = jax.random.split(jax.random.PRNGKey(7))  # the hidden layer of `_bursting`

    layer = eqsnn.HardwareLIF(5, 20, 80, T_MAX, BURST, key=key,
                              mean=1.5, std=1.0, backend=SoftwareBackend())  # fmt: skip
    upstream = Spikes(INPUTS.time, INPUTS.idx, dropped=2)
    out, caught = _run_recorded(eqx.filter_jit(layer), upstream)  # op by op: ~70 programs
    assert int(out.dropped) == 2 + 1 and len(caught) == 1
    assert "the backend's spike budget" in str(caught[0].message)


@pytest.mark.standard_promotion
def test_train_epoch_reports_the_spikes_dropped_in_the_epoch():
    hidden, out_layer = _bursting(overflow=Overflow.WARN, adjoint=eqsnn.AutoDiff())
    model = (hidden, out_layer)
    data = datasets.linear(jax.random.key(1), 6)

    def sample_loss(model, inputs, label):
        spikes = spatio_temporal_encode(inputs, 1e-2)
        for layer in model:
            spikes = layer(spikes)
        loss = ttfs_loss(spikes, label, 2, t_max=T_MAX, tau_mem=5e-3)
        return loss, {"dropped": spikes.dropped}

    per_sample = jax.vmap(sample_loss, in_axes=(None, 0, 0))(model, data.inputs, data.labels)
    expected = int(np.sum(per_sample[1]["dropped"]))
    optimiser = optax.sgd(0.0)  # the model stays fixed, so each step sees `expected`'s losses
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))

    def epoch(count_dropped=True):
        batches = datasets.batches(data, 3, key=jax.random.key(2))
        pick = (lambda aux: aux["dropped"]) if count_dropped else None
        return training.train_epoch(
            model, opt_state, batches, sample_loss=sample_loss, optimiser=optimiser, dropped=pick
        )

    for _ in range(2):  # every epoch re-arms the warning
        result, caught = _run_recorded(epoch)
        assert expected > 0 and result.dropped == expected and result.samples == 6
        assert len(caught) >= 1
    result = epoch(count_dropped=False)
    # aux means are float32 (jnp.mean of int32 counts): 1e-6 relative.
    assert result.dropped is None and np.isclose(result.aux["dropped"], expected / 6, rtol=1e-6)
