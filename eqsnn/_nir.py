"""NIR import internals: graph checks and the CubaLIF -> eqsnn.LIF conversion.

The maths of the conversion is in the docstring of `eqsnn.nir`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._events import Overflow
from ._lif import LIF
from ._params import LIFParameters

META = "eqsnn"
"""Key of the node metadata in which eqsnn stores what NIR has no field for."""

# eqsnn parameter name -> NIR CubaLIF field; these must be equal for all neurons of a node.
_SHARED = {
    "tau_syn": "tau_syn",
    "tau_mem": "tau_mem",
    "v_th": "v_threshold",
    "v_leak": "v_leak",
    "v_reset": "v_reset",
}


def import_nir():
    """The `nir` package, or an ImportError that says how to install it."""
    try:
        import nir
    except ImportError:
        raise ImportError(
            "eqsnn.nir needs the `nir` package; install it with `pip install 'eqsnn[nir]'`."
        ) from None
    return nir


def check_supported(nir, graph) -> None:
    """Refuse, by name, every node that eqsnn cannot express."""
    supported = (nir.Input, nir.Output, nir.Linear, nir.Affine, nir.CubaLIF)
    bad = [
        f"{name!r} ({type(node).__name__})"
        for name, node in graph.nodes.items()
        if not isinstance(node, supported)
    ]
    if bad:
        raise ValueError(
            f"from_nir: unsupported node(s) {', '.join(bad)}; eqsnn imports chains of Input, "
            "Linear or Affine (zero bias), CubaLIF and Output nodes."
        )


def chain(nir, graph) -> list[str]:
    """The node names from the Input node to the Output node; the graph must be a chain."""
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"from_nir: the graph must have one Input and one Output node, got inputs "
            f"{inputs} and outputs {outputs}."
        )
    successors: dict[str, list[str]] = {}
    predecessors: dict[str, list[str]] = {}
    for pre, post in graph.edges:
        if pre not in graph.nodes or post not in graph.nodes:
            raise ValueError(f"from_nir: edge {(pre, post)!r} names an unknown node.")
        successors.setdefault(pre, []).append(post)
        predecessors.setdefault(post, []).append(pre)
    for name, linked, direction in [
        *((k, v, "outgoing") for k, v in successors.items()),
        *((k, v, "incoming") for k, v in predecessors.items()),
    ]:
        if len(linked) > 1:
            raise ValueError(
                f"from_nir: node {name!r} has {len(linked)} {direction} edges ({linked}); "
                "eqsnn imports chains (no branches, merges or recurrent loops)."
            )
    path = [inputs[0]]
    while path[-1] != outputs[0]:
        following = successors.get(path[-1])
        if not following or following[0] in path:
            raise ValueError(
                f"from_nir: the chain from {inputs[0]!r} stops at node {path[-1]!r} and never "
                f"reaches the output {outputs[0]!r}."
            )
        path.append(following[0])
    if off := sorted(set(graph.nodes) - set(path)):
        raise ValueError(f"from_nir: node(s) {off} are not on the chain from input to output.")
    return path


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


def _input_weights(name: str, node, weight: np.ndarray | None, in_size: int, n: int):
    """eqsnn's `(in_size, n)` weights: W[i, n] = r_n w_in_n / tau_syn_n * W_nir[n, i]."""
    scale = (
        np.asarray(node.r, dtype=np.float64)
        * np.asarray(node.w_in, dtype=np.float64)
        / np.asarray(node.tau_syn, dtype=np.float64)
    )
    if scale.shape != (n,):
        raise ValueError(f"from_nir: node {name!r}: `r` and `w_in` must have shape ({n},).")
    if weight is None:  # CubaLIF fed directly by the input or a CubaLIF: one-to-one.
        if in_size != n:
            raise ValueError(
                f"from_nir: node {name!r} has {n} neurons but no weight node before it, and "
                f"its input has {in_size} channels."
            )
        return np.diag(scale)
    return weight.T.astype(np.float64) * scale


def _option(name: str, explicit, k: int, meta: dict, key: str):
    """The per-layer value: the argument (one value or one per layer), else the metadata."""
    if explicit is not None:
        return explicit[k] if isinstance(explicit, list | tuple) else explicit
    if key not in meta:
        raise ValueError(
            f"from_nir: node {name!r} does not record `{key}` (NIR has no such field); pass "
            f"`{key}=` to from_nir."
        )
    return meta[key]


def _layer(name: str, node, weight, in_size: int, k: int, options: dict) -> LIF:
    n = int(np.size(node.v_threshold))
    try:
        params = LIFParameters(
            **{ours: _shared_value(name, node, f, n) for ours, f in _SHARED.items()}
        )
    except ValueError as error:
        raise ValueError(f"from_nir: node {name!r}: {error}") from None
    w = _input_weights(name, node, weight, in_size, n)
    meta = (node.metadata or {}).get(META, {})
    per_interval = options["max_spikes_per_interval"]
    overflow = options["overflow"]
    layer = options["layer"](
        in_size,
        n,
        int(_option(name, options["n_spikes"], k, meta, "n_spikes")),
        float(_option(name, options["t_max"], k, meta, "t_max")),
        params,
        key=jax.random.PRNGKey(0),
        solver=options["solver"],
        max_spikes_per_interval=int(
            meta.get("max_spikes_per_interval", 1) if per_interval is None else per_interval
        ),
        overflow=Overflow(meta.get("overflow", "count")) if overflow is None else overflow,
    )
    return eqx.tree_at(lambda m: m.weights.input, layer, jnp.asarray(w))


def _input_size(name: str, node) -> int:
    shape = np.asarray(node.input_type["input"]).reshape(-1)
    if shape.size != 1:
        raise ValueError(
            f"from_nir: node {name!r}: eqsnn layers take 1-d inputs, got shape {tuple(shape)}."
        )
    return int(shape[0])


def build_layers(nir, graph, path: list[str], options: dict) -> list[LIF]:
    size = _input_size(path[0], graph.nodes[path[0]])
    weight, weight_name, layers = None, None, []
    for name in path[1:-1]:
        node = graph.nodes[name]
        if isinstance(node, nir.CubaLIF):
            layers.append(_layer(name, node, weight, size, len(layers), options))
            size, weight, weight_name = layers[-1].out_size, None, None
            continue
        if weight_name is not None:
            raise ValueError(
                f"from_nir: weight nodes {weight_name!r} and {name!r} follow each other; eqsnn "
                "needs exactly one Linear or Affine node between neuron nodes."
            )
        if isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
            raise ValueError(
                f"from_nir: node {name!r} is an Affine with a non-zero bias; eqsnn neurons "
                "have no constant input current."
            )
        weight, weight_name = np.asarray(node.weight), name
        if weight.shape[1:] != (size,):
            raise ValueError(
                f"from_nir: node {name!r}: weight must have shape (n_out, {size}), got "
                f"{weight.shape}."
            )
    if weight_name is not None:
        raise ValueError(f"from_nir: weight node {weight_name!r} feeds no CubaLIF node.")
    if not layers:
        raise ValueError("from_nir: the graph has no CubaLIF node.")
    return layers
