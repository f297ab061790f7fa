"""Weight containers and their initialisation."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._checks import as_int


class InputWeights(eqx.Module):
    """Weights of a feed-forward layer.

    **Arguments:**

    - `input`: `input[i, n]` is added to the synaptic current of neuron `n` when input `i`
      spikes; shape `(in_size, out_size)`.
    """

    input: Float[Array, "in_size out_size"]


class RecurrentWeights(eqx.Module):
    """Weights of a recurrent layer of `n` neurons.

    **Arguments:**

    - `input`: `input[i, n]` is added to the synaptic current of neuron `n` when input `i`
      spikes; shape `(in_size, n)`.
    - `recurrent`: `recurrent[j, n]` is added to the synaptic current of neuron `n` when
      neuron `j` of the same layer spikes; shape `(n, n)`.
    """

    input: Float[Array, "in_size n"]
    recurrent: Float[Array, "n n"]


def check_size(name: str, value, who: str, minimum: int = 1) -> int:
    """Validate a positive integer size argument (a Python or NumPy integer; returns an int)."""
    return as_int(value, name, who, minimum)


def spike_budget(
    max_spikes_per_neuron: int | None,
    max_spikes_per_interval: int | None,
    n_spikes: int,
    out_size: int,
    who: str,
) -> tuple[int | None, int | None]:
    """Resolve a feed-forward layer's spike budget and engine.

    **Returns:** `(max_spikes_per_neuron, max_spikes_per_interval)`, exactly one an int:
    the sequential engine if `max_spikes_per_interval` is given, else the parallel engine
    with `max_spikes_per_neuron` (default: `ceil(n_spikes / out_size)`, the output buffer
    shared evenly).
    """
    if max_spikes_per_interval is not None:
        check_size("max_spikes_per_interval", max_spikes_per_interval, who)
        if max_spikes_per_neuron is not None:
            raise ValueError(
                f"{who}: choose one spike budget: `max_spikes_per_neuron`="
                f"{max_spikes_per_neuron!r} (parallel engine) or `max_spikes_per_interval`="
                f"{max_spikes_per_interval!r} (sequential engine), not both."
            )
        return None, max_spikes_per_interval
    if max_spikes_per_neuron is None:
        return -(-n_spikes // out_size), None
    return check_size("max_spikes_per_neuron", max_spikes_per_neuron, who), None


def check_t_max(t_max, who: str) -> float:
    """Validate the simulation horizon."""
    try:
        value = float(t_max)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: `t_max` must be a positive number, got {t_max!r}.") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{who}: `t_max` must be positive and finite, got {t_max!r}.")
    return value


def normal_weights(
    key: PRNGKeyArray,
    in_size: int,
    out_size: int,
    mean: float,
    std: float,
    duplication: int | None,
    who: str,
) -> Float[Array, "in_size out_size"]:
    """Draw weights from N(mean, std); with `duplication=d`, draw `in_size // d` rows and
    repeat each `d` times, so that the `d` copies of an input start with the same weights."""
    for name, value in (("mean", mean), ("std", std)):
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError):
            finite = False
        if not finite:
            raise ValueError(f"{who}: `{name}` must be a finite number, got {value!r}.")
    if duplication is None:
        rows = in_size
    else:
        check_size("duplication", duplication, who)
        if in_size % duplication:
            raise ValueError(
                f"{who}: `in_size` ({in_size}) must be a multiple of `duplication` ({duplication})."
            )
        rows = in_size // duplication
    w = mean + std * jax.random.normal(key, (rows, out_size))
    if duplication is not None:
        w = jnp.repeat(w, duplication, axis=0)
    return w
