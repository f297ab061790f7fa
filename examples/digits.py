"""Train a spiking network on scikit-learn's 8x8 handwritten digits.

    python examples/digits.py                       # EventProp, 65-200-10
    python examples/digits.py --method autodiff --epochs 5 --out runs/digits-try
    python examples/digits.py --evaluate runs/digits-try/model-best.eqx

Each of the 64 pixels becomes one input spike; bright pixels spike early (at
`(1 - intensity) * t_late`), and a bias input spikes at t = 0. A hidden layer of
one-spike LIF neurons feeds ten output neurons; the class is the output neuron that
spikes first. Every epoch, the training images get fresh Gaussian noise on their pixels
(`--noise`, against overfitting). 20 % of the 1797 images test, and 10 % of the rest
validate (the model with the best validation accuracy is saved as `model-best.eqx`, the
last as `model-last.eqx`); both splits are drawn by --data-seed. Needs scikit-learn: `pip install
"eqsnn[datasets]"`, or `pip install -e ".[datasets]"` in a clone of the repository.
Writes the checkpoint, `history.json`, the saved models, training curves and a spike
raster to `--out` (default `runs/digits-<method>-<style>-seed<seed>`); a new run does not
overwrite a run there without --overwrite.
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
import _plots  # noqa: E402

from eqsnn import datasets  # noqa: E402

DEFAULTS = dict(
    epochs=60,
    hidden=200,
    lr=3e-3,
    batch_size=32,
    w_hidden=[0.2, 0.4],
    w_out=[0.5, 0.8],
)


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (`parse_args` also prepares the run folder)."""
    parser = _cli.new_parser(__doc__)
    _common.add_common_arguments(parser)
    add = parser.add_argument
    add("--data-seed", type=int, default=0, help="seed of the train/validation/test split")
    add("--test-fraction", type=float, default=0.2, help="fraction of the images that test")
    add(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="fraction of the other images that validate (0: none)",
    )
    add(
        "--noise",
        type=float,
        default=0.1,
        help="augmentation: add Gaussian noise of this standard deviation to every training "
        "pixel's feature (clipped to [0, 1]), drawn anew every epoch (0: none)",
    )
    parser.set_defaults(**DEFAULTS)
    return parser


def parse_args(argv=None) -> tuple[argparse.Namespace, list[dict]]:
    """The options and the history so far (see `_cli.parse`: --resume, --evaluate, --out)."""
    parser = build_parser()
    return _cli.parse(parser, argv, default_out, "digits")


def default_out(cfg: argparse.Namespace) -> Path:
    return Path("runs") / f"digits-{cfg.method}-{cfg.style}-seed{cfg.seed}"


def load(cfg):
    """`(train, validation, test)` digits with features `1 - intensity` (bright pixels spike
    early) and a bias input; `validation` is carved from the training images (`None` for
    --validation-fraction 0)."""
    data = datasets.digits()
    pixels = 1.0 - np.asarray(data.inputs)
    bias = np.full((len(data), 1), datasets.BIAS_VALUE)
    data = datasets.Dataset(np.concatenate([pixels, bias], axis=1), data.labels, data.n_classes)
    key = jax.random.key(cfg.data_seed)
    train, test = datasets.train_test_split(data, cfg.test_fraction, key=key)
    if not cfg.validation_fraction:
        return train, None, test
    fraction, key = cfg.validation_fraction, jax.random.fold_in(key, 1)
    train, validation = datasets.train_test_split(train, fraction, key=key)
    return train, validation, test


def add_noise(rng: np.random.Generator, batch: datasets.Dataset, std: float):
    """`batch` with Gaussian noise of standard deviation `std` added to every pixel's
    feature, clipped to `[0, 1]`; the bias feature (the last) stays."""
    inputs = np.array(batch.inputs)
    noise = rng.normal(0.0, std, size=(len(inputs), 64))
    inputs[:, :64] = np.clip(inputs[:, :64] + noise, 0.0, 1.0)
    return datasets.Dataset(inputs, batch.labels, batch.n_classes)


def main(argv=None) -> list[dict] | dict:
    """Train (the history), or with --evaluate test a saved model (its test metrics)."""
    cfg, history = parse_args(argv)
    _loop.setup_jax(cfg)
    train, validation, test = load(cfg)
    if cfg.evaluate is not None:
        return _loop.evaluate_saved(cfg, test)

    def plot(network, out):
        _plots.plot_raster(network, test.inputs[0], int(test.labels[0]), out / "raster.png")
        _plots.plot_first_spikes(network, test, out / "first_spikes.png")

    def augment(rng, batch):
        return add_noise(rng, batch, cfg.noise)

    data = (train, validation, test)
    return _loop.run(
        cfg, history, data, "Digits", plot, target=0.95, augment=augment if cfg.noise else None
    )


if __name__ == "__main__":
    main()
