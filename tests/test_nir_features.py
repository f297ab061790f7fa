"""eqsnn.nir with issue 17's features: per-neuron parameters, `t_ref` and synaptic delays.

- a round trip through a NIR file gives back the same layer: the same pytree structure
  (floats stay floats, arrays stay arrays with their shape, dtype and weak type), bit-identical
  leaves, and the same output spikes (compared exactly: the same program on the same
  numbers);
- the exported nodes say in NIR's own terms what the layer does (a `Delay` per input
  channel, or one per synapse behind a fan-out);
- hand-built graphs with a `Delay` node import with the delays NIR's semantics give them;
- what eqsnn cannot express is refused with a message that names the node.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn.nir import from_nir, to_nir

nir = pytest.importorskip("nir")  # CI installs it; locally `pip install 'eqsnn[nir]'`.

T_MAX = 0.04
INPUT = eqsnn.Spikes(
    time=jnp.array([1e-3, 2e-3, 3e-3, 5e-3, 8e-3, 1e-2, jnp.inf]),
    idx=jnp.array([0, 2, 1, 0, 2, 1, -1]),
)


def _params():
    return eqsnn.LIFParameters(
        tau_syn=jnp.array([5e-3, 4e-3, 6e-3, 5e-3]),
        tau_mem=jnp.array(1e-2),  # one trainable value for all neurons: shape ()
        v_th=jnp.full(4, 0.5),  # weakly typed here, made strong by LIFParameters
        v_leak=0.0,  # a float stays a float
        v_reset=jnp.array([0.1, 0.0, -0.1, 0.1]),
        t_ref=jnp.array([1e-3, 0.0, 2e-3, 5e-4]),
    )


def _layer(params=None, delays=None, key=0):
    return eqsnn.LIF(
        3, 4, 24, T_MAX, params, key=jax.random.key(key), mean=1.2, std=0.5, delays=delays
    )


def _assert_same(got, want):
    """Same pytree structure (static fields and float parameters included) and bit-identical
    leaves of the same dtype, shape and weak type."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert getattr(a, "weak_type", None) == getattr(b, "weak_type", None)
        a, b = np.asarray(a), np.asarray(b)
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        assert a.tobytes() == b.tobytes()


def _round_trip(model, tmp_path):
    path = tmp_path / "model.nir"
    nir.write(path, to_nir(model))
    return from_nir(nir.read(path))


def test_round_trip_of_per_neuron_parameters_t_ref_and_delays(tmp_path):
    source = np.array([0.0, 1.5e-3, 4e-3])
    synapse = np.random.default_rng(0).uniform(0.0, 3e-3, (4, 2))
    # Float time constants keep the compilation short; per-neuron time constants are
    # checked without simulation below (equal leaves and structure: the same program).
    params = eqsnn.LIFParameters(
        v_th=jnp.full(4, 0.5),
        v_leak=jnp.array(0.0),
        v_reset=jnp.array([0.1, 0.0, -0.1, 0.1]),
        t_ref=jnp.array([1e-3, 0.0, 2e-3, 5e-4]),
    )
    model = eqx.nn.Sequential(
        [
            _layer(params, delays=source),
            eqsnn.LIF(4, 2, 24, T_MAX, key=jax.random.key(1), mean=1.0, std=0.5, delays=synapse),
        ]
    )
    imported = _round_trip(model, tmp_path)
    _assert_same(imported, model)
    assert isinstance(imported.layers[0].params.tau_mem, float)
    # The same program on the same numbers: the same spikes.
    want, got = model(INPUT), imported(INPUT)
    assert int(want.count()) > 0 and int(want.dropped) == 0
    for field in ("time", "idx", "current", "dropped"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


def test_per_neuron_time_constants_round_trip_and_export(tmp_path):
    source = np.array([0.0, 1.5e-3, 4e-3])
    layer = _layer(_params(), delays=source)
    (imported,) = _round_trip(layer, tmp_path).layers
    _assert_same(imported, layer)
    assert isinstance(imported.params.v_leak, float) and imported.params.tau_mem.shape == ()
    graph = to_nir(layer)
    assert graph.edges == [
        ("input", "delay_0"),
        ("delay_0", "linear_0"),
        ("linear_0", "lif_0"),
        ("lif_0", "output"),
    ]
    np.testing.assert_array_equal(graph.nodes["delay_0"].delay, source)
    # The CubaLIF fields hold the per-neuron values; t_ref, which NIR has no field for, and
    # which fields are arrays, are in eqsnn's metadata.
    node = graph.nodes["lif_0"]
    np.testing.assert_array_equal(node.tau_syn, layer.params.tau_syn)
    np.testing.assert_array_equal(node.w_in, layer.params.tau_syn)
    np.testing.assert_array_equal(node.tau_mem, np.full(4, 1e-2))
    meta = node.metadata["eqsnn"]
    np.testing.assert_array_equal(meta["t_ref"], layer.params.t_ref)
    # (LIFParameters gives every array a strong dtype: none is weakly typed.)
    assert meta["array_params"] == {
        name: {"dtype": "float64", "ndim": 0 if name == "tau_mem" else 1, "weak_type": False}
        for name in ("tau_syn", "tau_mem", "v_th", "v_reset", "t_ref")
    }


def test_float_t_ref_and_float32_arrays_round_trip(tmp_path):
    # A positive float t_ref is recorded and comes back a float; arrays keep their dtype.
    params = eqsnn.LIFParameters(v_th=jnp.full(4, 0.6, jnp.float32), t_ref=2e-3)
    layer = _layer(params)
    (imported,) = _round_trip(layer, tmp_path).layers
    _assert_same(imported, layer)
    assert imported.params.t_ref == 2e-3 and imported.params.v_th.dtype == jnp.float32
    assert set(to_nir(layer).nodes["lif_0"].metadata["eqsnn"]["array_params"]) == {"v_th"}


def test_per_synapse_export_is_exact_in_nir_terms():
    # Through fanout -> delay -> linear, input i reaches neuron n by exactly one channel,
    # with the synapse's weight and delay.
    delays = np.random.default_rng(1).uniform(0.0, 3e-3, (3, 4))
    layer = _layer(delays=delays)
    graph = to_nir(layer)
    assert [name for name, _ in graph.edges] == [
        "input",
        "fanout_0",
        "delay_0",
        "linear_0",
        "lif_0",
    ]
    fanout, delay = graph.nodes["fanout_0"].weight, graph.nodes["delay_0"].delay
    linear = graph.nodes["linear_0"].weight
    assert (fanout.shape, delay.shape, linear.shape) == ((12, 3), (12,), (4, 12))
    assert set(np.unique(fanout)) == {0.0, 1.0}
    w = np.asarray(layer.weights.input)
    for i in range(3):
        for n in range(4):
            (channels,) = np.nonzero(fanout[:, i] * (linear[n] != 0))
            assert channels.size == 1
            assert (linear[n, channels[0]], delay[channels[0]]) == (w[i, n], delays[i, n])
            assert np.sum(fanout[channels[0]]) == 1.0


def _cuba(n, **changes):
    # Another tool's convention: r = 1, w_in = 1 (weights scale by 1 / tau_syn).
    fields = dict(
        tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n),
        v_threshold=np.full(n, 0.6), v_reset=np.zeros(n), w_in=np.ones(n),
    )  # fmt: skip
    return nir.CubaLIF(**{**fields, **changes})


def _foreign(nodes: dict, n_in=3, n=4):
    names = ["in", *nodes, "out"]
    nodes = {"in": nir.Input(input_type=np.array([n_in])), **nodes}
    nodes["out"] = nir.Output(output_type=np.array([n]))
    return nir.NIRGraph(
        nodes=nodes, edges=list(zip(names[:-1], names[1:], strict=True)), type_check=False
    )


def test_foreign_delay_before_the_weights_shifts_each_input():
    delay = np.array([2e-3, 0.0, 1e-3])
    weight = np.random.default_rng(2).uniform(0.5, 1.5, (4, 3)) * 6e-3
    node = _cuba(4, v_reset=np.full(4, -1.0))
    graph = _foreign({"d": nir.Delay(delay=delay), "w": nir.Linear(weight=weight), "cell": node})
    (layer,) = from_nir(graph, n_spikes=24, t_max=T_MAX).layers
    np.testing.assert_array_equal(layer.weights.delays, delay)
    np.testing.assert_allclose(layer.weights.input, weight.T / 5e-3, rtol=1e-15)
    # NIR's y(t) = x(t - d): the layer with zero delays, fed shifted inputs, spikes alike
    # (up to the rounding of t + d: a few ulp of the spike times).
    valid = np.asarray(INPUT.idx) >= 0
    shifted = np.where(valid, np.asarray(INPUT.time) + delay[np.asarray(INPUT.idx)], np.inf)
    order = np.argsort(shifted, kind="stable")
    plain = eqx.tree_at(lambda m: m.weights.delays, layer, jnp.zeros(3))
    want = plain(eqsnn.Spikes(time=jnp.asarray(shifted[order]), idx=INPUT.idx[order]))
    got = layer(INPUT)
    assert int(want.count()) > 0
    np.testing.assert_array_equal(got.idx, want.idx)
    np.testing.assert_allclose(got.time, want.time, rtol=1e-12)


def test_foreign_per_neuron_parameters_are_arrays():
    node = _cuba(4, tau_mem=np.array([1e-2, 8e-3, 1.2e-2, 1e-2]), v_threshold=np.full(4, 0.5))
    graph = _foreign({"w": nir.Linear(weight=np.ones((4, 3))), "cell": node})
    (layer,) = from_nir(graph, n_spikes=8, t_max=T_MAX).layers
    # Values that differ between neurons become a per-neuron float64 array; equal ones a float.
    assert layer.params.arrays == ("tau_mem",)
    np.testing.assert_array_equal(layer.params.tau_mem, node.tau_mem)
    assert (layer.params.tau_syn, layer.params.v_th, layer.params.t_ref) == (5e-3, 0.5, 0.0)


def test_foreign_delay_after_the_weights_is_one_delay_per_neuron():
    delay = np.array([1e-3, 0.0, 2e-3, 3e-3])
    weight = np.ones((4, 3))
    graph = _foreign({"w": nir.Linear(weight=weight), "d": nir.Delay(delay=delay), "c": _cuba(4)})
    (layer,) = from_nir(graph, n_spikes=8, t_max=T_MAX).layers
    np.testing.assert_array_equal(layer.weights.delays, np.tile(delay, (3, 1)))
    # A Delay alone (no weight node) is one-to-one with per-source delays.
    graph = _foreign({"d": nir.Delay(delay=delay), "c": _cuba(4)}, n_in=4)
    (layer,) = from_nir(graph, n_spikes=8, t_max=T_MAX).layers
    np.testing.assert_array_equal(layer.weights.delays, delay)
    np.testing.assert_array_equal(layer.weights.input, np.eye(4) / 5e-3)


def test_delays_eqsnn_cannot_express_are_refused_by_node_name():
    w, d3, d4 = nir.Linear(weight=np.ones((4, 3))), nir.Delay(np.ones(3)), nir.Delay(np.ones(4))
    fanout = np.repeat(np.eye(3), 4, axis=0)
    cases = {
        r"node\(s\) \['d'\] feed no CubaLIF or IF node": {"w": w, "c": _cuba(4), "d": d4},
        "Delay nodes 'd' and 'e' follow each other": {"d": d3, "e": d3, "w": w, "c": _cuba(4)},
        r"the nodes \['d', 'w', 'e'\] before 'c' are no arrangement": {
            "d": d3,
            "w": w,
            "e": d4,
            "c": _cuba(4),
        },
        r"node 'd': delays must be finite and >= 0 \(seconds\), got delay\[1\]=-1.0": {
            "d": nir.Delay(np.array([0.0, -1.0, 0.0])),
            "w": w,
            "c": _cuba(4),
        },
        r"node 'd': a Delay on 3 channels must have delay of shape \(3,\), got \(4,\)": {
            "d": d4,
            "w": w,
            "c": _cuba(4),
        },
        "node 'f' before the Delay 'd' is not a fan-out": {
            "f": nir.Linear(weight=fanout[::-1]),
            "d": nir.Delay(np.ones(12)),
            "w": nir.Linear(weight=np.tile(np.eye(4), 3)),
            "c": _cuba(4),
        },
        "node 'w' after the Delay 'd' sends a delayed channel to more than one neuron": {
            "f": nir.Linear(weight=fanout),
            "d": nir.Delay(np.ones(12)),
            "w": nir.Linear(weight=np.ones((4, 12))),
            "c": _cuba(4),
        },
    }
    for message, nodes in cases.items():
        with pytest.raises(ValueError, match=message):
            from_nir(_foreign(nodes), n_spikes=4, t_max=T_MAX)


def test_delays_on_recurrent_layers_are_refused():
    nodes = {
        "in": nir.Input(input_type=np.array([3])),
        "d": nir.Delay(np.ones(3)),
        "w": nir.Linear(weight=np.ones((4, 3))),
        "c": _cuba(4),
        "rec": nir.Linear(weight=np.ones((4, 4))),
        "out": nir.Output(output_type=np.array([4])),
    }
    edges = [("in", "d"), ("d", "w"), ("w", "c"), ("c", "rec"), ("rec", "c"), ("c", "out")]
    with pytest.raises(
        ValueError, match="Delay node 'd' feeds the recurrent node 'c'; eqsnn's recurrent"
    ):
        from_nir(nir.NIRGraph(nodes=nodes, edges=edges), n_spikes=4, t_max=T_MAX)
    nodes["d"] = nir.Delay(np.ones(4))
    edges = [("in", "w"), ("w", "c"), ("c", "d"), ("d", "rec"), ("rec", "c"), ("c", "out")]
    with pytest.raises(ValueError, match=r"node 'd' \(Delay\) is on a loop"):
        from_nir(nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), n_spikes=4, t_max=1.0)


def test_metadata_and_settings_errors_name_the_node():
    graph = to_nir(_layer(_params()))
    graph.nodes["lif_0"].metadata["eqsnn"]["t_ref"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"node 'lif_0': `metadata\[\"eqsnn\"\]\[\"t_ref\"\]`"):
        from_nir(graph)
    # Delays and per-neuron parameters run on the window scan only (for now).
    graph = to_nir(_layer(delays="source"))
    with pytest.raises(ValueError, match="node 'lif_0': LIF: synaptic delays are simulated"):
        from_nir(graph, engine=eqsnn.IntervalScan(max_spikes_per_interval=2))
    # Per-neuron values that eqsnn rejects name the node and the neuron.
    graph = _foreign({"w": nir.Linear(weight=np.ones((4, 3))), "c": _cuba(4)})
    graph.nodes["c"].v_leak = np.array([0.0, 0.0, 0.7, 0.0])
    with pytest.raises(ValueError, match=r"node 'c': .*`v_th` must be greater than `v_leak`"):
        from_nir(graph, n_spikes=4, t_max=T_MAX)


def test_recurrent_per_neuron_parameters_round_trip_and_delays_are_not_exported(tmp_path):
    params = eqsnn.LIFParameters(v_th=jnp.full(6, 0.5), t_ref=jnp.linspace(0.0, 1e-3, 6))
    budget = eqsnn.WindowScan(max_spikes_per_neuron=(2, 2))
    layered = dict(connectivity=eqsnn.Connectivity.LAYERED, engine=budget)
    layer = eqsnn.RecurrentLIF(3, [4, 2], 12, T_MAX, params, key=jax.random.key(0), **layered)
    (imported,) = _round_trip(layer, tmp_path).layers
    _assert_same(imported, layer)
    layer = eqsnn.RecurrentLIF(
        3, [4, 2], 12, T_MAX, params, key=jax.random.key(0), delays="source", **layered
    )
    with pytest.raises(ValueError, match=r"layer 0 \(RecurrentLIF\) has weights.delays;"):
        to_nir(layer)
