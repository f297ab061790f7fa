"""The `Dataset` container, batching and splitting."""

from collections.abc import Iterator

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Int, PRNGKeyArray

from .._checks import as_int, check_labels


def _convert(x, dtype, only_if_not=None) -> Array:
    """`x` as a JAX array of `dtype`; host data are converted before the transfer."""
    if isinstance(x, jax.Array):
        if only_if_not is not None and jnp.issubdtype(x.dtype, only_if_not):
            return x
        return x if x.dtype == dtype else x.astype(dtype)
    x = np.asarray(x)
    if only_if_not is None or not np.issubdtype(x.dtype, only_if_not):
        x = x.astype(dtype)
    return jax.device_put(x)  # no compilation, unlike jnp.asarray


class Dataset(eqx.Module):
    """A labelled data set: one row of features per sample and an integer class label.

    Every loader in `eqsnn.datasets` returns a `Dataset`. It is a pytree, so it can be
    passed through `jax.jit`; `n_classes` is static.

    **Arguments:**

    - `inputs`: features, shape `(n_samples, n_features)`. The loaders scale every
      feature to `[0, 1]`, ready for [`eqsnn.encode.spatio_temporal_encode`][].
    - `labels`: class labels in `0..n_classes-1`, integer, shape `(n_samples,)`; other
      labels raise a `ValueError` (under `jit`, an error at run time).
    - `n_classes`: number of classes (static). Defaults to `max(labels) + 1`.

    **Example:**

    ```python
    import jax.numpy as jnp
    from eqsnn.datasets import Dataset

    data = Dataset(jnp.array([[0.1, 0.9], [0.5, 0.5]]), jnp.array([1, 0]))
    len(data), data.n_features, data.n_classes  # (2, 2, 2)
    ```
    """

    inputs: Float[Array, "n_samples n_features"]
    labels: Int[Array, " n_samples"]
    n_classes: int = eqx.field(static=True)

    def __init__(
        self,
        inputs: Float[ArrayLike, "n_samples n_features"],
        labels: Int[ArrayLike, " n_samples"],
        n_classes: int | None = None,
    ):
        inputs = _convert(inputs, jnp.result_type(float), only_if_not=jnp.floating)
        labels_dtype = labels.dtype if hasattr(labels, "dtype") else np.asarray(labels).dtype
        if not jnp.issubdtype(labels_dtype, jnp.integer):
            raise TypeError(f"Dataset: `labels` must hold integers, got dtype {labels_dtype}.")
        labels = _convert(labels, jnp.int32)
        if inputs.ndim != 2:
            raise ValueError(
                f"Dataset: `inputs` must have shape (n_samples, n_features), got {inputs.shape}."
            )
        if labels.shape != inputs.shape[:1]:
            raise ValueError(
                f"Dataset: `labels` must have shape ({inputs.shape[0]},) to match `inputs`, "
                f"got {labels.shape}."
            )
        if n_classes is None:
            n_classes = int(np.max(np.asarray(labels))) + 1 if labels.size else 1
            n_classes = max(n_classes, 1)
        n_classes = as_int(n_classes, "n_classes", "Dataset", minimum=1)
        self.inputs = inputs
        self.labels = check_labels(labels, n_classes, "Dataset", "labels")
        self.n_classes = n_classes

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def n_features(self) -> int:
        """Number of features per sample."""
        return self.inputs.shape[1]

    def take(self, indices: Int[ArrayLike, " m"]) -> "Dataset":
        """The samples at `indices`, in that order, as a new `Dataset`.

        NumPy `indices` are gathered on the host, which avoids compiling a gather for
        every new batch size; JAX `indices` are gathered with JAX (and may be traced).
        """
        if isinstance(indices, jax.Array):
            return Dataset(self.inputs[indices], self.labels[indices], self.n_classes)
        indices = np.asarray(indices)
        inputs, labels = np.asarray(self.inputs), np.asarray(self.labels)
        return Dataset(inputs[indices], labels[indices], self.n_classes)


def _check_key(name: str, key) -> None:
    if not isinstance(key, jax.Array):
        raise TypeError(f"{name}: `key` must be a JAX PRNG key, got {type(key).__name__}.")


def _numpy_rng(key: PRNGKeyArray, *stream: int) -> np.random.Generator:
    """A NumPy generator seeded by a JAX key (and optional stream numbers).

    The data sets are built eagerly with NumPy: no compilation for each new size.
    """
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    words = [int(w) for w in np.asarray(key).ravel()]
    return np.random.default_rng(np.random.SeedSequence(words + list(stream)))


def batches(
    dataset: Dataset,
    batch_size: int,
    *,
    key: PRNGKeyArray,
    shuffle: bool = True,
    drop_last: bool = True,
    n_epochs: int | None = 1,
) -> Iterator[Dataset]:
    """Iterate over a data set in mini-batches, reshuffling at every epoch.

    Each epoch draws a new permutation; the sequence of batches is a deterministic
    function of `key`.

    **Arguments:**

    - `dataset`: the [`eqsnn.datasets.Dataset`][] to iterate over.
    - `batch_size`: samples per batch (positive int).
    - `key`: JAX PRNG key for the shuffling (keyword-only).
    - `shuffle`: draw a new order every epoch; if `False`, keep the data set order.
    - `drop_last`: skip the last, incomplete batch of each epoch, so that every batch
      has exactly `batch_size` samples (one compiled shape under `jit`).
    - `n_epochs`: number of passes over the data; `None` iterates forever.

    **Returns:** a generator of `Dataset` batches.

    **Example:**

    ```python
    import jax
    from eqsnn import datasets

    train = datasets.yinyang(jax.random.key(0), 300)
    for batch in datasets.batches(train, 32, key=jax.random.key(1), n_epochs=2):
        assert batch.inputs.shape == (32, 5)
    ```
    """
    batch_size = as_int(batch_size, "batch_size", "batches", minimum=1)
    if drop_last and batch_size > len(dataset):
        raise ValueError(
            f"batches: `batch_size`={batch_size} exceeds the {len(dataset)} samples and "
            "`drop_last=True`, so no batch would be produced."
        )
    if n_epochs is not None:
        n_epochs = as_int(n_epochs, "n_epochs", "batches", minimum=0)
    _check_key("batches", key)
    return _batch_generator(dataset, batch_size, key, shuffle, drop_last, n_epochs)


def _batch_generator(dataset, batch_size, key, shuffle, drop_last, n_epochs):
    n = len(dataset)
    inputs, labels = np.asarray(dataset.inputs), np.asarray(dataset.labels)
    stop = n - n % batch_size if drop_last else n
    epoch = 0
    while n_epochs is None or epoch < n_epochs:
        if shuffle:
            order = _numpy_rng(key, epoch).permutation(n)
        else:
            order = np.arange(n)
        for start in range(0, stop, batch_size):
            chosen = order[start : start + batch_size]
            yield Dataset(
                jnp.asarray(inputs[chosen]), jnp.asarray(labels[chosen]), dataset.n_classes
            )
        epoch += 1


def train_test_split(
    dataset: Dataset, test_fraction: float = 0.2, *, key: PRNGKeyArray
) -> tuple[Dataset, Dataset]:
    """Split a data set at random into a training and a test set.

    **Arguments:**

    - `dataset`: the [`eqsnn.datasets.Dataset`][] to split.
    - `test_fraction`: fraction of samples in the test set, in `(0, 1)`. The test set
      gets `round(test_fraction * len(dataset))` samples.
    - `key`: JAX PRNG key for the random permutation (keyword-only).

    **Returns:** a pair `(train, test)` of `Dataset`s.

    **Example:**

    ```python
    import jax
    from eqsnn import datasets

    train, test = datasets.train_test_split(datasets.digits(), 0.25, key=jax.random.key(0))
    ```
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"train_test_split: `test_fraction` must lie in (0, 1), got {test_fraction!r}."
        )
    _check_key("train_test_split", key)
    n = len(dataset)
    n_test = round(test_fraction * n)
    if n_test < 1 or n_test >= n:
        raise ValueError(
            f"train_test_split: `test_fraction`={test_fraction!r} of {n} samples leaves an "
            "empty training or test set."
        )
    order = _numpy_rng(key).permutation(n)
    return dataset.take(order[n_test:]), dataset.take(order[:n_test])
