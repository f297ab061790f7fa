"""eqsnn.training.save / load: the round trip is exact (same structure, bit-identical leaves,
same spikes) for every kind of layer and container, in float32 and float64; bad files and
unsavable models raise errors that name the file and the field."""

import json
from contextlib import nullcontext

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn import training
from eqsnn.encode import SpatioTemporalEncoder, spatio_temporal_encode
from eqsnn.hardware import SoftwareBackend

PARAMS = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
T_MAX = 2e-2
FEATURES = np.array([0.1, 0.6, 0.3, 0.9])
KEY = jax.random.key(3)


def _feedforward_mask(in_size: int, layers: tuple[int, int]) -> eqsnn.ConnectivityMask:
    """Inputs reach most of population 0, population 0 reaches most of population 1."""
    n = sum(layers)
    w_in = np.zeros((in_size, n), bool)
    w_in[:, : layers[0]] = True
    w_in[0, 1] = False
    w_rec = np.zeros((n, n), bool)
    w_rec[: layers[0], layers[0] :] = True
    w_rec[2, layers[0]] = False
    return eqsnn.ConnectivityMask(w_in, w_rec)


def _lif():
    return eqsnn.LIF(4, 5, 10, T_MAX, PARAMS, key=KEY, mean=3.0, std=1.0)


def _eventprop_lif():
    return eqsnn.EventPropLIF(
        4, 5, 10, T_MAX, PARAMS, key=KEY, mean=3.0, std=1.0, overflow=eqsnn.Overflow.COUNT
    )


def _per_step_lif():
    engine = eqsnn.IntervalScan(max_spikes_per_interval=2)
    return eqsnn.LIF(
        4, 5, 10, T_MAX, PARAMS, key=KEY, mean=3.0, engine=engine, adjoint=eqsnn.EventProp(True)
    )


def _recurrent_window_scan():
    return eqsnn.RecurrentLIF(
        4,
        [5, 3],
        16,
        T_MAX,
        PARAMS,
        key=KEY,
        mean=[3.0, 2.0],
        std=0.5,
        connectivity=_feedforward_mask(4, (5, 3)),
        engine=eqsnn.WindowScan(max_spikes_per_neuron=(2, 1)),
        adjoint=eqsnn.EventProp(),
    )


def _recurrent_eventprop_full():
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=8e-3, v_th=1.0, v_reset=-1.0)
    return eqsnn.RecurrentEventPropLIF(
        4,
        [4, 2],
        40,
        T_MAX,
        params,
        key=KEY,
        mean=2.0,
        std=0.5,
        connectivity=eqsnn.Connectivity.FULL,
        solver=eqsnn.solvers.BracketedSolver(max_steps=40),
    )


def _sequential():
    k1, k2 = jax.random.split(KEY)
    return eqx.nn.Sequential(
        [
            SpatioTemporalEncoder(t_late=1e-2, duplication=2, duplicate_neurons=True),
            eqsnn.LIF(8, 6, 6, T_MAX, PARAMS, key=k1, mean=1.5, std=0.8),
            eqsnn.EventPropLIF(6, 3, 3, T_MAX, PARAMS, key=k2, mean=1.0, std=0.8),
        ]
    )


def _tuple():
    output = eqsnn.LIF(5, 2, 2, T_MAX, PARAMS, key=KEY, mean=1.0, std=0.5)
    return (SpatioTemporalEncoder(t_late=1e-2, t_bias=0.0), [_lif(), output])


def _spikes(model):
    """Output spikes of `model` for FEATURES (an encoder first, unless a bare layer)."""
    if isinstance(model, eqx.nn.Sequential):
        return model(FEATURES)
    inputs = spatio_temporal_encode(FEATURES, 1e-2)
    if isinstance(model, tuple):
        model = [model[0], *model[1]]
        inputs = FEATURES
    for layer in model if isinstance(model, list) else [model]:
        inputs = layer(inputs)
    return inputs


def _assert_identical(a, b):
    assert type(a) is type(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)  # static fields included
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        bits_x, bits_y = (np.atleast_1d(np.asarray(v)).view(np.uint8) for v in (x, y))
        assert np.array_equal(bits_x, bits_y)


BUILDERS = [
    _lif,
    _eventprop_lif,
    _per_step_lif,
    _recurrent_window_scan,
    _recurrent_eventprop_full,
    _sequential,
    _tuple,
]


@pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])
@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__.lstrip("_") for b in BUILDERS])
def test_round_trip_is_exact(build, x64, tmp_path):
    with nullcontext() if x64 else jax.enable_x64(False):
        model = build()
        path = tmp_path / "model.eqx"
        training.save(path, model, hyperparameters={"lr": 1e-3, "sizes": [4, 5]})
        loaded = training.load(path)
        _assert_identical(model, loaded)
        dtype = jax.tree.leaves(loaded)[0].dtype
        assert dtype == (jnp.float64 if x64 else jnp.float32)
        if not x64:  # equal leaves and structure give equal spikes; checked once, in float32
            expected, got = _spikes(model), _spikes(loaded)
            assert got.count() > 0
            for x, y in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
                assert np.array_equal(x, y)
    assert training.load_hyperparameters(path) == {"lr": 1e-3, "sizes": [4, 5]}


def test_header_is_one_line_of_json(tmp_path):
    path = tmp_path / "model.eqx"
    training.save(path, _recurrent_window_scan())
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    assert header["format"] == "eqsnn-model" and header["version"] == 1
    layer = header["model"]
    assert layer["class"] == "RecurrentLIF" and layer["layers"] == [5, 3]
    assert layer["engine"] == {"class": "WindowScan", "max_spikes_per_neuron": [2, 1]}
    assert layer["adjoint"] == {"class": "EventProp", "per_step": False}
    assert [leaf["path"] for leaf in header["leaves"]] == [".weights.input", ".weights.recurrent"]
    assert header["hyperparameters"] == {}
    assert not (tmp_path / "model.eqx.tmp").exists()


def test_hardware_layer_loads_with_a_backend(tmp_path):
    backend = SoftwareBackend()
    layer = eqsnn.HardwareLIF(4, 3, 3, T_MAX, PARAMS, key=KEY, backend=backend, min_rise=0.1)
    path = tmp_path / "hardware.eqx"
    training.save(path, layer)
    with pytest.raises(ValueError, match=r"hardware.eqx: `model` is a HardwareLIF.*backend="):
        training.load(path)
    _assert_identical(layer, training.load(path, backend=backend))


def _rewrite(path, edit, tail=None):
    """A copy of the model file `path` with its header edited (and its arrays cut)."""
    line, rest = path.read_bytes().split(b"\n", 1)
    header = json.loads(line)
    edit(header)
    bad = path.with_name("bad.eqx")
    bad.write_bytes(json.dumps(header).encode() + b"\n" + (rest if tail is None else rest[:tail]))
    return bad


def _set(keys, value):
    def edit(header):
        node = header
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return edit


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "model.eqx"
    with jax.enable_x64(False):
        training.save(path, eqx.nn.Sequential([SpatioTemporalEncoder(1e-2), _lif()]))
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_set(["format"], "other"), r"bad.eqx: not an eqsnn model file"),
        (_set(["version"], 2), r"bad.eqx: `version` is 2, but this eqsnn .* reads format"),
        (
            _set(["model", "layers", 1, "class"], "SuperLIF"),
            r"bad.eqx: `model.layers\[1\].class` is 'SuperLIF', which this version",
        ),
        (
            _set(["model", "layers", 1, "engine", "class"], "Foo"),
            r"`model.layers\[1\].engine.class` is 'Foo'.*WindowScan, IntervalScan, EventLoop",
        ),
        (_set(["model", "layers", 1, "overflow"], "ignore"), r"`model.layers\[1\].overflow`"),
        (_set(["model", "layers", 0, "t_late"], -1.0), r"`model.layers\[0\]` cannot be rebuilt"),
        (lambda h: h["model"]["layers"][1].pop("n_spikes"), r"`model.layers\[1\].n_spikes`"),
        (_set(["leaves"], []), r"`leaves` lists 0 arrays, but the model it describes has 1"),
        (_set(["leaves", 0, "shape"], [4, 6]), r"`leaves\[0\]` \(.layers\[1\].weights.input\)"),
    ],
)
def test_bad_header_raises_naming_file_and_field(saved, edit, message):
    with pytest.raises(ValueError, match=message):
        training.load(_rewrite(saved, edit))


def test_truncated_or_foreign_file_raises(saved, tmp_path):
    with pytest.raises(ValueError, match="bad.eqx: the arrays after the header cannot be read"):
        training.load(_rewrite(saved, lambda h: None, tail=20))
    plain = tmp_path / "plain.eqx"
    eqx.tree_serialise_leaves(plain, _lif())
    with pytest.raises(ValueError, match="plain.eqx: not an eqsnn model file"):
        training.load(plain)
    with pytest.raises(ValueError, match="plain.eqx: not an eqsnn model file"):
        training.load_hyperparameters(plain)


def test_float64_file_needs_x64(tmp_path):
    path = tmp_path / "wide.eqx"
    training.save(path, _lif())  # float64: the tests run with x64
    with jax.enable_x64(False), pytest.raises(ValueError, match="wide.eqx: .* is float64"):
        training.load(path)


def test_save_refuses_what_it_cannot_rebuild(tmp_path):
    path = tmp_path / "model.eqx"
    with pytest.raises(TypeError, match=r"save: `model\[1\]` is a Linear; eqsnn saves"):
        training.save(path, (_lif(), eqx.nn.Linear(2, 2, key=KEY)))
    with pytest.raises(TypeError, match="save: `hyperparameters` must hold only JSON"):
        training.save(path, _lif(), hyperparameters={"out": tmp_path})
    resized = eqx.tree_at(lambda m: m.weights.input, _lif(), jnp.zeros((4, 7)))
    with pytest.raises(ValueError, match="save: the description of `model` does not rebuild"):
        training.save(path, resized)
    assert not path.exists()


def _models():
    """Tiny layers of the other neuron models: an ALIF layer with per-neuron, trainable
    adaptation (array fields of two shapes and dtypes) and a layered recurrent IF layer."""
    alif = eqsnn.ALIFParameters(
        tau_mem=jnp.full(3, 1.2e-2), tau_adapt=3e-2, beta=jnp.asarray(0.2, jnp.float32)
    )
    k1, k2 = jax.random.split(KEY)
    feedforward = eqsnn.EventPropLIF(4, 3, 6, T_MAX, alif, key=k1, mean=2.0, std=0.5)
    integrate = eqsnn.IFParameters(tau_mem=2e-2, v_th=0.5, v_init=-0.1, v_reset=-0.2)
    recurrent = eqsnn.RecurrentLIF(
        3, [2, 2], 8, T_MAX, integrate, key=k2, mean=1.5, std=0.5,
        connectivity=eqsnn.Connectivity.LAYERED,
    )  # fmt: skip
    return eqx.nn.Sequential([feedforward, recurrent])


def test_neuron_models_round_trip(tmp_path):
    model = _models()
    path = tmp_path / "models.eqx"
    training.save(path, model)
    loaded = training.load(path)
    _assert_identical(model, loaded)  # the float fields are static: in the structure
    alif, integrate = (layer.params for layer in loaded.layers)
    assert type(alif) is eqsnn.ALIFParameters and type(integrate) is eqsnn.IFParameters
    assert alif.arrays == ("tau_mem", "beta") and alif.beta.dtype == jnp.float32
    assert (alif.tau_adapt, integrate.v_init, integrate.v_reset) == (3e-2, -0.1, -0.2)
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])
    assert header["model"]["layers"][0]["params"]["beta"] == {"array": [], "dtype": "float32"}


def test_unknown_neuron_fields_and_models_are_refused(tmp_path):
    path = tmp_path / "models.eqx"
    training.save(path, _models())
    bad = _rewrite(path, _set(["model", "layers", 0, "params", "t_ref"], 0.0))
    with pytest.raises(ValueError, match=r"layers\[0\]\.params` cannot be rebuilt: ALIF.*t_ref"):
        training.load(bad)

    class Custom(eqsnn.IFParameters):
        pass

    custom = eqsnn.LIF(2, 2, 2, T_MAX, jax.tree_util.register_pytree_with_keys_class(Custom)(),
                       key=KEY)  # fmt: skip
    with pytest.raises(TypeError, match="`model.params` is Custom.*IFParameters there"):
        training.save(path, custom)


def test_spatio_temporal_encoder_is_the_function():
    encoder = SpatioTemporalEncoder(t_late=1e-2, duplication=3)
    expected = spatio_temporal_encode(FEATURES, 1e-2, 3)
    got = encoder(FEATURES, key=KEY)
    for x, y in zip(jax.tree.leaves(expected), jax.tree.leaves(got), strict=True):
        assert np.array_equal(x, y)
    with pytest.raises(ValueError, match="SpatioTemporalEncoder: `t_late` must be positive"):
        SpatioTemporalEncoder(t_late=0.0)
    with pytest.raises(TypeError, match="SpatioTemporalEncoder: `duplicate_neurons` must be"):
        SpatioTemporalEncoder(t_late=1e-2, duplicate_neurons=1)
