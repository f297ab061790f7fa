r"""What eqsnn stores in a NIR graph beyond the dynamics, and how it comes back.

NIR has no field for a layer's class, horizon `t_max`, spike buffer `n_spikes`, overflow
policy, engine budgets or (recurrent layers) populations and connectivity mask: eqsnn
writes them to each `CubaLIF` node's `metadata["eqsnn"]`. Two functions know the keys:

- `layer_metadata`: a layer -> its metadata dict (export);
- `layer_keywords`: a metadata dict and the arguments of `from_nir` -> the keyword
  arguments of the layer's constructor (import).

Which engine a layer runs is recorded by which budget key is present:
`max_spikes_per_neuron` (window scan; per population for a recurrent layer) or
`max_spikes_per_interval` (interval scan, feed-forward only); neither for a recurrent
layer on the global event loop. The NIR file format depends on these keys.
"""

from typing import Any, TypeAlias

import jax
import numpy as np

from .. import LIF, Connectivity, ConnectivityMask, Overflow, RecurrentLIF

Layer: TypeAlias = LIF | RecurrentLIF

META = "eqsnn"
"""Key of the node metadata in which eqsnn stores what NIR has no field for."""

_FEEDFORWARD_BUDGETS = ("max_spikes_per_neuron", "max_spikes_per_interval")
"""The budget keywords of a feed-forward layer; exactly one is set, and it names the engine."""


def layer_metadata(layer: Layer) -> dict[str, Any]:
    """Layer -> what NIR has no field for, stored in the CubaLIF node's `metadata["eqsnn"]`."""
    metadata = {
        "layer": type(layer).__name__,
        "n_spikes": layer.n_spikes,
        "t_max": layer.t_max,
        "overflow": layer.overflow.value,
    }
    if isinstance(layer, RecurrentLIF):
        metadata["layers"] = np.array(layer.layers)
        metadata["mask_input"] = np.array(layer.mask.input)
        metadata["mask_recurrent"] = np.array(layer.mask.recurrent)
        if layer.max_spikes_per_neuron is not None:  # window scan per population
            metadata["max_spikes_per_neuron"] = np.array(layer.max_spikes_per_neuron)
    else:
        for name in _FEEDFORWARD_BUDGETS:
            if getattr(layer, name, None) is not None:  # the engine: exactly one is set
                metadata[name] = getattr(layer, name)
    return metadata


def layer_keywords(
    name: str, metadata: dict, k: int, options: dict, *, recurrent: bool
) -> dict[str, Any]:
    """Metadata dict (and `from_nir`'s arguments) -> keyword arguments of the constructor
    of layer `k` (node `name`): the arguments where given, else the metadata.

    For a recurrent layer the connectivity comes from the metadata (see
    `population_sizes` for its positional population sizes) and so does the budget;
    a feed-forward layer takes a budget given to `from_nir` instead of the recorded one.
    """
    if recurrent:
        keywords: dict[str, Any] = {"connectivity": _connectivity(metadata)}
        if "max_spikes_per_neuron" in metadata:  # the window scan per population
            values = np.atleast_1d(metadata["max_spikes_per_neuron"])
            keywords["max_spikes_per_neuron"] = tuple(int(v) for v in values)
    else:
        keywords = {
            budget: options[budget]
            for budget in _FEEDFORWARD_BUDGETS
            if options[budget] is not None
        }
        if not keywords:
            keywords = {
                budget: int(metadata[budget])
                for budget in _FEEDFORWARD_BUDGETS
                if budget in metadata
            }
    overflow = options["overflow"]
    return dict(
        **keywords,
        n_spikes=int(_option(name, options["n_spikes"], k, metadata, "n_spikes")),
        t_max=float(_option(name, options["t_max"], k, metadata, "t_max")),
        key=jax.random.PRNGKey(0),
        solver=options["solver"],
        overflow=Overflow(str(metadata.get("overflow", "warn"))) if overflow is None else overflow,
    )


def population_sizes(name: str, metadata: dict, n: int) -> tuple[int, ...]:
    """The recorded population sizes of a recurrent layer of `n` neurons, else `(n,)`."""
    layers = tuple(int(size) for size in np.atleast_1d(metadata.get("layers", [n])))
    if sum(layers) != n:
        raise ValueError(f"from_nir: node {name!r}: recorded `layers` {layers} do not sum to {n}.")
    return layers


def _connectivity(metadata: dict):
    """The recorded connectivity mask, else one fully connected pool."""
    if "mask_input" not in metadata:
        return Connectivity.FULL
    return ConnectivityMask(
        np.asarray(metadata["mask_input"], bool), np.asarray(metadata["mask_recurrent"], bool)
    )


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
