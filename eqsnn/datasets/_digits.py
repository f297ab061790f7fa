"""scikit-learn's bundled 8x8 handwritten digits."""

from ._dataset import Dataset


def digits() -> Dataset:
    """The 8x8 handwritten digits bundled with scikit-learn (1797 samples, 10 classes).

    The 64 pixel intensities (0..16) are divided by 16, so every feature lies in
    `[0, 1]`. The data ship with scikit-learn: nothing is downloaded. Split them with
    [`eqsnn.datasets.train_test_split`][].

    Needs scikit-learn: `pip install "eqsnn[datasets]"`, or in a clone of the repository
    `pip install -e ".[datasets]"`.

    **Returns:** a [`eqsnn.datasets.Dataset`][] with `inputs` of shape `(1797, 64)` and
    `n_classes=10`.

    **Example:**

    ```python
    import jax
    from eqsnn import datasets

    train, test = datasets.train_test_split(datasets.digits(), 0.2, key=jax.random.key(0))
    ```
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError(
            "eqsnn.datasets.digits needs scikit-learn; install it with "
            '`pip install "eqsnn[datasets]"` (in a clone of the repository: '
            '`pip install -e ".[datasets]"`), or `pip install scikit-learn`.'
        ) from error
    bunch = load_digits()
    return Dataset(bunch.data / 16.0, bunch.target, 10)
