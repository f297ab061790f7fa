r"""Losses and metrics on output spike times.

All functions take the output [`eqsnn.Spikes`][] of one sample and return per-sample
values; they also accept a batched `Spikes` (leading axes `*batch`) and then return one
value per sample, as `jax.vmap` would. Take the mean over a batch yourself.

Output neuron $k$ is the neuron with index $k$ in the buffer; spikes of neurons with
index $\ge$ `n_neurons` are ignored.

**Silent neurons.** A neuron that does not spike before `t_max` gets the first-spike
time `t_max` in the losses. This value is selected with `jnp.where`, never computed
from the `+inf` in empty slots, so losses and their gradients stay finite: a silent
neuron simply gets a zero gradient.

**Compilation.** Every function runs compiled with `eqx.filter_jit`: Python numbers (such
as `t_max`, `tau_mem`, `n_neurons`) are static, so a new value compiles anew; pass a JAX
array for a value that changes from call to call.

**Checks.** Counts (`n_neurons`, `n_classes`) must be Python or NumPy integers. Class
labels must lie in `0..n_classes-1`: concrete labels are checked before compiling (a
`ValueError`), traced ones (under `jit`, `vmap`) at run time with `eqx.error_if`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int

from ._checks import as_int, check_labels
from ._custom_types import RealScalarLike
from ._spikes import Spikes


def _check_count(name: str, arg: str, value) -> int:
    """A positive count (a Python or NumPy integer) as a Python int (a static argument)."""
    return as_int(value, arg, name, minimum=1)


def _check_positive(name: str, arg: str, value) -> None:
    if isinstance(value, int | float) and not value > 0:
        raise ValueError(f"{name}: `{arg}` must be positive, got {value!r}.")


def _masked_times(spikes: Spikes, n_neurons: int, t_max, fill) -> Float[Array, "*batch n k"]:
    """Times of the spikes of each neuron before `t_max`; `fill` in every other slot."""
    hit = spikes.idx[..., None, :] == jnp.arange(n_neurons, dtype=spikes.idx.dtype)[:, None]
    if t_max is not None:
        hit = hit & (spikes.time[..., None, :] < t_max)
    return jnp.where(hit, spikes.time[..., None, :], fill)


def first_spike_times(
    spikes: Spikes, n_neurons: int, *, t_max: RealScalarLike
) -> Float[Array, "*batch n_neurons"]:
    """First spike time of each neuron, `t_max` for a neuron silent before `t_max`.

    Unlike [`eqsnn.Spikes.first_spike_times`][] (which returns `+inf` for a silent
    neuron), the result is always finite and safe to differentiate: the gradient with
    respect to `spikes.time` is one at each neuron's first spike and zero elsewhere,
    also in empty slots that hold `+inf`.

    **Arguments:**

    - `spikes`: the output spikes.
    - `n_neurons`: number of neurons `0..n_neurons-1` (static positive int).
    - `t_max`: end of the simulated interval in seconds; spikes at or after it count
      as no spike.

    **Returns:** an array of shape `(*batch, n_neurons)` with values in `[0, t_max]`.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.loss import first_spike_times

    spikes = eqsnn.Spikes(jnp.array([2e-3, 1e-3, jnp.inf]), jnp.array([0, 0, -1]))
    first_spike_times(spikes, 2, t_max=1e-2)  # [0.001, 0.01]
    ```
    """
    n_neurons = _check_count("first_spike_times", "n_neurons", n_neurons)
    _check_positive("first_spike_times", "t_max", t_max)
    return _first_spike_times(spikes, n_neurons, t_max)


@eqx.filter_jit
def _first_spike_times(spikes: Spikes, n_neurons: int, t_max) -> Float[Array, "*batch n"]:
    t_max = jnp.asarray(t_max, dtype=spikes.time.dtype)
    return jnp.min(_masked_times(spikes, n_neurons, t_max, t_max), axis=-1)


@eqx.filter_jit
def mse_loss(
    spikes: Spikes,
    target_times: Float[ArrayLike, "*batch n_neurons"],
    *,
    t_max: RealScalarLike,
    tau_mem: RealScalarLike,
) -> Float[Array, "*batch"]:
    r"""Squared error between first spike times and target times.

    $$L = \sum_k \left(\frac{t_k - t_k^\mathrm{target}}{\tau_\mathrm{mem}}\right)^2$$

    with $t_k$ from [`eqsnn.loss.first_spike_times`][] (silent neurons at `t_max`).
    This is jaxsnn's `mse_loss`, which clips at $2\tau_\mathrm{mem}$ instead of `t_max`.

    **Arguments:**

    - `spikes`: the output spikes.
    - `target_times`: target first-spike time of each output neuron in seconds,
      shape `(*batch, n_neurons)`, e.g. from [`eqsnn.encode.target_temporal_encode`][].
    - `t_max`: end of the simulated interval in seconds.
    - `tau_mem`: time scale of the error in seconds, usually the membrane time constant.

    **Returns:** the loss, one value per sample.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.loss import mse_loss

    spikes = eqsnn.Spikes(jnp.array([1e-3]), jnp.array([1]))
    mse_loss(spikes, jnp.array([3e-3, 1e-3]), t_max=4e-3, tau_mem=1e-3)  # 1.0
    ```
    """
    target_times = jnp.asarray(target_times)
    _check_positive("mse_loss", "tau_mem", tau_mem)
    times = first_spike_times(spikes, target_times.shape[-1], t_max=t_max)
    return jnp.sum(jnp.square((times - target_times) / tau_mem), axis=-1)


@eqx.filter_jit
def target_time_loss(
    spikes: Spikes,
    target_times: Float[ArrayLike, "*batch n_neurons"],
    *,
    t_max: RealScalarLike,
    tau_mem: RealScalarLike,
) -> Float[Array, "*batch"]:
    r"""A smooth, bounded loss that pulls first spike times towards targets.

    $$L = -\sum_k \log\left(1 + e^{-|t_k - t_k^\mathrm{target}| / \tau_\mathrm{mem}}\right)$$

    with $t_k$ from [`eqsnn.loss.first_spike_times`][] (silent neurons at `t_max`). Each
    term lies in $(-\log 2, 0]$ and reaches $-\log 2$ at the target, so the minimum
    over `n` neurons is $-n \log 2$; far-off neurons contribute little gradient. This is
    jaxsnn's `target_time_loss`.

    **Arguments:**

    - `spikes`: the output spikes.
    - `target_times`: target first-spike times in seconds, shape `(*batch, n_neurons)`.
    - `t_max`: end of the simulated interval in seconds.
    - `tau_mem`: time scale in seconds, usually the membrane time constant.

    **Returns:** the loss, one value per sample.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.loss import target_time_loss

    spikes = eqsnn.Spikes(jnp.array([1e-3]), jnp.array([0]))
    target_time_loss(spikes, jnp.array([1e-3]), t_max=4e-3, tau_mem=1e-3)  # -log(2)
    ```
    """
    target_times = jnp.asarray(target_times)
    _check_positive("target_time_loss", "tau_mem", tau_mem)
    times = first_spike_times(spikes, target_times.shape[-1], t_max=t_max)
    return -jnp.sum(jnp.log1p(jnp.exp(-jnp.abs(times - target_times) / tau_mem)), axis=-1)


def _take_label(values: Float[Array, "*batch n"], label: Int[Array, "*batch"]) -> Array:
    return jnp.take_along_axis(values, label[..., None], axis=-1)[..., 0]


def ttfs_loss(
    spikes: Spikes,
    label: Int[ArrayLike, "*batch"],
    n_classes: int,
    *,
    t_max: RealScalarLike,
    tau_mem: RealScalarLike,
    temperature: RealScalarLike = 1.0,
) -> Float[Array, "*batch"]:
    r"""Time-to-first-spike cross-entropy: the correct class should spike first.

    The first spike times $t_k$ (silent neurons at `t_max`) become logits
    $-t_k / (\xi\,\tau_\mathrm{mem})$ with the dimensionless temperature $\xi$, and

    $$L = -\log \frac{e^{-t_c/(\xi\tau_\mathrm{mem})}}{\sum_k e^{-t_k/(\xi\tau_\mathrm{mem})}}
        = \log \sum_k e^{(t_c - t_k)/(\xi\tau_\mathrm{mem})}$$

    for the correct class $c$ (Göltz et al., Nature Machine Intelligence 2021, without
    their regulariser). The loss only depends on time differences; a smaller $\xi$
    sharpens it.

    **Arguments:**

    - `spikes`: the output spikes.
    - `label`: the correct class (integer in `0..n_classes-1`; others raise), shape `*batch`.
    - `n_classes`: number of output neurons `0..n_classes-1` (static positive int).
    - `t_max`: end of the simulated interval in seconds.
    - `tau_mem`: time scale in seconds, usually the membrane time constant.
    - `temperature`: dimensionless temperature $\xi > 0$.

    **Returns:** the cross-entropy, one value per sample.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.loss import ttfs_loss

    spikes = eqsnn.Spikes(jnp.array([1e-3, 2e-3]), jnp.array([0, 1]))
    ttfs_loss(spikes, jnp.array(0), 2, t_max=4e-3, tau_mem=1e-3)  # log(1 + e^-1)
    ```
    """
    n_classes = _check_count("ttfs_loss", "n_classes", n_classes)
    _check_positive("ttfs_loss", "tau_mem", tau_mem)
    _check_positive("ttfs_loss", "temperature", temperature)
    _check_positive("ttfs_loss", "t_max", t_max)
    label = check_labels(label, n_classes, "ttfs_loss")
    return _ttfs_loss(spikes, label, n_classes, t_max, tau_mem, temperature)


@eqx.filter_jit
def _ttfs_loss(spikes, label, n_classes: int, t_max, tau_mem, temperature) -> Array:
    label = check_labels(label, n_classes, "ttfs_loss")
    times = _first_spike_times(spikes, n_classes, t_max)
    log_p = jax.nn.log_softmax(-times / (temperature * tau_mem), axis=-1)
    return -_take_label(log_p, jnp.asarray(label).astype(jnp.int32))


def spike_count_regulariser(
    spikes: Spikes,
    n_neurons: int,
    target_count: RealScalarLike,
    *,
    t_max: RealScalarLike | None = None,
) -> Float[Array, "*batch"]:
    r"""Mean squared deviation of each neuron's spike count from a target count.

    $$R = \frac{1}{n}\sum_{k=0}^{n-1} (N_k - N^\mathrm{target})^2$$

    where $N_k$ counts the spikes of neuron $k$ (before `t_max` if given). Spike counts
    are piecewise constant in the parameters, so **the gradient of $R$ is zero**: use it
    to monitor activity, for early stopping or hyperparameter search, not as a
    gradient signal.

    **Arguments:**

    - `spikes`: the spikes of a layer.
    - `n_neurons`: number of neurons `0..n_neurons-1` (static positive int).
    - `target_count`: desired number of spikes per neuron.
    - `t_max`: if given, spikes at or after `t_max` (seconds) are not counted.

    **Returns:** the regulariser, one value per sample.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.loss import spike_count_regulariser

    spikes = eqsnn.Spikes(jnp.array([1e-3, 2e-3, 3e-3]), jnp.array([0, 0, 0]))
    spike_count_regulariser(spikes, 2, 1)  # ((3 - 1)^2 + (0 - 1)^2) / 2 = 2.5
    ```
    """
    n_neurons = _check_count("spike_count_regulariser", "n_neurons", n_neurons)
    return _spike_count_regulariser(spikes, n_neurons, target_count, t_max)


@eqx.filter_jit
def _spike_count_regulariser(spikes, n_neurons: int, target_count, t_max) -> Array:
    hit = spikes.idx[..., None, :] == jnp.arange(n_neurons, dtype=spikes.idx.dtype)[:, None]
    if t_max is not None:
        hit = hit & (spikes.time[..., None, :] < t_max)
    counts = jnp.sum(hit, axis=-1).astype(jnp.result_type(float))
    return jnp.mean(jnp.square(counts - target_count), axis=-1)


def predict(
    spikes: Spikes, n_classes: int, *, t_max: RealScalarLike | None = None
) -> Int[Array, "*batch"]:
    """The class whose output neuron spikes first; `-1` when undecided.

    A sample is undecided when all output neurons are silent (before `t_max`, if
    given) or when two or more share the earliest spike time.

    **Arguments:**

    - `spikes`: the output spikes.
    - `n_classes`: number of output neurons `0..n_classes-1` (static positive int).
    - `t_max`: if given, spikes at or after `t_max` (seconds) are ignored.

    **Returns:** the predicted class in `0..n_classes-1`, or `-1`; shape `*batch`.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.loss import predict

    spikes = eqsnn.Spikes(jnp.array([2e-3, 1e-3]), jnp.array([0, 2]))
    predict(spikes, 3)  # 2
    ```
    """
    n_classes = _check_count("predict", "n_classes", n_classes)
    return _predict(spikes, n_classes, t_max)


@eqx.filter_jit
def _predict(spikes: Spikes, n_classes: int, t_max) -> Int[Array, "*batch"]:
    times = jnp.min(_masked_times(spikes, n_classes, t_max, jnp.inf), axis=-1)
    earliest = jnp.min(times, axis=-1, keepdims=True)
    unique = jnp.sum(times == earliest, axis=-1) == 1
    decided = unique & jnp.isfinite(earliest[..., 0])
    return jnp.where(decided, jnp.argmin(times, axis=-1), -1).astype(jnp.int32)


def accuracy(
    spikes: Spikes,
    label: Int[ArrayLike, "*batch"],
    n_classes: int,
    *,
    t_max: RealScalarLike | None = None,
) -> Float[Array, "*batch"]:
    """Whether the correct class spiked first: `1.0` if so, `0.0` otherwise.

    The prediction is [`eqsnn.loss.predict`][]: ties for the earliest spike and
    all-silent outputs count as wrong. Average over a batch for the accuracy.

    **Arguments:**

    - `spikes`: the output spikes.
    - `label`: the correct class (integer in `0..n_classes-1`; others raise), shape `*batch`.
    - `n_classes`: number of output neurons `0..n_classes-1` (static positive int).
    - `t_max`: if given, spikes at or after `t_max` (seconds) are ignored.

    **Returns:** `1.0` or `0.0` per sample.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.loss import accuracy

    spikes = eqsnn.Spikes(jnp.array([[2e-3, 1e-3], [1e-3, 1e-3]]), jnp.array([[0, 1]] * 2))
    jnp.mean(jax.vmap(accuracy, in_axes=(0, 0, None))(spikes, jnp.array([1, 1]), 2))  # 0.5
    ```
    """
    n_classes = _check_count("accuracy", "n_classes", n_classes)
    label = check_labels(label, n_classes, "accuracy")
    return _accuracy(spikes, label, n_classes, t_max)


@eqx.filter_jit
def _accuracy(spikes: Spikes, label, n_classes: int, t_max) -> Float[Array, "*batch"]:
    label = check_labels(label, n_classes, "accuracy")
    prediction = _predict(spikes, n_classes, t_max)
    correct = prediction == jnp.asarray(label).astype(prediction.dtype)
    return correct.astype(jnp.result_type(float))
