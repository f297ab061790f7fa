"""Checks of what users pass in: eager (ordinary exceptions) for concrete values, and
`eqx.error_if` for traced ones.

A value is *concrete* when it is not a JAX tracer: a Python number, a NumPy array or a JAX
array outside `jit`/`vmap`/`grad`. Concrete values are checked on the host at once, so the
error is an ordinary `ValueError`/`TypeError` whose traceback ends at the caller's line.
Traced values are checked at run time with `eqx.error_if`, whose message names the
function or the layer (a compiled program reports where it was first traced, not where it
was called).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(*values) -> bool:
    """Whether no leaf of `values` is a JAX tracer."""
    return not any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(values))


def as_int(value, name: str, who: str, minimum: int = 0) -> int:
    """`value` as a Python int >= `minimum`: Python and NumPy integers are accepted; bools,
    floats and anything else raise a `ValueError` naming `name` and the value."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(
            f"{who}: `{name}` must be an int >= {minimum}, got {value!r} "
            f"(type {type(value).__name__})."
        )
    if value < minimum:
        raise ValueError(f"{who}: `{name}` must be an int >= {minimum}, got {int(value)!r}.")
    return int(value)


def layer_name(layer, *details: str) -> str:
    """How messages name a layer: its class and sizes, e.g. `LIF(in_size=2, out_size=3)`
    (in an `eqx.nn.Sequential` the sizes tell the layers apart), followed by `details`
    (further `name=value` texts) inside the parentheses."""
    parts = [f"in_size={layer.in_size}"]
    if hasattr(layer, "layers"):
        parts.append(f"layers={list(layer.layers)}")
    else:
        parts.append(f"out_size={layer.out_size}")
    return f"{type(layer).__name__}({', '.join([*parts, *details])})"


def _first_bad(bad: np.ndarray) -> str:
    """`at [i, j]` for the first `True` entry of `bad`, and how many there are."""
    where = tuple(int(i) for i in np.argwhere(bad)[0])
    count = int(bad.sum())
    more = f" ({count} entries in all)" if count > 1 else ""
    return f"at {list(where)}{more}"


def check_finite_weights(weights, who: str):
    """`weights` (the layer's weight container), refused if any entry is NaN or inf.

    A NaN weight would otherwise make its neuron silent, with zero gradient and a finite
    loss: training would stop without a sign. Concrete weights raise a `ValueError` here;
    traced ones get an `eqx.error_if` (the returned weights carry the check: use them).
    """
    leaves = jax.tree_util.tree_leaves_with_path(weights)
    message = "{who}: `weights{path}` holds NaN or inf{where}; a non-finite weight " + (
        "silences its neuron (zero gradient, finite loss). Check the initialisation and "
        "the optimiser (learning rate, gradients) that produced it."
    )
    if is_concrete(weights):
        for path, leaf in leaves:
            bad = ~np.isfinite(np.asarray(leaf))
            if bad.any():
                where = " " + _first_bad(bad)
                raise ValueError(message.format(who=who, path=jax.tree_util.keystr(path),
                                                where=where))  # fmt: skip
        return weights

    def check(path, leaf):
        text = message.format(who=who, path=jax.tree_util.keystr(path), where="")
        return eqx.error_if(leaf, ~jnp.all(jnp.isfinite(leaf)), text)

    return jax.tree_util.tree_map_with_path(check, weights)


def check_layer_weights(layer, who: str):
    """`layer` with its `weights` checked by `check_finite_weights`."""
    weights = check_finite_weights(layer.weights, who)
    if weights is layer.weights:
        return layer
    return eqx.tree_at(lambda m: m.weights, layer, weights)


def check_labels(labels, n_classes: int, who: str, name: str = "label"):
    """Class labels in `[0, n_classes)`; concrete labels are checked on the host (a
    `ValueError` that shows a bad label), traced ones with `eqx.error_if`. Labels must have
    an integer dtype (`TypeError` otherwise)."""
    dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype
    if not np.issubdtype(dtype, np.integer):
        raise TypeError(f"{who}: `{name}` must hold integer class labels, got dtype {dtype}.")
    text = f"{who}: `{name}` must hold class labels in [0, n_classes={n_classes})"
    if is_concrete(labels):
        host = np.asarray(labels)
        bad = (host < 0) | (host >= n_classes)
        if bad.any():
            raise ValueError(
                f"{text}, got {host[bad].flat[0].item()!r} ({int(bad.sum())} bad in all)."
            )
        return labels
    return eqx.error_if(labels, (labels < 0) | (labels >= n_classes), text + ".")


def check_size(name: str, value, who: str, minimum: int = 1) -> int:
    """Validate a positive integer size argument (a Python or NumPy integer; returns an int)."""
    return as_int(value, name, who, minimum)


def check_t_max(t_max, who: str) -> float:
    """Validate the simulation horizon."""
    try:
        value = float(t_max)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: `t_max` must be a positive number, got {t_max!r}.") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{who}: `t_max` must be positive and finite, got {t_max!r}.")
    return value
