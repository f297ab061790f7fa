"""A model as JSON and back: the structure that [`eqsnn.training.save`][] stores.

`describe(model)` turns a model (an eqsnn layer, a [`eqsnn.encode.SpatioTemporalEncoder`][],
or an `eqx.nn.Sequential`, tuple or list of them) into a JSON-ready dict; `build(spec)`
constructs a model of the same structure from it, with placeholder weights that the
saved leaves replace. Every class is looked up by name in a registry of eqsnn classes:
nothing in a file names a Python module or is imported from it.
"""

import base64
import dataclasses
import enum
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .. import (
    LIF,
    ALIFParameters,
    AutoDiff,
    ConnectivityMask,
    EventLoop,
    EventProp,
    EventPropLIF,
    HardwareLIF,
    HardwareRecurrentLIF,
    IFParameters,
    IntervalScan,
    LIFParameters,
    Overflow,
    RecurrentEventPropLIF,
    RecurrentLIF,
    WindowScan,
)
from .._layers.feedforward import AbstractFeedForwardLayer
from .._layers.recurrent import AbstractRecurrentLayer
from ..encode import SpatioTemporalEncoder
from ..hardware._layers import AbstractHardwareLayer
from ..neurons._model import is_model
from ..solvers import BracketedSolver, LambertWSolver, TTFSSolver

LAYERS = {
    cls.__name__: cls
    for cls in (LIF, EventPropLIF, RecurrentLIF, RecurrentEventPropLIF, HardwareLIF)
    + (HardwareRecurrentLIF,)
}
"""The layers a file may hold, by class name."""

SETTINGS = {
    "params": (LIFParameters, ALIFParameters, IFParameters),
    "solver": (TTFSSolver, LambertWSolver, BracketedSolver),
    "engine": (WindowScan, IntervalScan, EventLoop),
    "adjoint": (AutoDiff, EventProp),
}
"""The classes each setting of a layer may hold (small modules of JSON-ready fields)."""

_SEED_LAYERS = (EventPropLIF, RecurrentEventPropLIF)
"""Layers whose constructor takes `wrap_only_step` instead of `adjoint`."""


class FormatError(ValueError):
    """A file's description names something this version of eqsnn cannot build."""


def _json_value(value, where: str):
    """A static field as JSON: numbers, bools, strings, `None` and tuples of them; an array
    (a trainable neuron parameter) as its shape and dtype (its values are leaves)."""
    if isinstance(value, jax.Array | np.ndarray):
        return {"array": list(value.shape), "dtype": jnp.dtype(value.dtype).name}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        return [_json_value(v, f"{where}[{k}]") for k, v in enumerate(value)]
    raise TypeError(f"save: `{where}` = {value!r} is not a number, bool, string or tuple.")


def _describe_value(value, where: str, classes: tuple[type, ...]) -> dict[str, Any]:
    """`{"class": name, field: value, ...}` of a settings module of one of `classes`."""
    if type(value) not in classes:
        known = ", ".join(cls.__name__ for cls in classes)
        raise TypeError(f"save: `{where}` is {value!r}; eqsnn saves {known} there.")
    spec: dict[str, Any] = {"class": type(value).__name__}
    for field in dataclasses.fields(value):
        if field.init:
            spec[field.name] = _json_value(getattr(value, field.name), f"{where}.{field.name}")
    return spec


def _describe_mask(mask: np.ndarray) -> dict[str, Any]:
    bits = base64.b64encode(np.packbits(np.asarray(mask, bool).ravel())).decode("ascii")
    return {"shape": list(mask.shape), "bits": bits}


def _describe_layer(layer, where: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"class": type(layer).__name__, "in_size": layer.in_size}
    if isinstance(layer, AbstractFeedForwardLayer):
        spec["out_size"] = layer.out_size
    else:
        spec["layers"] = list(layer.layers)
    spec["n_spikes"] = layer.n_spikes
    spec["t_max"] = layer.t_max
    spec["params"] = _describe_value(layer.params, f"{where}.params", SETTINGS["params"])
    for name in ("delays", "recurrent_delays"):  # trainable delays: their shape and dtype
        value = getattr(layer.weights, name, None)
        if value is not None:
            spec[name] = _json_value(value, f"{where}.weights.{name}")
    if isinstance(layer, AbstractRecurrentLayer):
        spec["mask"] = {
            "input": _describe_mask(layer.mask.input),
            "recurrent": _describe_mask(layer.mask.recurrent),
        }
    if isinstance(layer, AbstractHardwareLayer):
        spec["min_rise"] = layer.min_rise
        spec["backend"] = type(layer.backend).__name__  # a record only: load takes one
        return spec
    for name in ("solver", "engine", "adjoint"):
        spec[name] = _describe_value(getattr(layer, name), f"{where}.{name}", SETTINGS[name])
    if is_model(layer.params):  # its crossings are not the solver's: the layer refuses one
        spec["solver"] = None
    spec["overflow"] = layer.overflow.value
    return spec


def describe(model, where: str = "model") -> dict[str, Any]:
    """The JSON-ready description of `model` (`where` names it in error messages).

    **Raises:** `TypeError` naming the part of `model` that eqsnn cannot describe.
    """
    if type(model) in LAYERS.values():
        return _describe_layer(model, where)
    if type(model) is SpatioTemporalEncoder:
        return _describe_value(model, where, (SpatioTemporalEncoder,))
    if type(model) is eqx.nn.Sequential:
        parts = [describe(m, f"{where}.layers[{k}]") for k, m in enumerate(model.layers)]
        return {"class": "Sequential", "layers": parts}
    if type(model) in (tuple, list):
        items = [describe(m, f"{where}[{k}]") for k, m in enumerate(model)]
        return {"class": type(model).__name__, "items": items}
    known = ", ".join([*LAYERS, "SpatioTemporalEncoder"])
    raise TypeError(
        f"save: `{where}` is a {type(model).__qualname__}; eqsnn saves its layers ({known}) "
        "and eqx.nn.Sequential, tuples and lists of them."
    )


# --- Back from JSON --------------------------------------------------------------------------


def _field(spec, name: str, where: str):
    if not isinstance(spec, dict) or name not in spec:
        raise FormatError(f"`{where}.{name}` is missing.")
    return spec[name]


def _class(spec, where: str, classes: dict[str, type]) -> type:
    name = _field(spec, "class", where)
    if name not in classes:
        known = ", ".join(classes)
        raise FormatError(
            f"`{where}.class` is {name!r}, which this version of eqsnn does not know "
            f"(known there: {known})."
        )
    return classes[name]


def _build_value(spec, where: str, classes: tuple[type, ...]):
    cls = _class(spec, where, {c.__name__: c for c in classes})
    fields = {k: _from_json(v) for k, v in spec.items() if k != "class"}
    try:
        return cls(**fields)
    except (TypeError, ValueError) as error:
        raise FormatError(f"`{where}` cannot be rebuilt: {error}") from None


def _build_params(spec, where: str):
    """The neuron parameters (of any class in `SETTINGS["params"]`): checked when all are
    floats; with arrays (trainable, per neuron) the floats are kept and the arrays are
    placeholders of their shape and dtype, which the loaded leaves fill (their values were
    checked when they were built)."""
    fields = (
        {k: _from_json(v) for k, v in spec.items() if k != "class"}
        if isinstance(spec, dict)
        else {}
    )
    arrays = [name for name, value in fields.items() if isinstance(value, jax.Array)]
    if not arrays:
        return _build_value(spec, where, SETTINGS["params"])
    cls = _class(spec, where, {c.__name__: c for c in SETTINGS["params"]})
    if unknown := sorted(set(fields) - set(cls._FIELDS)):
        raise FormatError(
            f"`{where}` cannot be rebuilt: {cls.__name__} has no field(s) {unknown} (its "
            f"fields: {', '.join(cls._FIELDS)})."
        )
    defaults = dict(zip(cls._FIELDS, cls._DEFAULTS, strict=True))
    try:
        constants = tuple(
            (name, float(fields.get(name, defaults[name])))
            for name in cls._FIELDS
            if name not in arrays
        )
    except (TypeError, ValueError) as error:
        raise FormatError(f"`{where}` cannot be rebuilt: {error}") from None
    order = tuple(name for name in cls._FIELDS if name in arrays)
    return cls.tree_unflatten((order, constants), [fields[n] for n in order])


def _from_json(value):
    """A field back from JSON: lists become tuples, an array description zeros of its shape
    and dtype (the loaded leaves fill them)."""
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict) and set(value) == {"array", "dtype"}:
        return jnp.zeros(tuple(value["array"]), value["dtype"])
    return value


def _build_mask(spec, where: str) -> np.ndarray:
    shape = tuple(_field(spec, "shape", where))
    try:
        bits = np.frombuffer(base64.b64decode(_field(spec, "bits", where)), np.uint8)
        return np.unpackbits(bits, count=int(np.prod(shape))).astype(bool).reshape(shape)
    except ValueError as error:
        message = f"`{where}.bits` does not hold a mask of shape {shape}: {error}"
        raise FormatError(message) from None


def _build_layer(spec, where: str, backend):
    cls = _class(spec, where, LAYERS)
    size = "out_size" if issubclass(cls, AbstractFeedForwardLayer) else "layers"
    args = [_field(spec, name, where) for name in ("in_size", size, "n_spikes", "t_max")]
    params = _build_params(_field(spec, "params", where), f"{where}.params")
    keywords: dict[str, Any] = {"key": jax.random.key(0)}  # placeholder weights
    for name in ("delays", "recurrent_delays"):
        if name in spec:
            keywords[name] = _from_json(spec[name])  # zeros: the loaded leaves fill them
    if issubclass(cls, AbstractRecurrentLayer):
        mask = _field(spec, "mask", where)
        keywords["connectivity"] = ConnectivityMask(
            _build_mask(_field(mask, "input", f"{where}.mask"), f"{where}.mask.input"),
            _build_mask(_field(mask, "recurrent", f"{where}.mask"), f"{where}.mask.recurrent"),
        )
    if issubclass(cls, AbstractHardwareLayer):
        if backend is None:
            raise FormatError(
                f"`{where}` is a {cls.__name__}, whose backend (a "
                f"{_field(spec, 'backend', where)}) is not stored in the file: pass "
                "`backend=` to load."
            )
        keywords.update(backend=backend, min_rise=_field(spec, "min_rise", where))
    else:
        for name in ("solver", "engine", "adjoint"):
            value = _field(spec, name, where)
            if name == "solver" and value is None:  # a neuron model's layer: no solver
                keywords[name] = None
                continue
            keywords[name] = _build_value(value, f"{where}.{name}", SETTINGS[name])
        keywords["overflow"] = _enum(Overflow, _field(spec, "overflow", where), f"{where}.overflow")
        if cls in _SEED_LAYERS:
            keywords["wrap_only_step"] = getattr(keywords.pop("adjoint"), "per_step", False)
    try:
        return cls(*args, params, **keywords)
    except (TypeError, ValueError) as error:
        raise FormatError(f"`{where}` cannot be rebuilt: {error}") from None


def _enum(cls: type[enum.Enum], value, where: str):
    try:
        return cls(value)
    except ValueError:
        known = ", ".join(repr(member.value) for member in cls)
        raise FormatError(f"`{where}` is {value!r}; expected one of {known}.") from None


def build(spec, where: str = "model", backend=None):
    """A model of the structure `spec` describes (placeholder weights; see `describe`).

    `backend` is the [`eqsnn.hardware.Backend`][] of the hardware layers, if any.

    **Raises:** `FormatError` naming the field of `spec` that cannot be built.
    """
    name = _field(spec, "class", where)
    if name in ("Sequential", "tuple", "list"):
        key = "layers" if name == "Sequential" else "items"
        parts = _field(spec, key, where)
        if not isinstance(parts, list):
            raise FormatError(f"`{where}.{key}` must be a list, got {parts!r}.")
        built = [build(p, f"{where}.{key}[{k}]", backend) for k, p in enumerate(parts)]
        return {"Sequential": eqx.nn.Sequential, "tuple": tuple, "list": list}[name](built)
    if name == "SpatioTemporalEncoder":
        return _build_value(spec, where, (SpatioTemporalEncoder,))
    return _build_layer(spec, where, backend)
