"""Per-neuron trainable parameters, refractory periods and synaptic delays (feed-forward).

Everything in float64 (see `conftest.py`). Tolerances:

- spike times against the Diffrax reference: `rtol = 1e-10`, the reference's own accuracy
  (its voltage error of about 1e-12 over the crossing slope, as in `test_diffrax_reference`);
- AutoDiff against EventProp: `1e-8` relative to the largest entry of each gradient (both
  are exact; they differ only by rounding, about 1e-15 in practice);
- central finite differences: `1e-5` relative, with a step of `1e-6` of the value's scale
  (truncation ~ h^2 and rounding ~ eps / h both stay below 1e-7 relative here).
"""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn.reference import simulate_diffrax

N_IN, N_OUT, T_MAX = 5, 4, 0.04


def _inputs(seed=0, n=10):
    k1, k2 = jax.random.split(jax.random.key(seed))
    time = jax.random.uniform(k1, (n,), minval=0.0, maxval=0.02, dtype=jnp.float64)
    return eqsnn.Spikes(time=time, idx=jax.random.randint(k2, (n,), 0, N_IN))


def _params(t_ref=1.5e-3):
    return eqsnn.LIFParameters(
        tau_syn=jnp.array([5e-3, 4e-3, 6e-3, 5e-3]),
        tau_mem=jnp.array([1e-2, 1.2e-2, 6e-3, 5e-3]),  # ratios 2, 3, 1, 1
        v_th=jnp.array([0.5, 0.6, 0.45, 0.5]),
        v_leak=jnp.array([0.0, 0.05, -0.05, 0.0]),
        v_reset=jnp.array([0.1, 0.0, -0.1, 0.2]),
        t_ref=jnp.full(N_OUT, t_ref),
    )


DELAYS = {
    "none": None,
    "source": np.array([0.0, 1e-3, 2.5e-3, 4e-3, 0.5e-3]),
    "synapse": np.abs(np.random.default_rng(1).normal(size=(N_IN, N_OUT))) * 2e-3,
}


def _layer(params, delays=None, adjoint=None, n_spikes=32, budget=8):
    return eqsnn.LIF(
        N_IN,
        N_OUT,
        n_spikes,
        T_MAX,
        params,
        key=jax.random.key(3),
        mean=0.8,
        std=0.6,
        delays=delays,
        adjoint=adjoint,
        engine=eqsnn.WindowScan(max_spikes_per_neuron=budget),
        overflow=eqsnn.Overflow.ERROR,
    )


def _padded(times, idx, n=10):
    """Spikes in `n` slots (the shape of `_inputs`, so compiled programs are reused)."""
    pad = n - len(times)
    return eqsnn.Spikes(
        time=jnp.array(list(times) + [0.0] * pad), idx=jnp.array(list(idx) + [-1] * pad)
    )


def _loss_and_spikes(layer, spikes):
    out = layer(spikes)
    return jnp.sum(jnp.where(out.valid, 30.0 * out.time**2 + 0.1 * out.current, 0.0)), out


_value_and_grad = eqx.filter_value_and_grad(_loss_and_spikes, has_aux=True)
"""`((loss, spikes), gradient)`: the spikes, the loss (also for the finite differences)
and its gradient, from one compilation per layer configuration (a separate forward pass
would compile another program)."""


def _loss(layer, spikes):
    return _value_and_grad(layer, spikes)[0][0]


# (Without delays the layer runs the same per-neuron path; the defaults test below holds it
# to the seed's window scan.)
@pytest.mark.parametrize("delays", ["source", "synapse"])
def test_spikes_match_diffrax_reference(delays):
    layer = _layer(_params(), DELAYS[delays])
    spikes = _inputs()
    out = layer(spikes)
    ref = simulate_diffrax(
        layer.params,
        spikes,
        layer.weights.input,
        32,
        T_MAX,
        input_delays=layer.weights.delays,
    )
    n = int(ref.count())
    assert n >= 8 and int(out.count()) == n  # several spikes, some neurons burst
    assert len(np.unique(np.asarray(out.idx[:n]))) >= 3
    np.testing.assert_array_equal(out.idx[:n], ref.idx[:n])
    np.testing.assert_allclose(out.time[:n], ref.time[:n], rtol=1e-10)
    np.testing.assert_allclose(out.current[:n], ref.current[:n], rtol=1e-9, atol=1e-12)


def _flat(tree):
    return jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))


# Without delays and with per-source delays the layer runs the same per-neuron code as with
# per-synapse delays (every neuron's own arrivals); the most general case is checked here.
def test_autodiff_equals_eventprop_and_silent_neurons_are_finite():
    spikes = _inputs()
    layers = [
        _layer(_params(), DELAYS["synapse"], m) for m in (eqsnn.AutoDiff(), eqsnn.EventProp())
    ]
    grads = [_value_and_grad(layer, spikes)[1] for layer in layers]
    leaves_a, leaves_e = _flat(grads[0]), _flat(grads[1])
    assert len(leaves_a) == 8  # the six parameters, the weights, and the delays
    for a, e in zip(leaves_a, leaves_e, strict=True):
        scale = np.max(np.abs(a))
        assert scale > 0
        np.testing.assert_allclose(e, a, rtol=0, atol=1e-8 * scale)
    # Weights too small to spike, zero delays, an input arriving exactly at t_max, t_ref = 0
    # (as an array): no spike, finite gradients, no NaN, by both methods (the same
    # compiled programs: only values differ).
    silent_spikes = _padded([1e-3, 2e-3, T_MAX - 2e-3], [0, 1, 2])
    delays = np.zeros((N_IN, N_OUT))
    delays[2] = 2e-3  # reaches at exactly t_max
    for layer in layers:
        layer = eqx.tree_at(
            lambda m: (m.weights.input, m.weights.delays, m.params.t_ref),
            layer,
            (1e-3 * layer.weights.input, jnp.asarray(delays), jnp.zeros(N_OUT)),
        )
        (_, out), grads = _value_and_grad(layer, silent_spikes)
        assert int(out.count()) == 0
        for leaf in _flat(grads):
            assert np.all(np.isfinite(leaf))


def _where(name):
    if name == "delays":
        return lambda layer: layer.weights.delays
    if name == "recurrent_delays":
        return lambda layer: layer.weights.recurrent_delays
    if name == "weights":
        return lambda layer: layer.weights.input
    return lambda layer: getattr(layer.params, name)


@pytest.mark.parametrize(
    "name", ["tau_syn", "tau_mem", "v_th", "v_leak", "v_reset", "t_ref", "weights", "delays"]
)
def test_eventprop_matches_finite_differences(name):
    spikes = _inputs()
    layer = _layer(_params(), DELAYS["synapse"], eqsnn.EventProp())
    where = _where(name)
    grad = where(_value_and_grad(layer, spikes)[1])
    value = where(layer)
    checked = 0
    for index in np.ndindex(value.shape):
        if checked == 3:
            break
        scale = 1e-2 if name.startswith(("tau", "t_ref", "delays")) else 1.0
        h = 1e-6 * scale
        up = _loss(eqx.tree_at(where, layer, value.at[index].add(h)), spikes)
        down = _loss(eqx.tree_at(where, layer, value.at[index].add(-h)), spikes)
        fd = (up - down) / (2 * h)
        if abs(fd) < 1e-6 * np.max(np.abs(grad)):
            continue  # a neuron or synapse without influence; checked by equality above
        np.testing.assert_allclose(grad[index], fd, rtol=1e-5)
        checked += 1
    assert checked >= 2


def test_defaults_take_the_seed_path_bit_for_bit():
    # Float parameters without refractory period and without delays run the original
    # window scan; arrays equal to them run the per-neuron path to rounding.
    spikes = _inputs()
    scalar = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.5, v_reset=0.1)
    solver = eqsnn.solvers.BracketedSolver()

    def make(delays=None):
        return eqsnn.LIF(
            N_IN,
            N_OUT,
            40,
            T_MAX,
            scalar,
            key=jax.random.key(3),
            mean=1.2,
            std=0.6,
            solver=solver,
            engine=eqsnn.WindowScan(max_spikes_per_neuron=10),
            delays=delays,
        )

    seed = make()
    arrays = dataclasses.replace(scalar, tau_mem=jnp.full(N_OUT, 1e-2))
    per_neuron = eqx.tree_at(lambda layer: layer.params, seed, arrays)
    a, b = seed(spikes), per_neuron(spikes)
    np.testing.assert_array_equal(a.idx, b.idx)
    np.testing.assert_allclose(a.time, b.time, rtol=1e-13)
    zero = make(delays="synapse")
    c = zero(spikes)
    np.testing.assert_array_equal(a.idx, c.idx)
    np.testing.assert_allclose(a.time, c.time, rtol=1e-13)
    assert seed.features() == () and zero.features() == ("synaptic delays",)


def test_refractory_period_separates_spikes():
    spikes = _inputs()
    for t_ref in (0.0, 4e-3):
        out = _layer(_params(t_ref), n_spikes=60, budget=15)(spikes)
        for n in range(N_OUT):
            times = np.sort(np.asarray(out.time[out.idx == n]))
            if t_ref and len(times) > 1:
                assert np.min(np.diff(times)) >= t_ref


def test_arrival_at_t_max_is_ignored():
    late = np.zeros((N_IN, N_OUT))
    late[1] = T_MAX - 5e-3
    a = _layer(_params(), late)(_padded([1e-3, 5e-3], [0, 1]))
    b = _layer(_params(), np.zeros((N_IN, N_OUT)))(_padded([1e-3], [0]))
    np.testing.assert_array_equal(a.idx, b.idx)
    np.testing.assert_allclose(a.time, b.time, rtol=1e-13)


def test_bad_input_raises():
    negative = r"`delays` must be finite and >= 0.*delays\[1, 2\]=-0.001"
    with pytest.raises(ValueError, match=negative):
        d = np.zeros((N_IN, N_OUT))
        d[1, 2] = -1e-3
        _layer(_params(), d)
    with pytest.raises(ValueError, match=r"`delays` must have shape \(in_size,\)=\(5,\)"):
        _layer(_params(), np.zeros((N_OUT, N_IN)))
    with pytest.raises(ValueError, match=r"`delays` must be None, 'synapse', 'source'"):
        _layer(_params(), "axon")
    with pytest.raises(ValueError, match=r"`t_ref` must be >= 0 \(seconds\), got -0.001"):
        eqsnn.LIFParameters(t_ref=-1e-3)
    with pytest.raises(ValueError, match=r"`tau_mem` must be positive.*got -0.01 \(neuron 2\)"):
        eqsnn.LIFParameters(tau_mem=jnp.array([1e-2, 1e-2, -1e-2]))
    with pytest.raises(ValueError, match=r"`v_th` must be greater than `v_leak`.*v_th\[1\]=0.0"):
        eqsnn.LIFParameters(v_th=jnp.array([0.5, 0.0]))
    with pytest.raises(ValueError, match=r"`params.v_th` must be a float or an array of shape"):
        _layer(eqsnn.LIFParameters(v_th=jnp.full(3, 0.5)))
    with pytest.raises(ValueError, match=r"TTFSSolver.*assumes a fixed ratio"):
        eqsnn.LIF(
            2, N_OUT, 4, T_MAX, _params(), key=jax.random.key(0), solver=eqsnn.solvers.TTFSSolver()
        )
    with pytest.raises(ValueError, match=r"not\s+yet supported on engine=IntervalScan"):
        eqsnn.LIF(2, N_OUT, 4, T_MAX, _params(), key=jax.random.key(0), engine=eqsnn.IntervalScan())


def test_parameters_are_leaves_only_when_arrays():
    fixed = eqsnn.LIFParameters()
    assert jax.tree.leaves(fixed) == []
    trained = eqsnn.LIFParameters(tau_mem=jnp.full(3, 1e-2), v_th=0.5)
    assert [leaf.shape for leaf in jax.tree.leaves(trained)] == [(3,)]
    assert trained.tau_ratio is None and fixed.tau_ratio == 2.0
    # plain jax.grad sees only the arrays: a float stays a constant of the program
    grad = jax.grad(lambda p: jnp.sum(p.tau_mem * p.v_th))(trained)
    np.testing.assert_allclose(grad.tau_mem, 0.5)
    assert grad.v_th == 0.5


def _recurrent(adjoint=None):
    rng = np.random.default_rng(0)
    n = 8
    params = eqsnn.LIFParameters(
        tau_syn=jnp.asarray(rng.uniform(4e-3, 6e-3, n)),
        tau_mem=jnp.asarray(rng.uniform(6e-3, 1.2e-2, n)),
        v_th=jnp.full(n, 0.5),
        v_reset=jnp.full(n, 0.1),
        t_ref=jnp.full(n, 1e-3),
    )
    return eqsnn.RecurrentLIF(
        4,
        (5, 3),
        40,
        0.05,
        params,
        key=jax.random.key(3),
        mean=[0.5, 0.3],
        std=0.4,
        delays=rng.uniform(0, 3e-3, (4, n)),
        recurrent_delays=rng.uniform(0, 3e-3, n),
        adjoint=adjoint,
        engine=eqsnn.WindowScan(max_spikes_per_neuron=8),
        overflow=eqsnn.Overflow.ERROR,
    )


def test_layered_recurrent_layer_with_every_feature():
    # Populations 4 -> 5 -> 3 with per-neuron parameters, refractory periods, per-synapse
    # input delays and per-source recurrent delays: the reference's spikes, and EventProp
    # gradients that match finite differences (each population runs the feed-forward
    # per-neuron path, whose autodiff and EventProp agree above; the populations chain by
    # autodiff).
    spikes = _inputs(1)
    spikes = eqx.tree_at(lambda s: s.idx, spikes, spikes.idx % 4)
    layer = _recurrent(eqsnn.EventProp())
    (_, out), event = _value_and_grad(layer, spikes)
    n = _matches_reference(layer, spikes, out)
    assert n >= 10 and int(jnp.sum(out.idx >= 5)) >= 2
    _matches_finite_differences(
        layer, event, spikes, [("recurrent_delays", 2, 1e-8), ("tau_mem", 6, 1e-8)]
    )


def _matches_reference(layer, spikes, out):
    """The recurrent layer's spikes `out` equal the Diffrax reference's; their count."""
    weights = layer.effective_weights()
    ref = simulate_diffrax(
        layer.params,
        spikes,
        weights.input,
        layer.n_spikes,
        layer.t_max,
        recurrent_weights=weights.recurrent,
        input_delays=weights.delays,
        recurrent_delays=weights.recurrent_delays,
    )
    count = int(ref.count())
    assert count < layer.n_spikes and int(out.count()) == count
    np.testing.assert_array_equal(out.idx[:count], ref.idx[:count])
    np.testing.assert_allclose(out.time[:count], ref.time[:count], rtol=1e-10)
    return count


def _matches_finite_differences(layer, grads, spikes, cases):
    """Central differences of `_loss` equal `grads` (1e-5) for `(name, index, step)`."""
    for name, index, h in cases:
        where = _where(name)
        value = where(layer)
        up = _loss(eqx.tree_at(where, layer, value.at[index].add(h)), spikes)
        down = _loss(eqx.tree_at(where, layer, value.at[index].add(-h)), spikes)
        np.testing.assert_allclose(where(grads)[index], (up - down) / (2 * h), rtol=1e-5)


def test_recurrent_event_loop_with_every_feature():
    # Genuine recurrence (Connectivity.FULL, the event loop) with every parameter per
    # neuron, refractory periods included, per-synapse input delays and per-synapse
    # recurrent delays: the reference's spikes; autodiff equals EventProp; finite
    # differences.
    rng = np.random.default_rng(0)
    n = 6
    params = eqsnn.LIFParameters(
        tau_syn=jnp.asarray(rng.uniform(4e-3, 6e-3, n)),
        tau_mem=jnp.asarray(rng.uniform(4e-3, 1.2e-2, n)),
        v_th=jnp.asarray(rng.uniform(0.4, 0.6, n)),
        v_leak=jnp.asarray(rng.uniform(-0.05, 0.05, n)),
        v_reset=jnp.asarray(rng.uniform(-0.1, 0.2, n)),
        t_ref=jnp.asarray(rng.uniform(0.0, 2e-3, n)),
    )
    recurrent = jnp.asarray(rng.normal(0.0, 0.18, (n, n)))
    input_delays = rng.uniform(0.0, 3e-3, (4, n))
    recurrent_delays = rng.uniform(0.0, 3e-3, (n, n))

    def make(adjoint):
        layer = eqsnn.RecurrentLIF(
            4,
            (n,),
            48,
            0.05,
            params,
            key=jax.random.key(3),
            mean=0.4,
            std=0.4,
            connectivity=eqsnn.Connectivity.FULL,
            adjoint=adjoint,
            overflow=eqsnn.Overflow.ERROR,
            delays=input_delays,
            recurrent_delays=recurrent_delays,
        )
        return eqx.tree_at(lambda m: m.weights.recurrent, layer, recurrent)

    spikes = _inputs(1)
    spikes = eqx.tree_at(lambda s: s.idx, spikes, spikes.idx % 4)
    layer = make(eqsnn.AutoDiff())
    assert isinstance(layer.engine, eqsnn.EventLoop)
    (_, out), auto = _value_and_grad(layer, spikes)
    count = _matches_reference(layer, spikes, out)
    assert count >= 12
    event = _value_and_grad(make(eqsnn.EventProp()), spikes)[1]
    for a, e in zip(_flat(auto), _flat(event), strict=True):
        np.testing.assert_allclose(e, a, rtol=0, atol=1e-8 * np.max(np.abs(a)))
    bursting = int(np.argmax(np.bincount(np.asarray(out.idx[:count]), minlength=n)))
    names = ["tau_syn", "tau_mem", "v_th", "v_leak", "v_reset", "t_ref"]
    cases = [(name, bursting, 1e-7 if name.startswith("v") else 1e-9) for name in names]
    cases += [("delays", (1, bursting), 1e-9), ("recurrent_delays", (bursting, 2), 1e-9)]
    _matches_finite_differences(layer, event, spikes, cases)


def test_save_and_load_keep_trained_parameters_and_delays(tmp_path):
    from eqsnn import training

    params = eqsnn.LIFParameters(tau_mem=jnp.full(3, 1e-2), v_th=jnp.full(3, 0.6), t_ref=1e-3)
    layers = [
        eqsnn.LIF(2, 3, 6, T_MAX, params, key=jax.random.key(0), delays="synapse"),
        eqsnn.RecurrentLIF(
            2,
            (3,),
            6,
            T_MAX,
            params,
            key=jax.random.key(0),
            delays="source",
            recurrent_delays="synapse",
            connectivity=eqsnn.Connectivity.FULL,
        ),
    ]
    for k, layer in enumerate(layers):
        layer = jax.tree.map(lambda x: x + 1e-3 if eqx.is_inexact_array(x) else x, layer)
        training.save(tmp_path / f"{k}.eqx", layer)
        loaded = training.load(tmp_path / f"{k}.eqx")
        assert jax.tree.structure(loaded) == jax.tree.structure(layer)
        for a, b in zip(jax.tree.leaves(layer), jax.tree.leaves(loaded), strict=True):
            np.testing.assert_array_equal(a, b)
