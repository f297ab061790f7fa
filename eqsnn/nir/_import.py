"""NIR import: a chain of `Linear`/`Affine` and `CubaLIF` nodes to eqsnn layers (`from_nir`).

The maths of the conversion is in the docstring of `eqsnn.nir`; the structure of the graph
is checked in `_graph.py`, and what NIR has no field for is read by `layer_keywords`
(`_metadata.py`).
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
    LIFParameters,
    Overflow,
    RecurrentLIF,
    RecurrentWeights,
)
from .._layers.keywords import engine_from_keywords
from ..solvers import AbstractCrossingSolver
from ._graph import chain, check_supported, import_nir, recurrent_loops
from ._metadata import META, layer_keywords, population_sizes

if TYPE_CHECKING:
    import nir

# eqsnn parameter name -> NIR CubaLIF field; these must be equal for all neurons of a node.
_SHARED = {
    "tau_syn": "tau_syn",
    "tau_mem": "tau_mem",
    "v_th": "v_threshold",
    "v_leak": "v_leak",
    "v_reset": "v_reset",
}


def _shared_value(name: str, node, field: str, n: int) -> float:
    value = np.asarray(getattr(node, field), dtype=np.float64)
    if value.shape != (n,):
        raise ValueError(
            f"from_nir: node {name!r}: `{field}` must have shape ({n},), got {value.shape}."
        )
    if np.any(value != value[0]):
        raise ValueError(
            f"from_nir: node {name!r}: `{field}` differs between neurons (from {value.min()} to "
            f"{value.max()}); an eqsnn layer has one value for all its neurons."
        )
    return float(value[0])


def _neurons(name: str, node) -> tuple[int, LIFParameters, np.ndarray]:
    """Size, parameters and weight scale `r w_in / tau_syn` (per neuron) of a CubaLIF."""
    if np.ndim(node.v_threshold) != 1:
        raise ValueError(
            f"from_nir: node {name!r}: eqsnn layers are 1-d, got parameters of shape "
            f"{np.shape(node.v_threshold)}."
        )
    n = int(np.size(node.v_threshold))
    try:
        shared = {ours: _shared_value(name, node, field, n) for ours, field in _SHARED.items()}
        params = LIFParameters(**shared)
    except ValueError as error:
        raise ValueError(f"from_nir: node {name!r}: {error}") from None
    scale = np.asarray(node.r, np.float64) * np.asarray(node.w_in, np.float64) / params.tau_syn
    if scale.shape != (n,):
        raise ValueError(f"from_nir: node {name!r}: `r` and `w_in` must have shape ({n},).")
    return n, params, scale


def _weight(nir, name: str, node, n_in: int) -> np.ndarray:
    """The `(n_out, n_in)` matrix of a Linear or zero-bias Affine node."""
    if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
        raise ValueError(
            f"from_nir: node {name!r} is an Affine with a non-zero bias; eqsnn neurons "
            "have no constant input current."
        )
    weight = np.asarray(node.weight)
    if weight.ndim != 2 or weight.shape[1] != n_in:
        raise ValueError(
            f"from_nir: node {name!r}: weight must have shape (n_out, {n_in}), got {weight.shape}."
        )
    return weight


def _feedforward(name: str, node, w_in: np.ndarray, k: int, options: dict) -> LIF:
    n, params, scale = _neurons(name, node)
    metadata = (node.metadata or {}).get(META, {})
    keywords = layer_keywords(name, metadata, k, options, recurrent=False)
    layer = options["layer"](w_in.shape[0], n, params=params, **keywords)
    return eqx.tree_at(lambda m: m.weights.input, layer, jnp.asarray(w_in * scale))


def _recurrent(name: str, node, w_in: np.ndarray, w_rec: np.ndarray, k: int, options: dict):
    n, params, scale = _neurons(name, node)
    metadata = (node.metadata or {}).get(META, {})
    layers = population_sizes(name, metadata, n)
    keywords = layer_keywords(name, metadata, k, options, recurrent=True)
    layer = options["recurrent_layer"](w_in.shape[0], layers, params=params, **keywords)
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


def _build_layers(nir, graph, path: list[str], loops: dict[str, str], options: dict) -> list:
    """One layer per CubaLIF of the chain, with the weights of the node before it."""
    size = _input_size(path[0], graph.nodes[path[0]])
    weight, weight_name, layers = None, None, []
    for name in path[1:-1]:
        node = graph.nodes[name]
        if not isinstance(node, nir.CubaLIF):
            if weight_name is not None:
                raise ValueError(
                    f"from_nir: weight nodes {weight_name!r} and {name!r} follow each other; "
                    "eqsnn needs exactly one Linear or Affine node between neuron nodes."
                )
            weight, weight_name = _weight(nir, name, node, size), name
            continue
        n = int(np.size(node.v_threshold))
        if weight is None:  # fed directly by the input or a CubaLIF: one-to-one
            if size != n:
                raise ValueError(
                    f"from_nir: node {name!r} has {n} neurons but no weight node before it, "
                    f"and its input has {size} channels."
                )
            weight = np.eye(n)
        w_in = weight.T.astype(np.float64)
        if name in loops:
            w_rec = _weight(nir, loops[name], graph.nodes[loops[name]], n).T.astype(np.float64)
            layers.append(_recurrent(name, node, w_in, w_rec, len(layers), options))
        else:
            layers.append(_feedforward(name, node, w_in, len(layers), options))
        size, weight, weight_name = n, None, None
    if weight_name is not None:
        raise ValueError(f"from_nir: weight node {weight_name!r} feeds no CubaLIF node.")
    if not layers:
        raise ValueError("from_nir: the graph has no CubaLIF node.")
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
    - `engine`, `adjoint`, `overflow`: as for [`eqsnn.LIF`][], for every layer (default:
      the recorded values, else the layer's defaults). Giving one replaces the recorded
      one; a recorded adjoint is not passed to a `layer` class without an `adjoint`
      argument (such as `eqsnn.EventPropLIF`, which sets its own).
    - `max_spikes_per_neuron`, `max_spikes_per_interval`: deprecated spellings of
      `engine=` (a `DeprecationWarning`).

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
        engine=engine_from_keywords(
            "from_nir", engine, max_spikes_per_neuron, max_spikes_per_interval
        ),
        adjoint=adjoint,
        overflow=overflow,
    )
    return eqx.nn.Sequential(_build_layers(nir, graph, path, loops, options))
