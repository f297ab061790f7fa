"""Tests for eqsnn.datasets: Yin-Yang geometry and balance, toy sets, digits, batching."""

import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqsnn import datasets
from eqsnn.datasets import Dataset


def _yinyang_rule(x: float, y: float, r_big: float, r_small: float) -> int:
    """The class rule of Kriener et al. (2022), written out point by point."""
    d_left = math.dist((x, y), (0.5 * r_big, r_big))
    d_right = math.dist((x, y), (1.5 * r_big, r_big))
    if d_left < r_small or d_right < r_small:
        return 2
    if d_right <= r_small or r_small < d_left <= 0.5 * r_big:
        return 1
    if y > r_big and d_right > 0.5 * r_big:
        return 1
    return 0


@pytest.mark.parametrize(("n", "counts"), [(300, [100, 100, 100]), (301, [101, 100, 100])])
def test_yinyang_balanced_and_geometric(n, counts):
    data = datasets.yinyang(jax.random.key(0), n)
    assert data.inputs.shape == (n, 5)
    assert data.n_classes == 3
    assert data.labels.dtype == jnp.int32
    labels = np.asarray(data.labels)
    assert [int(np.sum(labels == c)) for c in range(3)] == counts
    inputs = np.asarray(data.inputs)
    x, y = inputs[:, 0], inputs[:, 1]
    np.testing.assert_array_equal(inputs[:, 2], 1.0 - x)
    np.testing.assert_array_equal(inputs[:, 3], 1.0 - y)
    np.testing.assert_array_equal(inputs[:, 4], datasets.BIAS_VALUE)
    assert np.all(np.hypot(x - 0.5, y - 0.5) <= 0.5)
    expected = [_yinyang_rule(float(a), float(b), 0.5, 0.1) for a, b in zip(x, y, strict=True)]
    np.testing.assert_array_equal(labels, expected)
    # Shuffled: the labels are not grouped by class.
    assert np.any(np.diff(labels) < 0)


def test_yinyang_known_points():
    from eqsnn.datasets._toy import _yinyang_class

    points = np.array(
        [[0.25, 0.5], [0.75, 0.5], [0.5, 0.9], [0.5, 0.1], [0.25, 0.7], [0.75, 0.3], [0.02, 0.02]]
    )
    np.testing.assert_array_equal(_yinyang_class(points, 0.5, 0.1), [2, 2, 1, 0, 1, 0, -1])


def test_yinyang_options_and_determinism():
    a = datasets.yinyang(jax.random.key(3), 60, r_big=0.4, r_small=0.05, bias=False)
    b = datasets.yinyang(jax.random.key(3), 60, r_big=0.4, r_small=0.05, bias=False)
    c = datasets.yinyang(jax.random.key(4), 60, r_big=0.4, r_small=0.05, bias=False)
    assert a.inputs.shape == (60, 4)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.inputs, c.inputs)
    x, y = np.asarray(a.inputs[:, 0]), np.asarray(a.inputs[:, 1])
    expected = [_yinyang_rule(float(p), float(q), 0.4, 0.05) for p, q in zip(x, y, strict=True)]
    np.testing.assert_array_equal(a.labels, expected)
    # Legacy uint32 keys work too.
    legacy = datasets.yinyang(jax.random.PRNGKey(3), 9)
    assert legacy.inputs.shape == (9, 5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 3.0}, "n_samples"),
        ({"n_samples": 3, "r_big": 0.6}, "r_big"),
        ({"n_samples": 3, "r_small": 0.3}, "r_small"),
    ],
)
def test_yinyang_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.yinyang(jax.random.key(0), **kwargs)


def test_bad_key():
    with pytest.raises(TypeError, match="key"):
        datasets.yinyang(0, 3)


def test_circle_and_linear():
    circle = datasets.circle(jax.random.key(1), 400)
    linear = datasets.linear(jax.random.key(1), 400, bias=False)
    assert circle.inputs.shape == (400, 5) and linear.inputs.shape == (400, 4)
    assert circle.n_classes == linear.n_classes == 2
    x, y = np.asarray(circle.inputs[:, 0]), np.asarray(circle.inputs[:, 1])
    inside = (x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.5 / math.pi
    np.testing.assert_array_equal(circle.labels, inside.astype(int))
    xl, yl = np.asarray(linear.inputs[:, 0]), np.asarray(linear.inputs[:, 1])
    np.testing.assert_array_equal(linear.labels, xl < yl)
    # The circle covers half the square: 400 samples give a class-1 fraction near 1/2
    # (5 standard deviations = 0.125).
    assert abs(float(np.mean(inside)) - 0.5) < 0.125
    for data in (circle, linear):
        assert np.all((np.asarray(data.inputs) >= 0.0) & (np.asarray(data.inputs) <= 1.0))


def test_digits():
    pytest.importorskip("sklearn")
    data = datasets.digits()
    assert data.inputs.shape == (1797, 64)
    assert data.n_classes == 10
    assert np.min(data.inputs) == 0.0 and np.max(data.inputs) == 1.0
    assert set(np.unique(data.labels).tolist()) == set(range(10))


def test_digits_without_sklearn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(
        ImportError, match=r'pip install "eqsnn\[datasets\]".*pip install -e ".\[datasets\]"'
    ):
        datasets.digits()


def test_dataset_validation():
    with pytest.raises(ValueError, match="inputs"):
        Dataset(np.zeros(3), np.zeros(3, dtype=np.int32))
    with pytest.raises(ValueError, match="labels"):
        Dataset(np.zeros((3, 2)), np.zeros(2, dtype=np.int32))
    with pytest.raises(TypeError, match="labels"):
        Dataset(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="n_classes"):
        Dataset(np.zeros((3, 2)), np.zeros(3, dtype=np.int32), 0)
    data = Dataset(np.zeros((3, 2)), np.array([0, 2, 1]))
    assert data.n_classes == 3 and len(data) == 3 and data.n_features == 2


def _numbered(n: int) -> Dataset:
    """A data set whose single feature is the sample number."""
    return Dataset(np.arange(n, dtype=np.float64)[:, None], np.arange(n) % 2)


def test_batches_cover_each_epoch_and_reshuffle():
    data = _numbered(10)
    epochs = list(datasets.batches(data, 3, key=jax.random.key(0), n_epochs=2, drop_last=False))
    assert [len(b) for b in epochs] == [3, 3, 3, 1] * 2
    first = np.concatenate([np.asarray(b.inputs)[:, 0] for b in epochs[:4]])
    second = np.concatenate([np.asarray(b.inputs)[:, 0] for b in epochs[4:]])
    assert sorted(first) == sorted(second) == list(range(10))
    assert not np.array_equal(first, second)
    for batch in epochs:  # labels travel with their inputs
        np.testing.assert_array_equal(batch.labels, np.asarray(batch.inputs)[:, 0].astype(int) % 2)
    again = list(datasets.batches(data, 3, key=jax.random.key(0), n_epochs=2, drop_last=False))
    for a, b in zip(epochs, again, strict=True):
        np.testing.assert_array_equal(a.inputs, b.inputs)


def test_batches_drop_last_no_shuffle_and_forever():
    data = _numbered(10)
    batches = list(datasets.batches(data, 4, key=jax.random.key(0), shuffle=False))
    assert [np.asarray(b.inputs)[:, 0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7]]
    forever = datasets.batches(data, 5, key=jax.random.key(0), n_epochs=None)
    assert len([next(forever) for _ in range(7)]) == 7


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 11}, "batch_size"),
        ({"batch_size": 2, "n_epochs": -1}, "n_epochs"),
    ],
)
def test_batches_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.batches(_numbered(10), key=jax.random.key(0), **kwargs)


def test_train_test_split():
    data = _numbered(20)
    train, test = datasets.train_test_split(data, 0.25, key=jax.random.key(0))
    assert len(train) == 15 and len(test) == 5
    together = sorted(np.concatenate([np.asarray(train.inputs), np.asarray(test.inputs)])[:, 0])
    assert together == list(range(20))
    assert train.n_classes == test.n_classes == 2
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.train_test_split(data, 1.0, key=jax.random.key(0))
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.train_test_split(data, 0.01, key=jax.random.key(0))
