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
(--t-ref 0). With --train-taus the ALIF's tau_adapt and beta are trained too. The code is
in `_neurons.py`, shared with `intervals.py`.
"""

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402
import _common  # noqa: E402
import _loop  # noqa: E402
import _neurons  # noqa: E402
import _plots  # noqa: E402
import _timing  # noqa: E402

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
    _neurons.add_arguments(parser, tau_adapt=0.05, beta=0.1)
    parser.set_defaults(**DEFAULTS)
    return parser


def parse_args(argv=None) -> tuple[argparse.Namespace, list[dict]]:
    """The options and the history so far (see `_cli.parse`: --resume, --evaluate, --out;
    `_neurons.parse` refuses a `--neuron` that cannot run)."""
    return _neurons.parse(build_parser(), argv, default_out, "yinyang")


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
    return _loop.run(cfg, history, data, "Yin-Yang", plot, recipe=_neurons.recipe(cfg))


if __name__ == "__main__":
    main()
