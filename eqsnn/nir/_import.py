"""NIR import: a chain of `Linear`/`Affine`, `Delay` and `CubaLIF` (or `LI` → `IF`) nodes to
eqsnn layers (`from_nir`).

The maths of the conversion is in the docstring of `eqsnn.nir`; the structure of the graph
is checked in `_graph.py`, the nodes between two neuron nodes are read as weights and
delays in `_synapses.py`, the parameters in `_neuron.py`, and what NIR has no field for is
read by `layer_keywords` (`_metadata.py`).
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .. import (
    LIF,
    AbstractAdjoint,
    AbstractEngine,
    Overflow,
    RecurrentLIF,
    RecurrentWeights,
)
from .._layers.keywords import engine_from_keywords
from ..solvers import AbstractCrossingSolver
from ._graph import chain, check_supported, import_nir, recurrent_loops
from ._metadata import META, layer_keywords, population_sizes
from ._neuron import if_neurons, neurons
from ._synapses import synapses, weight_matrix

if TYPE_CHECKING:
    import nir


def _feedforward(name: str, neuron, w_in: np.ndarray, delays, k: int, options: dict) -> LIF:
    """Layer `k` of the neuron node `name`; `neuron` is `(metadata, (n, params, scale))`."""
    metadata, (n, params, scale) = neuron
    keywords = layer_keywords(name, metadata, k, options, recurrent=False)
    if delays is not None:
        keywords["delays"] = delays
    try:
        layer = options["layer"](w_in.shape[0], n, params=params, **keywords)
    except ValueError as error:
        raise ValueError(f"from_nir: node {name!r}: {error}") from None
    return eqx.tree_at(lambda m: m.weights.input, layer, jnp.asarray(w_in * scale))


def _recurrent(name: str, node, w_in: np.ndarray, w_rec: np.ndarray, k: int, options: dict):
    metadata = (node.metadata or {}).get(META, {})
    n, params, scale = neurons(name, node, metadata)
    layers = population_sizes(name, metadata, n)
    keywords = layer_keywords(name, metadata, k, options, recurrent=True)
    try:
        layer = options["recurrent_layer"](w_in.shape[0], layers, params=params, **keywords)
    except ValueError as error:
        raise ValueError(f"from_nir: node {name!r}: {error}") from None
    w_in, w_rec = w_in * scale, w_rec * scale
    if np.any(w_in[~layer.mask.input] != 0) or np.any(w_rec[~layer.mask.recurrent] != 0):
        raise ValueError(
            f"from_nir: node {name!r}: non-zero weights outside the recorded connectivity mask."
        )
    weights = RecurrentWeights(input=jnp.asarray(w_in), recurrent=jnp.asarray(w_rec))
    return eqx.tree_at(lambda m: m.weights, layer, weights)


def _input_size(name: str, node) -> int:
    shape = np.asarray(node.input_type["input"]).reshape(-1)
    if shape.size != 1:
        raise ValueError(
            f"from_nir: node {name!r}: eqsnn layers take 1-d inputs, got shape {tuple(shape)}."
        )
    return int(shape[0])


def _is_neuron(nir, node) -> bool:
    return isinstance(node, nir.CubaLIF | nir.IF)


def _neuron(nir, graph, path: list[str], j: int):
    """`(metadata, (n, params, scale))` of the neuron node `path[j]`: a `CubaLIF`, or an
    `IF` behind its synapse, the `LI` node `path[j - 1]`."""
    name, node = path[j], graph.nodes[path[j]]
    metadata = (node.metadata or {}).get(META, {})
    if isinstance(node, nir.CubaLIF):
        return metadata, neurons(name, node, metadata)
    synapse = path[j - 1]
    if not isinstance(graph.nodes[synapse], nir.LI):
        raise ValueError(
            f"from_nir: node {name!r} (IF) integrates its input directly (v' = r I, no "
            "synaptic filter), which no eqsnn neuron does; eqsnn reads IF nodes behind an LI "
            "node, their exponential synapse (… → LI (v_leak = 0) → IF), as "
            "eqsnn.IFParameters."
        )
    return metadata, if_neurons(synapse, graph.nodes[synapse], name, node, metadata)


def _build_layers(nir, graph, path: list[str], loops: dict[str, str], options: dict) -> list:
    """One layer per neuron node of the chain (`CubaLIF`, or `LI` → `IF`), with the weights
    (and delays) of the nodes before it."""
    size = _input_size(path[0], graph.nodes[path[0]])
    between: list[str] = []
    layers = []
    for j, name in enumerate(path[1:-1], start=1):
        node = graph.nodes[name]
        if isinstance(node, nir.LI):
            if not isinstance(graph.nodes[path[j + 1]], nir.IF):
                raise ValueError(
                    f"from_nir: node {name!r} (LI) is not followed by an IF node; eqsnn reads "
                    "an LI node only as the synapse of IF neurons (LI → IF), and has no "
                    "non-spiking read-out layer."
                )
            continue
        if not _is_neuron(nir, node):
            between.append(name)
            continue
        neuron = _neuron(nir, graph, path, j)
        n = neuron[1][0]
        weight, delays = synapses(nir, graph, between, size, n, name)
        w_in = weight.T
        if name in loops:
            if delays is not None:
                delayed = [k for k in between if isinstance(graph.nodes[k], nir.Delay)]
                raise ValueError(
                    f"from_nir: Delay node {delayed[0]!r} feeds the recurrent node {name!r}; "
                    "eqsnn's recurrent layers have no delays yet."
                )
            w_rec = weight_matrix(nir, loops[name], graph.nodes[loops[name]], n).T.astype(
                np.float64
            )
            layers.append(_recurrent(name, node, w_in, w_rec, len(layers), options))
        else:
            layers.append(_feedforward(name, neuron, w_in, delays, len(layers), options))
        size, between = n, []
    if between:
        raise ValueError(
            f"from_nir: node(s) {between} feed no CubaLIF or IF node; eqsnn layers end at their "
            "neurons (no weights or delays after the last CubaLIF or IF)."
        )
    if not layers:
        raise ValueError("from_nir: the graph has no neuron node (CubaLIF, or LI → IF).")
    return layers


def from_nir(
    graph: "nir.NIRGraph",
    *,
    n_spikes: int | Sequence[int] | None = None,
    t_max: float | Sequence[float] | None = None,
    layer: type[LIF] = LIF,
    recurrent_layer: type[RecurrentLIF] = RecurrentLIF,
    solver: AbstractCrossingSolver | None = None,
    engine: AbstractEngine | None = None,
    adjoint: AbstractAdjoint | None = None,
    overflow: Overflow | None = None,
    max_spikes_per_neuron: int | None = None,
    max_spikes_per_interval: int | None = None,
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
    the same weights, parameters, delays and spikes, bit for bit: the same pytree, floats
    as floats and arrays as arrays of the same shape, dtype and weak type.

    **IF neurons.** An `LI` node followed by an `IF` node (`… → LI → IF → …`, the pair that
    `to_nir` writes for [`eqsnn.IFParameters`][]) becomes a layer of IF neurons: the `LI`
    node is the exponential synapse (`tau` is $\tau_\mathrm{syn}$, `v_leak` must be 0, and
    the weights are scaled by $r_\mathrm{LI} / \tau$), the `IF` node gives
    $\tau_\mathrm{mem} = 1 / r$, `v_th` and `v_reset` (`v_init` is 0). An `IF` node without
    an `LI` before it (no synaptic filter), an `LI` that does not feed an `IF`, and either on
    a loop are refused.

    **Per-neuron parameters.** A `CubaLIF` field whose values differ between neurons
    becomes a per-neuron array of [`eqsnn.LIFParameters`][] (float64), one whose values
    agree a float, unless the node's `metadata["eqsnn"]["array_params"]` (written by
    `to_nir`) records it as an array. The refractory period comes from
    `metadata["eqsnn"]["t_ref"]` (no `CubaLIF` field holds one), else it is zero.

    **Delays.** `Delay` nodes ($y_j(t) = x_j(t - d_j)$) between two neuron nodes become the
    layer's `delays` ([`eqsnn.InputWeights`][]) in these arrangements:

    - `Delay → Linear`: per source, `(in_size,)`;
    - `Delay` alone: per source, with one-to-one connections;
    - `Linear → Delay`: one delay per neuron, a per-synapse `(in_size, n)` array whose
      columns are constant;
    - `Linear → Delay → Linear` where the first `Linear` is the fan-out that `to_nir`
      writes for per-synapse delays (row $i n + m$ the unit vector of input $i$) and the
      second sends channel $i n + m$ to neuron $m$ only: per synapse, `(in_size, n)`.

    Delays only reach feed-forward layers, which then run on the window scan (see
    [Trainable parameters and delays](../concepts/trainable.md)).

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
    - `engine`, `adjoint`, `overflow`: as for [`eqsnn.LIF`][], for every layer (default:
      the recorded values, else the layer's defaults). Giving one replaces the recorded
      one; a recorded adjoint is not passed to a `layer` class without an `adjoint`
      argument (such as `eqsnn.EventPropLIF`, which sets its own).
    - `max_spikes_per_neuron`, `max_spikes_per_interval`: deprecated spellings of
      `engine=` (a `DeprecationWarning`).

    **Returns:** an `eqx.nn.Sequential` of layers, first layer first.

    **Raises:** `ImportError` without the `nir` package; `ValueError`, naming the node,
    for what eqsnn cannot express: node types other than `Input`, `Output`, `Linear`,
    `Affine`, `Delay`, `CubaLIF` and `LI` → `IF` (convolutions, `LIF`, subgraphs, ...), an
    `Affine`
    with a non-zero bias, parameters eqsnn rejects (per neuron: the neuron is named),
    multi-dimensional shapes, branches, merges and skip connections, recurrent weights
    outside the recorded connectivity mask, and `Delay` nodes elsewhere than above: two in
    a row, on both sides of the weights, a `Linear → Delay → Linear` that is not the
    fan-out, negative or non-finite delays, after the last `CubaLIF`, on a recurrent loop
    or before a recurrent layer (eqsnn's recurrent layers have no delays yet).

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
    n_layers = sum(_is_neuron(nir, graph.nodes[name]) for name in path)
    for arg, value in (("n_spikes", n_spikes), ("t_max", t_max)):
        if isinstance(value, list | tuple) and len(value) != n_layers:
            raise ValueError(
                f"from_nir: `{arg}` has {len(value)} entries but the graph has {n_layers} "
                "neuron nodes (CubaLIF or IF)."
            )
    options = dict(
        n_spikes=n_spikes,
        t_max=t_max,
        layer=layer,
        recurrent_layer=recurrent_layer,
        solver=solver,
        engine=engine_from_keywords(
            "from_nir", engine, max_spikes_per_neuron, max_spikes_per_interval
        ),
        adjoint=adjoint,
        overflow=overflow,
    )
    return eqx.nn.Sequential(_build_layers(nir, graph, path, loops, options))
