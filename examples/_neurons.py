"""The hidden layer's neuron model in the examples: `--neuron lif|alif|if` (issue 18).

`--neuron alif` makes the hidden neurons adaptive (`eqsnn.ALIFParameters`: each spike
raises the threshold by `--beta`, which decays back with `--tau-adapt`; it acts only on
neurons that spike more than once, e.g. with `--v-reset 0 --spikes-per-neuron 3`),
`--neuron if` non-leaky (`eqsnn.IFParameters`, starting at v_leak = 0); the output layer
stays LIF, and with `--neuron lif` (the default) nothing changes. These models run on the
window scan of the feed-forward style only (not with --style recurrent, --engine
interval-scan or event-loop) and have no refractory period (--t-ref 0, given explicitly
where the example's default is another). With --train-taus the ALIF's tau_adapt and beta
are trained too (see `_timing.py`). Shared by `yinyang.py` and `intervals.py`.
"""

import argparse

import _cli
import _common
import _loop
import _timing
import jax.numpy as jnp

import eqsnn

NEURONS = ("lif", "alif", "if")
"""`--neuron`: the hidden layer's model (eqsnn.LIFParameters, ALIFParameters, IFParameters)."""

V_LEAK = eqsnn.LIFParameters().v_leak
"""The examples' leak voltage (LIFParameters' default, 0): the IF neurons start there."""


def add_arguments(parser: argparse.ArgumentParser, *, tau_adapt: float, beta: float) -> None:
    """`--neuron`, `--tau-adapt` (seconds) and `--beta` (units of `--v-th`), with the
    example's defaults of the latter two."""
    add = parser.add_argument
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
        default=tau_adapt,
        help="--neuron alif: time constant of the threshold adaptation in seconds",
    )
    add(
        "--beta",
        type=float,
        default=beta,
        help="--neuron alif: threshold increase per spike (units of --v-th)",
    )


def parse(parser: argparse.ArgumentParser, argv, default_out, example: str):
    """`_cli.parse`, refusing a `--neuron` that cannot run (`check`) before `_cli.parse`,
    which may clear --out, and after it, on the settings that --resume or --evaluate
    continue."""
    check(parser.parse_args(argv))
    cfg, history = _cli.parse(parser, argv, default_out, example)
    check(cfg)
    return cfg, history


def check(cfg: argparse.Namespace) -> None:
    """Refuse a `--neuron` other than lif where it cannot run, or with bad parameters.

    **Raises:** `SystemExit` with a message naming the option at fault.
    """
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
        got = f"{cfg.t_ref:g}" if cfg.t_ref is not None else "the default, t_max"
        raise SystemExit(
            f"{who} has no refractory period: --t-ref must be 0 (got {got}); give --t-ref 0, "
            "and limit the spikes with --v-reset and --spikes-per-neuron instead."
        )
    try:
        hidden_parameters(cfg, 1, arrays=False)
    except ValueError as error:
        raise SystemExit(f"{who}: {error}") from None


def hidden_parameters(cfg: argparse.Namespace, n: int, arrays: bool | None = None):
    """The hidden layer's neuron parameters for `n` neurons: `--neuron`'s model with
    `--tau-syn`, `--tau-mem`, `--v-th`, `--v-reset` (per-neuron arrays with
    --train-taus, or `arrays=True`; also `tau_adapt` and `beta`)."""
    if getattr(cfg, "neuron", "lif") == "lif":
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


def build_network(cfg: argparse.Namespace, n_features: int, n_classes: int, *, key):
    """`_timing.build_network` with the `--neuron` model in the hidden layer."""
    params = hidden_parameters(cfg, cfg.hidden)
    return _timing.build_network(cfg, n_features, n_classes, key=key, hidden_params=params)


def recipe(cfg: argparse.Namespace) -> _loop.Recipe:
    """`_timing.recipe(cfg)`, building the hidden layer of `--neuron` (lif: unchanged)."""
    base = _timing.recipe(cfg)
    return base if getattr(cfg, "neuron", "lif") == "lif" else base._replace(build=build_network)
