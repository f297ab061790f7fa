r"""Export to and import from NIR, the Neuromorphic Intermediate Representation.

[NIR](https://neuroir.org) (PyPI `nir`) describes a spiking network as a graph of nodes
(`Input`, `Linear`, `CubaLIF`, `Output`, ...) that many simulators and chips read and
write. This module needs the `nir` package: `pip install 'eqsnn[nir]'`.

**The neuron.** NIR's `CubaLIF` node is

$$
\tau_\mathrm{syn}\dot I' = -I' + w_\mathrm{in} \odot x, \qquad
\tau_\mathrm{mem}\dot V = v_\mathrm{leak} - V + r \odot I',
$$

with reset to $v_\mathrm{reset}$ when $V$ crosses $v_\mathrm{threshold}$. Its input
$x = W_\mathrm{NIR}\, S$ comes from a `Linear` node, and a spike train is a sum of unit
Dirac deltas, $S_i(t) = \sum_k \delta(t - t_i^k)$. Integrating over one spike of input
$i$ shows that $I'_n$ jumps by $w_{\mathrm{in},n} W_{\mathrm{NIR}}[n, i] / \tau_\mathrm{syn}$.
With $I = r \odot I'$ this is eqsnn's neuron (see [`eqsnn.LIFParameters`][]),
$\tau_\mathrm{mem}\dot V = v_\mathrm{leak} - V + I$, $\tau_\mathrm{syn}\dot I = -I$,
whose current jumps by $W[i, n]$, if and only if

$$
W[i, n] = \frac{r_n\, w_{\mathrm{in},n}}{\tau_\mathrm{syn}}\, W_\mathrm{NIR}[n, i].
$$

[`eqsnn.nir.to_nir`][] writes $W_\mathrm{NIR} = W^\top$, $r = 1$ and
$w_\mathrm{in} = \tau_\mathrm{syn}$, so the weights are stored unchanged and the factor is
exactly one. [`eqsnn.nir.from_nir`][] applies the formula to any `CubaLIF`, so per-neuron
$r$ and $w_\mathrm{in}$ are folded into the weights. Times are in seconds, as everywhere
in eqsnn; voltages and currents keep their values.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import equinox as eqx
import numpy as np

from ._events import Overflow
from ._lif import LIF
from ._nir import META, build_layers, chain, check_supported, import_nir, recurrent_loops
from ._recurrent_lif import RecurrentLIF
from .solvers import AbstractCrossingSolver

if TYPE_CHECKING:
    import nir

__all__ = ["from_nir", "to_nir"]


Layer: TypeAlias = LIF | RecurrentLIF


def _out_size(layer: Layer) -> int:
    return layer.size if isinstance(layer, RecurrentLIF) else layer.out_size


def _layers_of(model) -> list[Layer]:
    if isinstance(model, LIF | RecurrentLIF):
        layers = [model]
    elif isinstance(model, eqx.nn.Sequential):
        layers = list(model.layers)
    elif isinstance(model, list | tuple):
        layers = list(model)
    else:
        raise TypeError(
            "to_nir: `model` must be an eqsnn.LIF or eqsnn.RecurrentLIF, or an eqx.nn.Sequential, "
            f"list or tuple of them, got {type(model).__name__}."
        )
    if not layers:
        raise ValueError("to_nir: `model` holds no layers.")
    for k, layer in enumerate(layers):
        if not isinstance(layer, LIF | RecurrentLIF):
            raise TypeError(
                f"to_nir: layer {k} is a {type(layer).__name__}; eqsnn exports eqsnn.LIF and "
                "eqsnn.RecurrentLIF layers (and their subclasses)."
            )
        if k and layer.in_size != _out_size(layers[k - 1]):
            raise ValueError(
                f"to_nir: layer {k} has in_size={layer.in_size} but layer {k - 1} has "
                f"{_out_size(layers[k - 1])} neurons."
            )
    return layers


def _settings(layer: Layer) -> dict[str, Any]:
    """What NIR has no field for, stored in the CubaLIF node's metadata."""
    settings = {
        "layer": type(layer).__name__,
        "n_spikes": layer.n_spikes,
        "t_max": layer.t_max,
        "overflow": layer.overflow.value,
    }
    if isinstance(layer, RecurrentLIF):
        settings["layers"] = np.array(layer.layers)
        settings["mask_input"] = np.array(layer.mask.input)
        settings["mask_recurrent"] = np.array(layer.mask.recurrent)
        if layer.max_spikes_per_neuron is not None:  # window scan per population
            settings["max_spikes_per_neuron"] = np.array(layer.max_spikes_per_neuron)
    else:
        for name in ("max_spikes_per_neuron", "max_spikes_per_interval"):
            if getattr(layer, name, None) is not None:  # the engine: exactly one is set
                settings[name] = getattr(layer, name)
    return settings


def _cuba_lif(nir, layer: Layer):
    p = layer.params

    def full(value: float) -> np.ndarray:
        return np.full(_out_size(layer), value, dtype=np.float64)

    return nir.CubaLIF(
        tau_syn=full(p.tau_syn),
        tau_mem=full(p.tau_mem),
        r=full(1.0),
        v_leak=full(p.v_leak),
        v_threshold=full(p.v_th),
        v_reset=full(p.v_reset),
        w_in=full(p.tau_syn),
        metadata={META: _settings(layer)},
    )


def _linear(nir, weight) -> Any:
    """A Linear node for eqsnn weights `(n_in, n_out)`: NIR's are `(n_out, n_in)`."""
    return nir.Linear(weight=np.ascontiguousarray(np.asarray(weight).T))


def to_nir(model: LIF | eqx.nn.Sequential | Sequence[LIF]) -> "nir.NIRGraph":
    r"""Export a network of eqsnn layers to a NIR graph.

    Layer $k$ of $n$ neurons becomes a `Linear` node `linear_k` (weight $W^\top$, shape
    `(n, in_size)`) followed by a `CubaLIF` node `lif_k` (every parameter an array of
    shape `(n,)`, with $r = 1$ and $w_\mathrm{in} = \tau_\mathrm{syn}$, so that the
    dynamics are identical: see [how the neuron maps](../howto/nir.md#how-the-neuron-maps)).
    A recurrent layer ([`eqsnn.RecurrentLIF`][]) also gets a `Linear` node `recurrent_k`
    (its recurrent weights transposed, `(n, n)`, with the connectivity mask applied) on a
    loop `lif_k → recurrent_k → lif_k`. The chain starts at an `Input` node `input` and
    ends at an `Output` node `output`. Weights keep their dtype, parameters are float64.

    NIR has no field for what eqsnn needs beyond the dynamics: the horizon `t_max`, the
    spike budget `n_spikes`, the per-neuron or per-interval budget, the overflow policy, the layer
    class and, for recurrent layers, the population sizes and connectivity masks are
    stored in each `CubaLIF` node's `metadata["eqsnn"]`, where [`eqsnn.nir.from_nir`][]
    finds them. The crossing solver is not stored (the import picks the default solver
    unless told otherwise).

    **Arguments:**

    - `model`: an [`eqsnn.LIF`][] or [`eqsnn.RecurrentLIF`][] (or subclass), or an
      `eqx.nn.Sequential`, list or tuple of them, first layer first.

    **Returns:** a `nir.NIRGraph`; save it with `nir.write(path, graph)`.

    **Raises:** `ImportError` without the `nir` package; `TypeError` for a layer that is
    neither; `ValueError` if consecutive layer sizes do not match.

    **Example:**

    ```python
    import jax
    import nir
    import eqsnn
    from eqsnn.nir import to_nir

    layer = eqsnn.LIF(2, 3, n_spikes=6, t_max=0.05, key=jax.random.PRNGKey(0))
    graph = to_nir(layer)
    sorted(graph.nodes)  # ['input', 'lif_0', 'linear_0', 'output']
    ```
    """
    nir = import_nir()
    layers = _layers_of(model)
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array([layers[0].in_size]))}
    edges: list[tuple[str, str]] = []
    previous = "input"
    for k, layer in enumerate(layers):
        linear, lif = f"linear_{k}", f"lif_{k}"
        if isinstance(layer, RecurrentLIF):
            weights = layer.effective_weights()
            nodes[linear] = _linear(nir, weights.input)
            nodes[f"recurrent_{k}"] = _linear(nir, weights.recurrent)
            edges += [(lif, f"recurrent_{k}"), (f"recurrent_{k}", lif)]
        else:
            nodes[linear] = _linear(nir, layer.weights.input)
        nodes[lif] = _cuba_lif(nir, layer)
        edges += [(previous, linear), (linear, lif)]
        previous = lif
    nodes["output"] = nir.Output(output_type=np.array([_out_size(layers[-1])]))
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META: {"format": 1}})


def from_nir(
    graph: "nir.NIRGraph",
    *,
    n_spikes: int | Sequence[int] | None = None,
    t_max: float | Sequence[float] | None = None,
    layer: type[LIF] = LIF,
    recurrent_layer: type[RecurrentLIF] = RecurrentLIF,
    solver: AbstractCrossingSolver | None = None,
    max_spikes_per_neuron: int | None = None,
    max_spikes_per_interval: int | None = None,
    overflow: Overflow | None = None,
) -> eqx.nn.Sequential:
    r"""Import a NIR graph as an `eqx.nn.Sequential` of eqsnn layers.

    The graph must be a chain `Input → [Linear | Affine] → CubaLIF → … → Output`. Each
    `CubaLIF` node becomes one layer, whose weights come from the `Linear` (or `Affine`
    with zero bias) node before it, scaled by $r\, w_\mathrm{in} / \tau_\mathrm{syn}$ (see
    [how the neuron maps](../howto/nir.md#how-the-neuron-maps)); without a weight node the
    connection is one-to-one. A `CubaLIF` with a loop through a weight node
    (`lif → w → lif`) becomes a recurrent layer with those recurrent weights, scaled the
    same way; its populations and connectivity mask come from the metadata, else it is one
    fully connected population. Graphs written by [`eqsnn.nir.to_nir`][] come back with
    the same weights, parameters and spikes, bit for bit.

    What NIR does not store is taken from the arguments, or else from the node's
    `metadata["eqsnn"]` written by [`eqsnn.nir.to_nir`][].

    **Arguments:**

    - `graph`: a `nir.NIRGraph`, e.g. from `nir.read(path)`.
    - `n_spikes`: output buffer size of each layer (one int for all, or one per `CubaLIF`
      in chain order); required unless the graph records it.
    - `t_max`: simulation horizon in seconds (one for all, or one per layer); required
      unless the graph records it.
    - `layer`: the class of feed-forward layers, [`eqsnn.LIF`][] (default) or a subclass
      with the same constructor, such as `eqsnn.EventPropLIF`.
    - `recurrent_layer`: the class of recurrent layers, [`eqsnn.RecurrentLIF`][] (default) or a
      subclass with the same constructor.
    - `solver`: the crossing solver of every layer (default: chosen from the parameters).
    - `max_spikes_per_neuron`, `max_spikes_per_interval` (feed-forward layers), `overflow`:
      as for [`eqsnn.LIF`][] (default: the recorded values, else the parallel engine with
      its default budget and `Overflow.WARN`). Giving either budget replaces the
      recorded one.

    **Returns:** an `eqx.nn.Sequential` of layers, first layer first.

    **Raises:** `ImportError` without the `nir` package; `ValueError`, naming the node,
    for what eqsnn cannot express: node types other than `Input`, `Output`, `Linear`,
    `Affine` and `CubaLIF` (convolutions, `LIF`, `Delay`, subgraphs, ...), an `Affine`
    with a non-zero bias, neuron parameters that differ between the neurons of one node
    (eqsnn layers share one [`eqsnn.LIFParameters`][]), multi-dimensional shapes,
    branches, merges and skip connections, and recurrent weights outside the recorded
    connectivity mask.

    **Example:**

    ```python
    import jax
    import eqsnn
    from eqsnn.nir import from_nir, to_nir

    layer = eqsnn.LIF(2, 3, n_spikes=6, t_max=0.05, key=jax.random.PRNGKey(0))
    model = from_nir(to_nir(layer))  # eqx.nn.Sequential([LIF])
    ```
    """
    nir = import_nir()
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"from_nir: `graph` must be a nir.NIRGraph, got {type(graph).__name__}.")
    if not (isinstance(layer, type) and issubclass(layer, LIF)):
        raise TypeError(f"from_nir: `layer` must be eqsnn.LIF or a subclass, got {layer!r}.")
    if not (isinstance(recurrent_layer, type) and issubclass(recurrent_layer, RecurrentLIF)):
        raise TypeError(
            f"from_nir: `recurrent_layer` must be eqsnn.RecurrentLIF or a subclass, got "
            f"{recurrent_layer!r}."
        )
    check_supported(nir, graph)
    loops = recurrent_loops(nir, graph)
    path = chain(nir, graph, loops)
    n_layers = sum(isinstance(graph.nodes[name], nir.CubaLIF) for name in path)
    for arg, value in (("n_spikes", n_spikes), ("t_max", t_max)):
        if isinstance(value, list | tuple) and len(value) != n_layers:
            raise ValueError(
                f"from_nir: `{arg}` has {len(value)} entries but the graph has {n_layers} "
                "CubaLIF nodes."
            )
    options = dict(
        n_spikes=n_spikes,
        t_max=t_max,
        layer=layer,
        recurrent_layer=recurrent_layer,
        solver=solver,
        max_spikes_per_neuron=max_spikes_per_neuron,
        max_spikes_per_interval=max_spikes_per_interval,
        overflow=overflow,
    )
    return eqx.nn.Sequential(build_layers(nir, graph, path, loops, options))
