"""eqsnn.training: the step equals a hand-written update, evaluation equals the mean over
samples, no retracing; and a smoke test of examples/yinyang.py (one epoch, then --resume)."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import eqsnn
from eqsnn import datasets, training
from eqsnn.encode import spatio_temporal_encode
from eqsnn.loss import accuracy, first_spike_times, ttfs_loss

ROOT = Path(__file__).resolve().parents[1]
PARAMS = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=1.0, v_reset=-1000.0)
T_MAX = 2e-2


def _model(hidden: int = 6):
    k1, k2 = jax.random.split(jax.random.key(0))
    return (
        eqsnn.LIF(5, hidden, hidden, T_MAX, PARAMS, key=k1, mean=3.0, std=1.6),
        eqsnn.LIF(hidden, 2, 2, T_MAX, PARAMS, key=k2, mean=0.5, std=0.8),
    )


def _sample_loss(model, inputs, label):
    spikes = spatio_temporal_encode(inputs, 1e-2)
    for layer in model:
        spikes = layer(spikes)
    loss = ttfs_loss(spikes, label, 2, t_max=T_MAX, tau_mem=5e-3)
    first = first_spike_times(spikes, 2, t_max=T_MAX)  # a vector metric
    return loss, {"accuracy": accuracy(spikes, label, 2), "spikes": spikes.count(), "first": first}


@pytest.fixture(scope="module")
def data():
    return datasets.linear(jax.random.key(1), 10)


@pytest.fixture(scope="module")
def singles(data):
    """Loss and metrics of every sample, one at a time (the reference for the means)."""
    model, single = _model(), eqx.filter_jit(_sample_loss)
    return [single(model, x, y) for x, y in zip(data.inputs, data.labels, strict=True)]


def test_batch_loss_is_the_mean_of_sample_losses(data, singles):
    loss, aux = eqx.filter_jit(training.batch_loss)(_model(), data, _sample_loss)
    # Same float64 operations per sample, vmapped or not: equal up to summation order.
    np.testing.assert_allclose(loss, np.mean([s[0] for s in singles]), rtol=1e-12)
    np.testing.assert_allclose(aux["spikes"], np.mean([s[1]["spikes"] for s in singles]))
    first = np.mean([s[1]["first"] for s in singles], axis=0)  # vectors: mean per entry
    np.testing.assert_allclose(aux["first"], first, rtol=1e-12)


def test_step_equals_a_hand_written_sgd_update_and_compiles_once(data):
    traces = []

    def counting_loss(model, inputs, label):
        traces.append(None)
        return _sample_loss(model, inputs, label)

    model, optimiser = _model(), optax.sgd(0.1)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
    step = training.make_step(counting_loss, optimiser)
    first, opt_state, loss, aux = step(model, opt_state, data)

    @eqx.filter_jit
    def mean_loss_and_grad(model):
        return eqx.filter_value_and_grad(lambda m: training.batch_loss(m, data, _sample_loss)[0])(
            model
        )

    want_loss, grads = mean_loss_and_grad(model)
    expected = jax.tree.map(lambda w, g: w - 0.1 * g, model, grads)
    for got, want in zip(jax.tree.leaves(first), jax.tree.leaves(expected), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)  # same ops, float64
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    assert set(aux) == {"accuracy", "spikes", "first"} and aux["first"].shape == (2,)
    assert any(np.any(g != 0) for g in jax.tree.leaves(grads))  # the check is not vacuous

    n_traces = len(traces)
    later = first
    for _ in range(2):
        later, opt_state, loss, _ = step(later, opt_state, data)
    assert len(traces) == n_traces  # no retrace for the same shapes, loss and optimiser
    assert jnp.isfinite(loss)


@pytest.mark.standard_promotion
def test_adam_training_lowers_the_loss(data):
    model, optimiser = _model(), optax.adam(1e-2)
    opt_state = optimiser.init(eqx.filter(model, eqx.is_array))
    # A step returns the mean loss over the whole batch (here every sample) before its
    # update: the first step's is the initial loss, the eleventh's the loss after ten steps
    # (one compiled program; `evaluate` would compile another).
    losses = []
    for _ in range(11):
        model, opt_state, loss, _ = training.train_step(
            model, opt_state, data, sample_loss=_sample_loss, optimiser=optimiser
        )
        losses.append(float(loss))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("batch_size", [3, 10, 64])
def test_evaluate_averages_every_sample_once(data, singles, batch_size):
    # 3: three full calls and one padded; 10 and 64: one call with every sample.
    loss, aux = training.evaluate(_model(), data, sample_loss=_sample_loss, batch_size=batch_size)
    np.testing.assert_allclose(loss, np.mean([s[0] for s in singles]), rtol=1e-12)
    accuracies = [s[1]["accuracy"] for s in singles]
    np.testing.assert_allclose(aux["accuracy"], np.mean(accuracies), rtol=1e-12)
    assert isinstance(loss, float) and isinstance(aux["spikes"], float)
    first = np.mean([s[1]["first"] for s in singles], axis=0)
    assert isinstance(aux["first"], np.ndarray) and aux["first"].shape == (2,)
    np.testing.assert_allclose(aux["first"], first, rtol=1e-12)


@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True])
def test_evaluate_rejects_bad_batch_size(data, batch_size):
    with pytest.raises(ValueError, match="evaluate: `batch_size` must be a positive int"):
        training.evaluate(_model(), data, sample_loss=_sample_loss, batch_size=batch_size)


def _run_example(args: list[str], env: dict) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "yinyang.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_yinyang_example_trains_resumes_and_plots(tmp_path):
    # Tiny run of the README's main job. XLA's cheapest optimisation level and a shared
    # compilation cache keep compile time (not training) from dominating; the second
    # process continues the first's checkpoint.
    env = dict(
        os.environ,
        XLA_FLAGS="--xla_backend_optimization_level=0",
        JAX_COMPILATION_CACHE_DIR=str(tmp_path / "cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    out = tmp_path / "run"
    common = ["--out", str(out), "--no-progress"]  # default: EventProp, parallel engine
    # Validation and test sets of one size share one compiled evaluation program.
    tiny = ["--hidden", "8", "--train-size", "64", "--test-size", "32", "--batch-size", "32"]
    tiny += ["--validation-size", "32"]
    first = _run_example([*common, *tiny, "--epochs", "1", "--no-plots"], env)
    assert "test accuracy" in first and "after 1 epochs" in first
    info = json.loads((out / "checkpoint.json").read_text())
    assert info["epoch"] == 1 and info["config"]["hidden"] == 8

    second = _run_example([*common, "--epochs", "2", "--resume"], env)
    assert "resuming after epoch 1" in second and "after 2 epochs" in second
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert history[0] == info["history"][0]
    for name in ("checkpoint.eqx", "curves.png", "raster.png", "decision_map.png"):
        assert (out / name).stat().st_size > 0

    # The same seed reproduces the same run: identical losses and accuracies, bit for bit.
    again = tmp_path / "again"
    _run_example(["--out", str(again), "--no-progress", *tiny, "--epochs", "1", "--no-plots"], env)
    repeat = json.loads((again / "history.json").read_text())[0]
    for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "test_spikes"):
        assert repeat[key] == history[0][key], key


@pytest.mark.slow
@pytest.mark.standard_promotion
@pytest.mark.parametrize("page", ["docs/howto/train_your_own_data.md", "docs/howto/checkpoint.md"])
def test_howto_code_blocks_run(page, tmp_path, monkeypatch):
    # As a user would run them: float32, standard promotion, in an empty directory.
    monkeypatch.chdir(tmp_path)
    text = (ROOT / page).read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert blocks
    namespace: dict = {"__name__": "__docs__"}
    with jax.enable_x64(False):
        for number, block in enumerate(blocks):
            exec(compile(block, f"{page} (python block {number})", "exec"), namespace)
