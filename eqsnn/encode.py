"""Encoders: features to input spike times (latency or rate code), labels to target times.

The functions run compiled with `eqx.filter_jit`: Python numbers are static arguments,
JAX arrays are traced. Concrete arguments are checked before compiling (ordinary
exceptions); traced ones at run time with `eqx.error_if`.
"""

import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from ._checks import as_int, check_labels, is_concrete
from ._custom_types import RealScalarLike
from ._overflow import _WARNED, Overflow, SpikesDroppedWarning, _emit
from ._sort import stable_argsort
from ._spikes import EMPTY_INDEX, Spikes


def _check_time(name: str, arg: str, value, minimum: str = "positive") -> None:
    """A time in seconds given as a Python or NumPy number: finite and positive (or >= 0)."""
    if not isinstance(value, int | float | np.number) or isinstance(value, bool):
        return  # an array: traced or checked where it is used
    ok = value > 0 if minimum == "positive" else value >= 0
    if not (ok and math.isfinite(value)):
        raise ValueError(f"{name}: `{arg}` must be {minimum} and finite (seconds), got {value!r}.")


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
      `[0, 1]` (or NaN) raise a `ValueError`, or under `jit` an error at run time
      (`eqx.error_if`).
    - `t_late`: time of the spike for the value `1.0`, in seconds (> 0).
    - `duplication`: number of copies of each spike (positive int), or `None` for one.
    - `duplicate_neurons`: give every copy its own input neuron (see above).
    - `t_bias`: spike time of the bias feature (the last one) in seconds, or `None`.

    **Returns:** a [`eqsnn.Spikes`][] with `n_features * d` slots (`d = duplication or
    1`) and leading axes `*batch`, sorted by time; no slot is empty. Its `n_sources` is the
    number of input neurons (`n_features`, or `n_features * d` with `duplicate_neurons`),
    so a first layer with another `in_size` refuses it.

    **Example:**

    ```python
    import jax.numpy as jnp
    from eqsnn.encode import spatio_temporal_encode

    spikes = spatio_temporal_encode(jnp.array([0.5, 0.2, 0.0]), 1e-2, t_bias=0.0)
    spikes.time  # [0.0, 0.002, 0.005]
    spikes.idx  # [2, 1, 0]
    ```
    """
    who = "spatio_temporal_encode"
    shape = np.shape(inputs)
    if len(shape) < 1 or shape[-1] < 1:
        raise ValueError(
            f"{who}: `inputs` must have shape (*batch, n_features) with n_features >= 1, "
            f"got {shape}."
        )
    _check_time(who, "t_late", t_late)
    if t_bias is not None:
        _check_time(who, "t_bias", t_bias, minimum="non-negative")
    if duplication is not None:
        duplication = as_int(duplication, "duplication", who, minimum=1)
    if not isinstance(duplicate_neurons, bool | np.bool_):
        raise TypeError(f"{who}: `duplicate_neurons` must be a bool, got {duplicate_neurons!r}.")
    if is_concrete(inputs):
        host = np.asarray(inputs)
        features = host[..., :-1] if t_bias is not None else host
        bad = ~((features >= 0) & (features <= 1))
        if bad.any():
            raise ValueError(
                f"{who}: every feature of `inputs` must lie in [0, 1] (scale the data first), "
                f"got {features[bad].flat[0].item()!r}."
            )
    return _spatio_temporal_encode(inputs, t_late, duplication, bool(duplicate_neurons), t_bias)


@eqx.filter_jit
def _spatio_temporal_encode(inputs, t_late, duplication, duplicate_neurons, t_bias) -> Spikes:
    inputs = jnp.asarray(inputs)
    if not jnp.issubdtype(inputs.dtype, jnp.floating):
        inputs = inputs.astype(jnp.result_type(float))
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
    order = stable_argsort(time)
    time = jnp.take_along_axis(time, order, axis=-1)
    idx = jnp.take_along_axis(idx, order, axis=-1)
    n_sources = n_features * duplication if duplication and duplicate_neurons else n_features
    return Spikes(time=time, idx=idx, n_sources=n_sources)


class SpatioTemporalEncoder(eqx.Module):
    r"""[`eqsnn.encode.spatio_temporal_encode`][] as a layer: features in, input spikes out.

    The first element of an `eqx.nn.Sequential` of eqsnn layers, so that the whole model,
    encoder included, maps one sample's features to output spikes and can be saved and
    loaded with `eqsnn.training.save` and `eqsnn.training.load`. Its settings are
    static fields; it has no trainable leaves.

    **Arguments:** as [`eqsnn.encode.spatio_temporal_encode`][]: `t_late` (seconds, > 0),
    `duplication` (positive int or `None`), `duplicate_neurons` (bool) and `t_bias`
    (seconds or `None`).

    **Returns (from `__call__(features, *, key=None)`):** the [`eqsnn.Spikes`][] of
    `spatio_temporal_encode(features, t_late, duplication, duplicate_neurons,
    t_bias=t_bias)`; `key` is unused (`eqx.nn.Sequential` passes one).

    **Example:**

    ```python
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import eqsnn

    params = eqsnn.LIFParameters(v_reset=-1000.0)  # one spike per neuron
    model = eqx.nn.Sequential(
        [
            eqsnn.encode.SpatioTemporalEncoder(t_late=1e-2),
            eqsnn.LIF(3, 4, 4, 0.02, params, key=jax.random.key(0), mean=2.0, std=0.5),
        ]
    )
    out = model(jnp.array([0.5, 0.2, 0.0]))  # the LIF layer's spikes
    ```
    """

    t_late: float = eqx.field(static=True)
    duplication: int | None = eqx.field(default=None, static=True)
    duplicate_neurons: bool = eqx.field(default=False, static=True)
    t_bias: float | None = eqx.field(default=None, static=True)

    def __check_init__(self):
        who = "SpatioTemporalEncoder"
        if not isinstance(self.t_late, int | float | np.number) or isinstance(self.t_late, bool):
            raise TypeError(f"{who}: `t_late` must be a number (seconds), got {self.t_late!r}.")
        _check_time(who, "t_late", self.t_late)
        if self.t_bias is not None:
            _check_time(who, "t_bias", self.t_bias, minimum="non-negative")
        if self.duplication is not None:
            as_int(self.duplication, "duplication", who, minimum=1)
        if not isinstance(self.duplicate_neurons, bool):
            raise TypeError(
                f"{who}: `duplicate_neurons` must be a bool, got {self.duplicate_neurons!r}."
            )

    def __call__(self, features: Float[ArrayLike, " n_features"], *, key=None) -> Spikes:
        """The input spikes of `features` (`key` is unused)."""
        del key
        return spatio_temporal_encode(
            features, self.t_late, self.duplication, self.duplicate_neurons, t_bias=self.t_bias
        )


def poisson_encode(
    rates: Float[ArrayLike, "*batch n_inputs"],
    t_max: RealScalarLike,
    n_slots: int,
    *,
    key: PRNGKeyArray,
    overflow: Overflow = Overflow.WARN,
) -> Spikes:
    r"""Encode firing rates as Poisson spike trains (rate code), in a buffer of fixed size.

    Input $i$ spikes as a homogeneous Poisson process of rate $r_i$ (Hz) on
    $[0, t_\mathrm{max})$, independently of the others: its number of spikes is Poisson
    with mean $r_i t_\mathrm{max}$ and its spike times are uniform. The buffer holds the
    `n_slots` *earliest* spikes of all inputs together, sorted by time; the remaining
    slots are empty (`idx == -1`, `time == inf`).

    **More spikes than slots.** Spikes after the `n_slots`-th are not kept: they are
    counted in `dropped` (exactly: their number is drawn as the process would have
    produced them), and the `overflow` policy says what else happens (by default a
    [`eqsnn.SpikesDroppedWarning`][]). Layers add the input's `dropped` to their own, so
    the loss stays visible at the network's output. With a total rate
    $R = \sum_i r_i$, `n_slots` $\ge R t_\mathrm{max} + 5\sqrt{R t_\mathrm{max}}$
    loses a spike in fewer than one sample in a million.

    The superposition of the inputs is one Poisson process of rate $R$: the $k$-th spike
    is at the sum of $k$ exponential gaps of mean $1/R$, from input $i$ with probability
    $r_i / R$, and the count after the last slot is Poisson with mean
    $R\,(t_\mathrm{max} - t_\mathrm{last})$. Not differentiable in `rates` (the draws are
    discrete).

    **Arguments:**

    - `rates`: firing rates in Hz (finite, `>= 0`), shape `(*batch, n_inputs)`; e.g.
      features in `[0, 1]` times a maximal rate. Bad values raise a `ValueError` (under
      `jit`, an error at run time).
    - `t_max`: the length of the spike trains, in seconds (> 0).
    - `n_slots`: the buffer size (static positive int), for all inputs together.
    - `key`: a `jax.random` key (keyword-only); the batch shares it (all samples are
      independent draws). Under `jax.vmap`, map over keys (`jax.random.split`).
    - `overflow`: an [`eqsnn.Overflow`][]: warn when spikes were lost (default), count them
      silently, or raise.

    **Returns:** a [`eqsnn.Spikes`][] with `n_slots` slots and leading axes `*batch`,
    sorted by time, zero currents, `dropped` the spikes that did not fit (per sample), and
    `n_sources = n_inputs`.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    from eqsnn.encode import poisson_encode

    rates = jnp.array([20.0, 100.0, 0.0])  # Hz
    spikes = poisson_encode(rates, 0.1, n_slots=32, key=jax.random.PRNGKey(0))
    spikes.count()  # about 12 = (20 + 100) * 0.1
    ```
    """
    who = "poisson_encode"
    shape = np.shape(rates)
    if len(shape) < 1 or shape[-1] < 1:
        raise ValueError(
            f"{who}: `rates` must have shape (*batch, n_inputs) with n_inputs >= 1, got {shape}."
        )
    _check_time(who, "t_max", t_max)
    n_slots = as_int(n_slots, "n_slots", who, minimum=1)
    _check_key(key, who)
    if not isinstance(overflow, Overflow):
        raise TypeError(f"{who}: `overflow` must be an eqsnn.Overflow, got {overflow!r}.")
    if is_concrete(rates):
        host = np.asarray(rates)
        bad = ~(np.isfinite(host) & (host >= 0))
        if bad.any():
            raise ValueError(
                f"{who}: every entry of `rates` must be finite and >= 0 (Hz), got "
                f"{host[bad].flat[0].item()!r}."
            )
    return _poisson_encode(rates, t_max, n_slots, key, overflow)


def _check_key(key, who: str) -> None:
    """A `jax.random` key: a typed key (shape `()`), or a raw `uint32` key of shape `(2,)`."""
    dtype = getattr(key, "dtype", None)
    typed = dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    raw = dtype == jnp.uint32 and np.shape(key) == (2,)
    if not ((typed and np.shape(key) == ()) or raw):
        raise TypeError(
            f"{who}: `key` must be one jax.random key (jax.random.PRNGKey(seed) or "
            f"jax.random.key(seed)), got {key!r}."
        )


@eqx.filter_jit
def _poisson_encode(rates, t_max, n_slots: int, key, overflow: Overflow) -> Spikes:
    rates = jnp.asarray(rates)
    if not jnp.issubdtype(rates.dtype, jnp.floating):
        rates = rates.astype(jnp.result_type(float))
    rates = eqx.error_if(
        rates,
        ~(jnp.isfinite(rates) & (rates >= 0)),
        "poisson_encode: every entry of `rates` must be finite and >= 0 (Hz).",
    )
    batch, dtype = rates.shape[:-1], rates.dtype
    key_gap, key_idx, key_drop = jax.random.split(key, 3)
    total = jnp.sum(rates, axis=-1)
    safe_total = jnp.where(total > 0, total, 1.0)[..., None]
    arrival = jnp.cumsum(jax.random.exponential(key_gap, (*batch, n_slots), dtype), axis=-1)
    time = jnp.where(total[..., None] > 0, arrival / safe_total, jnp.inf)
    valid = time < t_max
    logits = jnp.log(jnp.where(rates > 0, rates, 0.0))[..., None, :]
    idx = jax.random.categorical(key_idx, logits, axis=-1, shape=(*batch, n_slots))
    # Given the last slot's spike at t_last < t_max, the spikes after it are Poisson.
    after = jnp.where(valid[..., -1], total * (t_max - time[..., -1]), 0.0)
    dropped = jax.random.poisson(key_drop, after, shape=batch).astype(jnp.int32)
    time = jnp.where(valid, time, jnp.inf)
    out = Spikes(
        time=time,
        idx=jnp.where(valid, idx, EMPTY_INDEX).astype(jnp.int32),
        dropped=dropped,
        n_sources=rates.shape[-1],
    )
    return _report_encoder_losses(out, n_slots, overflow)


def _report_encoder_losses(out: Spikes, n_slots: int, overflow: Overflow) -> Spikes:
    """The `overflow` policy for the spikes that did not fit (as a layer's, `_overflow.py`)."""
    if overflow is Overflow.ERROR:
        time = eqx.error_if(
            out.time,
            out.dropped > 0,
            f"poisson_encode: more spikes than the buffer holds (n_slots={n_slots}); increase "
            "`n_slots`, or use overflow=Overflow.WARN or Overflow.COUNT.",
        )
        return eqx.tree_at(lambda s: s.time, out, time)
    if overflow is not Overflow.WARN:
        return out

    def callback(dropped, full):
        del full
        _warn_encoder(n_slots, np.asarray(dropped))

    zero = _emit(callback, out.dropped, out.count() == n_slots, out.time.dtype)
    return eqx.tree_at(lambda s: s.time, out, out.time + zero)


def _warn_encoder(n_slots: int, dropped: np.ndarray) -> None:
    """Host side of the warning: once per `n_slots` until `reset_dropped_warnings`."""
    total = int(dropped.sum())
    key = (f"poisson_encode(n_slots={n_slots})", "n_slots")
    if total == 0 or key in _WARNED:
        return
    _WARNED.add(key)
    samples = f"{int(np.count_nonzero(dropped))} of {dropped.size} samples"
    warnings.warn(
        f"poisson_encode(n_slots={n_slots}) lost {total} spikes in one call ({samples}): "
        "raise `n_slots` (about total rate * t_max + 5 * sqrt(total rate * t_max)). "
        "`Spikes.dropped` counts them; overflow=Overflow.COUNT counts them silently, "
        "Overflow.ERROR raises. Shown once per n_slots (eqsnn.reset_dropped_warnings() "
        "re-arms it).",
        SpikesDroppedWarning,
        stacklevel=1,  # called from a host callback: no user frame to point at
    )


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

    - `labels`: integer class labels in `0..n_classes-1`, any shape `*batch` (others raise).
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
    n_classes = as_int(n_classes, "n_classes", "target_temporal_encode", minimum=1)
    numbers = isinstance(t_correct, int | float) and isinstance(t_wrong, int | float)
    if numbers and not t_correct < t_wrong:
        raise ValueError(
            "target_temporal_encode: `t_correct` must be earlier than `t_wrong`, got "
            f"t_correct={t_correct!r} and t_wrong={t_wrong!r}."
        )
    labels = check_labels(labels, n_classes, "target_temporal_encode", "labels")
    return _target_temporal_encode(labels, n_classes, t_correct, t_wrong)


@eqx.filter_jit
def _target_temporal_encode(labels, n_classes: int, t_correct, t_wrong) -> Array:
    labels = jnp.asarray(check_labels(labels, n_classes, "target_temporal_encode", "labels"))
    is_correct = labels[..., None] == jnp.arange(n_classes)
    dtype = jnp.result_type(t_correct, t_wrong, float)
    return jnp.where(is_correct, jnp.asarray(t_correct, dtype), jnp.asarray(t_wrong, dtype))
