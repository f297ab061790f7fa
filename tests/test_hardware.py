r"""Hardware in the loop: HardwareLIF / HardwareRecurrentLIF and the backends.

Tolerances. With `SoftwareBackend` the forward pass is eqsnn's own simulator, so spike
times are identical; the replay recomputes the currents by integrating from event to event
and walks the same EventProp adjoint as `RecurrentLIF(adjoint=EventProp())` (for the
feed-forward layer, a different but equivalent adjoint from `LIF(adjoint=EventProp())`),
so currents and gradients agree to rounding: 1e-10 relative (to the largest entry of the
same array), over the ~1e-15 measured. Time-grid backends (`EmulatedBackend` without
non-idealities, Brian2) are compared with tolerances tied to their time step `dt` (see each
test).

Runtime. Compilation dominates; every configuration is built once per module (fixtures)
and the error tests reuse one compiled function, switching the fake backend's behaviour
between calls (the backend is a static field, so the same object means no retrace).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn.hardware import Backend, BackendError, EmulatedBackend, Mismatch, SoftwareBackend

ROOT = Path(__file__).resolve().parents[1]
T_MAX = 0.03
IN_SIZE, N_INPUTS, BATCH = 4, 8, 5
RTOL = 1e-10
# v_reset = v_leak: neurons spike several times (resets matter for the adjoint).
PARAMS = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=0.0)
# A budget of 4 spikes per interval: the interval scan never loses a spike here, so its
# spikes are exactly those of a chip (no budget artefacts at interval starts).
ENGINE = eqsnn.IntervalScan(max_spikes_per_interval=4)


def _inputs(seed=1, batch=BATCH):
    rng = np.random.default_rng(seed)
    time = rng.uniform(0.0, 0.02, (batch, N_INPUTS))
    idx = rng.integers(0, IN_SIZE, (batch, N_INPUTS))
    idx[:, -1] = -1  # an empty slot
    return eqsnn.Spikes(time=jnp.asarray(time), idx=jnp.asarray(idx, jnp.int32))


def _forward(layer, inputs):
    """The batch's output spikes, and the mismatch report of a hardware layer."""
    if hasattr(layer, "replay"):
        return jax.vmap(layer.replay)(inputs)
    return jax.vmap(layer)(inputs), None


@eqx.filter_jit
def _value_and_grads(layer, inputs):
    """Loss, its gradients (layer, input times), and the forward pass, in one compile."""

    def loss(layer, time):
        out, mismatch = _forward(layer, eqx.tree_at(lambda s: s.time, inputs, time))
        value = jnp.sum(jnp.where(out.valid, out.time**2 * 1e3 + 0.1 * out.current, 0.0))
        return value, (out, mismatch)

    (value, aux), grads = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(layer, inputs.time)
    return value, grads, aux


def _close(actual, expected, rtol=RTOL):
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = np.max(np.abs(expected))
    assert scale > 0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def _compare(hw_layer, twin, backend, inputs):
    calls = backend.calls
    value, (grad_layer, grad_time), (out, mismatch) = _value_and_grads(hw_layer, inputs)
    assert backend.calls == calls + 1  # jit(grad(vmap)): one backend call for the batch
    ref_value, (ref_layer, ref_time), (ref, _) = _value_and_grads(twin, inputs)
    np.testing.assert_array_equal(out.idx, ref.idx)
    np.testing.assert_array_equal(out.time, ref.time)
    np.testing.assert_array_equal(out.dropped, ref.dropped)
    assert np.all(out.dropped == 0)  # a dropped spike would show up as an overshoot
    assert np.sum(out.valid) > 2 * BATCH  # several spikes per sample
    _close(out.current, ref.current)
    assert isinstance(mismatch, Mismatch) and mismatch.voltage.shape == out.time.shape
    assert np.max(np.abs(mismatch.voltage)) < 1e-12  # exact backend: V = v_th at each spike
    assert np.all(mismatch.unexplained == 0) and np.max(mismatch.overshoot) < 1e-12
    _close(value, ref_value)
    _close(grad_time, ref_time)
    return grad_layer, ref_layer, out


@pytest.fixture(scope="module")
def feedforward():
    backend = SoftwareBackend(engine=ENGINE)
    init = dict(key=jax.random.PRNGKey(0), mean=1.5, std=1.0)
    layer = eqsnn.HardwareLIF(IN_SIZE, 5, 24, T_MAX, PARAMS, backend=backend, **init)
    twin = eqsnn.LIF(
        IN_SIZE, 5, 24, T_MAX, PARAMS, engine=ENGINE, adjoint=eqsnn.EventProp(), **init
    )
    return layer, twin, backend


@pytest.fixture(scope="module")
def recurrent():
    backend = SoftwareBackend()
    init = dict(key=jax.random.PRNGKey(3), mean=[1.5, 0.8], std=1.0)
    full = eqsnn.Connectivity.FULL
    layer = eqsnn.HardwareRecurrentLIF(
        IN_SIZE, [5, 3], 32, T_MAX, PARAMS, backend=backend, connectivity=full, **init
    )
    twin = eqsnn.RecurrentLIF(
        IN_SIZE, [5, 3], 32, T_MAX, PARAMS, connectivity=full, adjoint=eqsnn.EventProp(), **init
    )
    # FULL connectivity starts the non-layered blocks at zero; give them weights.
    key = jax.random.PRNGKey(4)
    rec = 0.3 * jax.random.normal(key, layer.weights.recurrent.shape)
    layer = eqx.tree_at(lambda m: m.weights.recurrent, layer, rec)
    twin = eqx.tree_at(lambda m: m.weights.recurrent, twin, rec)
    return layer, twin, backend


def test_feedforward_equals_eventprop(feedforward):
    layer, twin, backend = feedforward
    grad, ref, _ = _compare(layer, twin, backend, _inputs())
    _close(grad.weights.input, ref.weights.input)


def test_recurrent_equals_eventprop(recurrent):
    layer, twin, backend = recurrent
    grad, ref, _ = _compare(layer, twin, backend, _inputs(seed=2))
    _close(grad.weights.input, ref.weights.input)
    _close(grad.weights.recurrent, ref.weights.recurrent)


def test_int64_input_indices(feedforward):
    # Under x64, `jnp.array([0, 1])` is int64; the replay joins it with the backend's
    # int32 indices, which must not trip strict dtype promotion. Same spikes and gradients.
    layer, twin, backend = feedforward
    inputs = _inputs()
    wide = eqx.tree_at(lambda s: s.idx, inputs, inputs.idx.astype(jnp.int64))
    assert wide.idx.dtype == jnp.int64
    value, grads, (out, _) = _value_and_grads(layer, inputs)
    value64, grads64, (out64, _) = _value_and_grads(layer, wide)
    np.testing.assert_array_equal(out64.time, out.time)
    np.testing.assert_array_equal(value64, value)
    np.testing.assert_array_equal(grads64[0].weights.input, grads[0].weights.input)


def test_nested_vmap_is_one_call(feedforward):
    layer, twin, backend = feedforward
    inputs = _inputs()
    nested = jax.tree.map(lambda x: x.reshape(BATCH, 1, *x.shape[1:]), inputs)
    calls = backend.calls
    out = jax.jit(jax.vmap(jax.vmap(layer)))(nested)
    assert backend.calls == calls + 1
    assert out.time.shape == (BATCH, 1, layer.n_spikes)
    np.testing.assert_array_equal(out.time[:, 0], _value_and_grads(layer, inputs)[2][0].time)


def test_vmap_over_an_ensemble_is_one_call_per_member(feedforward):
    # Batched weights (an ensemble of layers): each member runs with its own weights.
    layer, twin, backend = feedforward
    scaled = eqx.tree_at(lambda m: m.weights.input, layer, 0.9 * layer.weights.input)
    ensemble = jax.tree.map(lambda *x: jnp.stack(x), layer, scaled)
    sample = jax.tree.map(lambda x: x[0], _inputs())
    calls = backend.calls
    # Jitted: run op by op, the hardware layer compiles ~100 small programs.
    out = eqx.filter_jit(eqx.filter_vmap(lambda member: member(sample)))(ensemble)
    assert backend.calls == calls + 2
    batch_out = _value_and_grads(layer, _inputs())[2][0]  # compiled in an earlier test
    np.testing.assert_array_equal(out.time[0], batch_out.time[0])
    assert np.any(out.time[1] != out.time[0])  # the second member's own weights


class _Scripted(Backend):
    """Returns what `script(exact_result)` makes of the exact result (or raises)."""

    def __init__(self):
        self.exact = SoftwareBackend(engine=ENGINE)
        self.script = None
        self.calls = 0

    @property
    def name(self):
        return "Scripted"

    def run(self, weights, input_time, input_idx, **kw):
        self.calls += 1
        result = self.exact.run(weights, input_time, input_idx, **kw)
        return self.script(*result)


def _unsorted(t, i, d):
    t = t.copy()
    t[:, [0, 1]] = t[:, [1, 0]]
    return t, i, d


def _raise(t, i, d):
    raise OSError("chip not responding")


MALFORMED = {
    "must return a tuple": lambda t, i, d: t,
    r"`time` must have shape \(batch, n_spikes\)": lambda t, i, d: (t[:, :-1], i, d),
    "`idx` must be an integer array": lambda t, i, d: (t, i.astype(np.float64), d),
    "`time` must be a floating array": lambda t, i, d: (t.astype(np.int64), i, d),
    "holds NaN": lambda t, i, d: (np.where(i >= 0, np.nan, t), i, d),
    "sorted ascending": _unsorted,
    r"`idx` must lie in \[-1, 5\)": lambda t, i, d: (t, np.where(i >= 0, 5, i), d),
    "must lie in \\[0, t_max": lambda t, i, d: (np.where(i >= 0, -1.0, t), i, d),
    "empty slots": lambda t, i, d: (t, np.where(np.arange(i.shape[1]) == 0, -1, i), d),
    "raised OSError: chip not responding": _raise,
}


def test_malformed_backend_output_raises():
    backend = _Scripted()
    init = dict(key=jax.random.PRNGKey(0), mean=1.5, std=1.0)
    layer = eqsnn.HardwareLIF(IN_SIZE, 5, 24, T_MAX, PARAMS, backend=backend, **init)
    run = eqx.filter_jit(jax.vmap(layer))
    inputs = _inputs()
    backend.script = lambda t, i, d: (t, i, d)
    good = run(inputs)
    assert np.sum(good.valid) > 0
    backend.script = lambda t, i, d: (t, i)  # `dropped` may be omitted
    assert np.all(run(inputs).dropped == 0)
    for message, script in MALFORMED.items():
        backend.script = script
        with pytest.raises(Exception, match=message) as error:
            jax.block_until_ready(run(inputs))
        assert "Scripted" in str(error.value)


def test_backend_error_type_outside_jit():
    # Without jit the callback still runs through XLA; the message names the backend and
    # the original exception is chained.
    backend = _Scripted()
    backend.script = _raise
    key = jax.random.PRNGKey(0)
    layer = eqsnn.HardwareLIF(IN_SIZE, 5, 24, T_MAX, PARAMS, backend=backend, key=key)
    sample = jax.tree.map(lambda x: x[0], _inputs())
    with pytest.raises(Exception, match="backend Scripted raised OSError"):
        jax.block_until_ready(layer(sample))
    assert issubclass(BackendError, RuntimeError)


class _Lying(Backend):
    """The exact spikes, but neuron 0 also spikes at 1 ms, before any input could drive it
    (a spike the replay cannot explain), and every other time 0.5 ms late."""

    def __init__(self):
        self.exact = SoftwareBackend(engine=ENGINE)

    def run(self, weights, input_time, input_idx, **kw):
        t, i, d = self.exact.run(weights, input_time, input_idx, **kw)
        t = np.where(i >= 0, t + 5e-4, t)
        t = np.concatenate([np.full((t.shape[0], 1), 1e-3), t[:, :-1]], axis=1)
        i = np.concatenate([np.zeros((i.shape[0], 1), i.dtype), i[:, :-1]], axis=1)
        return np.where(i >= 0, np.minimum(t, kw["t_max"] * 0.999), np.inf), i, d


@pytest.mark.parametrize("min_rise", [0.0, 0.1])
def test_mismatched_backend_gives_finite_gradients(min_rise):
    init = dict(key=jax.random.PRNGKey(0), mean=1.5, std=1.0)
    layer = eqsnn.HardwareLIF(
        IN_SIZE, 5, 24, T_MAX, PARAMS, backend=_Lying(), min_rise=min_rise, **init
    )
    inputs = eqx.tree_at(lambda s: s.time, _inputs(), _inputs().time + 2e-3)  # after 1 ms
    _, (grad_layer, grad_time), (_, mismatch) = _value_and_grads(layer, inputs)
    assert np.all(mismatch.unexplained >= 1)  # the 1 ms spike in every sample
    assert np.all(mismatch.voltage[:, 0] == -PARAMS.v_th)  # at rest: V - v_th = -1
    if min_rise > 0:
        assert np.all(mismatch.clamped >= mismatch.unexplained)
    else:
        assert np.all(mismatch.clamped == 0)
    assert np.all(np.isfinite(grad_layer.weights.input)) and np.all(np.isfinite(grad_time))
    assert np.any(grad_layer.weights.input != 0)


def test_bad_arguments():
    key = jax.random.PRNGKey(0)
    with pytest.raises(TypeError, match="`backend` must be an eqsnn.hardware.Backend"):
        eqsnn.HardwareLIF(2, 3, 4, T_MAX, key=key, backend="chip")
    with pytest.raises(ValueError, match="`min_rise` must be a finite number >= 0"):
        eqsnn.HardwareLIF(2, 3, 4, T_MAX, key=key, backend=SoftwareBackend(), min_rise=-1)
    with pytest.raises(TypeError, match="`backend` must be"):
        eqsnn.HardwareRecurrentLIF(2, [3], 4, T_MAX, key=key, backend=None)
    with pytest.raises(ValueError, match="EmulatedBackend: `jitter` must be"):
        EmulatedBackend(jitter=-1.0)
    with pytest.raises(ValueError, match="EmulatedBackend: `weight_bits` must be"):
        EmulatedBackend(weight_bits=0)


def test_emulated_ideal_matches_software():
    # Without non-idealities the emulation differs from the exact simulator only by its
    # grid: inputs act exactly, and a crossing is placed by linear interpolation within a
    # step, an error of order dt^2 |V''| / |V'|: measured 1.4e-7 s at dt = 1e-5 s (and
    # 5.7e-7 s at 2e-5 s, quadratic as expected); we allow 5e-7 s.
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
    init = dict(key=jax.random.PRNGKey(0), mean=1.5, std=1.0)
    chip = EmulatedBackend(weight_bits=None, dt=1e-5)
    layer = eqsnn.HardwareLIF(IN_SIZE, 5, 8, T_MAX, params, backend=chip, **init)
    twin = eqsnn.LIF(IN_SIZE, 5, 8, T_MAX, params, **init)
    inputs = _inputs()
    out, ref = jax.jit(jax.vmap(layer))(inputs), jax.jit(jax.vmap(twin))(inputs)
    np.testing.assert_array_equal(out.idx, ref.idx)
    assert np.sum(out.valid) > BATCH
    np.testing.assert_allclose(np.where(out.valid, out.time - ref.time, 0.0), 0.0, atol=5e-7)


def test_emulated_non_idealities_are_seeded():
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
    settings = dict(
        weight_bits=6,
        tau_mem_variation=0.05,
        tau_syn_variation=0.05,
        v_th_variation=0.03,
        jitter=2e-5,
        clock=1e-5,
        dt=5e-6,
    )
    a, b = EmulatedBackend(seed=7, **settings), EmulatedBackend(seed=7, **settings)
    np.testing.assert_array_equal(
        a.fixed_pattern(params, 4, 5)[0], b.fixed_pattern(params, 4, 5)[0]
    )
    tau_mem, tau_syn, v_th = a.fixed_pattern(params, 4, 5)
    assert np.all(np.abs(tau_mem / params.tau_mem - 1) <= 3 * 0.05) and np.std(tau_mem) > 0
    assert np.all(np.abs(v_th - 1) <= 3 * 0.03) and np.std(v_th) > 0
    w = np.linspace(-2.0, 2.0, 9)
    q = a.quantise(w)
    np.testing.assert_allclose(q / (2.0 / 63), np.round(q / (2.0 / 63)), atol=1e-12)
    assert np.max(np.abs(q - w)) <= 1.0 / 63 + 1e-12
    np.testing.assert_allclose(a.quantise(w, scale=0.5), np.clip(np.round(w / 0.5), -63, 63) * 0.5)
    inputs = _inputs()
    init = dict(key=jax.random.PRNGKey(0), mean=1.5, std=1.0)
    # Jitted: run op by op, the hardware layer compiles ~80 small programs.
    run_a, run_b = (
        eqx.filter_jit(jax.vmap(eqsnn.HardwareLIF(IN_SIZE, 5, 8, T_MAX, params, backend=c, **init)))
        for c in (a, b)
    )
    out_a, out_b = run_a(inputs), run_b(inputs)
    np.testing.assert_array_equal(out_a.time, out_b.time)  # same seed, same chip and noise
    valid = out_a.valid
    assert np.sum(valid) > BATCH
    ticks = np.asarray(out_a.time)[valid] / 1e-5
    np.testing.assert_allclose(ticks, np.round(ticks), atol=1e-6)  # on the clock
    again = run_a(inputs)  # fresh jitter on every call
    assert np.any(np.asarray(again.time)[again.valid] != np.asarray(out_a.time)[again.valid])


@pytest.mark.slow
def test_brian2_agrees_with_eqsnn():
    pytest.importorskip("brian2")
    from eqsnn.hardware import Brian2Backend

    # Brian2 moves each input spike to the nearest grid point (<= dt/2) and reports a
    # spike at the first grid point at or after the crossing (< dt late); through one
    # layer that is at most 1.5 dt, through the second population of a layered recurrent
    # layer one more step (recurrent spikes act at the next step): 2.5 dt. We allow 3 dt.
    dt = 1e-5
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
    init = dict(key=jax.random.PRNGKey(0), mean=[1.5, 1.5], std=0.5)
    backend = Brian2Backend(dt=dt)
    layer = eqsnn.HardwareRecurrentLIF(IN_SIZE, [3, 2], 8, 0.02, params, backend=backend, **init)
    twin = eqsnn.RecurrentLIF(IN_SIZE, [3, 2], 8, 0.02, params, **init)
    inputs = _inputs(batch=2)
    out, mismatch = eqx.filter_jit(jax.vmap(layer.replay))(inputs)  # not op by op
    ref = jax.vmap(twin)(inputs)
    assert backend.calls == 1
    np.testing.assert_array_equal(out.idx, ref.idx)
    assert np.sum(out.valid) >= 4
    np.testing.assert_allclose(np.where(out.valid, out.time - ref.time, 0.0), 0.0, atol=3 * dt)
    assert np.all(mismatch.unexplained == 0)


@pytest.mark.slow
def test_hardware_example_smoke(tmp_path):
    # One tiny epoch of examples/hardware_in_the_loop.py (realistic chip settings, the
    # defaults): it trains, evaluates, checkpoints and reports its backend calls.
    env = dict(os.environ, XLA_FLAGS="--xla_backend_optimization_level=0")
    out = tmp_path / "run"
    tiny = ["--hidden", "8", "--train-size", "64", "--test-size", "32", "--batch-size", "32"]
    tiny += ["--validation-size", "32"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "hardware_in_the_loop.py"), *tiny]
        + ["--epochs", "1", "--no-plots", "--no-progress", "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "emulated chip (6-bit weights" in result.stdout
    assert "test accuracy" in result.stdout and "after 1 epochs" in result.stdout
    # 2 batches x 2 layers (training) + 2 layers for each of one validation and one test
    # batch of 32: 8 backend calls.
    assert "8 backend calls" in result.stdout
    history = json.loads((out / "history.json").read_text())
    assert len(history) == 1 and 0.0 <= history[0]["test_accuracy"] <= 1.0
