r"""The neuron: eqsnn's [`eqsnn.LIFParameters`][] and NIR's `CubaLIF` node, both ways.

Every `CubaLIF` field is a vector of one value per neuron, so a per-neuron parameter
array maps onto it as it is; a float (a constant shared by all neurons) is written as a
vector of equal values. NIR keeps neither which fields were floats nor the shape and dtype
of the arrays, and has no refractory period: eqsnn records them in the node's
`metadata["eqsnn"]`,

- `"t_ref"`: the refractory periods in seconds, float64 of shape `(n,)` (only when
  `t_ref` is an array or a positive float);
- `"array_params"`: `{field: {"dtype": str, "ndim": 0 or 1, "weak_type": bool}}` for each
  field that is an array (only when there is one; `jnp.full(n, 0.6)` is weakly typed,
  which JAX's dtype promotion and its compilation cache both see),

and reads them back, so a round trip gives back the same parameters: floats as floats,
arrays with their shape and dtype, every value bit for bit. A graph without the record (from
another tool, or written before) gets a float where all neurons agree and a per-neuron
float64 array where they differ; without `"t_ref"` there is no refractory period.
"""

from typing import Any

import jax.numpy as jnp
import numpy as np

from .. import LIFParameters

CUBA_FIELDS = {
    "tau_syn": "tau_syn",
    "tau_mem": "tau_mem",
    "v_th": "v_threshold",
    "v_leak": "v_leak",
    "v_reset": "v_reset",
}
"""eqsnn parameter -> NIR `CubaLIF` field (`t_ref` has none)."""

_T_REF = "t_ref"
_ARRAYS = "array_params"


def _per_neuron(value, n: int) -> np.ndarray:
    """A float or an array of shape `()` or `(n,)` -> float64 values of shape `(n,)`."""
    return np.array(np.broadcast_to(np.asarray(value, np.float64), (n,)))


def parameter_metadata(params: LIFParameters, n: int) -> dict[str, Any]:
    """What the `CubaLIF` fields lose: the refractory periods and which fields are arrays
    (their dtype and number of dimensions); empty for float parameters without `t_ref`."""
    metadata: dict[str, Any] = {}
    if params.refractory:
        metadata[_T_REF] = _per_neuron(params.t_ref, n)
    if params.arrays:
        metadata[_ARRAYS] = {
            name: {
                "dtype": np.dtype(value.dtype).name,
                "ndim": int(np.ndim(value)),
                "weak_type": bool(getattr(value, "weak_type", False)),
            }
            for name in params.arrays
            for value in [getattr(params, name)]
        }
    return metadata


def cuba_lif(nir, params: LIFParameters, n: int, metadata: dict) -> Any:
    """The `CubaLIF` node of `n` neurons, with $r = 1$ and $w_\\mathrm{in} = \\tau_\\mathrm{syn}$
    (so that the weights are stored unchanged) and `metadata` as its node metadata."""
    fields = {field: _per_neuron(getattr(params, ours), n) for ours, field in CUBA_FIELDS.items()}
    return nir.CubaLIF(**fields, r=_per_neuron(1.0, n), w_in=fields["tau_syn"], metadata=metadata)


def _values(name: str, node, metadata: dict, n: int) -> dict[str, np.ndarray]:
    """eqsnn field -> float64 values of shape `(n,)`, from the node and its metadata."""
    values = {
        ours: np.asarray(getattr(node, field), np.float64) for ours, field in CUBA_FIELDS.items()
    }
    values[_T_REF] = np.asarray(metadata.get(_T_REF, np.zeros(n)), np.float64)
    for ours, value in values.items():
        if value.shape != (n,):
            field = CUBA_FIELDS.get(ours, f'metadata["eqsnn"]["{_T_REF}"]')
            raise ValueError(
                f"from_nir: node {name!r}: `{field}` must have shape ({n},), got {value.shape}."
            )
    return values


def _parameter(value: np.ndarray, record: dict | None):
    """One field: the recorded array (dtype, shape `()` if all neurons agree), else a float
    where all neurons agree and a float64 array where they differ."""
    uniform = bool(np.all(value == value[0]))
    if record is None:
        return float(value[0]) if uniform else value
    dtype = np.dtype(str(record["dtype"]))
    array = (
        np.asarray(value[0], dtype) if int(record["ndim"]) == 0 and uniform else value.astype(dtype)
    )
    if bool(record.get("weak_type", False)):
        # A weakly typed array of these values (`jnp.full` with a Python scalar is weak and
        # `.at[].set` keeps the operand's type).
        return jnp.full(array.shape, 0.0).at[...].set(array)
    return array


def neurons(name: str, node, metadata: dict) -> tuple[int, LIFParameters, np.ndarray]:
    """Size, parameters and weight scale $r\\, w_\\mathrm{in} / \\tau_\\mathrm{syn}$ (per
    neuron, float64) of the `CubaLIF` node `name` with eqsnn metadata `metadata`."""
    if np.ndim(node.v_threshold) != 1:
        raise ValueError(
            f"from_nir: node {name!r}: eqsnn layers are 1-d, got parameters of shape "
            f"{np.shape(node.v_threshold)}."
        )
    n = int(np.size(node.v_threshold))
    values = _values(name, node, metadata, n)
    records = metadata.get(_ARRAYS, {})
    try:
        params = LIFParameters(
            **{ours: _parameter(value, records.get(ours)) for ours, value in values.items()}
        )
    except ValueError as error:
        raise ValueError(f"from_nir: node {name!r}: {error}") from None
    scale = np.asarray(node.r, np.float64) * np.asarray(node.w_in, np.float64) / values["tau_syn"]
    if scale.shape != (n,):
        raise ValueError(f"from_nir: node {name!r}: `r` and `w_in` must have shape ({n},).")
    return n, params, scale
