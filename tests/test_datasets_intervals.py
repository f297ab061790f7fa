"""Tests for eqsnn.datasets.intervals: a timing task whose class is the interval of a pair.

The statistical tests draw from fixed keys, so they are deterministic; their thresholds
are those of tests at level 1e-4 (a correct generator would fail one with probability
1e-4 for a fresh key), and each says which sample size it assumes.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqsnn import datasets


def _draw(n, **kwargs):
    data = datasets.intervals(jax.random.key(0), n, **kwargs)
    return np.asarray(data.inputs), np.asarray(data.labels), data


def _ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap of the two ECDFs."""
    grid = np.sort(np.concatenate([a, b]))
    ecdf_a = np.searchsorted(np.sort(a), grid, side="right") / a.size
    ecdf_b = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(ecdf_a - ecdf_b)))


def _ks_threshold(n: int, m: int, level: float = 1e-4) -> float:
    """The asymptotic critical value of the KS statistic: c(level) sqrt((n + m) / (n m))
    with c = sqrt(-log(level / 2) / 2) (about 2.23 at 1e-4)."""
    return math.sqrt(-math.log(level / 2) / 2) * math.sqrt((n + m) / (n * m))


@pytest.mark.parametrize(
    ("n", "kwargs"),
    [
        (50, {}),
        (31, {"n_classes": 2, "n_channels": 5, "jitter": 0.3}),
        (7, {"n_classes": 7, "spread": 0.0}),
    ],
)
def test_shapes_dtypes_and_range(n, kwargs):
    inputs, labels, data = _draw(n, **kwargs)
    n_classes, n_channels = kwargs.get("n_classes", 3), kwargs.get("n_channels", 2)
    assert isinstance(data, datasets.Dataset)
    assert data.inputs.shape == (n, n_channels) and data.labels.shape == (n,)
    assert data.inputs.dtype == jnp.result_type(float)
    assert data.labels.dtype == jnp.int32
    assert data.n_classes == n_classes
    # Large jitter is clipped: the features stay in [0, 1] for the encoders.
    assert np.all((inputs >= 0.0) & (inputs <= 1.0))
    assert set(np.unique(labels).tolist()) <= set(range(n_classes))


def test_determinism_by_key():
    a = datasets.intervals(jax.random.key(3), 40, n_channels=3, jitter=0.01)
    b = datasets.intervals(jax.random.key(3), 40, n_channels=3, jitter=0.01)
    c = datasets.intervals(jax.random.key(4), 40, n_channels=3, jitter=0.01)
    np.testing.assert_array_equal(a.inputs, b.inputs)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.inputs, c.inputs)
    # Legacy uint32 keys work too.
    legacy = datasets.intervals(jax.random.PRNGKey(3), 9)
    assert legacy.inputs.shape == (9, 2)


@pytest.mark.parametrize(("n", "counts"), [(300, [100, 100, 100]), (302, [101, 101, 100])])
def test_classes_balanced_and_shuffled(n, counts):
    _, labels, _ = _draw(n)
    assert [int(np.sum(labels == c)) for c in range(3)] == counts
    assert np.any(np.diff(labels) < 0)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_interval_is_the_class(n_classes):
    inputs, labels, _ = _draw(3000, n_classes=n_classes, n_channels=4)
    lengths = np.array(datasets.interval_lengths(n_classes))
    gap = np.abs(inputs[:, 1] - inputs[:, 0])
    # Without jitter the pair is exactly d_c apart (float64 rounding of sums of terms < 1).
    np.testing.assert_allclose(gap, lengths[labels], rtol=0, atol=1e-12)
    # So the nearest interval is a rule with 100 % accuracy ...
    guess = np.argmin(np.abs(gap[:, None] - lengths), axis=1)
    np.testing.assert_array_equal(guess, labels)
    # ... and both orders occur in every class.
    for c in range(n_classes):
        later = inputs[labels == c, 1] > inputs[labels == c, 0]
        assert 0 < np.sum(later) < np.sum(labels == c)


@pytest.mark.parametrize("jitter", [0.0, 0.02])
def test_single_channel_law_is_free_of_the_class(jitter):
    n_classes, spread = 3, 0.5
    inputs, labels, _ = _draw(15_000, n_classes=n_classes, n_channels=3, jitter=jitter)
    lengths = np.array(datasets.interval_lengths(n_classes, spread=spread))
    # Every channel is spread V + sum_k 2 d_k U_k (plus jitter): mean 1/2 in every class.
    std = math.sqrt(spread**2 / 12 + np.sum((2 * lengths) ** 2) / 12 + jitter**2)
    for c in range(n_classes):
        chosen = inputs[labels == c]
        # 5000 samples per class: 4.5 standard errors is a two-sided level below 1e-5.
        tolerance = 4.5 * std / math.sqrt(chosen.shape[0])
        np.testing.assert_allclose(chosen.mean(axis=0), 0.5, rtol=0, atol=tolerance)
        np.testing.assert_allclose(chosen.std(axis=0), std, rtol=0.05)
    # The whole law, not only the mean: two-sample KS tests between classes, per channel.
    for channel in range(3):
        for c in range(1, n_classes):
            a, b = inputs[labels == 0, channel], inputs[labels == c, channel]
            assert _ks_statistic(a, b) < _ks_threshold(a.size, b.size)


def test_marginal_test_has_power():
    # The same KS test sees the class in the onset (the earlier spike of the pair), which
    # depends on it weakly (its mean moves by (d_2 - d_0) / 2, a quarter of its standard
    # deviation): the test above would notice a channel whose law depended on the class.
    inputs, labels, _ = _draw(15_000)
    onset = inputs[:, :2].min(axis=1)
    a, b = onset[labels == 0], onset[labels == 2]
    assert _ks_statistic(a, b) > _ks_threshold(a.size, b.size)


def test_jitter_blurs_the_interval():
    jitter = 0.005
    inputs, labels, _ = _draw(6000, jitter=jitter)
    lengths = np.array(datasets.interval_lengths(3))
    signed = np.where(inputs[:, 1] > inputs[:, 0], 1.0, -1.0)
    error = signed * (inputs[:, 1] - inputs[:, 0]) - lengths[labels]
    # The difference of two independent N(0, jitter^2) draws; clipping is negligible (the
    # channels' density vanishes at 0 and 1). 6000 samples: the sample std is within 5 %.
    np.testing.assert_allclose(np.std(error), math.sqrt(2) * jitter, rtol=0.05)
    np.testing.assert_allclose(
        np.mean(error), 0.0, atol=5 * math.sqrt(2) * jitter / math.sqrt(6000)
    )


@pytest.mark.parametrize(("n_classes", "spread"), [(2, 0.5), (3, 0.5), (4, 0.0), (6, 0.9)])
def test_interval_lengths(n_classes, spread):
    lengths = datasets.interval_lengths(n_classes, spread=spread)
    assert isinstance(lengths, tuple) and len(lengths) == n_classes
    assert all(isinstance(d, float) for d in lengths)
    expected = (1 - spread) * np.arange(1, n_classes + 1) / (n_classes * (n_classes + 1))
    np.testing.assert_allclose(lengths, expected, rtol=1e-15)
    # The onset and the class terms fill the window exactly.
    assert spread + 2 * sum(lengths) == pytest.approx(1.0, rel=1e-14)
    assert datasets.interval_lengths(3) == pytest.approx((1 / 24, 2 / 24, 3 / 24), rel=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_samples": 0}, r"intervals: `n_samples` must be an int >= 1, got 0"),
        ({"n_samples": 3.0}, r"`n_samples`.*3\.0"),
        ({"n_classes": 1}, r"intervals: `n_classes` must be an int >= 2, got 1"),
        ({"n_channels": 1}, r"intervals: `n_channels` must be an int >= 2, got 1"),
        ({"jitter": -0.1}, r"intervals: `jitter` must be finite and >= 0, got -0\.1"),
        ({"jitter": float("nan")}, r"`jitter`.*nan"),
        ({"jitter": True}, r"`jitter` must be a real number, got True"),
        ({"spread": 1.0}, r"intervals: `spread` must lie in \[0, 1\), got 1\.0"),
        ({"spread": -0.5}, r"`spread`.*-0\.5"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"n_samples": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        datasets.intervals(jax.random.key(0), **kwargs)


def test_bad_key_and_bad_lengths_arguments():
    with pytest.raises(TypeError, match="intervals: `key` must be a JAX PRNG key"):
        datasets.intervals(0, 10)
    with pytest.raises(ValueError, match=r"interval_lengths: `n_classes`.*got 1"):
        datasets.interval_lengths(1)
    with pytest.raises(ValueError, match=r"interval_lengths: `spread`.*got 2\.0"):
        datasets.interval_lengths(3, spread=2.0)
