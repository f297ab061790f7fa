r"""The synapses of a feed-forward layer: its weights and delays as NIR nodes, both ways.

NIR's `Delay` node delays each channel, $y_j(t) = x_j(t - d_j)$. What a layer's delays
become (`synapse_nodes`), for layer $k$ with `in` inputs and `out` neurons:

| eqsnn `weights.delays` | NIR nodes from the previous node to `lif_k` |
|---|---|
| `None` | `linear_k` (the weights, `(out, in)`) |
| per source, `(in,)` | `delay_k` (`(in,)`) → `linear_k` |
| per synapse, `(in, out)` | `fanout_k` → `delay_k` (`(in·out,)`) → `linear_k` (`(out, in·out)`) |

A per-synapse delay is one `Delay` channel per synapse: `fanout_k` copies input $i$ to the
channels $j = i \cdot \mathrm{out} + n$ (a `Linear` of zeros and ones, shape
`(in·out, in)`), channel $j$ is delayed by `delays[i, n]`, and `linear_k` sends it, with
weight `W[i, n]`, to neuron $n$ only. This is exact, but its two matrices hold
$\mathrm{in}^2\,\mathrm{out} + \mathrm{in}\,\mathrm{out}^2$ numbers.

What `synapses` reads back: the three arrangements above (a `fanout_k` of exactly that
pattern, and a `linear_k` that is zero off its synapses), a `Delay` straight after the
weight node (one delay per neuron, a per-synapse matrix whose columns are constant), a
`Delay` alone (per source, one-to-one connections), or nothing (one-to-one, no delay).
"""

from typing import Any

import numpy as np


def _fanout_pattern(n_in: int, n_out: int) -> np.ndarray:
    """`(n_in * n_out, n_in)`: row `i * n_out + n` is the unit vector of input `i`."""
    return np.repeat(np.eye(n_in), n_out, axis=0)


def _synapse_pattern(n_in: int, n_out: int) -> np.ndarray:
    """`(n_out, n_in * n_out)` bool: channel `i * n_out + n` reaches neuron `n` only."""
    return np.tile(np.eye(n_out, dtype=bool), (1, n_in))


def synapse_nodes(nir, weights, k: int) -> list[tuple[str, Any]]:
    """The named nodes, in order, that carry a feed-forward layer's `InputWeights` (`k`:
    the layer's position) from the previous node to its `CubaLIF`."""
    w = np.asarray(weights.input)
    delays = None if weights.delays is None else np.asarray(weights.delays)
    if delays is None:
        return [(f"linear_{k}", nir.Linear(weight=np.ascontiguousarray(w.T)))]
    if delays.ndim == 1:
        return [
            (f"delay_{k}", nir.Delay(delay=delays)),
            (f"linear_{k}", nir.Linear(weight=np.ascontiguousarray(w.T))),
        ]
    n_in, n_out = w.shape
    spread = np.zeros((n_out, n_in * n_out), w.dtype)
    spread[_synapse_pattern(n_in, n_out)] = w.T.reshape(-1)  # row n: channels i * n_out + n
    return [
        (f"fanout_{k}", nir.Linear(weight=_fanout_pattern(n_in, n_out).astype(w.dtype))),
        (f"delay_{k}", nir.Delay(delay=delays.reshape(-1))),
        (f"linear_{k}", nir.Linear(weight=spread)),
    ]


def weight_matrix(nir, name: str, node, n_in: int) -> np.ndarray:
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


def _delay(name: str, node, size: int) -> np.ndarray:
    """The delays of a Delay node on `size` channels: 1-d, finite and >= 0 (seconds)."""
    delay = np.asarray(node.delay)
    if delay.shape != (size,):
        raise ValueError(
            f"from_nir: node {name!r}: a Delay on {size} channels must have delay of shape "
            f"({size},), got {delay.shape}."
        )
    bad = ~np.isfinite(delay) | (delay < 0)
    if bad.any():
        j = int(np.argmax(bad))
        raise ValueError(
            f"from_nir: node {name!r}: delays must be finite and >= 0 (seconds), got "
            f"delay[{j}]={delay[j].item()!r}."
        )
    return delay


def _one_to_one(neuron: str, n: int, size: int) -> np.ndarray:
    if size != n:
        raise ValueError(
            f"from_nir: node {neuron!r} has {n} neurons but no weight node before it, "
            f"and its input has {size} channels."
        )
    return np.eye(n)


def _fanout(nir, graph, names: list[str], size: int, n: int):
    """Fan-out `Linear` → `Delay` → `Linear`: the `(n, size)` weights and `(size, n)`
    per-synapse delays, if the two matrices have the pattern `synapse_nodes` writes."""
    fanout, delay, last = names
    a = weight_matrix(nir, fanout, graph.nodes[fanout], size)
    d = _delay(delay, graph.nodes[delay], a.shape[0])
    b = weight_matrix(nir, last, graph.nodes[last], a.shape[0])
    if b.shape[0] != n:
        raise ValueError(f"from_nir: node {last!r} has {b.shape[0]} outputs, not {n}.")
    if a.shape != (size * n, size) or np.any(a != _fanout_pattern(size, n)):
        raise ValueError(
            f"from_nir: node {fanout!r} before the Delay {delay!r} is not a fan-out (row "
            f"i * {n} + n the unit vector of input i, shape ({size * n}, {size})); eqsnn reads "
            "Linear → Delay → Linear as per-synapse delays only in that arrangement."
        )
    pattern = _synapse_pattern(size, n)
    if np.any(b[~pattern] != 0):
        raise ValueError(
            f"from_nir: node {last!r} after the Delay {delay!r} sends a delayed channel to "
            f"more than one neuron; per-synapse delays need channel i * {n} + n to reach "
            "neuron n only."
        )
    return b[pattern].reshape(n, size), d.reshape(size, n)


def synapses(nir, graph, names: list[str], size: int, n: int, neuron: str):
    """Weights `(n, size)` in NIR's orientation (float64) and delays (`None`, `(size,)` or
    `(size, n)`) of the nodes `names` between a layer's input of `size` channels and its
    `CubaLIF` node `neuron` of `n` neurons."""
    weight, delays = _arrangement(nir, graph, names, size, n, neuron)
    if weight.shape[0] != n:
        raise ValueError(
            f"from_nir: node {names[-1]!r} has {weight.shape[0]} outputs but {neuron!r} has "
            f"{n} neurons."
        )
    return weight.astype(np.float64), delays


def _arrangement(nir, graph, names: list[str], size: int, n: int, neuron: str):
    kinds = "".join("D" if isinstance(graph.nodes[k], nir.Delay) else "W" for k in names)
    nodes = [graph.nodes[k] for k in names]
    if kinds in ("", "D"):
        delays = _delay(names[0], nodes[0], size) if kinds else None
        return _one_to_one(neuron, n, size), delays
    if kinds == "W":
        return weight_matrix(nir, names[0], nodes[0], size), None
    if kinds == "DW":
        return weight_matrix(nir, names[1], nodes[1], size), _delay(names[0], nodes[0], size)
    if kinds == "WD":
        weight = weight_matrix(nir, names[0], nodes[0], size)
        delays = _delay(names[1], nodes[1], weight.shape[0])
        return weight, np.array(np.broadcast_to(delays, (size, weight.shape[0])))
    if kinds == "WDW":
        return _fanout(nir, graph, names, size, n)
    for a, b, kind_a, kind_b in zip(names[:-1], names[1:], kinds[:-1], kinds[1:], strict=True):
        if kind_a == kind_b:
            what = "weight nodes" if kind_a == "W" else "Delay nodes"
            raise ValueError(
                f"from_nir: {what} {a!r} and {b!r} follow each other; eqsnn needs exactly one "
                "Linear or Affine node between neuron nodes, with a Delay before or after it "
                "(or a fan-out Linear → Delay → Linear for per-synapse delays)."
            )
    raise ValueError(
        f"from_nir: the nodes {names} before {neuron!r} are no arrangement of weights and "
        "delays that eqsnn can express: [Linear], Delay → Linear (per source), Linear → "
        "Delay (per neuron), fan-out Linear → Delay → Linear (per synapse)."
    )
