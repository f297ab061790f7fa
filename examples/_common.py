"""Shared parts of the training examples: the network, its loss and optimiser, the options.

`examples/yinyang.py` and `examples/digits.py` differ only in their data and settings;
what they share lives here, in `_loop.py` (training loop, checkpoints, the run) and in
`_plots.py` (matplotlib, imported only there).
"""

import argparse
import enum
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

import eqsnn
from eqsnn import training
from eqsnn.encode import SpatioTemporalEncoder, target_temporal_encode
from eqsnn.loss import accuracy, first_spike_times, mse_loss, ttfs_loss


class Method(enum.Enum):
    """How the gradients are computed: the layers' `adjoint=`."""

    EVENTPROP = "eventprop"  # the EventProp adjoint (eqsnn.EventProp())
    AUTODIFF = "autodiff"  # jax.grad through the exact simulation (eqsnn.AutoDiff())

    def adjoint(self) -> eqsnn.AbstractAdjoint:
        return eqsnn.EventProp() if self is Method.EVENTPROP else eqsnn.AutoDiff()


class Style(enum.Enum):
    """Network architecture."""

    FEEDFORWARD = "feedforward"  # two feed-forward eqsnn.LIF layers: inputs -> hidden -> output
    RECURRENT = "recurrent"  # one eqsnn.RecurrentLIF [hidden, output], all-to-all weights from 0


class Engine(enum.Enum):
    """How the layers find their spikes: the layers' `engine=` (see eqsnn.AutoEngine)."""

    WINDOW_SCAN = "window-scan"  # eqsnn.WindowScan: each neuron on its own, a spike budget each
    INTERVAL_SCAN = "interval-scan"  # eqsnn.IntervalScan: a scan over the input intervals
    EVENT_LOOP = "event-loop"  # eqsnn.EventLoop: one loop over all events (any connectivity)


ENGINE_ALIASES = {"parallel": Engine.WINDOW_SCAN.value, "sequential": Engine.INTERVAL_SCAN.value}
"""`--engine` values of earlier versions of the examples (in the settings of a run that
`--resume` continues)."""


def engine(cfg: argparse.Namespace, style: Style) -> eqsnn.AbstractEngine:
    """The engine of the layers: `--engine` (default: the window scan with
    `--spikes-per-neuron` spikes per neuron for feed-forward layers, the event loop for the
    fully connected recurrent layer, the only engine it can run)."""
    name = ENGINE_ALIASES.get(cfg.engine, cfg.engine)
    if name is None:
        choice = Engine.WINDOW_SCAN if style is Style.FEEDFORWARD else Engine.EVENT_LOOP
    else:
        choice = Engine(name)
    if style is Style.RECURRENT and choice is not Engine.EVENT_LOOP:
        raise SystemExit(
            f"--engine {choice.value} needs --style feedforward (the recurrent style is fully "
            "connected: only the event loop runs it)."
        )
    if choice is Engine.WINDOW_SCAN:
        return eqsnn.WindowScan(max_spikes_per_neuron=cfg.spikes_per_neuron)
    if choice is Engine.INTERVAL_SCAN:
        return eqsnn.IntervalScan(max_spikes_per_interval=1)
    return eqsnn.EventLoop()


class Metrics(NamedTuple):
    """Per-sample metrics, averaged over batches by eqsnn.training."""

    accuracy: jax.Array
    spikes: jax.Array  # spikes of all layers in this sample
    quiet_hidden: jax.Array  # fraction of hidden neurons without a spike
    silent_hidden: jax.Array  # per hidden neuron: 1 if it did not spike in this sample
    quiet_output: jax.Array  # fraction of output neurons without a spike
    missed: jax.Array  # one-hot of the label if the correct output neuron did not spike
    dropped: jax.Array  # spikes lost by any layer in this sample (the output's `dropped`)


class Network(eqx.Module):
    """The example's model as the training code sees it: calling it returns the (input,
    hidden, output) spikes of one sample. `to_model()` is the same network as public eqsnn
    modules, an `eqx.nn.Sequential` of the latency encoder and the layers: what
    `eqsnn.training.save` stores and `eqsnn.training.load` gives back (`from_model`)."""

    encoder: SpatioTemporalEncoder
    layers: tuple[eqx.Module, ...]
    n_hidden: int = eqx.field(static=True)
    n_classes: int = eqx.field(static=True)

    def __init__(self, encoder: SpatioTemporalEncoder, layers):
        self.encoder, self.layers = encoder, tuple(layers)
        if len(self.layers) == 2:  # feed-forward: hidden and output layers
            self.n_hidden, self.n_classes = self.layers[0].out_size, self.layers[1].out_size
        else:  # one recurrent layer of populations [hidden, output]
            self.n_hidden, self.n_classes = self.layers[0].layers

    @classmethod
    def from_model(cls, model: eqx.nn.Sequential) -> "Network":
        """The network of a saved model (`eqsnn.training.load` of `to_model()`)."""
        encoder, *layers = model.layers
        return cls(encoder, layers)

    def to_model(self) -> eqx.nn.Sequential:
        """The network as public eqsnn modules: features in, output-layer spikes out."""
        return eqx.nn.Sequential([self.encoder, *self.layers])

    def __call__(self, features):
        spikes_in = self.encoder(features)
        if len(self.layers) == 2:
            hidden = self.layers[0](spikes_in)
            return spikes_in, hidden, self.layers[1](hidden)
        (layer,) = self.layers
        both = layer(spikes_in)
        return spikes_in, layer.population_spikes(both, 0), layer.population_spikes(both, 1)


def build_network(cfg: argparse.Namespace, n_features: int, n_classes: int, *, key) -> Network:
    """Latency encoder, then LIF layers, with the initial weights of `cfg`."""
    method, style = Method(cfg.method), Style(cfg.style)
    params = lif_parameters(cfg)
    t_max = cfg.t_max_syn * cfg.tau_syn
    d = cfg.duplication if cfg.duplication > 1 else None
    n_in = n_features * (d or 1)
    hidden_init = dict(mean=cfg.w_hidden[0] / (d or 1), std=cfg.w_hidden[1] / (d or 1))
    k_hidden, k_out = jax.random.split(key)
    settings = dict(engine=engine(cfg, style), adjoint=method.adjoint())
    if style is Style.FEEDFORWARD:
        k = cfg.spikes_per_neuron
        hidden = eqsnn.LIF(
            n_in,
            cfg.hidden,
            k * cfg.hidden,
            t_max,
            params,
            key=k_hidden,
            duplication=d,
            **hidden_init,
            **settings,
        )
        out = eqsnn.LIF(
            cfg.hidden,
            n_classes,
            k * n_classes,
            t_max,
            params,
            key=k_out,
            mean=cfg.w_out[0],
            std=cfg.w_out[1],
            **settings,
        )
        layers = (hidden, out)
    else:
        layers = (
            eqsnn.RecurrentLIF(
                n_in,
                [cfg.hidden, n_classes],
                cfg.hidden + n_classes,
                t_max,
                params,
                key=key,
                duplication=d,
                mean=[hidden_init["mean"], cfg.w_out[0]],
                std=[hidden_init["std"], cfg.w_out[1]],
                connectivity=eqsnn.Connectivity.FULL,
                **settings,
            ),
        )
    t_late = cfg.t_late_syn * cfg.tau_syn
    encoder = SpatioTemporalEncoder(t_late, duplication=d, duplicate_neurons=d is not None)
    return Network(encoder, layers)


@eqx.filter_jit
def bump(network: Network, hidden, output) -> Network:
    """Add `hidden[j]` to every weight into hidden neuron `j` and `output[k]` to every
    weight from the hidden neurons to output neuron `k`: revives neurons that stopped
    spiking."""
    if len(network.layers) == 2:
        w_hidden, w_out = network.layers[0].weights.input, network.layers[1].weights.input
        return eqx.tree_at(
            lambda n: (n.layers[0].weights.input, n.layers[1].weights.input),
            network,
            (w_hidden + hidden.astype(w_hidden.dtype), w_out + output.astype(w_out.dtype)),
        )
    h, w = network.n_hidden, network.layers[0].weights
    hidden, output = hidden.astype(w.input.dtype), output.astype(w.recurrent.dtype)
    return eqx.tree_at(
        lambda n: (n.layers[0].weights.input, n.layers[0].weights.recurrent),
        network,
        (w.input.at[:, :h].add(hidden), w.recurrent.at[:h, h:].add(output)),
    )


def trainable(network):
    """The arrays of `network` that the optimiser sees."""
    return eqx.filter(network, eqx.is_array)


def lif_parameters(cfg: argparse.Namespace) -> eqsnn.LIFParameters:
    return eqsnn.LIFParameters(
        tau_syn=cfg.tau_syn, tau_mem=cfg.tau_mem, v_th=cfg.v_th, v_reset=cfg.v_reset
    )


def _quiet(spikes, n: int, t_max: float):
    return jnp.mean(first_spike_times(spikes, n, t_max=t_max) >= t_max)


def make_sample_loss(cfg: argparse.Namespace) -> training.SampleLoss:
    """`sample_loss(network, features, label) -> (loss, Metrics)` for `eqsnn.training`:
    `cfg.ttfs_weight` x cross-entropy (plus the early term) + `cfg.mse_weight` x MSE."""
    t_max, n_hidden = cfg.t_max_syn * cfg.tau_syn, cfg.hidden

    def sample_loss(network: Network, features, label):
        _, hidden, out = network(features)
        n = network.n_classes
        t_correct = first_spike_times(out, n, t_max=t_max)[label]
        missed = t_correct >= t_max
        loss = 0.0
        if cfg.ttfs_weight:
            ttfs = ttfs_loss(
                out, label, n, t_max=t_max, tau_mem=cfg.tau_syn, temperature=cfg.temperature
            )
            # Goeltz et al. 2021; not computed at --early-weight 0, where expm1 of late
            # spikes (t / early_tau > 88 in float32) would be inf, and 0 * inf NaN.
            early = jnp.expm1(t_correct / cfg.early_tau) if cfg.early_weight else 0.0
            # A silent correct neuron gets no gradient; the others would only be pushed
            # later, silencing the network. Skip the sample; `revive` wakes the neuron.
            loss = jnp.where(missed, 0.0, cfg.ttfs_weight * (ttfs + cfg.early_weight * early))
        if cfg.mse_weight:
            t_correct, t_wrong = cfg.t_correct_syn * cfg.tau_syn, cfg.t_wrong_syn * cfg.tau_syn
            targets = target_temporal_encode(label, n, t_correct, t_wrong)
            loss = loss + cfg.mse_weight * mse_loss(out, targets, t_max=t_max, tau_mem=cfg.tau_mem)
        correct = accuracy(out, label, n, t_max=t_max)
        n_spikes = (hidden.count() + out.count()).astype(correct.dtype)
        silent_hidden = (first_spike_times(hidden, n_hidden, t_max=t_max) >= t_max).astype(
            correct.dtype
        )
        quiet_hidden = jnp.mean(silent_hidden)
        quiet_output = _quiet(out, n, t_max).astype(correct.dtype)
        missed_one_hot = (jnp.arange(n) == label) & missed
        return loss, Metrics(
            correct,
            n_spikes,
            quiet_hidden,
            silent_hidden,
            quiet_output,
            missed_one_hot.astype(correct.dtype),
            out.dropped.astype(correct.dtype),  # every layer adds its losses to its input's
        )

    return sample_loss


def make_optimiser(cfg: argparse.Namespace, steps_per_epoch: int):
    """Adam with a cosine (or constant) learning rate; the hidden layer's rate is
    `cfg.lr_hidden` times larger (its weights are larger), optionally clipped gradients."""
    lr = learning_rate(cfg, steps_per_epoch)

    def adam(factor: float):
        clip = [] if cfg.clip is None else [optax.clip_by_global_norm(cfg.clip)]
        return optax.chain(*clip, optax.adam(lambda step: factor * lr(step)))

    transforms = {"hidden": adam(cfg.lr_hidden), "output": adam(1.0)}
    return optax.multi_transform(transforms, _layer_labels)


def learning_rate(cfg: argparse.Namespace, steps_per_epoch: int) -> optax.Schedule:
    """The learning rate (of the output layer) at each training step."""
    if cfg.schedule == "cosine":
        return optax.cosine_decay_schedule(cfg.lr, cfg.epochs * steps_per_epoch, alpha=0.01)
    return optax.constant_schedule(cfg.lr)


def _layer_labels(params):
    """ "hidden" for the weights into the hidden neurons, "output" for the others."""
    two_layers = len(params.layers) == 2

    def label(path, _):
        names = [getattr(k, "name", getattr(k, "idx", None)) for k in path]
        into_hidden = names[:2] == ["layers", 0] and (two_layers or names[-1] == "input")
        return "hidden" if into_hidden else "output"

    return jax.tree_util.tree_map_with_path(label, params)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options shared by the examples (each example sets its defaults)."""
    add = parser.add_argument
    add("--seed", type=int, default=0, help="seed of the initial weights and of the shuffling")
    add("--epochs", type=int, help="training epochs")
    add("--hidden", type=int, help="hidden neurons")
    add(
        "--method",
        choices=[m.value for m in Method],
        default=Method.EVENTPROP.value,
        help="gradients: the EventProp adjoint, or autodiff through the exact simulation",
    )
    add(
        "--style",
        choices=[s.value for s in Style],
        default=Style.FEEDFORWARD.value,
        help="two eqsnn.LIF layers, or one fully connected eqsnn.RecurrentLIF [hidden, output]",
    )
    add(
        "--engine",
        choices=[e.value for e in Engine],
        help="how the layers find their spikes (if not given: window-scan; with --style "
        "recurrent: event-loop)",
    )
    add("--spikes-per-neuron", type=int, default=1, help="spike budget per neuron and sample")
    add("--ttfs-weight", type=float, default=1.0, help="weight of the cross-entropy loss")
    add("--mse-weight", type=float, default=0.0, help="weight of the MSE-to-targets loss")
    add("--lr", type=float, help="Adam learning rate (peak of the schedule)")
    add(
        "--schedule",
        choices=["cosine", "constant"],
        default="cosine",
        help="learning rate over the --epochs",
    )
    add("--batch-size", type=int, default=64, help="samples per training step")
    add(
        "--devices",
        type=int,
        help="data-parallel over the first N local devices (if not given: all; the batch size "
        "must be divisible by N)",
    )
    add("--lr-hidden", type=float, default=2.0, help="hidden layer lr = this x --lr")
    add(
        "--average",
        type=float,
        default=0.99,
        help="evaluate and save the moving average of the weights over the steps with this "
        "decay per step (0: the weights of the last step)",
    )
    add(
        "--clip",
        type=float,
        help="clip the gradient to this global norm (if not given: no clipping)",
    )
    add(
        "--out",
        type=Path,
        help="run folder: checkpoint, history, saved models, plots (if not given: "
        "runs/<example>-<method>-...-seed<seed>)",
    )
    add("--resume", action="store_true", help="continue the run in --out with its settings")
    add("--overwrite", action="store_true", help="replace a run that --out holds already")
    add(
        "--evaluate",
        type=Path,
        metavar="MODEL",
        help="only report the test accuracy of a saved model (e.g. runs/.../model-best.eqx)",
    )
    add("--stop-at", type=float, help="stop once the test accuracy reaches this fraction")
    add("--x64", action="store_true", help="float64 instead of float32")
    add("--no-plots", action="store_true", help="skip the PNG plots")
    add("--no-progress", action="store_true", help="no progress bar (one line per epoch)")
    add("--temperature", type=float, default=0.2, help="ttfs: softmax temperature, x tau_syn")
    add("--early-weight", type=float, default=3e-3, help="ttfs: weight of exp(t_correct / tau) - 1")
    add("--early-tau", type=float, default=6.4e-3, help="ttfs: that tau in seconds")
    add(
        "--bump",
        type=float,
        default=1e-3,
        help="weight bump that revives silent neurons (scaled by the learning-rate schedule)",
    )
    add(
        "--quiet-hidden",
        type=float,
        default=1.0,
        help="bump a hidden neuron silent in at least this fraction of a batch's samples",
    )
    add(
        "--quiet-output",
        type=float,
        default=0.0,
        help="bump an output neuron silent in more than this fraction of its class's samples",
    )
    add("--duplication", type=int, default=1, help="copies of each input spike (own neurons)")
    add("--tau-syn", type=float, default=5e-3, help="synaptic time constant in seconds")
    add("--tau-mem", type=float, default=1e-2, help="membrane time constant in seconds")
    add("--v-th", type=float, default=1.0, help="threshold voltage")
    add("--v-reset", type=float, default=-1000.0, help="voltage after a spike (-1000: one spike)")
    # Times in units of tau_syn.
    add("--t-max-syn", type=float, default=4.0, help="t_max / tau_syn")
    add("--t-late-syn", type=float, default=2.0, help="latest input spike time / tau_syn")
    add(
        "--t-correct-syn",
        type=float,
        default=0.8,
        help="mse: target time of the correct class / tau_syn",
    )
    add(
        "--t-wrong-syn",
        type=float,
        default=1.2,
        help="mse: target time of the other classes / tau_syn",
    )
    add(
        "--w-hidden",
        type=float,
        nargs=2,
        metavar=("MEAN", "STD"),
        help="initial weights into the hidden neurons",
    )
    add(
        "--w-out",
        type=float,
        nargs=2,
        metavar=("MEAN", "STD"),
        help="initial weights into the output neurons",
    )
