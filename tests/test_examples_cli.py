"""The command line of the example scripts, in-process and without training: a new run
refuses to overwrite a run folder, --resume refuses options that conflict with the saved
settings, --evaluate reports the test accuracy of a saved model, and --help tells the
truth (defaults shown, the docstring's sizes are the defaults)."""

import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

import eqsnn
from eqsnn import training

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import _cli  # noqa: E402
import _common  # noqa: E402
import _loop  # noqa: E402
import _neurons  # noqa: E402
import digits  # noqa: E402
import hardware_in_the_loop  # noqa: E402
import yinyang  # noqa: E402

TINY = ["--hidden", "4", "--train-size", "8", "--validation-size", "8", "--test-size", "8"]


@pytest.fixture
def restore_x64():
    """`main` sets float32 or float64 for the whole process, as a script does; undo it."""
    x64 = jax.config.read("jax_enable_x64")
    yield
    jax.config.update("jax_enable_x64", x64)


def _checkpoint(out: Path, argv: list[str]) -> None:
    """The checkpoint.json a run of `argv` writes after its first epoch."""
    cfg, _ = yinyang.parse_args(["--out", str(out), *argv])
    out.mkdir(parents=True, exist_ok=True)
    info = {"epoch": 1, "config": _cli.settings(cfg), "history": [{"epoch": 1}]}
    (out / "checkpoint.json").write_text(json.dumps(info))


def test_new_run_refuses_a_run_folder_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    cfg, history = yinyang.parse_args(["--out", str(out)])  # an empty folder is no run
    assert cfg.out == out and history == []
    _checkpoint(out, TINY)
    (out / "model-best.eqx").write_bytes(b"old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=r"holds a run already \(checkpoint.json, model-best"):
        yinyang.parse_args(["--out", str(out)])
    assert (out / "checkpoint.json").exists()
    cfg, history = yinyang.parse_args(["--out", str(out), "--overwrite"])
    assert history == [] and not (out / "checkpoint.json").exists()
    assert not (out / "model-best.eqx").exists() and (out / "notes.txt").exists()


def test_resume_keeps_the_saved_settings_and_refuses_conflicts(tmp_path, capsys):
    out = tmp_path / "run"
    _checkpoint(out, [*TINY, "--lr", "0.002"])
    with pytest.raises(SystemExit, match=r"--resume: --lr 0.1 \(the run used 0.002\)"):
        yinyang.parse_args(["--out", str(out), "--resume", "--lr", "0.1"])
    with pytest.raises(SystemExit, match=r"--hidden 5 \(the run used 4\); --w-out 1.0 2.0"):
        yinyang.parse_args(["--out", str(out), "--resume", "--hidden=5", "--w-out", "1", "2"])
    with pytest.raises(SystemExit, match="--resume continues the run in --out; it cannot"):
        yinyang.parse_args(["--out", str(out), "--resume", "--overwrite"])
    # The same values, and the run settings, may be given; the rest comes from the run.
    argv = ["--out", str(out), "--resume", "--lr", "0.002", "--epochs", "7", "--no-plots"]
    cfg, history = yinyang.parse_args(argv)
    assert (cfg.lr, cfg.hidden, cfg.train_size, cfg.epochs, cfg.no_plots) == (2e-3, 4, 8, 7, True)
    assert history == [{"epoch": 1}]
    printed = capsys.readouterr().out
    assert "--resume: continuing after epoch 1; keeps the" in printed
    assert "hidden=4" in printed and "train_size=8" in printed


@pytest.mark.standard_promotion
def test_evaluate_reports_the_test_accuracy_of_a_saved_model(tmp_path, restore_x64):
    out = tmp_path / "run"
    with jax.enable_x64(False):
        cfg, _ = yinyang.parse_args(["--out", str(out), *TINY])
        train, validation, test = yinyang.load(cfg)
        network = _common.build_network(cfg, 5, 3, key=jax.random.key(cfg.seed))
        row = {"epoch": 1, "validation_accuracy": 0.5, "test_accuracy": 0.25}
        out.mkdir()
        _loop.save_models(out, network, cfg, [row])
        expected = training.evaluate(network, test, sample_loss=_common.make_sample_loss(cfg))
    result = yinyang.main(["--evaluate", str(out / "model-best.eqx"), "--no-progress"])
    assert result["test_accuracy"] == expected[1].accuracy
    assert np.isclose(result["test_loss"], expected[0])
    assert training.load_hyperparameters(out / "model-last.eqx")["epoch"] == 1
    with pytest.raises(SystemExit, match=r"--evaluate: --test-size 9 \(the run used 8\)"):
        yinyang.parse_args(["--evaluate", str(out / "model-best.eqx"), "--test-size", "9"])
    with pytest.raises(SystemExit, match="saved by examples/yinyang.py; evaluate it with"):
        digits.parse_args(["--evaluate", str(out / "model-best.eqx")])
    with pytest.raises(SystemExit, match="--evaluate: .*nothing.eqx"):
        yinyang.parse_args(["--evaluate", str(out / "nothing.eqx")])


def test_neuron_alif_builds_an_adaptive_hidden_layer_and_refuses_what_cannot_run(tmp_path):
    """--neuron alif: an ALIF hidden layer (LIF output layer, the LIF's weights), saved and
    loaded as such; --neuron alif|if refused where the model cannot run. No compilation."""
    out = tmp_path / "run"
    alif = ["--neuron", "alif", "--tau-adapt", "0.04", "--beta", "0.3", "--v-reset", "0"]
    with jax.enable_x64(False):  # as the script runs by default
        cfg, _ = yinyang.parse_args(["--out", str(out), *TINY, *alif])
        network = _neurons.recipe(cfg).build(cfg, 5, 3, key=jax.random.key(cfg.seed))
        lif_cfg, _ = yinyang.parse_args(["--out", str(out), *TINY, "--v-reset", "0"])
        lif = _neurons.recipe(lif_cfg).build(lif_cfg, 5, 3, key=jax.random.key(cfg.seed))
        hidden, output = network.layers
        assert type(hidden.params) is eqsnn.ALIFParameters
        p = hidden.params
        assert (p.tau_adapt, p.beta, p.v_reset, p.v_th, p.v_leak) == (0.04, 0.3, 0.0, 1.0, 0.0)
        assert type(output.params) is eqsnn.LIFParameters  # the output layer stays LIF
        assert isinstance(hidden.engine, eqsnn.WindowScan)
        for ours, theirs in zip(network.layers, lif.layers, strict=True):  # same weights
            np.testing.assert_array_equal(ours.weights.input, theirs.weights.input)
        # --train-taus: per-neuron arrays, tau_adapt and beta too
        cfg_t, _ = yinyang.parse_args(["--out", str(out), *TINY, *alif, "--train-taus"])
        trained = _neurons.hidden_parameters(cfg_t, 4)
        assert trained.tau_adapt.shape == trained.beta.shape == trained.v_th.shape == (4,)
        cfg_if, _ = yinyang.parse_args(["--out", str(out), *TINY, "--neuron", "if"])
        p_if = _neurons.hidden_parameters(cfg_if, 4)
        assert type(p_if) is eqsnn.IFParameters and (p_if.v_init, p_if.v_reset) == (0.0, -1000.0)
        # saved and loaded as an ALIF model
        out.mkdir()
        _loop.save_models(out, network, cfg, [{"epoch": 1, "test_accuracy": 0.0}])
        loaded = training.load(out / "model-last.eqx").layers
        assert type(loaded[1].params) is eqsnn.ALIFParameters
        assert (loaded[1].params.tau_adapt, loaded[1].params.beta) == (0.04, 0.3)
        assert type(loaded[2].params) is eqsnn.LIFParameters
    (out / "checkpoint.json").write_text("{}")  # a refused new run leaves --out alone
    for extra, match in [
        (["--style", "recurrent"], "--neuron alif needs --style feedforward: the recurrent"),
        (["--engine", "event-loop"], "--neuron alif runs on the window scan only"),
        (["--engine", "interval-scan"], "the interval-scan runs LIF neurons only"),
        (["--t-ref", "0.002"], "--neuron alif has no refractory period: --t-ref must be 0"),
        (["--tau-adapt", "0.01"], "--neuron alif: .*`tau_adapt` must differ from `tau_mem`"),
        (["--beta", "-0.1"], "--neuron alif: .*`beta` must be >= 0"),
    ]:
        with pytest.raises(SystemExit, match=match):
            yinyang.parse_args(["--out", str(out), "--overwrite", *TINY, *alif, *extra])
    assert (out / "checkpoint.json").exists() and (out / "model-last.eqx").exists()
    with pytest.raises(SystemExit, match="--neuron if needs --style feedforward"):
        yinyang.parse_args(["--out", str(tmp_path / "b"), "--neuron", "if", "--style", "recurrent"])


@pytest.mark.parametrize(
    ("module", "sizes"),
    [(yinyang, "5-{}-3"), (digits, "65-{}-10"), (hardware_in_the_loop, "5-{}-3")],
)
def test_help_shows_defaults_and_the_docstring_tells_the_default_size(module, sizes, capsys):
    assert sizes.format(module.DEFAULTS["hidden"]) in module.__doc__
    with pytest.raises(SystemExit) as stop:
        module.parse_args(["--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"hidden neurons (default: {module.DEFAULTS['hidden']})" in text
    assert "--seed SEED seed of the initial weights and of the shuffling (default: 0)" in text
    assert "--data-seed DATA_SEED seed of the" in text
