"""Train a spiking network on the Yin-Yang data set with exact gradients.

    python examples/yinyang.py                      # EventProp, 5-120-3, defaults below
    python examples/yinyang.py --method autodiff --epochs 5 --out runs/try
    python examples/yinyang.py --out runs/try --epochs 10 --resume   # continue a run

Every feature (x, y, 1-x, 1-y, bias) becomes one input spike at time
`feature * t_late` (the bias spikes at t = 0); a hidden layer of LIF neurons that spike
at most once (`v_reset = -1000`) feeds three output neurons, and the class is the
output neuron that spikes first. The loss acts on the output first-spike times.
Writes `checkpoint.eqx`/`.json`, `history.json` and PNG plots (training curves, a spike
raster, the decision map) to `--out` (default `runs/yinyang-<method>-<style>-seed<seed>`).
"""

import argparse
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import _loop  # noqa: E402
import _plots  # noqa: E402

from eqsnn import datasets  # noqa: E402

DEFAULTS = dict(epochs=150, hidden=200, lr=2e-3, w_hidden=[3.0, 1.6], w_out=[0.5, 0.8])


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _common.add_common_arguments(parser)
    parser.add_argument("--train-size", type=int, default=5000)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the data sets")
    parser.set_defaults(**DEFAULTS)
    cfg = parser.parse_args(argv)
    if cfg.out is None:
        cfg.out = Path("runs") / f"yinyang-{cfg.method}-{cfg.style}-seed{cfg.seed}"
    return cfg


def yinyang_features(xy):
    """Features (x, y, 1-x, 1-y, bias) of points in the unit square."""
    return np.concatenate([xy, 1 - xy, np.full((len(xy), 1), datasets.BIAS_VALUE)], axis=1)


def main(argv=None) -> list[dict]:
    cfg, history = _loop.resume_settings(parse_args(argv))
    _loop.setup_jax(cfg)
    data_key = jax.random.key(cfg.data_seed)
    train = datasets.yinyang(jax.random.fold_in(data_key, 0), cfg.train_size)
    test = datasets.yinyang(jax.random.fold_in(data_key, 1), cfg.test_size)
    names = datasets.YINYANG_CLASS_NAMES

    def plot(network, out):
        sample, label = test.inputs[0], int(test.labels[0])
        _plots.plot_raster(network, sample, label, out / "raster.png", names)
        _plots.plot_decision_map(network, yinyang_features, test, out / "decision_map.png", names)

    return _loop.run(cfg, history, train, test, "Yin-Yang", plot)


if __name__ == "__main__":
    main()
