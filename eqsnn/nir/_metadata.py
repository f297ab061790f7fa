r"""What eqsnn stores in a NIR graph beyond the dynamics, and how it comes back.

NIR has no field for a layer's class, horizon `t_max`, spike buffer `n_spikes`, overflow
policy, engine budgets or (recurrent layers) populations and connectivity mask: eqsnn
writes them to each `CubaLIF` node's `metadata["eqsnn"]`. Two functions know the keys:

- `layer_metadata`: a layer -> its metadata dict (export);
- `layer_keywords`: a metadata dict and the arguments of `from_nir` -> the keyword
  arguments of the layer's constructor (import).

The engine is recorded by name (`engine`: `WindowScan`, `IntervalScan` or `EventLoop`)
with its budget key (`max_spikes_per_neuron`, per population for a recurrent layer, or
`max_spikes_per_interval`), and the gradient method by `adjoint` (`AutoDiff` or
`EventProp`) and `per_step`. Files written before engines were values have no `engine`
key: there the budget key that is present names the engine (neither: a recurrent layer on
the event loop).

What the `CubaLIF` fields lose about the neuron parameters (the refractory period `t_ref`,
which fields are arrays and their dtype, shape and weak type) is written and read by
`_neuron.py` (keys `t_ref` and `array_params`, only when a layer uses them).
"""

import inspect
from typing import Any, TypeAlias

import jax
import numpy as np

from .. import (
    LIF,
    Connectivity,
    ConnectivityMask,
    EventLoop,
    EventProp,
    IntervalScan,
    Overflow,
    RecurrentLIF,
    WindowScan,
)
from ._neuron import parameter_metadata

Layer: TypeAlias = LIF | RecurrentLIF

META = "eqsnn"
"""Key of the node metadata in which eqsnn stores what NIR has no field for."""

_ENGINES = {"WindowScan": WindowScan, "IntervalScan": IntervalScan, "EventLoop": EventLoop}
"""The engines by their recorded name."""


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
    metadata["engine"] = type(layer.engine).__name__
    for name, value in layer.engine.budget_settings.items():
        metadata[name] = np.array(value) if isinstance(value, tuple) else value
    metadata["adjoint"] = type(layer.adjoint).__name__
    metadata["per_step"] = bool(getattr(layer.adjoint, "per_step", False))
    metadata.update(parameter_metadata(layer.params, layer.size))
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
    keywords: dict[str, Any] = {"engine": options["engine"] or _engine(metadata, recurrent)}
    if recurrent:
        keywords["connectivity"] = _connectivity(metadata)
    cls = options["recurrent_layer" if recurrent else "layer"]
    adjoint = options["adjoint"] or _adjoint(metadata)
    if adjoint is not None and "adjoint" in inspect.signature(cls).parameters:
        keywords["adjoint"] = adjoint
    overflow = options["overflow"]
    return dict(
        **keywords,
        n_spikes=int(_option(name, options["n_spikes"], k, metadata, "n_spikes")),
        t_max=float(_option(name, options["t_max"], k, metadata, "t_max")),
        key=jax.random.PRNGKey(0),
        solver=options["solver"],
        overflow=Overflow(str(metadata.get("overflow", "warn"))) if overflow is None else overflow,
    )


def _engine(metadata: dict, recurrent: bool):
    """The recorded engine (`None`: the layer's default)."""
    name = str(metadata.get("engine", ""))
    if "max_spikes_per_interval" in metadata and name in ("", "IntervalScan"):
        return IntervalScan(max_spikes_per_interval=int(metadata["max_spikes_per_interval"]))
    if "max_spikes_per_neuron" in metadata and name in ("", "WindowScan"):
        values = tuple(int(v) for v in np.atleast_1d(metadata["max_spikes_per_neuron"]))
        return WindowScan(max_spikes_per_neuron=values if recurrent else values[0])
    return _ENGINES[name]() if name in _ENGINES else None


def _adjoint(metadata: dict):
    """The recorded gradient method (`None`: the layer's default)."""
    if str(metadata.get("adjoint", "")) == "EventProp":
        return EventProp(per_step=bool(metadata.get("per_step", False)))
    return None


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
