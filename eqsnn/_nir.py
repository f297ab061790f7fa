"""NIR import internals: graph checks and the conversion of CubaLIF nodes to layers.

The maths of the conversion is in the docstring of `eqsnn.nir`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._events import Overflow
from ._lif import LIF
from ._params import LIFParameters
from ._recurrent_lif import Connectivity, ConnectivityMask
from ._weights import RecurrentWeights

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


def recurrent_loops(nir, graph) -> dict[str, str]:
    """`{cuba_lif: weight}` for each weight node that a CubaLIF feeds back into itself."""
    loops = {}
    for name, node in graph.nodes.items():
        if isinstance(node, nir.Linear | nir.Affine):
            pre = [a for a, b in graph.edges if b == name]
            post = [b for a, b in graph.edges if a == name]
            looped = len(pre) == len(post) == 1 and pre == post
            if looped and isinstance(graph.nodes.get(pre[0]), nir.CubaLIF):
                loops[pre[0]] = name
    return loops


def chain(nir, graph, loops: dict[str, str]) -> list[str]:
    """The node names from the Input node to the Output node, recurrent loops set aside;
    the rest of the graph must be a chain."""
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(
            f"from_nir: the graph must have one Input and one Output node, got inputs "
            f"{inputs} and outputs {outputs}."
        )
    looped = {edge for cell, w in loops.items() for edge in ((cell, w), (w, cell))}
    successors: dict[str, list[str]] = {}
    predecessors: dict[str, list[str]] = {}
    for pre, post in graph.edges:
        if pre not in graph.nodes or post not in graph.nodes:
            raise ValueError(f"from_nir: edge {(pre, post)!r} names an unknown node.")
        if (pre, post) not in looped:
            successors.setdefault(pre, []).append(post)
            predecessors.setdefault(post, []).append(pre)
    for name, linked, direction in [
        *((k, v, "outgoing") for k, v in successors.items()),
        *((k, v, "incoming") for k, v in predecessors.items()),
    ]:
        if len(linked) > 1:
            raise ValueError(
                f"from_nir: node {name!r} has {len(linked)} {direction} edges ({linked}); "
                "eqsnn imports chains (no branches, merges or skip connections)."
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
    if off := sorted(set(graph.nodes) - set(path) - set(loops.values())):
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


def _settings(name: str, node, k: int, options: dict) -> dict:
    """Constructor arguments that NIR has no field for: arguments, else metadata."""
    meta = (node.metadata or {}).get(META, {})
    overflow = options["overflow"]
    return dict(
        n_spikes=int(_option(name, options["n_spikes"], k, meta, "n_spikes")),
        t_max=float(_option(name, options["t_max"], k, meta, "t_max")),
        key=jax.random.PRNGKey(0),
        solver=options["solver"],
        overflow=Overflow(str(meta.get("overflow", "warn"))) if overflow is None else overflow,
    )


def _feedforward(name: str, node, w_in: np.ndarray, k: int, options: dict) -> LIF:
    n, params, scale = _neurons(name, node)
    meta = (node.metadata or {}).get(META, {})
    budget = {
        name: options[name]
        for name in ("max_spikes_per_neuron", "max_spikes_per_interval")
        if options[name] is not None
    }
    if not budget:
        budget = {
            name: int(meta[name])
            for name in ("max_spikes_per_neuron", "max_spikes_per_interval")
            if name in meta
        }
    layer = options["layer"](
        w_in.shape[0],
        n,
        params=params,
        **budget,
        **_settings(name, node, k, options),
    )
    return eqx.tree_at(lambda m: m.weights.input, layer, jnp.asarray(w_in * scale))


def _connectivity(name: str, meta: dict, n: int):
    """The recorded population sizes and connectivity mask, else one fully connected pool."""
    layers = tuple(int(size) for size in np.atleast_1d(meta.get("layers", [n])))
    if sum(layers) != n:
        raise ValueError(f"from_nir: node {name!r}: recorded `layers` {layers} do not sum to {n}.")
    if "mask_input" not in meta:
        return layers, Connectivity.FULL
    mask = ConnectivityMask(
        np.asarray(meta["mask_input"], bool), np.asarray(meta["mask_recurrent"], bool)
    )
    return layers, mask


def _recurrent(name: str, node, w_in: np.ndarray, w_rec: np.ndarray, k: int, options: dict):
    n, params, scale = _neurons(name, node)
    meta = (node.metadata or {}).get(META, {})
    layers, connectivity = _connectivity(name, meta, n)
    budget = {}
    if "max_spikes_per_neuron" in meta:  # the window scan per population
        values = np.atleast_1d(meta["max_spikes_per_neuron"])
        budget["max_spikes_per_neuron"] = tuple(int(v) for v in values)
    layer = options["recurrent_layer"](
        w_in.shape[0], layers, params=params, connectivity=connectivity, **budget,
        **_settings(name, node, k, options),
    )  # fmt: skip
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


def build_layers(nir, graph, path: list[str], loops: dict[str, str], options: dict) -> list:
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
