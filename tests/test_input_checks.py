"""Bad input is refused with a message that names the argument (issue 19).

Layer sizes are checked when a network is traced (`Spikes.n_sources`); concrete input is
checked eagerly, so the error is an ordinary exception raised at the caller's line; traced
input is checked with `eqx.error_if`, whose message names the layer and its sizes. NaN or
inf weights are refused; labels, counts and data-set arguments are checked by every public
function that takes them.

All layers are small (a few neurons) so that each configuration compiles in seconds.
"""

import traceback

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn import LIF, LIFParameters, Spikes
from eqsnn.datasets import Dataset
from eqsnn.encode import spatio_temporal_encode, target_temporal_encode
from eqsnn.hardware import Backend
from eqsnn.loss import accuracy, first_spike_times, predict, ttfs_loss

T_MAX = 0.05
KEY = jax.random.PRNGKey(0)
INPUT = Spikes(jnp.array([1e-3, 2e-3]), jnp.array([0, 1]))


def _lif(in_size, out_size, n_spikes=8, **kwargs):
    return LIF(in_size, out_size, n_spikes, T_MAX, key=KEY, mean=2.0, std=0.5, **kwargs)


# --- sizes checked when the network is traced ------------------------------------------------


@pytest.mark.parametrize("in_size", [20, 40])
def test_size_mismatch_in_sequential_fails_at_trace_time(in_size):
    net = eqx.nn.Sequential([_lif(5, 30), _lif(in_size, 3)])
    spikes = Spikes(INPUT.time, INPUT.idx, n_sources=5)
    message = (
        rf"LIF\(in_size={in_size}, out_size=3\): got spikes from a source of 30 neurons "
        rf"\(spikes.n_sources=30\) but in_size={in_size}"
    )
    # eval_shape traces without running: the error is raised while tracing.
    with pytest.raises(ValueError, match=message):
        eqx.filter_eval_shape(net, spikes)
    with pytest.raises(ValueError, match=message):
        eqx.filter_jit(net)(spikes)
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), spikes)
    with pytest.raises(ValueError, match=message):
        eqx.filter_eval_shape(jax.vmap(net), batch)

    def loss(net):
        return jnp.sum(jnp.where(net(spikes).valid, net(spikes).time, 0.0))

    with pytest.raises(ValueError, match=message):
        eqx.filter_eval_shape(eqx.filter_grad(loss), net)


def test_layers_and_encoders_set_n_sources():
    net = eqx.nn.Sequential(
        [
            _lif(2, 5, 16),
            eqsnn.LIF(5, 3, 16, T_MAX, key=KEY, mean=0.5, std=0.5, adjoint=eqsnn.EventProp()),
        ]
    )
    # `n_sources` is static: the layers are traced (`eqx.filter_eval_shape`), not compiled.
    traced = eqx.filter_eval_shape
    assert traced(net.layers[0], INPUT).n_sources == 5
    assert traced(net, INPUT).n_sources == 3
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), INPUT)
    assert traced(eqx.filter_jit(eqx.filter_vmap(net)), batch).n_sources == 3
    recurrent = eqsnn.RecurrentLIF(2, [4, 3], 32, T_MAX, key=KEY, mean=[2.0, 1.0], std=0.5)
    assert traced(recurrent, INPUT).n_sources == 7
    assert traced(lambda: recurrent.population_spikes(recurrent(INPUT), -1)).n_sources == 3
    assert traced(lambda: recurrent(INPUT).sort()).n_sources == 7
    features = jnp.array([[0.2, 0.5, 0.0]])
    assert spatio_temporal_encode(features, 1e-2).n_sources == 3
    assert spatio_temporal_encode(features, 1e-2, 2, duplicate_neurons=True).n_sources == 6
    assert spatio_temporal_encode(features, 1e-2, 2).n_sources == 3
    with pytest.raises(ValueError, match=r"n_sources=3\) but in_size=2"):
        _lif(2, 5)(spatio_temporal_encode(features[0], 1e-2))
    with pytest.raises(ValueError, match=r"population_spikes needs this layer's output"):
        recurrent.population_spikes(Spikes(INPUT.time, INPUT.idx, n_sources=2), 0)
    with pytest.raises(ValueError, match=r"`n_sources` must be an int >= 1, got 0"):
        Spikes(INPUT.time, INPUT.idx, n_sources=0)


def test_functional_api_checks_n_sources():
    init_fn, apply_fn = eqsnn.functional.serial(
        eqsnn.functional.LIF(4, 16, T_MAX, LIFParameters(), mean=2.0, std=0.5),
        eqsnn.functional.LIF(2, 16, T_MAX, LIFParameters(), mean=1.0, std=0.5),
    )
    _, weights = init_fn(KEY, 2)
    # Traced, not compiled (`n_sources` is static).
    _, _, out, _ = eqx.filter_eval_shape(
        apply_fn, weights, Spikes(INPUT.time, INPUT.idx, n_sources=2)
    )
    assert out.n_sources == 2 + 4 + 2  # global indices
    with pytest.raises(ValueError, match=r"n_sources=3, but this layer's inputs end at 2"):
        apply_fn(weights, Spikes(INPUT.time, INPUT.idx, n_sources=3))


# --- errors point at the caller ---------------------------------------------------------------


def test_eager_error_is_raised_at_the_callers_line():
    layer = _lif(2, 3)
    layer(INPUT)  # a good call first: its compiled program must not own the error
    bad = Spikes(INPUT.time, INPUT.idx.at[1].set(7))

    def call_with_bad_input():
        return layer(bad)

    with pytest.raises(ValueError, match=r"LIF\(in_size=2, out_size=3\): .*got idx\[1\]=7") as info:
        call_with_bad_input()
    frames = traceback.extract_tb(info.value.__traceback__)
    assert any(f.name == "call_with_bad_input" and "layer(bad)" in f.line for f in frames)
    with pytest.raises(ValueError, match=r"input spike times must be non-negative.*time\[0\]"):
        layer(Spikes(INPUT.time.at[0].set(-1e-3), INPUT.idx))


def test_traced_error_names_the_layer_in_a_sequential():
    net = eqx.nn.Sequential([_lif(2, 5, 16), _lif(5, 3)])
    bad = Spikes(INPUT.time, INPUT.idx.at[0].set(2))
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"LIF\(in_size=2, out_size=5\)"):
        eqx.filter_jit(net)(bad)


# --- NaN or inf weights and parameters --------------------------------------------------------


@eqx.filter_jit
def _call(layer, spikes):
    return layer(spikes)


@eqx.filter_jit
@eqx.filter_grad
def _grad(layer):
    return jnp.sum(jnp.where(layer(INPUT).valid, layer(INPUT).time, 0.0))


# `_call` and `_grad` are module-level, so both values share their compiled programs (the
# check runs in the program, on the values).
@pytest.mark.parametrize("value", [jnp.nan, jnp.inf])
def test_non_finite_weights_are_refused(value):
    layer = _lif(2, 3)
    bad = eqx.tree_at(lambda m: m.weights.input, layer, layer.weights.input.at[1, 2].set(value))
    message = r"LIF\(in_size=2, out_size=3\): `weights.input` holds NaN or inf"
    with pytest.raises(ValueError, match=message + r" at \[1, 2\]"):
        bad(INPUT)
    with pytest.raises(eqx.EquinoxRuntimeError, match=message):
        _call(bad, INPUT)
    with pytest.raises(eqx.EquinoxRuntimeError, match=message):
        _grad(bad)
    recurrent = eqsnn.RecurrentLIF(2, [3], 6, T_MAX, key=KEY, adjoint=eqsnn.EventProp())
    nan_rec = eqx.tree_at(lambda m: m.weights.recurrent, recurrent, jnp.full((3, 3), value))
    with pytest.raises(ValueError, match=r"`weights.recurrent` holds NaN or inf"):
        nan_rec(INPUT)


@pytest.mark.parametrize("name", ["mean", "std"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_initialisation_is_refused(name, value):
    with pytest.raises(ValueError, match=rf"LIF: `{name}` must be a finite number, got {value}"):
        LIF(2, 3, 4, T_MAX, key=KEY, **{name: value})


@pytest.mark.parametrize("name", ["tau_syn", "tau_mem", "v_th", "v_leak", "v_reset"])
def test_non_finite_parameters_are_refused(name):
    with pytest.raises(ValueError, match=rf"LIFParameters: `{name}` must be finite, got nan"):
        LIFParameters(**{name: np.float64("nan")})


# --- labels -----------------------------------------------------------------------------------

OUTPUT = Spikes(jnp.array([1e-3, 2e-3, jnp.inf]), jnp.array([0, 1, -1]))
SILENT = Spikes(jnp.full(3, jnp.inf), jnp.full(3, -1))


@pytest.mark.parametrize("label", [-1, 3])
def test_labels_out_of_range_raise(label):
    match = rf"`label` must hold class labels in \[0, n_classes=3\), got {label}"
    with pytest.raises(ValueError, match=match):
        ttfs_loss(OUTPUT, jnp.array(label), 3, t_max=T_MAX, tau_mem=1e-2)
    with pytest.raises(ValueError, match=match):
        accuracy(SILENT, label, 3)
    labels = jnp.array([0, label])
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), OUTPUT)
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"ttfs_loss: `label` must hold"):
        eqx.filter_jit(jax.vmap(lambda s, y: ttfs_loss(s, y, 3, t_max=T_MAX, tau_mem=1e-2)))(
            batch, labels
        )
    with pytest.raises(eqx.EquinoxRuntimeError, match=r"accuracy: `label` must hold"):
        eqx.filter_jit(accuracy)(batch, labels, 3)
    with pytest.raises(ValueError, match=r"target_temporal_encode: `labels` must hold class"):
        target_temporal_encode(jnp.array([0, label]), 3, 1e-3, 3e-3)
    with pytest.raises(ValueError, match=r"Dataset: `labels` must hold class labels"):
        Dataset(jnp.zeros((2, 2)), jnp.array([0, label]), 3)


def test_float_labels_are_refused():
    with pytest.raises(TypeError, match=r"ttfs_loss: `label` must hold integer class labels"):
        ttfs_loss(OUTPUT, jnp.array(1.0), 3, t_max=T_MAX, tau_mem=1e-2)
    with pytest.raises(ValueError, match=r"target_temporal_encode: `labels`.* got 5"):
        target_temporal_encode(5, 3, 1e-3, 3e-3)


def test_valid_labels_still_work():
    np.testing.assert_allclose(accuracy(OUTPUT, np.int64(0), np.int64(3)), 1.0, rtol=0)
    assert int(predict(OUTPUT, np.int64(3))) == 0
    np.testing.assert_allclose(
        first_spike_times(OUTPUT, np.int64(2), t_max=T_MAX), [1e-3, 2e-3], rtol=0
    )


# --- data sets, encoders, counts --------------------------------------------------------------


def test_yinyang_with_tiny_dots_is_fast_and_exact():
    data = eqsnn.datasets.yinyang(jax.random.key(0), 30, r_small=1e-6)
    assert np.bincount(np.asarray(data.labels)).tolist() == [10, 10, 10]
    xy = np.asarray(data.inputs[:, :2])
    dots = xy[np.asarray(data.labels) == 2]
    centres = np.array([[0.25, 0.5], [0.75, 0.5]])
    distance = np.min(np.linalg.norm(dots[:, None] - centres[None], axis=-1), axis=1)
    assert np.all(distance < 1e-6)


@pytest.mark.parametrize("size", [np.int64(5), np.int32(5)])
def test_numpy_integer_sizes_are_accepted(size):
    layer = LIF(2, size, size, T_MAX, key=KEY)
    assert type(layer.out_size) is int and layer.out_size == 5
    assert len(eqsnn.datasets.yinyang(jax.random.key(0), size)) == 5
    assert Dataset(jnp.zeros((2, 2)), jnp.array([0, 1]), size).n_classes == 5
    assert target_temporal_encode(jnp.array([1]), size, 1e-3, 3e-3).shape == (1, 5)
    assert INPUT.first_spike_times(size).shape == (5,)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: LIF(2, True, 4, T_MAX, key=KEY), r"LIF: `out_size` must be an int >= 1, got "),
        (lambda: LIF(2, 3.0, 4, T_MAX, key=KEY), r"`out_size` must be an int >= 1, got 3.0"),
        (lambda: LIF(2, 3, -1, T_MAX, key=KEY), r"`n_spikes` must be an int >= 1, got -1"),
        (lambda: eqsnn.datasets.yinyang(KEY, 3.0), r"yinyang: `n_samples` must be an int"),
        (lambda: eqsnn.datasets.circle(KEY, -2), r"circle: `n_samples` must be an int >= 1"),
        (lambda: INPUT.first_spike_times(2.0), r"`n_neurons` must be an int >= 1, got 2.0"),
        (lambda: ttfs_loss(OUTPUT, 0, 3.0, t_max=T_MAX, tau_mem=1e-2), r"`n_classes`"),
        (lambda: spatio_temporal_encode(jnp.ones(2), 1e-2, 2.0), r"`duplication` must be"),
        (lambda: spatio_temporal_encode(jnp.ones(2), float("inf")), r"`t_late` must be"),
        (lambda: spatio_temporal_encode(jnp.ones(2), 1e-2, t_bias=-1.0), r"`t_bias` must be"),
        (lambda: spatio_temporal_encode(jnp.array([0.5, 2.0]), 1e-2), r"\[0, 1\].*got 2.0"),
        (lambda: Spikes(INPUT.time, INPUT.idx, dropped=-3), r"`dropped` must be non-negative"),
        (lambda: Dataset(jnp.zeros((2, 2)), jnp.array([0, 1]), 2.0), r"`n_classes` must be"),
    ],
)
def test_bad_counts_and_values_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# --- hardware: a backend time that rounds up to t_max ------------------------------------------


class _LateBackend(Backend):
    """Reports a spike at 1 ms and one a float64 ulp before `t_max`."""

    def run(self, weights, input_time, input_idx, *, params, t_max, n_spikes):
        batch = input_time.shape[0]
        time = np.full((batch, n_spikes), np.inf)
        idx = np.full((batch, n_spikes), -1)
        time[:, :2] = [1e-3, np.nextafter(t_max, 0.0)]
        idx[:, :2] = [0, 1]
        return time, idx


def test_backend_time_rounded_to_t_max_is_not_a_spike():
    layer = eqsnn.HardwareLIF(2, 3, 4, T_MAX, key=KEY, backend=_LateBackend())
    out64 = eqx.filter_jit(layer)(INPUT)  # jitted: op by op, ~50 small programs each
    assert np.asarray(out64.idx)[:2].tolist() == [0, 1]  # float64: still before t_max
    layer32 = eqx.tree_at(lambda m: m.weights.input, layer, layer.weights.input.astype("float32"))
    out32 = eqx.filter_jit(layer32)(Spikes(INPUT.time.astype("float32"), INPUT.idx))
    assert out32.time.dtype == jnp.float32
    assert np.asarray(out32.idx).tolist() == [0, -1, -1, -1]
    assert np.all(np.asarray(out32.time)[np.asarray(out32.idx) >= 0] < T_MAX)
