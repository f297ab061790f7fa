"""Train the Yin-Yang network with hardware in the loop, against an emulated analog chip.

    python examples/hardware_in_the_loop.py                    # defaults below
    python examples/hardware_in_the_loop.py --epochs 5 --out runs/try
    python examples/hardware_in_the_loop.py --ideal            # no non-idealities at all
    python examples/hardware_in_the_loop.py --evaluate runs/hardware-seed0/model-best.eqx

The network of `examples/yinyang.py` (here 5-120-3 by default, one spike per neuron,
first output spike decides), but every forward pass runs on an
`eqsnn.hardware.EmulatedBackend`:
6-bit (plus sign) weights, per-neuron fixed-pattern variation of tau_mem, tau_syn and the
threshold, spike-time jitter and a clock that time-stamps spikes. The layers are
`eqsnn.HardwareLIF`: the backend's spike times are the forward pass, and the gradients
are EventProp on a software replay of those spikes (the replay does not know the chip's
non-idealities: it uses the nominal model). Test accuracy is measured on the emulated chip
too, and so is the accuracy on the validation set (drawn like the training set, with its
own key) that picks `model-best.eqx`; `model-last.eqx` is the last model. Both load with
`eqsnn.training.load(path, backend=...)` (the chip is not stored: --evaluate rebuilds it
from the saved settings). Writes `checkpoint.eqx`/`.json`, `history.json`, the saved
models and plots to `--out` (default `runs/hardware-seed<seed>`); a new run does not
overwrite a run there without --overwrite.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _cli  # noqa: E402
import _common  # noqa: E402
import _loop  # noqa: E402
import yinyang  # noqa: E402

import eqsnn  # noqa: E402
from eqsnn import datasets  # noqa: E402
from eqsnn.hardware import EmulatedBackend  # noqa: E402

DEFAULTS = dict(
    epochs=20,
    hidden=120,
    lr=5e-3,
    lr_hidden=5.0,
    quiet_output=0.15,
    w_hidden=[3.0, 1.6],
    w_out=[0.5, 0.8],
)


def build_parser() -> argparse.ArgumentParser:
    """The command line's options (`parse_args` also prepares the run folder)."""
    parser = _cli.new_parser(__doc__)
    _common.add_common_arguments(parser)
    add = parser.add_argument
    add("--train-size", type=int, default=5000, help="training samples")
    add("--validation-size", type=int, default=500, help="validation samples (0: none)")
    add("--test-size", type=int, default=1000, help="test samples")
    add("--data-seed", type=int, default=0, help="seed of the training, validation and test sets")
    add("--chip-seed", type=int, default=0, help="seed of the emulated chip's fixed pattern")
    add("--weight-bits", type=int, default=6, help="weight magnitude bits (plus sign)")
    add("--tau-variation", type=float, default=0.05, help="fixed-pattern std of both taus")
    add("--v-th-variation", type=float, default=0.03, help="fixed-pattern std of thresholds")
    add("--jitter", type=float, default=2e-5, help="spike-time jitter std in seconds")
    add("--clock", type=float, default=1e-5, help="time-stamp clock period in seconds")
    add("--emulation-dt", type=float, default=2e-5, help="emulation time step in seconds")
    add("--min-rise", type=float, default=0.05, help="adjoint slope floor (see HardwareLIF)")
    add("--ideal", action="store_true", help="emulate an ideal chip (no non-idealities)")
    parser.set_defaults(**DEFAULTS)
    return parser


def parse_args(argv=None) -> tuple[argparse.Namespace, list[dict]]:
    """The options and the history so far (see `_cli.parse`: --resume, --evaluate, --out)."""
    parser = build_parser()
    return _cli.parse(
        parser, argv, lambda cfg: Path("runs") / f"hardware-seed{cfg.seed}", "hardware_in_the_loop"
    )


def make_backend(cfg: argparse.Namespace) -> EmulatedBackend:
    if cfg.ideal:
        return EmulatedBackend(seed=cfg.chip_seed, weight_bits=None, dt=cfg.emulation_dt)
    return EmulatedBackend(
        seed=cfg.chip_seed,
        weight_bits=cfg.weight_bits,
        tau_mem_variation=cfg.tau_variation,
        tau_syn_variation=cfg.tau_variation,
        v_th_variation=cfg.v_th_variation,
        jitter=cfg.jitter,
        clock=cfg.clock,
        dt=cfg.emulation_dt,
    )


def hardware_network(cfg: argparse.Namespace, n_features: int, n_classes: int, backend):
    """The network of `examples/yinyang.py`, with `eqsnn.HardwareLIF` layers (same
    initial weights) that run on `backend`."""
    network = _common.build_network(cfg, n_features, n_classes, key=jax.random.key(cfg.seed))
    layers = tuple(
        eqx.tree_at(
            lambda m: m.weights,
            eqsnn.HardwareLIF(
                layer.in_size,
                layer.out_size,
                layer.n_spikes,
                layer.t_max,
                layer.params,
                key=jax.random.key(0),  # weights replaced by the layer's own below
                backend=backend,
                min_rise=cfg.min_rise,
            ),
            layer.weights,
        )
        for layer in network.layers
    )
    return eqx.tree_at(lambda n: n.layers, network, layers)


def main(argv=None) -> list[dict] | dict:
    """Train (the history), or with --evaluate test a saved model (its test metrics)."""
    start = time.perf_counter()
    cfg, history = parse_args(argv)
    cfg.method, cfg.style, cfg.engine = "eventprop", "feedforward", "window-scan"
    _loop.setup_jax(cfg)
    train, validation, test = yinyang.load(cfg)
    backend = make_backend(cfg)
    if cfg.evaluate is not None:
        return _loop.evaluate_saved(cfg, test, backend)
    network = hardware_network(cfg, train.n_features, train.n_classes, backend)
    chip = (
        "ideal"
        if cfg.ideal
        else (
            f"{cfg.weight_bits}-bit weights, tau variation {cfg.tau_variation:g}, v_th variation "
            f"{cfg.v_th_variation:g}, jitter {cfg.jitter:g} s, clock {cfg.clock:g} s"
        )
    )
    print(
        f"Yin-Yang on an emulated chip ({chip}; dt {cfg.emulation_dt:g} s): "
        f"{_loop.describe_data((train, validation, test))}; 5-{cfg.hidden}-3 HardwareLIF "
        "network, min_rise "
        f"{cfg.min_rise:g}, loss {_loop.describe_loss(cfg)}, lr {cfg.lr}, batch "
        f"{cfg.batch_size}, seed {cfg.seed}, {'float64' if cfg.x64 else 'float32'}"
        + (f"; resuming after epoch {len(history)}" if history else "")
    )
    network, _, history = _loop.fit(
        cfg, network, train, test, history=history, validation=validation
    )
    cfg.out.mkdir(parents=True, exist_ok=True)
    (cfg.out / "history.json").write_text(json.dumps(history, indent=1))
    if not cfg.no_plots:
        import _plots

        _plots.plot_curves(history, cfg.out / "curves.png")
        sample, label = test.inputs[0], int(test.labels[0])
        names = datasets.YINYANG_CLASS_NAMES
        _plots.plot_raster(network, sample, label, cfg.out / "raster.png", names)
    print(
        _loop.summary(history, 0.93),
        f"(this session {time.perf_counter() - start:.0f} s; {backend.calls} backend calls)",
    )
    print(f"outputs in {cfg.out}/")
    return history


if __name__ == "__main__":
    main()
