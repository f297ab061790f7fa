"""Trainable delays and per-neuron time constants in the examples (issue 17).

`--delays synapse|source` gives both feed-forward layers trainable synaptic delays
(`eqsnn.LIF(..., delays=...)`, in `layer.weights.delays`); `--train-taus` makes `tau_mem`,
`tau_syn` and `v_th` per-neuron arrays that the optimiser trains with the weights;
`--t-ref` sets an absolute refractory period. Without any of them (`--t-ref 0`) every
function here hands over to `_common`, unchanged: the same network, optimiser and steps.

**Initialisation.** The hidden layer's delays start uniform in `[0, --delay-init]`
seconds, so that from the first step every hidden neuron sees its inputs shifted by
different amounts and some of them coincide: a delay gets a gradient only through the
spikes it moves, and zero delays everywhere would start every neuron at the same place.
The output layer's delays start at zero (the readout of a network without delays).
Per-neuron parameters start at the constants `--tau-mem`, `--tau-syn`, `--v-th`.

**Learning rates.** Adam steps each parameter by about its learning rate whatever the
size of its gradient, so every group gets a rate in its own units: the weights (and
`v_th`, in the units of the weights) `--lr` (hidden layer: times `--lr-hidden`), the delays
`--lr-delays` seconds and the time constants `--lr-taus` seconds. `--lr` of 2e-3 on a
delay would move it by 2 ms a step, against the 5 ms of `tau_syn`; on `tau_mem = 10 ms` by
20 % a step. All groups follow the same schedule (cosine by default).

**Constraints.** After every optimiser step (`constrain`) the delays are clamped to
`>= 0` (a negative delay acts as zero in the simulation and gets no gradient: left
negative, it would be stuck there), the time constants to `>= --tau-min` seconds and
`v_th` to `>= --v-th-min` (above `v_leak = 0`, so that resting neurons stay silent).
A hidden layer of another neuron model (`hidden_params` of `build_network`; Yin-Yang's
`--neuron alif`) trains its `tau_adapt` with the time constants and its `beta` with the
thresholds, clamped to `>= 0`.
The moving average of the weights (`--average`) averages clamped networks, so it
satisfies the constraints too.
"""

import argparse
import dataclasses

import _common
import _loop
import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqsnn
from eqsnn.encode import SpatioTemporalEncoder

DELAYS = ("none", "synapse", "source")
"""`--delays`: no delays, one per synapse `(in, out)`, or one per source neuron `(in,)`."""

TAUS = ("tau_mem", "tau_syn", "tau_adapt")


def add_arguments(
    parser: argparse.ArgumentParser,
    *,
    delay_init: float,
    lr_delays: float,
    lr_taus: float,
    t_ref: float | None = 0.0,
) -> None:
    """The options of this module, with the example's defaults (seconds)."""
    add = parser.add_argument
    add(
        "--delays",
        choices=DELAYS,
        default="none",
        help="trainable delays in both layers: one per synapse, one per source neuron, or none",
    )
    add(
        "--delay-init",
        type=float,
        default=delay_init,
        help="the hidden layer's delays start uniform in [0, this] seconds (the output "
        "layer's at 0)",
    )
    add("--lr-delays", type=float, default=lr_delays, help="Adam learning rate of the delays (s)")
    add(
        "--train-taus",
        action="store_true",
        help="train per-neuron tau_mem, tau_syn and v_th (starting at --tau-mem, --tau-syn, "
        "--v-th)",
    )
    add("--lr-taus", type=float, default=lr_taus, help="Adam learning rate of tau_mem, tau_syn (s)")
    add(
        "--t-ref",
        type=float,
        default=t_ref,
        help="absolute refractory period (s)"
        + (
            "; if not given: t_max, so at most one spike per neuron, however soon the "
            "voltage would recover from --v-reset"
            if t_ref is None
            else ""
        ),
    )
    add("--tau-min", type=float, default=1e-4, help="trained time constants stay >= this (s)")
    add("--v-th-min", type=float, default=0.05, help="trained thresholds stay >= this")


def used(cfg: argparse.Namespace) -> bool:
    """Whether the run trains delays or per-neuron parameters, or has a refractory period."""
    delays = getattr(cfg, "delays", "none") != "none"
    return delays or bool(getattr(cfg, "train_taus", False)) or t_ref(cfg) > 0


def t_ref(cfg: argparse.Namespace) -> float:
    """The refractory period: `--t-ref`, or `t_max` if it is `None`."""
    value = getattr(cfg, "t_ref", 0.0)
    return cfg.t_max_syn * cfg.tau_syn if value is None else value


def lif_parameters(cfg: argparse.Namespace, n: int) -> eqsnn.LIFParameters:
    """The parameters of a layer of `n` neurons: per-neuron arrays with --train-taus."""
    if not cfg.train_taus:
        return dataclasses.replace(_common.lif_parameters(cfg), t_ref=t_ref(cfg))
    dtype = jnp.result_type(float)  # float32, or float64 with --x64; not weakly typed,
    # or the first optimiser step (which returns strong types) would compile the step again
    return eqsnn.LIFParameters(
        tau_syn=jnp.full(n, cfg.tau_syn, dtype),
        tau_mem=jnp.full(n, cfg.tau_mem, dtype),
        v_th=jnp.full(n, cfg.v_th, dtype),
        v_reset=cfg.v_reset,
        t_ref=t_ref(cfg),
    )


def initial_delays(cfg: argparse.Namespace, n_in: int, n_out: int, key, maximum: float):
    """`None`, or delays of the `--delays` shape uniform in `[0, maximum]` seconds."""
    if cfg.delays == "none":
        return None
    shape = (n_in, n_out) if cfg.delays == "synapse" else (n_in,)
    return jax.random.uniform(key, shape, jnp.result_type(float), maxval=maximum)


def build_network(
    cfg: argparse.Namespace, n_features: int, n_classes: int, *, key, hidden_params=None
):
    """`_common.build_network`, with the delays and per-neuron parameters of `cfg`
    (feed-forward style only): the same weights for the same seed. `hidden_params`, if
    given, are the hidden layer's neuron parameters (another neuron model, e.g. an
    `eqsnn.ALIFParameters`) instead of `lif_parameters(cfg, cfg.hidden)`."""
    if not used(cfg) and hidden_params is None:
        return _common.build_network(cfg, n_features, n_classes, key=key)
    style = _common.Style(cfg.style)
    if style is not _common.Style.FEEDFORWARD:
        raise SystemExit("--delays and --train-taus need --style feedforward.")
    t_max, k = cfg.t_max_syn * cfg.tau_syn, cfg.spikes_per_neuron
    d = cfg.duplication if cfg.duplication > 1 else None
    n_in = n_features * (d or 1)
    k_hidden, k_out = jax.random.split(key)  # as _common.build_network
    k_delays = jax.random.fold_in(key, 2)
    settings = dict(engine=_common.engine(cfg, style), adjoint=_common.Method(cfg.method).adjoint())
    hidden = eqsnn.LIF(
        n_in,
        cfg.hidden,
        k * cfg.hidden,
        t_max,
        lif_parameters(cfg, cfg.hidden) if hidden_params is None else hidden_params,
        key=k_hidden,
        duplication=d,
        mean=cfg.w_hidden[0] / (d or 1),
        std=cfg.w_hidden[1] / (d or 1),
        delays=initial_delays(cfg, n_in, cfg.hidden, k_delays, cfg.delay_init),
        **settings,
    )
    out = eqsnn.LIF(
        cfg.hidden,
        n_classes,
        k * n_classes,
        t_max,
        lif_parameters(cfg, n_classes),
        key=k_out,
        mean=cfg.w_out[0],
        std=cfg.w_out[1],
        delays=initial_delays(cfg, cfg.hidden, n_classes, k_delays, 0.0),
        **settings,
    )
    t_late = cfg.t_late_syn * cfg.tau_syn
    encoder = SpatioTemporalEncoder(t_late, duplication=d, duplicate_neurons=d is not None)
    return _common.Network(encoder, (hidden, out))


def _names(path) -> set:
    return {getattr(k, "name", None) for k in path}


def _labels(params):
    """`_common`'s labels ("hidden", "output"), then "delays" and "taus" for those leaves."""

    def relabel(path, label):
        names = _names(path)
        if "delays" in names:
            return "delays"
        return "taus" if names & set(TAUS) else label

    return jax.tree_util.tree_map_with_path(relabel, _common._layer_labels(params))


def make_optimiser(cfg: argparse.Namespace, steps_per_epoch: int):
    """`_common.make_optimiser`, plus Adam groups for the delays (`--lr-delays`) and the
    time constants (`--lr-taus`), on the same schedule."""
    if not used(cfg):
        return _common.make_optimiser(cfg, steps_per_epoch)
    lr = _common.learning_rate(cfg, steps_per_epoch)

    def adam(factor: float):
        clip = [] if cfg.clip is None else [optax.clip_by_global_norm(cfg.clip)]
        return optax.chain(*clip, optax.adam(lambda step: factor * lr(step)))

    transforms = {
        "hidden": adam(cfg.lr_hidden),
        "output": adam(1.0),
        "delays": adam(cfg.lr_delays / cfg.lr),
        "taus": adam(cfg.lr_taus / cfg.lr),
    }
    return optax.multi_transform(transforms, _labels)


def constrain(cfg: argparse.Namespace):
    """`network -> network` that clamps the delays to >= 0, the time constants to
    >= `--tau-min`, the thresholds to >= `--v-th-min` and the adaptation strengths `beta`
    to >= 0 (after every step); `None` when nothing is trained that needs it."""
    if not used(cfg):
        return None
    return eqx.Partial(_clamp, tau_min=cfg.tau_min, v_th_min=cfg.v_th_min)


@eqx.filter_jit
def _clamp(network, *, tau_min: float, v_th_min: float):
    arrays, rest = eqx.partition(network, eqx.is_inexact_array)

    def clamp(path, x):
        names = _names(path)
        if "delays" in names or "beta" in names:
            return jnp.maximum(x, 0.0)
        if names & set(TAUS):
            return jnp.maximum(x, tau_min)
        return jnp.maximum(x, v_th_min) if "v_th" in names else x

    return eqx.combine(jax.tree_util.tree_map_with_path(clamp, arrays), rest)


def recipe(cfg: argparse.Namespace):
    """The `_loop.Recipe` of `cfg`: this module's network, optimiser and constraints."""
    return _loop.Recipe(
        build=build_network,
        optimiser=make_optimiser,
        constrain=constrain(cfg),
        models=True,
    )
