"""NIR export: eqsnn layers to a chain of `Linear`, `Delay` and `CubaLIF` (or `LI` → `IF`)
nodes (`to_nir`).

The mapping of the neuron is derived in the docstring of `eqsnn.nir`; the parameters go to
the `CubaLIF` node in `_neuron.py`, the weights and delays to `Linear` and `Delay` nodes in
`_synapses.py`, and what NIR has no field for is written by `layer_metadata`
(`_metadata.py`).
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import equinox as eqx
import numpy as np

from .. import LIF, ALIFParameters, IFParameters, LIFParameters, RecurrentLIF
from ._graph import import_nir
from ._metadata import META, Layer, layer_metadata
from ._neuron import cuba_lif, if_nodes
from ._synapses import synapse_nodes

if TYPE_CHECKING:
    import nir


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
        _check_neurons(layer, k)
        delayed = [
            f"weights.{name}"
            for name in ("delays", "recurrent_delays")
            if getattr(layer.weights, name, None) is not None
        ]
        if isinstance(layer, RecurrentLIF) and delayed:
            raise ValueError(
                f"to_nir: layer {k} ({type(layer).__name__}) has {' and '.join(delayed)}; "
                "eqsnn.nir exports the delays of feed-forward layers (eqsnn.LIF) only."
            )
        if k and layer.in_size != _out_size(layers[k - 1]):
            raise ValueError(
                f"to_nir: layer {k} has in_size={layer.in_size} but layer {k - 1} has "
                f"{_out_size(layers[k - 1])} neurons."
            )
    return layers


def _check_neurons(layer: Layer, k: int) -> None:
    """Refuse, naming the layer and the model, neurons that NIR has no node for: every
    model but the LIF (`CubaLIF`) and, in feed-forward layers, the IF (`LI` → `IF`)."""
    params = layer.params
    who = f"layer {k} ({type(layer).__name__})"
    if isinstance(params, LIFParameters):
        return
    if isinstance(params, IFParameters):
        if isinstance(layer, RecurrentLIF):
            raise ValueError(
                f"to_nir: {who} has neurons of IFParameters; eqsnn.nir exports IF neurons "
                "(NIR's LI → IF) of feed-forward layers (eqsnn.LIF) only."
            )
        return
    raise ValueError(
        f"to_nir: {who} has neurons of {type(params).__name__}, which no NIR node describes"
        + (" (NIR has no adaptive threshold)" if isinstance(params, ALIFParameters) else "")
        + "; eqsnn.nir exports LIFParameters (a CubaLIF node) and IFParameters (an LI node, "
        "the synapse, then an IF node)."
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
    ends at an `Output` node `output`. Weights and delays keep their dtype, parameters are
    float64.

    **IF neurons** ([`eqsnn.IFParameters`][], feed-forward layers) become an `LI` node
    `syn_k` (the exponential synapse: `tau` $= \tau_\mathrm{syn}$, `r` $= \tau_\mathrm{syn}$,
    `v_leak` $= 0$) followed by an `IF` node `if_k` (`r` $= 1/\tau_\mathrm{mem}$,
    `v_threshold`, `v_reset`), which carries the metadata; NIR's `IF` alone has no
    synaptic filter ($\dot v = r I$). `v_init` must be 0 (NIR states start at 0). No NIR
    node describes [`eqsnn.ALIFParameters`][] (an adaptive threshold) or other neuron
    models: they raise a `ValueError`, as do IF neurons in a recurrent layer.

    **Per-neuron parameters** ([`eqsnn.LIFParameters`][] fields that are arrays) fill the
    `CubaLIF` fields neuron by neuron; a float is written as `n` equal values. The
    refractory period `t_ref` has no `CubaLIF` field: it is stored, per neuron, in
    `metadata["eqsnn"]["t_ref"]` (when it is an array or positive), which other NIR tools
    ignore: they simulate the neuron without refractory period. Which fields are arrays,
    with their dtype, shape (`()` or `(n,)`) and weak type, is stored in
    `metadata["eqsnn"]["array_params"]`.

    **Delays** ([`eqsnn.InputWeights`][]`.delays`; see
    [Trainable parameters and delays](../concepts/trainable.md)) become NIR `Delay` nodes,
    $y_j(t) = x_j(t - d_j)$, exactly:

    - per source, shape `(in_size,)`: a node `delay_k` before `linear_k`, one delay per
      input channel;
    - per synapse, shape `(in_size, n)`: a `Linear` node `fanout_k` of zeros and ones,
      shape `(in_size·n, in_size)`, that copies input $i$ to channel $i n + m$ for each
      neuron $m$; a `Delay` node `delay_k` of the `in_size·n` delays (`delays.reshape(-1)`);
      and `linear_k`, shape `(n, in_size·n)`, which sends channel $i n + m$ to neuron $m$
      only, with weight $W[i, m]$. These two matrices hold
      $\mathrm{in}^2 n + \mathrm{in}\, n^2$ numbers, most of them zero.

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
    neither; `ValueError` if consecutive layer sizes do not match, for a recurrent
    layer with delays (not exported yet), and for neurons NIR cannot describe (see above).

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
        lif = f"lif_{k}"
        if isinstance(layer, RecurrentLIF):
            weights = layer.effective_weights()
            synapses = [(f"linear_{k}", _linear(nir, weights.input))]
            nodes[f"recurrent_{k}"] = _linear(nir, weights.recurrent)
            edges += [(lif, f"recurrent_{k}"), (f"recurrent_{k}", lif)]
        else:
            synapses = synapse_nodes(nir, layer.weights, k)
        for name, node in synapses:
            nodes[name] = node
            edges.append((previous, name))
            previous = name
        metadata = {META: layer_metadata(layer)}
        if isinstance(layer.params, IFParameters):  # the synapse, then the integrator
            where = f"layer {k} ({type(layer).__name__})"
            nodes[f"syn_{k}"], nodes[f"if_{k}"] = if_nodes(
                nir, layer.params, _out_size(layer), metadata, where
            )
            edges += [(previous, f"syn_{k}"), (f"syn_{k}", f"if_{k}")]
            previous = f"if_{k}"
            continue
        nodes[lif] = cuba_lif(nir, layer.params, _out_size(layer), metadata)
        edges.append((previous, lif))
        previous = lif
    nodes["output"] = nir.Output(output_type=np.array([_out_size(layers[-1])]))
    edges.append((previous, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META: {"format": 1}})
