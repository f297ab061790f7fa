"""The budget keywords that chose an engine before engines were values.

`max_spikes_per_neuron=` and `max_spikes_per_interval=` still work on every layer (and on
`eqsnn.hardware.SoftwareBackend`), with a `DeprecationWarning` that names the `engine=`
value replacing them and points at the caller's line; they build the same layer as the new
spelling. Combining them with `engine=`, or with each other, is an error. (The deprecated
top-level names are tested in tests/test_namespaces.py.) No layer is called here: equal
layers simulate alike.
"""

import equinox as eqx
import jax
import pytest

import eqsnn
from eqsnn.hardware import SoftwareBackend

T_MAX = 0.04
KEY = jax.random.PRNGKey(0)


def _lif(cls=eqsnn.LIF, **kwargs):
    return cls(3, 4, 8, T_MAX, key=KEY, **kwargs)


def _recurrent(cls=eqsnn.RecurrentLIF, **kwargs):
    return cls(3, [3, 2], 8, T_MAX, key=KEY, **kwargs)


# name: (old spelling, new spelling, the replacement the warning names)
OLD_AND_NEW = {
    "LIF-max_spikes_per_neuron": (
        lambda: _lif(max_spikes_per_neuron=2),
        lambda: _lif(engine=eqsnn.WindowScan(max_spikes_per_neuron=2)),
        "engine=eqsnn.WindowScan(max_spikes_per_neuron=2)",
    ),
    "LIF-max_spikes_per_interval": (
        lambda: _lif(max_spikes_per_interval=2),
        lambda: _lif(engine=eqsnn.IntervalScan(max_spikes_per_interval=2)),
        "engine=eqsnn.IntervalScan(max_spikes_per_interval=2)",
    ),
    "EventPropLIF-max_spikes_per_interval": (
        lambda: _lif(eqsnn.EventPropLIF, max_spikes_per_interval=2, wrap_only_step=True),
        lambda: _lif(
            engine=eqsnn.IntervalScan(max_spikes_per_interval=2),
            adjoint=eqsnn.EventProp(per_step=True),
        ),
        "engine=eqsnn.IntervalScan(max_spikes_per_interval=2)",
    ),
    "RecurrentLIF-max_spikes_per_neuron": (
        lambda: _recurrent(max_spikes_per_neuron=[2, 3]),
        lambda: _recurrent(engine=eqsnn.WindowScan(max_spikes_per_neuron=(2, 3))),
        "engine=eqsnn.WindowScan(max_spikes_per_neuron=(2, 3))",
    ),
    "RecurrentEventPropLIF-max_spikes_per_neuron": (
        lambda: _recurrent(eqsnn.RecurrentEventPropLIF, max_spikes_per_neuron=2),
        lambda: _recurrent(
            engine=eqsnn.WindowScan(max_spikes_per_neuron=2), adjoint=eqsnn.EventProp()
        ),
        "engine=eqsnn.WindowScan(max_spikes_per_neuron=2)",
    ),
    "SoftwareBackend-max_spikes_per_neuron": (
        lambda: SoftwareBackend(max_spikes_per_neuron=3),
        lambda: SoftwareBackend(engine=eqsnn.WindowScan(max_spikes_per_neuron=3)),
        "engine=eqsnn.WindowScan(max_spikes_per_neuron=3)",
    ),
    "SoftwareBackend-max_spikes_per_interval": (
        lambda: SoftwareBackend(max_spikes_per_interval=2),
        lambda: SoftwareBackend(engine=eqsnn.IntervalScan(max_spikes_per_interval=2)),
        "engine=eqsnn.IntervalScan(max_spikes_per_interval=2)",
    ),
}


@pytest.mark.parametrize("name", OLD_AND_NEW)
def test_old_keyword_warns_and_builds_the_new_spelling(name):
    old, new, replacement = OLD_AND_NEW[name]
    with pytest.warns(DeprecationWarning) as record:
        got = old()
    (warning,) = [w for w in record if issubclass(w.category, DeprecationWarning)]
    message = str(warning.message)
    assert message.startswith(name.split("-")[0] + ": `" + name.split("-")[1] + "=")
    assert "is deprecated; pass " + replacement + " instead." in message
    assert warning.filename == __file__  # the caller's line, not eqsnn's
    want = new()
    assert got.engine == want.engine
    if not isinstance(want, SoftwareBackend):  # the seed classes are subclasses
        assert isinstance(got, type(want)) and got.adjoint == want.adjoint
        assert eqx.tree_equal(got.weights, want.weights)
        assert (got.params, got.solver, got.overflow) == (want.params, want.solver, want.overflow)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _lif(max_spikes_per_neuron=2, engine=eqsnn.WindowScan(max_spikes_per_neuron=2)),
        lambda: _lif(max_spikes_per_interval=1, engine=eqsnn.EventLoop()),
        lambda: _recurrent(max_spikes_per_neuron=2, engine=eqsnn.EventLoop()),
        lambda: SoftwareBackend(max_spikes_per_interval=2, engine=eqsnn.IntervalScan()),
    ],
    ids=["LIF-neuron", "LIF-interval", "RecurrentLIF", "SoftwareBackend"],
)
def test_old_keyword_with_engine_raises(make):
    with pytest.raises(ValueError, match=r"is the old spelling of engine=.*cannot be combined"):
        make()


def test_both_old_keywords_raise():
    with pytest.raises(ValueError, match=r"^LIF: choose one spike budget.*engine=eqsnn\."):
        _lif(max_spikes_per_neuron=1, max_spikes_per_interval=2)
    with pytest.raises(ValueError, match=r"^SoftwareBackend: choose one spike budget"):
        SoftwareBackend(max_spikes_per_neuron=1, max_spikes_per_interval=2)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_bad_old_keyword_values_raise():
    with pytest.raises(ValueError, match=r"^RecurrentLIF: `max_spikes_per_neuron` .* one per"):
        _recurrent(max_spikes_per_neuron=[2, 2, 2])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_bad_old_budget_names_the_layer():
    with pytest.raises(ValueError, match=r"^LIF: `max_spikes_per_neuron` must be an int >= 1"):
        _lif(max_spikes_per_neuron=0)


def test_seed_wrap_only_step_with_a_window_scan_names_wrap_only_step():
    with pytest.raises(ValueError, match="wrap_only_step"):
        _lif(eqsnn.EventPropLIF, engine=eqsnn.WindowScan(), wrap_only_step=True)


@pytest.mark.parametrize(
    ("old", "engine"),
    [
        (dict(max_spikes_per_neuron=2), eqsnn.WindowScan(max_spikes_per_neuron=2)),
        (dict(max_spikes_per_interval=2), eqsnn.IntervalScan(max_spikes_per_interval=2)),
    ],
    ids=["max_spikes_per_neuron", "max_spikes_per_interval"],
)
def test_from_nir_old_keyword_warns_and_builds_the_new_spelling(old, engine):
    nir = pytest.importorskip("nir")
    del nir
    from eqsnn.nir import from_nir, to_nir

    graph = to_nir(eqx.nn.Sequential([_lif()]))
    (name,) = old
    with pytest.warns(DeprecationWarning, match=rf"^from_nir: `{name}=2` is deprecated") as record:
        got = from_nir(graph, n_spikes=8, t_max=T_MAX, **old)
    assert f"pass engine=eqsnn.{engine!r} instead." in str(record[0].message)
    assert record[0].filename == __file__
    want = from_nir(graph, n_spikes=8, t_max=T_MAX, engine=engine)
    assert got.layers[0].engine == want.layers[0].engine == engine
    with pytest.raises(ValueError, match=r"^from_nir: .* cannot be combined with engine="):
        from_nir(graph, n_spikes=8, t_max=T_MAX, engine=eqsnn.EventLoop(), **old)
