"""A readable summary of a model: its layers, their settings and parameter counts."""

import equinox as eqx
import jax
import numpy as np

from ._layers.base import AbstractLayer, AbstractSimulatedLayer
from ._layers.recurrent import AbstractRecurrentLayer
from ._params import AbstractNeuronParameters, LIFParameters

_COLUMNS = ("layer", "sizes", "n_spikes", "t_max", "engine", "adjoint", "parameters")


def summary(model) -> str:
    """A table of a model's layers: sizes, spike budgets, engine, adjoint, parameters.

    Every eqsnn layer in `model` gets a row (a single layer, the layers of an
    `eqx.nn.Sequential`, or the layers held anywhere in a module of your own), named by
    its path in the model: its class, its sizes (`in_size -> out_size`, or
    `in_size -> [population sizes]`), its output buffer `n_spikes`, its horizon `t_max`,
    its engine (with the spike budgets) and its gradient method (for a hardware layer:
    the backend, and EventProp on the replay), and its number of trainable parameters
    (for a recurrent layer, the weights inside the connectivity mask; the masked-out
    ones, stored as zeros, are counted as "stored"). Below the table: the total, and the
    neuron parameters of each layer: the fields of its [`eqsnn.LIFParameters`][], or the
    name and every field of another neuron model (`ALIFParameters: ..., tau_adapt=50 ms,
    beta=0.1`).

    **Arguments:**

    - `model`: a layer, an `eqx.nn.Sequential` of layers, or any Equinox module (or
      pytree) that holds eqsnn layers.

    **Returns:** the summary as a string (several lines), for `print`.

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import eqsnn

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    net = eqx.nn.Sequential(
        [
            eqsnn.LIF(5, 20, n_spikes=40, t_max=0.05, key=k1),
            eqsnn.LIF(20, 3, n_spikes=6, t_max=0.05, key=k2),
        ]
    )
    print(eqsnn.summary(net))
    ```
    """
    found = jax.tree_util.tree_flatten_with_path(model, is_leaf=_is_layer)[0]
    layers = [(jax.tree_util.keystr(path).lstrip("."), x) for path, x in found if _is_layer(x)]
    if not layers:
        raise TypeError(
            f"summary: `model` must be an eqsnn layer or hold some (e.g. an "
            f"eqx.nn.Sequential of layers), got {type(model).__name__} without any."
        )
    rows = [_row(name, layer) for name, layer in layers]
    stored = _n_stored(model)
    trained = (
        sum(_n_trained(layer) for _, layer in layers)
        + stored
        - sum(_n_stored(layer) for _, layer in layers)
    )
    head = f"{type(model).__name__}: {len(layers)} layer{'s' * (len(layers) > 1)}"
    lines = [head, *_table([_COLUMNS, *rows])]
    extra = f" ({stored:,} stored)" if stored != trained else ""
    lines.append(f"total: {trained:,} trainable parameters{extra}")
    lines.extend(_neuron_lines(layers))
    return "\n".join(lines)


def _is_layer(x) -> bool:
    return isinstance(x, AbstractLayer)


def _n_stored(tree) -> int:
    """The number of entries of the floating-point arrays of `tree`."""
    leaves = jax.tree.leaves(eqx.filter(tree, eqx.is_inexact_array))
    return sum(int(np.prod(np.shape(x))) for x in leaves)


def _n_trained(layer: AbstractLayer) -> int:
    """The layer's trainable entries: for a recurrent layer, those inside its mask."""
    if isinstance(layer, AbstractRecurrentLayer):
        masked = int(np.sum(layer.mask.input)) + int(np.sum(layer.mask.recurrent))
        weights = layer.weights.input.size + layer.weights.recurrent.size
        return _n_stored(layer) - weights + masked
    return _n_stored(layer)


def _row(name: str, layer: AbstractLayer) -> tuple[str, ...]:
    kind = type(layer).__name__
    label = f"{name}: {kind}" if name else kind
    if isinstance(layer, AbstractRecurrentLayer):
        sizes = f"{layer.in_size} -> {list(layer.layers)}"
    else:
        sizes = f"{layer.in_size} -> {layer.size}"
    if isinstance(layer, AbstractSimulatedLayer):
        engine, adjoint = repr(layer.engine), repr(layer.adjoint)
    else:  # a hardware layer: a backend runs it, EventProp on the replay differentiates it
        backend = getattr(layer, "backend", None)
        engine, adjoint = f"backend {type(backend).__name__}", "EventProp (replay)"
    trained, stored = _n_trained(layer), _n_stored(layer)
    parameters = f"{trained:,}" + (f" ({stored:,} stored)" if stored != trained else "")
    t_max = f"{layer.t_max:g} s"
    return (label, sizes, str(layer.n_spikes), t_max, engine, adjoint, parameters)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return ["  " + line.rstrip() for line in lines]


def _neuron_text(params: AbstractNeuronParameters) -> str:
    """The fields of the neuron parameters (times in ms); for a neuron model other than
    the LIF, its class name first and every field (e.g. `tau_adapt`, `beta`)."""

    def show(name):
        value = getattr(params, name)
        time = name.startswith(("tau_", "t_"))
        if isinstance(value, float):
            return f"{name}={1e3 * value:g} ms" if time else f"{name}={value:g}"
        shape = "x".join(str(d) for d in value.shape) or "scalar"
        return f"{name}=array[{shape}] (trainable)"

    if isinstance(params, LIFParameters):
        names = [name for name in params._FIELDS if name != "t_ref" or params.refractory]
        return ", ".join(show(name) for name in names)
    return f"{type(params).__name__}: " + ", ".join(show(name) for name in params._FIELDS)


def _neuron_lines(layers) -> list[str]:
    texts = [_neuron_text(layer.params) for _, layer in layers]
    if len(set(texts)) == 1:
        where = "every layer" if len(texts) > 1 else "the layer"
        return [f"neurons ({where}): {texts[0]}"]
    return [
        f"neurons of {name or type(layer).__name__}: {text}"
        for (name, layer), text in zip(layers, texts, strict=True)
    ]
