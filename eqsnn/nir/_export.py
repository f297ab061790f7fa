"""NIR export: eqsnn layers to a chain of `Linear` and `CubaLIF` nodes (`to_nir`).

The mapping of the neuron is derived in the docstring of `eqsnn.nir`; what NIR has no
field for is written by `layer_metadata` (`_metadata.py`).
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import equinox as eqx
import numpy as np

from .. import LIF, RecurrentLIF
from ._graph import import_nir
from ._metadata import META, Layer, layer_metadata

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
        if k and layer.in_size != _out_size(layers[k - 1]):
            raise ValueError(
                f"to_nir: layer {k} has in_size={layer.in_size} but layer {k - 1} has "
                f"{_out_size(layers[k - 1])} neurons."
            )
    return layers


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
        metadata={META: layer_metadata(layer)},
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
