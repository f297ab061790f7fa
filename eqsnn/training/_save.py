r"""Saved models that load in any script: `save`, `load`, `load_hyperparameters`.

**The file format** (version 1). One line of JSON, then the leaves:

```text
{"format": "eqsnn-model", "version": 1, "eqsnn_version": ..., "model": {...},
 "leaves": [{"path": ..., "shape": [...], "dtype": ...}, ...], "hyperparameters": {...}}\n
<the array leaves, as eqx.tree_serialise_leaves writes them>
```

`model` describes the structure: for each layer its class (from a registry of eqsnn
classes), sizes, `n_spikes`, `t_max`, neuron parameters, crossing solver, engine and
gradient method by name with their settings, overflow policy and (recurrent layers) the
connectivity mask, bit-packed; for an `eqx.nn.Sequential`, tuple or list its parts in
order. `leaves` lists the arrays in the order they follow, and `hyperparameters` is
whatever JSON the caller passed. The header is plain text: `head -n 1 model.eqx` shows it.
"""

import json
import os
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jaxtyping import PyTree

from ..hardware._layers import AbstractHardwareLayer
from ._describe import FormatError, build, describe

FORMAT = "eqsnn-model"
"""The `format` entry of a saved model's header."""

VERSION = 1
"""The newest format version this eqsnn writes and reads."""


def _leaf_table(model) -> list[dict[str, Any]]:
    arrays = eqx.filter(model, eqx.is_array)
    return [
        {"path": jax.tree_util.keystr(at), "shape": list(np.shape(leaf)), "dtype": str(leaf.dtype)}
        for at, leaf in jax.tree_util.tree_flatten_with_path(arrays)[0]
    ]


def save(
    path: str | os.PathLike,
    model: PyTree,
    *,
    hyperparameters: dict[str, Any] | None = None,
) -> None:
    """Save `model` with its structure, so that [`eqsnn.training.load`][] rebuilds it.

    The file holds a JSON header (the structure and constructor settings of every layer,
    the list of arrays, `hyperparameters`) followed by the arrays, written by
    `eqx.tree_serialise_leaves`; see the format in [Saved models](../howto/checkpoint.md).
    It is written to `path + ".tmp"` first and then renamed, so a crash while saving
    leaves an earlier file at `path` intact.

    **Arguments:**

    - `path`: the file to write (its folder must exist); `.eqx` is the usual suffix.
    - `model`: an eqsnn layer ([`eqsnn.LIF`][], [`eqsnn.EventPropLIF`][],
      [`eqsnn.RecurrentLIF`][], [`eqsnn.RecurrentEventPropLIF`][], [`eqsnn.HardwareLIF`][],
      [`eqsnn.HardwareRecurrentLIF`][]), a [`eqsnn.encode.SpatioTemporalEncoder`][], or an
      `eqx.nn.Sequential`, tuple or list of them (nested as you like). The neuron
      parameters may be [`eqsnn.LIFParameters`][], [`eqsnn.ALIFParameters`][] or
      [`eqsnn.IFParameters`][], with float and array (trainable, per neuron) fields.
    - `hyperparameters`: anything else to keep with the model (keyword-only): a dict that
      `json.dumps` accepts, e.g. the settings of the run. Read it back with
      [`eqsnn.training.load_hyperparameters`][].

    **Raises:** `TypeError` naming the part of `model` that eqsnn cannot save, or if
    `hyperparameters` is not JSON; `ValueError` if the description would not rebuild
    `model` exactly (a layer changed behind its constructor's back).

    **Example:**

    ```python
    import jax
    import eqsnn

    layer = eqsnn.LIF(5, 3, 3, 0.02, key=jax.random.key(0))
    eqsnn.training.save("layer.eqx", layer, hyperparameters={"epochs": 10})
    same = eqsnn.training.load("layer.eqx")
    ```
    """
    path = Path(path)
    description = describe(model)
    _check_rebuilds(model, description)
    if hyperparameters is not None and not isinstance(hyperparameters, dict):
        raise TypeError(f"save: `hyperparameters` must be a dict, got {hyperparameters!r}.")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "eqsnn_version": _eqsnn_version(),
        "model": description,
        "leaves": _leaf_table(model),
        "hyperparameters": hyperparameters or {},
    }
    try:
        line = json.dumps(header, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"save: `hyperparameters` must hold only JSON values (dicts with string keys, "
            f"lists, strings, numbers, bools, None): {error}."
        ) from None
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as file:
        file.write(line.encode("utf-8") + b"\n")
        eqx.tree_serialise_leaves(file, model)
    temporary.replace(path)


def _eqsnn_version() -> str:
    from .. import __version__

    return __version__


def _check_rebuilds(model, description) -> None:
    """The description must rebuild `model`'s structure, static fields included."""
    hardware = [m for m in jax.tree.leaves(model, is_leaf=_is_hardware) if _is_hardware(m)]
    if len({id(layer.backend) for layer in hardware}) > 1:
        return  # layers on several backends: `load` takes one backend for all of them
    rebuilt = build(description, backend=hardware[0].backend if hardware else None)
    shapes = [[(e["path"], e["shape"]) for e in _leaf_table(m)] for m in (rebuilt, model)]
    if jax.tree.structure(rebuilt) != jax.tree.structure(model) or shapes[0] != shapes[1]:
        raise ValueError(
            "save: the description of `model` does not rebuild it exactly (a field was "
            "changed with eqx.tree_at to a value its constructor does not produce?); "
            f"described as {json.dumps(description)[:500]}."
        )


def _is_hardware(x) -> bool:
    return isinstance(x, AbstractHardwareLayer)


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The header of the model file `path` and the offset of its leaves."""
    with open(path, "rb") as file:
        start = file.read(1)
        line = start + file.readline() if start == b"{" else b""
        offset = file.tell()
    try:
        header = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not an eqsnn model file (its first line is not a JSON header with "
            f'"format": "{FORMAT}"). Files of eqx.tree_serialise_leaves alone load with '
            "eqx.tree_deserialise_leaves and a model of the same structure."
        )
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise ValueError(
            f"{path}: `version` is {version!r}, but this eqsnn ({_eqsnn_version()}) reads "
            f"format versions 1 to {VERSION}; the file was written by eqsnn "
            f"{header.get('eqsnn_version', '(unknown)')}. Upgrade eqsnn to load it."
        )
    for name in ("model", "leaves"):
        if name not in header:
            raise ValueError(f"{path}: the header has no `{name}` field.")
    return header, offset


def load_hyperparameters(path: str | os.PathLike) -> dict[str, Any]:
    """The `hyperparameters` that [`eqsnn.training.save`][] stored with a model.

    Reads only the header, not the arrays.

    **Returns:** the dict passed to `save` (`{}` if none was).

    **Raises:** `ValueError` if `path` is not an eqsnn model file or has a newer format.
    """
    header, _ = _read_header(Path(path))
    return header.get("hyperparameters") or {}


def load(path: str | os.PathLike, *, backend=None) -> PyTree:
    """Rebuild a model saved with [`eqsnn.training.save`][], weights and all.

    The structure comes from the file's header, so no code that built the model is
    needed: layers, encoders and `eqx.nn.Sequential`s are constructed anew from their
    recorded settings and filled with the saved arrays, bit for bit and in their saved
    dtype.

    **Arguments:**

    - `path`: the file.
    - `backend`: the [`eqsnn.hardware.Backend`][] of the file's hardware layers
      ([`eqsnn.HardwareLIF`][], [`eqsnn.HardwareRecurrentLIF`][]), whose backends are
      not stored (keyword-only; ignored for other layers).

    **Returns:** the model, of the same type and structure as the one saved.

    **Raises:** `ValueError` naming the file and the field when the file is not an eqsnn
    model, its format version is newer than this eqsnn reads, it names a class this
    version does not know, its arrays do not match its header, it holds 64-bit arrays
    while JAX runs in 32-bit mode, or it has hardware layers and no `backend` is given.

    **Example:**

    ```python
    import eqsnn

    model = eqsnn.training.load("layer.eqx")  # as saved in eqsnn.training.save's example
    ```
    """
    path = Path(path)
    header, offset = _read_header(path)
    try:
        model = build(header["model"], backend=backend)
    except FormatError as error:
        raise ValueError(f"{path}: {error}") from None
    table = _leaf_table(model)
    saved = header["leaves"]
    _check_leaves(path, table, saved)
    like = _with_dtypes(model, [entry["dtype"] for entry in saved])
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            loaded = eqx.tree_deserialise_leaves(file, like)
    except Exception as error:  # numpy's, equinox's: a truncated or corrupt file
        cause = error
        while cause.__cause__ is not None:
            cause = cause.__cause__
        raise ValueError(f"{path}: the arrays after the header cannot be read: {cause}") from None
    for entry, leaf in zip(saved, jax.tree.leaves(eqx.filter(loaded, eqx.is_array)), strict=True):
        if list(leaf.shape) != entry["shape"] or str(leaf.dtype) != entry["dtype"]:
            raise ValueError(
                f"{path}: the array {entry['path']} is {leaf.dtype}{list(leaf.shape)}, but the "
                f"header says {entry['dtype']}{entry['shape']}."
            )
    return loaded


def _check_leaves(path: Path, table: list[dict], saved) -> None:
    """The arrays the header lists must be those of the structure it describes."""
    if not isinstance(saved, list) or len(saved) != len(table):
        count = len(saved) if isinstance(saved, list) else saved
        raise ValueError(
            f"{path}: `leaves` lists {count} arrays, but the model it describes has {len(table)}."
        )
    x64 = jax.config.read("jax_enable_x64")
    for k, (built, entry) in enumerate(zip(table, saved, strict=True)):
        if not isinstance(entry, dict) or entry.get("shape") != built["shape"]:
            raise ValueError(
                f"{path}: `leaves[{k}]` ({built['path']}) should have shape {built['shape']} "
                f"for the model the header describes, got {entry!r}."
            )
        dtype = entry.get("dtype")
        try:
            itemsize = np.dtype(dtype).itemsize
        except TypeError:
            raise ValueError(f"{path}: `leaves[{k}].dtype` is {dtype!r}, not a dtype.") from None
        if itemsize == 8 and not x64:
            raise ValueError(
                f"{path}: `leaves[{k}]` ({built['path']}) is {dtype}, but JAX runs in 32-bit "
                "mode; call jax.config.update('jax_enable_x64', True) before loading."
            )


def _with_dtypes(model, dtypes: list[str]):
    """`model` with its arrays replaced by shape-and-dtype placeholders of `dtypes`."""
    arrays, static = eqx.partition(model, eqx.is_array)
    leaves, treedef = jax.tree.flatten(arrays)
    placeholders = [
        jax.ShapeDtypeStruct(np.shape(x), np.dtype(d)) for x, d in zip(leaves, dtypes, strict=True)
    ]
    return eqx.combine(jax.tree.unflatten(treedef, placeholders), static)
