"""Train a spiking network to tell the interval between two spikes, with trainable delays.

    python examples/intervals.py                     # EventProp, 2-10-3, trainable delays
    python examples/intervals.py --delays none       # the same network without delays
    python examples/intervals.py --train-taus --epochs 5 --out runs/try   # and time constants
    python examples/intervals.py --delays none --neuron alif --t-ref 0 --v-reset 0 \
        --spikes-per-neuron 3 --x64                # adaptive hidden neurons, no delays

The data are `eqsnn.datasets.intervals`: channels 0 and 1 each spike once, at
`x * t_late` (`t_late = --t-late-syn * --tau-syn` = 0.48 s), and the class is the
interval between the two spikes (20, 40 or 60 ms with the defaults); either channel's
spike time alone says nothing about the class. A hidden layer of LIF neurons feeds one
output neuron per class, and the class is the output neuron that spikes first. With
delays (`--delays synapse`, the default) a hidden neuron that delays the earlier spike
by the interval fires on the coincidence (Jeffress's model); without them, with
`tau_syn = 5 ms` and `tau_mem = 10 ms`, the first spike's trace has all but vanished
40 ms later, so 40 and 60 ms look alike. `--train-taus` also trains per-neuron
`tau_mem`, `tau_syn` and `v_th`. How the delays start (uniform in [0, 60 ms]), their
learning rate (`--lr-delays`, in seconds) and the constraints after every step (delays
>= 0, time constants >= `--tau-min`, thresholds >= `--v-th-min`): see `_timing.py`.

`--neuron alif` (issue 18; `_neurons.py`, shared with `yinyang.py`) makes the hidden
neurons adaptive: a hidden neuron that spikes at the first input still carries a
threshold raised by `beta * exp(-interval / tau_adapt)` (`--beta` 1, `--tau-adapt`
0.05 s here) when the second input comes, so whether it spikes again depends on the
interval long after the synaptic trace has gone. The models have no refractory period:
`--neuron alif` needs `--t-ref 0` (the default here, `t_max`, is refused) and limits the
spikes by `--v-reset` and `--spikes-per-neuron` instead; the output layer stays LIF,
with the same reset and budget. Measured in `benchmarks/RESULTS.md` (*Intervals with
ALIF hidden neurons*, with `--x64`: in float32 the EventProp gradients of ALIF layers
can be NaN for spikes this late): the hidden layer codes the interval, but the
first-spike readout does not learn to use it.

Settings that differ from the other examples, for the long window (`t_max` = 0.57 s):
every neuron spikes at most once (refractory period `--t-ref` = `t_max`: the reset to
-1000 alone wears off within ~100 ms); the loss is the time-to-first-spike
cross-entropy without the early-spike term (`--early-weight 0`: `exp(t / 6.4 ms)` would
overflow); and silent neurons are revived by larger weight bumps (`--bump 0.1`: a sample
whose correct output neuron stays silent gives no gradient). Writes the checkpoint (for
--resume), `history.json` and plots to `--out` (default
`runs/intervals[-k<classes>]-<delays>[-taus][-alif]-seed<seed>`, with `-k<classes>` for a
`--classes` other than 3) and the saved models (`model-*.eqx`, with
their trained delays and parameters). A new run does not overwrite a run there without
--overwrite.
"""

import argparse
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402
import _common  # noqa: E402
import _loop  # noqa: E402
import _neurons  # noqa: E402
import _plots  # noqa: E402
import _timing  # noqa: E402

from eqsnn import datasets  # noqa: E402

DEFAULTS = dict(
    epochs=30,
    delays="synapse",
    hidden=10,
    lr=5e-3,
    w_hidden=[3.0, 1.0],
    w_out=[3.0, 2.0],
    t_late_syn=96.0,  # t_late = 0.48 s
    t_max_syn=114.0,  # t_max = 0.57 s: after the last input, the longest delay and a margin
    early_weight=0.0,
    bump=0.1,
    average=0.9,
)


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (`parse_args` also prepares the run folder)."""
    parser = _cli.new_parser(__doc__)
    _common.add_common_arguments(parser)
    _timing.add_arguments(parser, delay_init=0.06, lr_delays=1e-3, lr_taus=2e-5, t_ref=None)
    add = parser.add_argument
    add("--train-size", type=int, default=3000, help="training samples")
    add("--validation-size", type=int, default=0, help="validation samples (0: none)")
    add("--test-size", type=int, default=600, help="test samples")
    add("--data-seed", type=int, default=0, help="seed of the training, validation and test sets")
    add("--classes", type=int, default=3, help="number of intervals (classes)")
    add("--channels", type=int, default=2, help="input channels: the pair, then distractors")
    add("--spread", type=float, default=0.5, help="share of the window of the common onset")
    add("--jitter", type=float, default=0.0, help="spike-time jitter, fraction of t_late")
    _neurons.add_arguments(parser, tau_adapt=0.05, beta=1.0)
    parser.set_defaults(**DEFAULTS)
    return parser


def parse_args(argv=None) -> tuple[argparse.Namespace, list[dict]]:
    """The options and the history so far (see `_cli.parse`: --resume, --evaluate, --out;
    `_neurons.parse` refuses a `--neuron` that cannot run)."""
    return _neurons.parse(build_parser(), argv, default_out, "intervals")


def default_out(cfg: argparse.Namespace) -> Path:
    """`runs/intervals[-k<classes>]-<delays>[-taus][-alif]-seed<seed>`; the number of classes
    appears when it is not the default 3 (so runs of the default task keep their folder)."""
    classes = "" if cfg.classes == 3 else f"-k{cfg.classes}"
    taus = "-taus" if cfg.train_taus else ""
    neuron = "" if cfg.neuron == "lif" else f"-{cfg.neuron}"
    return Path("runs") / f"intervals{classes}-{cfg.delays}{taus}{neuron}-seed{cfg.seed}"


def load(cfg: argparse.Namespace):
    """`(train, validation, test)`: independent draws, each with its own key (`validation`
    is `None` for --validation-size 0)."""
    key = jax.random.key(cfg.data_seed)
    options = dict(
        n_classes=cfg.classes, n_channels=cfg.channels, jitter=cfg.jitter, spread=cfg.spread
    )

    def draw(i: int, n: int):
        return datasets.intervals(jax.random.fold_in(key, i), n, **options) if n else None

    return draw(0, cfg.train_size), draw(2, cfg.validation_size), draw(1, cfg.test_size)


def intervals_ms(cfg: argparse.Namespace) -> str:
    """The classes' intervals in milliseconds, e.g. `20/40/60 ms`."""
    t_late = cfg.t_late_syn * cfg.tau_syn
    lengths = datasets.interval_lengths(cfg.classes, spread=cfg.spread)
    return "/".join(f"{1e3 * d * t_late:.0f}" for d in lengths) + " ms"


def main(argv=None) -> list[dict] | dict:
    """Train (the history), or with --evaluate test a saved model (its test metrics)."""
    cfg, history = parse_args(argv)
    _loop.setup_jax(cfg)
    train, validation, test = load(cfg)
    if cfg.evaluate is not None:
        return _loop.evaluate_saved(cfg, test)
    recipe = _neurons.recipe(cfg)

    def plot(network, out):
        _plots.plot_first_spikes(network, test, out / "first_spikes.png")

    taus = ", trained tau_mem/tau_syn/v_th" if cfg.train_taus else ""
    neuron = "" if cfg.neuron == "lif" else f", {cfg.neuron.upper()} hidden neurons"
    title = f"Intervals {intervals_ms(cfg)}, delays {cfg.delays}{taus}{neuron}"
    data = (train, validation, test)
    return _loop.run(cfg, history, data, title, plot, target=0.95, recipe=recipe)


if __name__ == "__main__":
    main()
