"""eqsnn.nir: export to and import from NIR graphs.

- a round trip through a NIR file gives back the same layers and the same spikes, exactly;
- the exported nodes have NIR's types, shapes and parameter values;
- the CubaLIF mapping is checked against a direct integration of NIR's equations;
- what eqsnn cannot express is refused with a message that names the node.
"""

import re
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn import EventPropLIF
from eqsnn.nir import from_nir, to_nir

try:
    import nir
except ImportError:  # CI installs it; locally `pip install 'eqsnn[nir]'`.
    nir = None

needs_nir = pytest.mark.skipif(nir is None, reason="needs the nir package (eqsnn[nir])")

T_MAX = 0.05
INPUT = eqsnn.Spikes(time=jnp.array([3e-3, 1e-3, 2e-3, 4e-3]), idx=jnp.array([0, 1, 2, -1]))


def _model():
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    hidden = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6, v_reset=-1000.0)
    out = eqsnn.LIFParameters(tau_syn=4e-3, tau_mem=9e-3, v_th=0.5, v_leak=-0.1, v_reset=-5.0)
    return eqx.nn.Sequential(
        [
            eqsnn.LIF(3, 4, 6, T_MAX, hidden, key=k1, mean=2.0, std=0.5),
            eqsnn.LIF(
                4, 2, 5, 0.04, out, key=k2, mean=1.5, std=0.5,
                engine=eqsnn.IntervalScan(max_spikes_per_interval=2), overflow=eqsnn.Overflow.ERROR,
            ),
        ]
    )  # fmt: skip


@needs_nir
def test_round_trip_through_a_file_reproduces_layers_and_spikes(tmp_path):
    model = _model()
    path = tmp_path / "model.nir"
    nir.write(path, to_nir(model))
    imported = from_nir(nir.read(path))
    assert eqx.tree_equal(imported, model)  # weights, parameters, budgets, solver: all equal
    want, got = model(INPUT), imported(INPUT)
    assert int(want.count()) > 0
    for field in ("time", "idx", "current", "dropped"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


@needs_nir
def test_exported_graph_has_nir_types_shapes_and_values():
    model = _model()
    graph = to_nir(model)
    assert graph.edges == [
        ("input", "linear_0"),
        ("linear_0", "lif_0"),
        ("lif_0", "linear_1"),
        ("linear_1", "lif_1"),
        ("lif_1", "output"),
    ]
    assert isinstance(graph.nodes["input"], nir.Input)
    assert isinstance(graph.nodes["output"], nir.Output)
    np.testing.assert_array_equal(graph.nodes["input"].input_type["input"], [3])
    np.testing.assert_array_equal(graph.nodes["output"].output_type["output"], [2])
    for k, layer in enumerate(model.layers):
        linear, lif = graph.nodes[f"linear_{k}"], graph.nodes[f"lif_{k}"]
        assert isinstance(linear, nir.Linear) and isinstance(lif, nir.CubaLIF)
        np.testing.assert_array_equal(linear.weight, np.asarray(layer.weights.input).T)
        p, n = layer.params, layer.out_size
        expected = dict(
            tau_syn=p.tau_syn, tau_mem=p.tau_mem, r=1.0, v_leak=p.v_leak,
            v_threshold=p.v_th, v_reset=p.v_reset, w_in=p.tau_syn,
        )  # fmt: skip
        for field, value in expected.items():
            np.testing.assert_array_equal(getattr(lif, field), np.full(n, value), err_msg=field)
        # The engine by name with its budget (the budget key alone names the engine in
        # files written before engines were values), and the gradient method.
        budget = (
            dict(max_spikes_per_neuron=layer.max_spikes_per_neuron)
            if layer.max_spikes_per_interval is None
            else dict(max_spikes_per_interval=layer.max_spikes_per_interval)
        )
        assert lif.metadata["eqsnn"] == dict(
            layer="LIF", n_spikes=layer.n_spikes, t_max=layer.t_max,
            overflow=layer.overflow.value, engine=type(layer.engine).__name__, **budget,
            adjoint="AutoDiff", per_step=False,
        )  # fmt: skip


def _nir_first_spikes(weight, node, spikes, dt):
    """First spike of each neuron of NIR's CubaLIF, by forward Euler with step `dt`.

    An input spike is a unit-area Dirac delta: one step of height 1/dt.
    """
    n = weight.shape[0]
    x_steps = {}
    for t, i in zip(np.asarray(spikes.time), np.asarray(spikes.idx), strict=True):
        if i >= 0:
            x_steps.setdefault(round(t / dt), np.zeros(n))
            x_steps[round(t / dt)] += weight[:, i] / dt
    v, current = np.array(node.v_leak, dtype=float), np.zeros(n)
    first = np.full(n, np.inf)
    for step in range(round(T_MAX / dt)):
        x = x_steps.get(step, 0.0)
        v = v + dt / node.tau_mem * (node.v_leak - v + node.r * current)
        current = current + dt / node.tau_syn * (-current + node.w_in * x)
        crossed = (v > node.v_threshold) & np.isinf(first)
        first[crossed] = (step + 1) * dt
        v[crossed] = node.v_reset[crossed]
    return first


@needs_nir
def test_cuba_lif_mapping_matches_nir_equations():
    """A graph in another convention (r != 1, w_in per neuron, Affine with zero bias)."""
    rng = np.random.default_rng(0)
    n, n_in = 3, 3
    weight = rng.uniform(0.5, 1.5, (n, n_in)) * 2e-2
    node = nir.CubaLIF(
        tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 1e-2), r=np.array([2.0, 1.0, 0.5]),
        v_leak=np.zeros(n), v_threshold=np.full(n, 0.6), v_reset=np.full(n, -1000.0),
        w_in=np.array([0.5, 1.0, 3.0]),
    )  # fmt: skip
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([n_in])),
            "affine": nir.Affine(weight=weight, bias=np.zeros(n)),
            "cuba": node,
            "out": nir.Output(output_type=np.array([n])),
        },
        edges=[("in", "affine"), ("affine", "cuba"), ("cuba", "out")],
    )
    (layer,) = from_nir(graph, n_spikes=6, t_max=T_MAX).layers
    scale = node.r * node.w_in / node.tau_syn
    np.testing.assert_allclose(layer.weights.input, weight.T * scale, rtol=1e-15)
    got = layer(INPUT).first_spike_times(n)
    dt = 1e-6
    want = _nir_first_spikes(weight, node, INPUT, dt)
    assert np.all(np.isfinite(want))
    # Forward Euler is first order: the error is 1.4-1.7 dt at dt = 1e-5, 1e-6 and 1e-7
    # (it shrinks tenfold with dt), so 3 dt = 3 us bounds it; a wrong factor r w_in / tau_syn
    # (4x between these neurons) would move the ~2 ms spike times by far more.
    np.testing.assert_allclose(got, want, rtol=0, atol=3 * dt)


@needs_nir
def test_arguments_override_metadata_and_are_required_without_it():
    graph = to_nir(_model())
    for name in ("lif_0", "lif_1"):
        graph.nodes[name].metadata = {}
    with pytest.raises(ValueError, match="node 'lif_0' does not record `n_spikes`"):
        from_nir(graph, t_max=T_MAX)
    with pytest.raises(ValueError, match="`t_max` has 3 entries but the graph has 2"):
        from_nir(graph, n_spikes=4, t_max=[T_MAX] * 3)
    engine = eqsnn.IntervalScan(max_spikes_per_interval=2)
    model = from_nir(graph, n_spikes=[7, 3], t_max=0.03, engine=engine)
    assert [layer.n_spikes for layer in model.layers] == [7, 3]
    assert [layer.t_max for layer in model.layers] == [0.03, 0.03]
    assert [layer.max_spikes_per_interval for layer in model.layers] == [2, 2]
    assert [layer.max_spikes_per_neuron for layer in model.layers] == [None, None]
    assert [layer.overflow for layer in model.layers] == [eqsnn.Overflow.WARN] * 2
    # Without arguments, each layer gets its recorded budget and engine back.
    model = from_nir(to_nir(_model()))
    assert [layer.max_spikes_per_neuron for layer in model.layers] == [2, None]
    assert [layer.max_spikes_per_interval for layer in model.layers] == [None, 2]


@needs_nir
def test_recurrent_round_trip_keeps_populations_mask_and_spikes(tmp_path):
    k1, k2 = jax.random.split(jax.random.PRNGKey(1))
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6, v_reset=-1000.0)
    model = eqx.nn.Sequential(
        [
            eqsnn.RecurrentLIF(
                3,
                [4, 2],
                10,
                T_MAX,
                params,
                key=k1,
                mean=[2.0, 1.5],
                std=0.5,
                engine=eqsnn.WindowScan(max_spikes_per_neuron=(1, 2)),
            ),  # fmt: skip
            eqsnn.LIF(6, 2, 4, T_MAX, params, key=k2, mean=1.0, std=0.5),
        ]
    )
    graph = to_nir(model)
    assert ("lif_0", "recurrent_0") in graph.edges and ("recurrent_0", "lif_0") in graph.edges
    np.testing.assert_array_equal(
        graph.nodes["recurrent_0"].weight, np.asarray(model.layers[0].weights.recurrent).T
    )
    path = tmp_path / "recurrent.nir"
    nir.write(path, graph)
    imported = from_nir(nir.read(path))
    # Populations, connectivity mask and per-population budgets included.
    assert eqx.tree_equal(imported, model)
    want, got = model(INPUT), imported(INPUT)
    assert int(want.count()) > 0
    np.testing.assert_array_equal(got.time, want.time)
    np.testing.assert_array_equal(got.idx, want.idx)


@needs_nir
@pytest.mark.parametrize("budget", [[1, 2], None])
def test_recurrent_metadata_format(budget):
    # The file format: which keys a recurrent CubaLIF node records. The per-population
    # budget is present exactly when the layer has one (the window scan per population).
    engine = None if budget is None else eqsnn.WindowScan(max_spikes_per_neuron=budget)
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6, v_reset=-1000.0)
    layer = eqsnn.RecurrentLIF(
        3, [4, 2], 10, T_MAX, params, key=jax.random.PRNGKey(1), engine=engine
    )
    meta = to_nir(layer).nodes["lif_0"].metadata["eqsnn"]
    expected = {"layer", "n_spikes", "t_max", "overflow", "layers", "mask_input", "mask_recurrent"}
    expected |= {"engine", "adjoint", "per_step"}
    assert set(meta) == expected | ({"max_spikes_per_neuron"} if budget else set())
    assert meta["engine"] == ("WindowScan" if budget else "EventLoop")
    assert (meta["layer"], meta["n_spikes"], meta["t_max"]) == ("RecurrentLIF", 10, T_MAX)
    assert meta["overflow"] == layer.overflow.value
    np.testing.assert_array_equal(meta["layers"], [4, 2])
    np.testing.assert_array_equal(meta["mask_input"], layer.mask.input)
    np.testing.assert_array_equal(meta["mask_recurrent"], layer.mask.recurrent)
    if budget:
        np.testing.assert_array_equal(meta["max_spikes_per_neuron"], budget)
    (imported,) = from_nir(to_nir(layer)).layers
    assert imported.max_spikes_per_neuron == (None if budget is None else tuple(budget))


@needs_nir
def test_foreign_recurrent_loop_is_one_fully_connected_population():
    n = 3
    rec = np.arange(9.0).reshape(3, 3)
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([2])),
            "w": nir.Linear(weight=np.ones((n, 2))),
            "cell": _cuba(n, w_in=np.ones(n)),  # weights scale by r w_in / tau_syn = 200
            "rec": nir.Linear(weight=rec),
            "out": nir.Output(output_type=np.array([n])),
        },
        edges=[("in", "w"), ("w", "cell"), ("cell", "rec"), ("rec", "cell"), ("cell", "out")],
    )
    (layer,) = from_nir(graph, n_spikes=8, t_max=T_MAX).layers
    assert isinstance(layer, eqsnn.RecurrentLIF) and layer.layers == (n,)
    assert layer.mask.recurrent.all() and layer.mask.input.all()
    np.testing.assert_allclose(layer.weights.input, np.ones((2, n)) / 5e-3, rtol=1e-15)
    np.testing.assert_allclose(layer.weights.recurrent, rec.T / 5e-3, rtol=1e-15)


@needs_nir
def test_import_as_another_layer_class():
    model = _model()
    imported = from_nir(to_nir(model), layer=EventPropLIF)
    for got, want in zip(imported.layers, model.layers, strict=True):
        assert type(got) is EventPropLIF
        np.testing.assert_array_equal(got.weights.input, want.weights.input)
        assert (got.params, got.n_spikes, got.t_max) == (want.params, want.n_spikes, want.t_max)
    with pytest.raises(TypeError, match="`layer` must be eqsnn.LIF or a subclass"):
        from_nir(to_nir(model), layer=eqsnn.RecurrentLIF)


def _graph(nodes, edges):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _cuba(n, **changes):
    fields = dict(
        tau_syn=np.full(n, 5e-3), tau_mem=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n),
        v_threshold=np.full(n, 0.6), v_reset=np.zeros(n), w_in=np.full(n, 5e-3),
    )  # fmt: skip
    return nir.CubaLIF(**{**fields, **changes})


@needs_nir
def test_what_eqsnn_cannot_express_is_refused_by_node_name():
    inp, out = nir.Input(input_type=np.array([2])), nir.Output(output_type=np.array([2]))
    linear = nir.Linear(weight=np.ones((2, 2)))
    chain = [("in", "w"), ("w", "cell"), ("cell", "out")]
    cases = {
        r"unsupported node\(s\) 'cell' \(LIF\)": (
            {
                "cell": nir.LIF(
                    tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)
                )
            },  # fmt: skip
            chain,
        ),
        r"unsupported node\(s\) 'w' \(Scale\)": (
            {"w": nir.Scale(scale=np.ones(2))},
            chain,
        ),
        r"edge \('w', 'ghost'\) names an unknown node": (
            {},
            [("in", "w"), ("w", "ghost"), ("ghost", "out")],
        ),
        "node 'w' is an Affine with a non-zero bias": (
            {"w": nir.Affine(weight=np.ones((2, 2)), bias=np.ones(2))},
            chain,
        ),
        r"node 'cell': LIFParameters: `v_reset` must be below `v_th`, got v_reset\[1\]": (
            {"cell": _cuba(2, v_reset=np.array([0.0, 0.7]))},
            chain,
        ),
        "node 'cell': LIFParameters: `v_th` must be greater than `v_leak`": (
            {"cell": _cuba(2, v_leak=np.ones(2))},
            chain,
        ),
        "node 'w' has 2 outgoing edges": ({}, [*chain, ("w", "out")]),
        "node 'cell' has 2 outgoing edges": ({}, [*chain, ("cell", "cell")]),
        "node 'cell': non-zero weights outside the recorded connectivity mask": (
            {
                "cell": _cuba(
                    2,
                    metadata={
                        "eqsnn": {
                            "mask_input": np.ones((2, 2), bool),
                            "mask_recurrent": np.eye(2, dtype=bool),
                        }
                    },
                ),
                "rec": nir.Linear(weight=np.ones((2, 2))),
            },  # fmt: skip
            [*chain, ("cell", "rec"), ("rec", "cell")],
        ),
        "weight nodes 'w' and 'w2' follow each other": (
            {"w2": nir.Linear(weight=np.eye(2))},
            [("in", "w"), ("w", "w2"), ("w2", "cell"), ("cell", "out")],
        ),
        r"node\(s\) \['stray'\] are not on the chain": (
            {"stray": _cuba(2)},
            chain,
        ),
    }
    for message, (nodes, edges) in cases.items():
        graph = _graph({"in": inp, "w": linear, "cell": _cuba(2), "out": out, **nodes}, edges)
        with pytest.raises(ValueError, match=message):
            from_nir(graph, n_spikes=4, t_max=T_MAX)


@needs_nir
def test_to_nir_refuses_what_it_cannot_export():
    model = _model()
    with pytest.raises(TypeError, match="layer 1 is a Linear"):
        to_nir(eqx.nn.Sequential([model.layers[0], eqx.nn.Linear(4, 2, key=jax.random.key(0))]))
    with pytest.raises(ValueError, match="layer 1 has in_size=3 but layer 0 has 2 neurons"):
        to_nir([model.layers[1], model.layers[0]])
    with pytest.raises(TypeError, match="must be an eqsnn.LIF or eqsnn.RecurrentLIF"):
        to_nir("LIF")
    with pytest.raises(TypeError, match="must be a nir.NIRGraph"):
        from_nir(model)


def test_missing_nir_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nir", None)  # `import nir` now raises ImportError
    with pytest.raises(ImportError, match=re.escape("pip install 'eqsnn[nir]'")):
        to_nir(_model())


@needs_nir
@pytest.mark.standard_promotion
def test_howto_code_blocks_run(tmp_path, monkeypatch):
    # As users run them: JAX's default float32 and dtype promotion, in an empty directory.
    page = Path(__file__).resolve().parents[1] / "docs" / "howto" / "nir.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    with jax.enable_x64(False):
        for number, block in enumerate(blocks):
            exec(compile(block, f"{page.name} (python block {number})", "exec"), namespace)


@needs_nir
@pytest.mark.parametrize(
    "engine, adjoint",
    [
        (eqsnn.EventLoop(), eqsnn.EventProp()),
        (eqsnn.IntervalScan(max_spikes_per_interval=2), eqsnn.EventProp(per_step=True)),
        (eqsnn.WindowScan(max_spikes_per_neuron=3), eqsnn.AutoDiff()),
    ],
)
def test_engine_and_adjoint_round_trip(engine, adjoint):
    layer = eqsnn.LIF(3, 4, 8, T_MAX, key=jax.random.PRNGKey(2), engine=engine, adjoint=adjoint)
    (imported,) = from_nir(to_nir(layer)).layers
    assert (imported.engine, imported.adjoint) == (engine, adjoint)


@needs_nir
def test_files_without_an_engine_key_read_the_budget_key():
    # Files written before engines were values record the engine by its budget key only.
    layer = eqsnn.LIF(3, 4, 8, T_MAX, key=jax.random.PRNGKey(2))
    graph = to_nir(layer)
    meta = graph.nodes["lif_0"].metadata["eqsnn"]
    for key in ("engine", "adjoint", "per_step", "max_spikes_per_neuron"):
        del meta[key]
    meta["max_spikes_per_interval"] = 2
    (imported,) = from_nir(graph).layers
    assert imported.engine == eqsnn.IntervalScan(max_spikes_per_interval=2)
