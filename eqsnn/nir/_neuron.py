r"""The neuron, both ways: eqsnn's [`eqsnn.LIFParameters`][] and NIR's `CubaLIF` node, and
[`eqsnn.IFParameters`][] and NIR's `LI` → `IF` pair (the `LI` node is the exponential
synapse: NIR's `IF` integrates its input without one).

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

**IF neurons.** [`eqsnn.IFParameters`][] ($\tau_\mathrm{mem}\dot V = I$,
$\tau_\mathrm{syn}\dot I = -I$, jump $W$) is an `LI` node (`tau` $= \tau_\mathrm{syn}$,
`r` $= \tau_\mathrm{syn}$, `v_leak` $= 0$: its state is the current $I$, which jumps by
$r W_\mathrm{NIR} / \tau = W$) followed by an `IF` node ($\dot V = r I$ with
`r` $= 1/\tau_\mathrm{mem}$, `v_threshold`, `v_reset`). NIR has no initial voltage (states
start at 0), so `v_init` must be 0. The IF node's metadata also records the time constants
`tau_mem` (float64, `(n,)`), which `1 / r` gives back only up to rounding; they are used when
`1 / tau_mem` is exactly the node's `r`.
"""

from typing import Any

import jax.numpy as jnp
import numpy as np

from .. import IFParameters, LIFParameters

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


_TAU_MEM = "tau_mem"


def parameter_metadata(params: LIFParameters | IFParameters, n: int) -> dict[str, Any]:
    """What the node fields lose: the refractory periods, which fields are arrays (their
    dtype and number of dimensions) and, for IF neurons, the exact `tau_mem`; empty for
    float LIF parameters without `t_ref`."""
    metadata: dict[str, Any] = {}
    if isinstance(params, IFParameters):
        metadata[_TAU_MEM] = _per_neuron(params.tau_mem, n)
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


def if_nodes(nir, params: IFParameters, n: int, metadata: dict, where: str) -> tuple:
    """The `LI` node (the synapse) and the `IF` node (with `metadata`) of `n` IF neurons;
    `where` names the layer in the `ValueError` for a non-zero `v_init`."""
    v_init = _per_neuron(params.v_init, n)
    if np.any(v_init != 0):
        k = int(np.argmax(v_init != 0))
        raise ValueError(
            f"to_nir: {where}: NIR's IF node has no initial voltage (its state starts at 0), "
            f"got params.v_init[{k}]={float(v_init[k])!r}. Shift the voltages: "
            "IFParameters(v_th=v_th - v_init, v_reset=v_reset - v_init, v_init=0.0) is the "
            "same neuron."
        )
    tau_syn = _per_neuron(params.tau_syn, n)
    synapse = nir.LI(tau=tau_syn, r=tau_syn.copy(), v_leak=np.zeros(n))
    neuron = nir.IF(
        r=1.0 / _per_neuron(params.tau_mem, n),
        v_threshold=_per_neuron(params.v_th, n),
        v_reset=_per_neuron(params.v_reset, n),
        metadata=metadata,
    )
    return synapse, neuron


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


def _size(name: str, node) -> int:
    if np.ndim(node.v_threshold) != 1:
        raise ValueError(
            f"from_nir: node {name!r}: eqsnn layers are 1-d, got parameters of shape "
            f"{np.shape(node.v_threshold)}."
        )
    return int(np.size(node.v_threshold))


def _build(name: str, cls, values: dict[str, np.ndarray], metadata: dict):
    """`cls` of the per-neuron `values`, floats or arrays as `_parameter` decides."""
    records = metadata.get(_ARRAYS, {})
    try:
        return cls(**{ours: _parameter(value, records.get(ours)) for ours, value in values.items()})
    except ValueError as error:
        raise ValueError(f"from_nir: node {name!r}: {error}") from None


def neurons(name: str, node, metadata: dict) -> tuple[int, LIFParameters, np.ndarray]:
    """Size, parameters and weight scale $r\\, w_\\mathrm{in} / \\tau_\\mathrm{syn}$ (per
    neuron, float64) of the `CubaLIF` node `name` with eqsnn metadata `metadata`."""
    n = _size(name, node)
    values = _values(name, node, metadata, n)
    params = _build(name, LIFParameters, values, metadata)
    scale = np.asarray(node.r, np.float64) * np.asarray(node.w_in, np.float64) / values["tau_syn"]
    if scale.shape != (n,):
        raise ValueError(f"from_nir: node {name!r}: `r` and `w_in` must have shape ({n},).")
    return n, params, scale


def if_neurons(
    synapse_name: str, synapse, name: str, node, metadata: dict
) -> tuple[int, IFParameters, np.ndarray]:
    """Size, parameters and weight scale $r / \\tau$ of the `LI` node (per neuron, float64)
    of the IF neurons of the `LI` → `IF` pair `synapse_name` → `name`."""
    n = _size(name, node)
    fields = {
        (synapse_name, "tau"): synapse.tau,
        (synapse_name, "r"): synapse.r,
        (synapse_name, "v_leak"): synapse.v_leak,
        (name, "r"): node.r,
        (name, "v_threshold"): node.v_threshold,
        (name, "v_reset"): node.v_reset,
    }
    arrays = {}
    for (where, field), value in fields.items():
        arrays[where, field] = np.asarray(value, np.float64)
        if arrays[where, field].shape != (n,):
            raise ValueError(
                f"from_nir: node {where!r}: `{field}` must have shape ({n},), got "
                f"{arrays[where, field].shape}."
            )
    v_leak = arrays[synapse_name, "v_leak"]
    if np.any(v_leak != 0):
        k = int(np.argmax(v_leak != 0))
        raise ValueError(
            f"from_nir: node {synapse_name!r} (LI): `v_leak` must be 0 for the synapse of an IF "
            f"node (eqsnn's synaptic current decays to 0), got v_leak[{k}]={float(v_leak[k])!r}."
        )
    r = arrays[name, "r"]
    if np.any(~np.isfinite(r) | (r <= 0)):
        k = int(np.argmax(~np.isfinite(r) | (r <= 0)))
        raise ValueError(
            f"from_nir: node {name!r} (IF): `r` must be positive and finite (r = "
            f"1 / tau_mem), got r[{k}]={float(r[k])!r}."
        )
    tau_mem = 1.0 / r
    if _TAU_MEM in metadata:
        recorded = np.asarray(metadata[_TAU_MEM], np.float64)
        if recorded.shape == (n,) and np.array_equal(1.0 / recorded, r):
            tau_mem = recorded  # the exact values that `1 / r` gives back up to rounding
    values = {
        "tau_syn": arrays[synapse_name, "tau"],
        "tau_mem": tau_mem,
        "v_th": arrays[name, "v_threshold"],
        "v_init": np.zeros(n),
        "v_reset": arrays[name, "v_reset"],
    }
    params = _build(name, IFParameters, values, metadata)
    return n, params, arrays[synapse_name, "r"] / values["tau_syn"]
