"""eqsnn.functional: the jaxsnn-style (init_fn, apply_fn) API over the Equinox layers.

The functional layers are wrappers, so the checks are exact: the same key gives the same
weights, and the same weights give the same spikes and gradients as the modules, bit for
bit (the wrappers only relabel spike indices).
"""

import re
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn import functional
from eqsnn.hardware import SoftwareBackend

PARAMS = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6, v_reset=-1000.0)
T_MAX = 0.05
IN, HIDDEN, OUT = 3, 4, 2
INPUT = eqsnn.Spikes(time=jnp.array([3e-3, 1e-3, 2e-3, 4e-3]), idx=jnp.array([0, 1, 2, -1]))
# The hardware layers' replay mixes the input indices with the backend's int32 indices,
# which strict promotion refuses for the int64 indices that x64 gives `INPUT`.
INPUT32 = eqsnn.Spikes(time=INPUT.time, idx=INPUT.idx.astype(jnp.int32))


def _pairs():
    return (
        functional.LIF(HIDDEN, 6, T_MAX, PARAMS, mean=2.0, std=0.5),
        functional.LIF(OUT, 4, T_MAX, PARAMS, mean=1.5, std=0.5),
    )


def _sequential(key):
    """The same network as `serial(*_pairs())`, with the keys that serial's init_fn uses."""
    key, k1 = jax.random.split(key)
    _, k2 = jax.random.split(key)
    return eqx.nn.Sequential(
        [
            eqsnn.LIF(IN, HIDDEN, 6, T_MAX, PARAMS, key=k1, mean=2.0, std=0.5),
            eqsnn.LIF(HIDDEN, OUT, 4, T_MAX, PARAMS, key=k2, mean=1.5, std=0.5),
        ]
    )


def _valid_time_sum(spikes):
    return jnp.sum(jnp.where(spikes.valid, spikes.time, 0.0))


def test_serial_matches_sequential_spikes_and_gradients():
    key = jax.random.PRNGKey(0)
    init_fn, apply_fn = functional.serial(*_pairs())
    n_out, weights = init_fn(key, IN)
    model = _sequential(key)
    assert n_out == OUT
    for w, layer in zip(weights, model.layers, strict=True):
        np.testing.assert_array_equal(w.input, layer.weights.input)

    def functional_loss(weights, time):
        carry, used, out, rec = apply_fn(weights, eqsnn.Spikes(time, INPUT.idx))
        # Checked while tracing: serial's apply_fn passes the weights through untouched.
        assert carry == (2, IN + HIDDEN)
        assert used[0] is weights[0] and used[1] is weights[1]
        return _valid_time_sum(rec[0]) + _valid_time_sum(out), (rec[0], out)

    def module_loss(model, time):
        hidden = model.layers[0](eqsnn.Spikes(time, INPUT.idx))
        final = model.layers[1](hidden)
        return _valid_time_sum(hidden) + _valid_time_sum(final), (hidden, final)

    # Compiled, not op by op (the same program either way; eager dispatch is only slower);
    # both gradients of each side in one program, as `g_w, g_t` (one compilation each), and
    # the spikes come with them (plain calls would compile the network once more per side).
    grad_functional = jax.jit(jax.grad(functional_loss, argnums=(0, 1), has_aux=True))
    (g_w, g_t), (recorded, out) = grad_functional(weights, INPUT.time)
    grad_module = eqx.filter_jit(eqx.filter_grad(lambda diff: module_loss(*diff), has_aux=True))
    (m_w, m_t), (hidden, final) = grad_module((model, INPUT.time))
    assert int(hidden.count()) > 0 and int(final.count()) > 0  # the comparison is not vacuous
    for got, want, start in ((recorded, hidden, IN), (out, final, IN + HIDDEN)):
        np.testing.assert_array_equal(got.time, want.time)
        np.testing.assert_array_equal(got.current, want.current)
        np.testing.assert_array_equal(got.idx, jnp.where(want.valid, want.idx + start, -1))
    for g, layer in zip(g_w, m_w.layers, strict=True):
        assert jnp.any(g.input != 0)
        np.testing.assert_array_equal(g.input, layer.weights.input)
    np.testing.assert_array_equal(g_t, m_t)


def test_eventprop_lif_matches_the_module():
    key = jax.random.PRNGKey(5)
    init_fn, apply_fn = functional.serial(
        functional.EventPropLIF(HIDDEN, 6, T_MAX, PARAMS, mean=2.0, std=0.5),
        functional.EventPropLIF(OUT, 4, T_MAX, PARAMS, 1.5, 0.5, wrap_only_step=True),
    )
    _, weights = init_fn(key, IN)
    key, k1 = jax.random.split(key)
    _, k2 = jax.random.split(key)
    model = eqx.nn.Sequential(
        [
            eqsnn.LIF(IN, HIDDEN, 6, T_MAX, PARAMS, key=k1, mean=2.0, std=0.5,
                      adjoint=eqsnn.EventProp()),
            eqsnn.LIF(HIDDEN, OUT, 4, T_MAX, PARAMS, key=k2, mean=1.5, std=0.5,
                      adjoint=eqsnn.EventProp(per_step=True)),
        ]
    )  # fmt: skip

    def functional_loss(weights):
        out = apply_fn(weights, INPUT)[2]
        return _valid_time_sum(out), out

    def module_loss(model):
        out = model(INPUT)
        return _valid_time_sum(out), out

    # The spikes come with the gradients (plain calls would compile the layers once more).
    grads, out = jax.grad(functional_loss, has_aux=True)(weights)
    grads_eqx, want = eqx.filter_grad(module_loss, has_aux=True)(model)
    assert int(want.count()) > 0
    np.testing.assert_array_equal(out.time, want.time)
    for g, layer in zip(grads, grads_eqx.layers, strict=True):
        assert jnp.any(g.input != 0)
        np.testing.assert_array_equal(g.input, layer.weights.input)


def test_jit_and_vmap_match_one_sample_at_a_time():
    init_fn, apply_fn = functional.serial(*_pairs())
    _, weights = init_fn(jax.random.PRNGKey(1), IN)
    batch = eqsnn.Spikes(
        time=jnp.stack([INPUT.time, INPUT.time[::-1]]), idx=jnp.stack([INPUT.idx, INPUT.idx])
    )
    _, _, out, _ = jax.jit(jax.vmap(apply_fn, in_axes=(None, 0)))(weights, batch)
    for b in range(2):
        one = jax.tree_util.tree_map(lambda x, b=b: x[b], batch)
        _, _, want, _ = apply_fn(weights, one)
        # jit and vmap may reassociate floating-point sums: 1e-12 relative in float64.
        np.testing.assert_allclose(out.time[b], want.time, rtol=1e-12)
        np.testing.assert_array_equal(out.idx[b], want.idx)


def test_layer_reads_only_its_own_input_range():
    """jaxsnn copies a layer's input events into its output; the next layer ignores them."""
    init_fn, apply_fn = functional.LIF(OUT, 4, T_MAX, PARAMS, mean=1.5, std=0.5)
    _, _, w = init_fn(jax.random.PRNGKey(2), HIDDEN)
    hidden = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([IN + 0, IN + 3]))
    noisy = eqsnn.Spikes(
        time=jnp.array([1e-3, 5e-4, 2e-3, 6e-4, 7e-4]),
        idx=jnp.array([IN + 0, 0, IN + 3, 2, -1]),  # network inputs, an empty slot
    )
    carry = (1, IN)  # layer 1 of a network whose layer 0 has IN inputs
    _, _, want, _ = apply_fn([None, w], hidden, None, carry)
    _, _, got, _ = apply_fn([None, w], noisy, None, carry)
    assert int(want.count()) > 0
    np.testing.assert_array_equal(got.time, want.time)
    np.testing.assert_array_equal(got.idx, want.idx)
    assert set(np.asarray(want.idx)) <= {-1, *range(IN + HIDDEN, IN + HIDDEN + OUT)}


@pytest.mark.parametrize("bad", [IN + HIDDEN, IN + HIDDEN + OUT + 2, -2])
def test_indices_beyond_the_layers_inputs_raise(bad):
    """As the module API, which raises for indices outside [-1, in_size)."""
    init_fn, apply_fn = functional.LIF(OUT, 4, T_MAX, PARAMS, mean=1.5, std=0.5)
    _, _, w = init_fn(jax.random.PRNGKey(2), HIDDEN)
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([IN + 0, bad]))
    match = re.escape(f"must be -1 or lie in [0, {IN + HIDDEN})")
    with pytest.raises(ValueError, match=match):
        apply_fn([None, w], spikes, None, (1, IN))
    with pytest.raises(eqx.EquinoxRuntimeError, match=match):
        eqx.filter_jit(apply_fn)([None, w], spikes, None, (1, IN))


def test_construct_init_fn_matches_layer_init():
    key = jax.random.PRNGKey(3)
    init_fn, _ = functional.LIF(5, 4, T_MAX, PARAMS, mean=1.0, std=0.5, duplication=2)
    rng, n, w = init_fn(key, 6)
    rng2, n2, w2 = functional.construct_init_fn(5, 1.0, 0.5, duplication=2)(key, 6)
    assert n == n2 == 5
    np.testing.assert_array_equal(rng, rng2)
    np.testing.assert_array_equal(w.input, w2.input)
    np.testing.assert_array_equal(w.input[0::2], w.input[1::2])  # duplicated rows
    assert not np.array_equal(w.input[0], w.input[2])


def test_recurrent_lif_is_the_full_connectivity_module():
    key = jax.random.PRNGKey(4)
    init_fn, apply_fn = functional.RecurrentLIF([HIDDEN, OUT], 10, T_MAX, PARAMS, [2.0, 1.5], 0.5)
    rng, n, w = init_fn(key, IN)
    _, w_init = functional.construct_recurrent_init_fn([HIDDEN, OUT], [2.0, 1.5], 0.5)(key, IN)[1:]
    layer = eqsnn.RecurrentLIF(
        IN, [HIDDEN, OUT], 10, T_MAX, PARAMS, key=jax.random.split(key)[1],
        mean=[2.0, 1.5], std=0.5, connectivity=eqsnn.Connectivity.FULL,
    )  # fmt: skip
    assert n == HIDDEN + OUT
    for got in (w, w_init):
        np.testing.assert_array_equal(got.input, layer.weights.input)
        np.testing.assert_array_equal(got.recurrent, layer.weights.recurrent)
    # As in jaxsnn: only the input -> population 0 and population k -> k+1 blocks are drawn.
    assert np.all(w.input[:, HIDDEN:] == 0) and np.all(w.recurrent[:, :HIDDEN] == 0)
    _, _, out, _ = apply_fn([w], INPUT)
    want = layer(INPUT)
    assert int(want.count()) > 0
    np.testing.assert_array_equal(out.time, want.time)
    np.testing.assert_array_equal(out.idx, jnp.where(want.valid, want.idx + IN, -1))


@pytest.mark.parametrize("wrap_only_step", [False, True])
def test_recurrent_eventprop_lif_matches_the_module(wrap_only_step):
    key = jax.random.PRNGKey(6)
    init_fn, apply_fn = functional.RecurrentEventPropLIF(
        [HIDDEN, OUT], 10, T_MAX, PARAMS, [2.0, 1.5], 0.5, wrap_only_step
    )
    _, n, w = init_fn(key, IN)
    layer = eqsnn.RecurrentLIF(
        IN, [HIDDEN, OUT], 10, T_MAX, PARAMS, key=jax.random.split(key)[1], mean=[2.0, 1.5],
        std=0.5, connectivity=eqsnn.Connectivity.FULL,
        adjoint=eqsnn.EventProp(per_step=wrap_only_step),
    )  # fmt: skip
    assert n == HIDDEN + OUT
    np.testing.assert_array_equal(w.input, layer.weights.input)
    np.testing.assert_array_equal(w.recurrent, layer.weights.recurrent)

    def functional_loss(weights, time):
        out = apply_fn(weights, eqsnn.Spikes(time, INPUT.idx))[2]
        return _valid_time_sum(out), out

    def module_loss(diff):
        model, time = diff
        out = model(eqsnn.Spikes(time, INPUT.idx))
        return _valid_time_sum(out), out

    # The spikes come with the gradients (plain calls would compile the layer once more).
    (g_w, g_t), out = jax.grad(functional_loss, argnums=(0, 1), has_aux=True)([w], INPUT.time)
    (m_layer, m_t), want = eqx.filter_grad(module_loss, has_aux=True)((layer, INPUT.time))
    assert int(want.count()) > 0
    np.testing.assert_array_equal(out.time, want.time)
    np.testing.assert_array_equal(out.idx, jnp.where(want.valid, want.idx + IN, -1))
    # Every weight is trained (full connectivity), the recurrent ones included.
    assert jnp.any(g_w[0].recurrent != 0) and jnp.any(g_t != 0)
    np.testing.assert_array_equal(g_w[0].input, m_layer.weights.input)
    np.testing.assert_array_equal(g_w[0].recurrent, m_layer.weights.recurrent)
    np.testing.assert_array_equal(g_t, m_t)


def test_hardware_lif_matches_the_module():
    backend = SoftwareBackend()
    key = jax.random.PRNGKey(7)
    init_fn, apply_fn = functional.serial(
        functional.HardwareLIF(HIDDEN, 6, T_MAX, PARAMS, 2.0, 0.5, backend=backend),
        functional.HardwareLIF(OUT, 4, T_MAX, PARAMS, 1.5, 0.5, backend=backend),
    )
    _, weights = init_fn(key, IN)
    key, k1 = jax.random.split(key)
    _, k2 = jax.random.split(key)
    model = eqx.nn.Sequential(
        [
            eqsnn.HardwareLIF(IN, HIDDEN, 6, T_MAX, PARAMS, key=k1, mean=2.0, std=0.5,
                              backend=backend),
            eqsnn.HardwareLIF(HIDDEN, OUT, 4, T_MAX, PARAMS, key=k2, mean=1.5, std=0.5,
                              backend=backend),
        ]
    )  # fmt: skip
    for w, layer in zip(weights, model.layers, strict=True):
        np.testing.assert_array_equal(w.input, layer.weights.input)

    def functional_loss(weights, time):
        _, _, out, rec = apply_fn(weights, eqsnn.Spikes(time, INPUT32.idx))
        return _valid_time_sum(rec[0]) + _valid_time_sum(out), (rec[0], out)

    def module_loss(diff):
        model, time = diff
        hidden = model.layers[0](eqsnn.Spikes(time, INPUT32.idx))
        final = model.layers[1](hidden)
        return _valid_time_sum(hidden) + _valid_time_sum(final), (hidden, final)

    # Compiled: one program per side gives the spikes and the gradients (the backend is
    # called through a callback; run op by op, the layers compile ~100 small programs).
    grad_f = jax.jit(jax.grad(functional_loss, argnums=(0, 1), has_aux=True))
    (g_w, g_t), (recording, out) = grad_f(weights, INPUT32.time)
    grad_m = eqx.filter_jit(eqx.filter_grad(module_loss, has_aux=True))
    (m_model, m_t), (hidden, final) = grad_m((model, INPUT32.time))
    assert int(hidden.count()) > 0 and int(final.count()) > 0
    for got, want, start in ((recording, hidden, IN), (out, final, IN + HIDDEN)):
        np.testing.assert_array_equal(got.time, want.time)
        np.testing.assert_array_equal(got.idx, jnp.where(want.valid, want.idx + start, -1))
    for g, layer in zip(g_w, m_model.layers, strict=True):
        assert jnp.any(g.input != 0)
        np.testing.assert_array_equal(g.input, layer.weights.input)
    assert jnp.any(g_t != 0)
    np.testing.assert_array_equal(g_t, m_t)
    with pytest.raises(ValueError, match="backend produces them"):
        apply_fn(weights, INPUT32, external=[INPUT32, INPUT32])


def test_hardware_recurrent_lif_matches_the_module():
    key = jax.random.PRNGKey(8)
    init_fn, apply_fn = functional.HardwareRecurrentLIF(
        [HIDDEN, OUT], 10, T_MAX, PARAMS, [2.0, 1.5], 0.5, backend=SoftwareBackend()
    )
    _, n, w = init_fn(key, IN)
    layer = eqsnn.HardwareRecurrentLIF(
        IN, [HIDDEN, OUT], 10, T_MAX, PARAMS, key=jax.random.split(key)[1], mean=[2.0, 1.5],
        std=0.5, connectivity=eqsnn.Connectivity.FULL, backend=SoftwareBackend(),
    )  # fmt: skip
    assert n == HIDDEN + OUT
    np.testing.assert_array_equal(w.input, layer.weights.input)
    np.testing.assert_array_equal(w.recurrent, layer.weights.recurrent)

    def functional_loss(weights, time):
        out = apply_fn(weights, eqsnn.Spikes(time, INPUT32.idx))[2]
        return _valid_time_sum(out), out

    def module_loss(diff):
        model, time = diff
        out = model(eqsnn.Spikes(time, INPUT32.idx))
        return _valid_time_sum(out), out

    # One program per side gives the spikes and the gradients (as above).
    grad_f = jax.jit(jax.grad(functional_loss, argnums=(0, 1), has_aux=True))
    (g_w, g_t), out = grad_f([w], INPUT32.time)
    (m_layer, m_t), want = eqx.filter_jit(eqx.filter_grad(module_loss, has_aux=True))(
        (layer, INPUT32.time)
    )
    assert int(want.count()) > 0
    np.testing.assert_array_equal(out.time, want.time)
    np.testing.assert_array_equal(out.idx, jnp.where(want.valid, want.idx + IN, -1))
    assert jnp.any(g_w[0].recurrent != 0) and jnp.any(g_t != 0)
    np.testing.assert_array_equal(g_w[0].input, m_layer.weights.input)
    np.testing.assert_array_equal(g_w[0].recurrent, m_layer.weights.recurrent)
    np.testing.assert_array_equal(g_t, m_t)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="n_hidden"):
        functional.LIF(0, 4, T_MAX, PARAMS)
    with pytest.raises(ValueError, match="t_max"):
        functional.LIF(2, 4, -1.0, PARAMS)
    with pytest.raises(ValueError, match="layers"):
        functional.RecurrentLIF(3, 4, T_MAX, PARAMS, 1.0, 1.0)
    with pytest.raises(ValueError, match="RecurrentEventPropLIF: `layers`"):
        functional.RecurrentEventPropLIF([], 4, T_MAX, PARAMS, 1.0, 1.0)
    with pytest.raises(TypeError, match="wrap_only_step"):
        functional.RecurrentEventPropLIF([2], 4, T_MAX, PARAMS, 1.0, 1.0, wrap_only_step="no")
    with pytest.raises(TypeError, match="backend"):
        functional.HardwareLIF(2, 4, T_MAX, PARAMS, 1.0, 1.0, backend="chip")
    with pytest.raises(ValueError, match="HardwareRecurrentLIF: `layers`"):
        functional.HardwareRecurrentLIF(3, 4, T_MAX, PARAMS, 1.0, 1.0, backend=SoftwareBackend())
    with pytest.raises(TypeError, match="layer 1 must be an"):
        functional.serial(functional.LIF(2, 4, T_MAX, PARAMS), "LIF")
    with pytest.raises(ValueError, match="at least one"):
        functional.serial()
    init_fn, apply_fn = functional.LIF(2, 4, T_MAX, PARAMS)
    _, _, w = init_fn(jax.random.PRNGKey(0), IN)
    _, serial_apply = functional.serial(*_pairs())
    with pytest.raises(ValueError, match="holds 1 entries for 2 layers"):
        serial_apply([w], INPUT)
    with pytest.raises(ValueError, match="`external`"):
        apply_fn([w], INPUT, external=INPUT)
    with pytest.raises(TypeError, match="list of all layers"):
        apply_fn(w, INPUT)
    with pytest.raises(TypeError, match="eqsnn.Spikes"):
        apply_fn([w], (INPUT.time, INPUT.idx))
    with pytest.raises(ValueError, match=r"weights\[0\] must have type InputWeights and shapes"):
        apply_fn([eqsnn.InputWeights(jnp.zeros((IN, 3)))], INPUT)
    with pytest.raises(TypeError, match="weights returned by an init_fn"):
        apply_fn([jnp.zeros((IN, 2))], INPUT)


@pytest.mark.standard_promotion
def test_howto_code_blocks_run(tmp_path, monkeypatch):
    # As users run them: JAX's default float32 and dtype promotion, in an empty directory.
    page = Path(__file__).resolve().parents[1] / "docs" / "howto" / "functional_api.md"
    blocks = re.findall(r"^```python\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    with jax.enable_x64(False):
        for number, block in enumerate(blocks):
            exec(compile(block, f"{page.name} (python block {number})", "exec"), namespace)
