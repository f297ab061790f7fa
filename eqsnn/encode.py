"""Encoders: features to input spike times, labels to target spike times.

Both functions are wrapped in `eqx.filter_jit`: Python numbers are static arguments,
JAX arrays are traced.
"""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ._custom_types import RealScalarLike
from ._spikes import Spikes


def _check_positive(name: str, arg: str, value) -> None:
    if isinstance(value, int | float) and not value > 0:
        raise ValueError(f"{name}: `{arg}` must be positive (seconds), got {value!r}.")


@eqx.filter_jit
def spatio_temporal_encode(
    inputs: Float[ArrayLike, "*batch n_features"],
    t_late: RealScalarLike,
    duplication: int | None = None,
    duplicate_neurons: bool = False,
    *,
    t_bias: RealScalarLike | None = None,
) -> Spikes:
    r"""Encode features in `[0, 1]` as one input spike per feature (latency code).

    Feature $i$ with value $x_i$ becomes a spike of input neuron $i$ at time
    $t_i = x_i \, t_\mathrm{late}$: small values spike early. The spikes are sorted by
    time (ties keep feature order), with zero synaptic current.

    **Bias.** With `t_bias` set, the *last* feature is taken to be a bias feature (as
    appended by the data sets of `eqsnn.datasets` with `bias=True`): its spike is at
    `t_bias` whatever its value. Without `t_bias`, it is encoded like any other feature,
    so the bias value `0.0` of `eqsnn.datasets` spikes at `t = 0`.

    **Duplication.** With `duplication=d`, every spike is emitted `d` times, so that a
    feature drives the next layer `d` times as strongly (useful where weights are bounded,
    as on neuromorphic hardware):

    - `duplicate_neurons=False`: the `d` copies come from the same input neuron `i`;
      the network has `n_features` inputs.
    - `duplicate_neurons=True`: copy `j` of feature `i` comes from input neuron
      `i * d + j`; the network has `n_features * d` inputs.

    Matches the semantics of jaxsnn's `spatio_temporal_encode`.

    **Arguments:**

    - `inputs`: features in `[0, 1]`, shape `(*batch, n_features)`. Values outside
      `[0, 1]` (or NaN) raise an error at run time (`eqx.error_if`), also under `jit`.
    - `t_late`: time of the spike for the value `1.0`, in seconds (> 0).
    - `duplication`: number of copies of each spike (positive int), or `None` for one.
    - `duplicate_neurons`: give every copy its own input neuron (see above).
    - `t_bias`: spike time of the bias feature (the last one) in seconds, or `None`.

    **Returns:** a [`eqsnn.Spikes`][] with `n_features * d` slots (`d = duplication or
    1`) and leading axes `*batch`, sorted by time; no slot is empty.

    **Example:**

    ```python
    import jax.numpy as jnp
    from eqsnn.encode import spatio_temporal_encode

    spikes = spatio_temporal_encode(jnp.array([0.5, 0.2, 0.0]), 1e-2, t_bias=0.0)
    spikes.time  # [0.0, 0.002, 0.005]
    spikes.idx  # [2, 1, 0]
    ```
    """
    inputs = jnp.asarray(inputs)
    if not jnp.issubdtype(inputs.dtype, jnp.floating):
        inputs = inputs.astype(jnp.result_type(float))
    if inputs.ndim < 1 or inputs.shape[-1] < 1:
        raise ValueError(
            "spatio_temporal_encode: `inputs` must have shape (*batch, n_features) with "
            f"n_features >= 1, got {inputs.shape}."
        )
    _check_positive("spatio_temporal_encode", "t_late", t_late)
    if duplication is not None and (
        not isinstance(duplication, int) or isinstance(duplication, bool) or duplication < 1
    ):
        raise ValueError(
            f"spatio_temporal_encode: `duplication` must be a positive int or None, "
            f"got {duplication!r}."
        )
    features = inputs[..., :-1] if t_bias is not None else inputs
    inputs = eqx.error_if(
        inputs,
        ~((features >= 0) & (features <= 1)),
        "spatio_temporal_encode: every feature must lie in [0, 1] (scale the data first).",
    )
    time = inputs * t_late
    if t_bias is not None:
        time = time.at[..., -1].set(t_bias)
    n_features = inputs.shape[-1]
    idx = jnp.arange(n_features, dtype=jnp.int32)
    if duplication is not None:
        time = jnp.repeat(time, duplication, axis=-1)
        if duplicate_neurons:
            idx = jnp.arange(n_features * duplication, dtype=jnp.int32)
        else:
            idx = jnp.repeat(idx, duplication)
    idx = jnp.broadcast_to(idx, time.shape)
    order = jnp.argsort(time, axis=-1, stable=True)
    time = jnp.take_along_axis(time, order, axis=-1)
    idx = jnp.take_along_axis(idx, order, axis=-1)
    return Spikes(time=time, idx=idx)


@eqx.filter_jit
def target_temporal_encode(
    labels: Int[ArrayLike, "*batch"],
    n_classes: int,
    t_correct: RealScalarLike,
    t_wrong: RealScalarLike,
) -> Float[Array, "*batch n_classes"]:
    """Target first-spike times of the output neurons for class labels.

    The output neuron of the correct class should spike at `t_correct`, all others at
    the later `t_wrong`. Use with [`eqsnn.loss.mse_loss`][] or
    [`eqsnn.loss.target_time_loss`][]. Matches jaxsnn's `target_temporal_encode`
    (with the arguments in a different order).

    **Arguments:**

    - `labels`: integer class labels in `0..n_classes-1`, any shape `*batch`.
    - `n_classes`: number of classes / output neurons (static positive int).
    - `t_correct`: target time of the correct class, in seconds.
    - `t_wrong`: target time of the other classes, in seconds; must be later than
      `t_correct` when both are Python numbers.

    **Returns:** an array of shape `(*batch, n_classes)`.

    **Example:**

    ```python
    import jax.numpy as jnp
    from eqsnn.encode import target_temporal_encode

    target_temporal_encode(jnp.array(1), 3, 1e-3, 3e-3)  # [0.003, 0.001, 0.003]
    ```
    """
    if not isinstance(n_classes, int) or isinstance(n_classes, bool) or n_classes < 1:
        raise ValueError(
            f"target_temporal_encode: `n_classes` must be a positive int, got {n_classes!r}."
        )
    numbers = isinstance(t_correct, int | float) and isinstance(t_wrong, int | float)
    if numbers and not t_correct < t_wrong:
        raise ValueError(
            "target_temporal_encode: `t_correct` must be earlier than `t_wrong`, got "
            f"t_correct={t_correct!r} and t_wrong={t_wrong!r}."
        )
    labels = jnp.asarray(labels)
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"target_temporal_encode: `labels` must hold integers, got dtype {labels.dtype}."
        )
    is_correct = labels[..., None] == jnp.arange(n_classes)
    dtype = jnp.result_type(t_correct, t_wrong, float)
    return jnp.where(is_correct, jnp.asarray(t_correct, dtype), jnp.asarray(t_wrong, dtype))
