"""Train a spiking network on the Yin-Yang data set with exact gradients.

    python examples/yinyang.py                      # EventProp, 5-200-3, defaults below
    python examples/yinyang.py --method autodiff --epochs 5 --out runs/try
    python examples/yinyang.py --out runs/try --epochs 10 --resume   # continue a run
    python examples/yinyang.py --evaluate runs/try/model-best.eqx   # test a saved model
    python examples/yinyang.py --hidden 30 --delays synapse --train-taus   # see _timing.py
    python examples/yinyang.py --hidden 30 --neuron alif --v-reset 0 --spikes-per-neuron 3

Every feature (x, y, 1-x, 1-y, bias) becomes one input spike at time
`feature * t_late` (the bias spikes at t = 0); a hidden layer of LIF neurons that spike
at most once (`v_reset = -1000`) feeds three output neurons, and the class is the
output neuron that spikes first. The loss acts on the output first-spike times.
The model with the best accuracy on a validation set (drawn like the training set, with
its own key; never the test set) is saved as `model-best.eqx`, the last one as
`model-last.eqx`: `eqsnn.training.load` rebuilds either in any script. Also writes
`checkpoint.eqx`/`.json` (for --resume), `history.json` and PNG plots (training curves,
a spike raster, the decision map) to `--out` (default
`runs/yinyang-<method>-<style>-seed<seed>`); a new run does not overwrite a run there
without --overwrite.

`--neuron alif` makes the hidden neurons adaptive (`eqsnn.ALIFParameters`: each spike
raises the threshold by `--beta`, which decays back with `--tau-adapt`; it acts only on
neurons that spike more than once, e.g. with `--v-reset 0 --spikes-per-neuron 3`),
`--neuron if` non-leaky (`eqsnn.IFParameters`, starting at v_leak = 0); the output layer
stays LIF. These models run on the window scan of the feed-forward style only (not with
--style recurrent, --engine interval-scan or event-loop) and have no refractory period
(--t-ref 0). With --train-taus the ALIF's tau_adapt and beta are trained too.
"""

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402
import _common  # noqa: E402
import _loop  # noqa: E402
import _plots  # noqa: E402
import _timing  # noqa: E402

import eqsnn  # noqa: E402
from eqsnn import datasets  # noqa: E402

DEFAULTS = dict(epochs=250, hidden=200, lr=2e-3, w_hidden=[3.0, 1.6], w_out=[0.5, 0.8])


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (`parse_args` also prepares the run folder)."""
    parser = _cli.new_parser(__doc__)
    _common.add_common_arguments(parser)
    _timing.add_arguments(parser, delay_init=1e-3, lr_delays=1e-4, lr_taus=2e-5)
    add = parser.add_argument
    add("--train-size", type=int, default=5000, help="training samples")
    add("--validation-size", type=int, default=500, help="validation samples (0: none)")
    add("--test-size", type=int, default=1000, help="test samples")
    add("--data-seed", type=int, default=0, help="seed of the training, validation and test sets")
    add(
        "--neuron",
        choices=NEURONS,
        default="lif",
        help="the hidden neurons: LIF, adaptive-threshold LIF (eqsnn.ALIFParameters) or "
        "non-leaky IF (eqsnn.IFParameters); the output neurons are LIF",
    )
    add(
        "--tau-adapt",
        type=float,
        default=0.05,
        help="--neuron alif: time constant of the threshold adaptation in seconds",
    )
    add(
        "--beta",
        type=float,
        default=0.1,
        help="--neuron alif: threshold increase per spike (units of --v-th)",
    )
    parser.set_defaults(**DEFAULTS)
    return parser


def parse_args(argv=None) -> tuple[argparse.Namespace, list[dict]]:
    """The options and the history so far (see `_cli.parse`: --resume, --evaluate, --out)."""
    parser = build_parser()
    check_neuron(parser.parse_args(argv))  # before _cli.parse, which may clear --out
    cfg, history = _cli.parse(parser, argv, default_out, "yinyang")
    check_neuron(cfg)  # the settings of the run that --resume or --evaluate continues
    return cfg, history


NEURONS = ("lif", "alif", "if")
"""`--neuron`: the hidden layer's model (eqsnn.LIFParameters, ALIFParameters, IFParameters)."""


def check_neuron(cfg: argparse.Namespace) -> None:
    """Refuse a `--neuron` other than lif where it cannot run, or with bad parameters."""
    neuron = getattr(cfg, "neuron", "lif")  # settings saved before --neuron existed: lif
    if neuron == "lif":
        return
    who = f"--neuron {neuron}"
    if cfg.style != "feedforward":
        raise SystemExit(
            f"{who} needs --style feedforward: the recurrent style is fully connected, which "
            "only the event loop runs, and the event loop runs LIF neurons only."
        )
    engine = _common.ENGINE_ALIASES.get(cfg.engine, cfg.engine)
    if engine not in (None, _common.Engine.WINDOW_SCAN.value):
        raise SystemExit(
            f"{who} runs on the window scan only (--engine window-scan, the default); the "
            f"{engine} runs LIF neurons only."
        )
    if _timing.t_ref(cfg) > 0:
        raise SystemExit(
            f"{who} has no refractory period: --t-ref must be 0 (got {cfg.t_ref:g}); "
            "--v-reset and --spikes-per-neuron limit the spikes instead."
        )
    try:
        hidden_parameters(cfg, 1, arrays=False)
    except ValueError as error:
        raise SystemExit(f"{who}: {error}") from None


def hidden_parameters(cfg: argparse.Namespace, n: int, arrays: bool | None = None):
    """The hidden layer's neuron parameters for `n` neurons: `--neuron`'s model with
    `--tau-syn`, `--tau-mem`, `--v-th`, `--v-reset` (per-neuron arrays with
    --train-taus, also `tau_adapt` and `beta`)."""
    if cfg.neuron == "lif":
        return _timing.lif_parameters(cfg, n)
    arrays = cfg.train_taus if arrays is None else arrays
    dtype = jnp.result_type(float)  # as _timing.lif_parameters: strong float32 / float64

    def value(x):
        return jnp.full(n, x, dtype) if arrays else x

    common = dict(tau_syn=value(cfg.tau_syn), tau_mem=value(cfg.tau_mem), v_th=value(cfg.v_th))
    if cfg.neuron == "if":
        return eqsnn.IFParameters(**common, v_init=V_LEAK, v_reset=cfg.v_reset)
    return eqsnn.ALIFParameters(
        **common,
        v_leak=V_LEAK,
        v_reset=cfg.v_reset,
        tau_adapt=value(cfg.tau_adapt),
        beta=value(cfg.beta),
    )


V_LEAK = eqsnn.LIFParameters().v_leak
"""The example's leak voltage (LIFParameters' default, 0): the IF neurons start there."""


def build_network(cfg: argparse.Namespace, n_features: int, n_classes: int, *, key):
    """`_timing.build_network` with the `--neuron` model in the hidden layer."""
    params = hidden_parameters(cfg, cfg.hidden)
    return _timing.build_network(cfg, n_features, n_classes, key=key, hidden_params=params)


def recipe(cfg: argparse.Namespace) -> _loop.Recipe:
    """`_timing.recipe(cfg)`, building the hidden layer of `--neuron` (lif: unchanged)."""
    base = _timing.recipe(cfg)
    return base if cfg.neuron == "lif" else base._replace(build=build_network)


def default_out(cfg: argparse.Namespace) -> Path:
    return Path("runs") / f"yinyang-{cfg.method}-{cfg.style}-seed{cfg.seed}"


def load(cfg: argparse.Namespace):
    """`(train, validation, test)`: independent draws, each with its own key (`validation`
    is `None` for --validation-size 0)."""
    data_key = jax.random.key(cfg.data_seed)
    train = datasets.yinyang(jax.random.fold_in(data_key, 0), cfg.train_size)
    test = datasets.yinyang(jax.random.fold_in(data_key, 1), cfg.test_size)
    n = cfg.validation_size
    validation = datasets.yinyang(jax.random.fold_in(data_key, 2), n) if n else None
    return train, validation, test


def yinyang_features(xy):
    """Features (x, y, 1-x, 1-y, bias) of points in the unit square."""
    return np.concatenate([xy, 1 - xy, np.full((len(xy), 1), datasets.BIAS_VALUE)], axis=1)


def main(argv=None) -> list[dict] | dict:
    """Train (the history), or with --evaluate test a saved model (its test metrics)."""
    cfg, history = parse_args(argv)
    _loop.setup_jax(cfg)
    train, validation, test = load(cfg)
    if cfg.evaluate is not None:
        return _loop.evaluate_saved(cfg, test)
    names = datasets.YINYANG_CLASS_NAMES

    def plot(network, out):
        sample, label = test.inputs[0], int(test.labels[0])
        if not _timing.used(cfg):  # the voltage traces need constant parameters, no delays
            _plots.plot_raster(network, sample, label, out / "raster.png", names)
        _plots.plot_decision_map(network, yinyang_features, test, out / "decision_map.png", names)
        _plots.plot_first_spikes(network, test, out / "first_spikes.png", names)

    data = (train, validation, test)
    return _loop.run(cfg, history, data, "Yin-Yang", plot, recipe=recipe(cfg))


if __name__ == "__main__":
    main()
