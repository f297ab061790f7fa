"""Two-dimensional toy data sets: Yin-Yang, circle and linear."""

import math

import numpy as np
from jaxtyping import PRNGKeyArray

from .._checks import as_int
from ._dataset import Dataset, _check_key, _numpy_rng

BIAS_VALUE = 0.0
"""Value of the constant bias feature appended by the toy data sets (`bias=True`)."""

YINYANG_CLASS_NAMES = ("yin", "yang", "dot")
"""Names of the Yin-Yang classes, indexed by label."""


def _features(xy: np.ndarray, bias: bool) -> np.ndarray:
    """`(x, y, 1 - x, 1 - y)`, plus a constant bias column when `bias` is set."""
    columns = [xy, 1.0 - xy]
    if bias:
        columns.append(np.full((xy.shape[0], 1), BIAS_VALUE))
    return np.concatenate(columns, axis=1)


def _check_n(name: str, n_samples) -> int:
    """A positive sample count (a Python or NumPy integer) as a Python int."""
    return as_int(n_samples, "n_samples", name, minimum=1)


def _yinyang_class(xy: np.ndarray, r_big: float, r_small: float) -> np.ndarray:
    """Class of each point by the rule of Kriener et al. (2022); `-1` outside the big circle."""
    x, y = xy[:, 0], xy[:, 1]
    d_right = np.hypot(x - 1.5 * r_big, y - r_big)
    d_left = np.hypot(x - 0.5 * r_big, y - r_big)
    is_yang = (
        (d_right <= r_small)
        | ((d_left > r_small) & (d_left <= 0.5 * r_big))
        | ((y > r_big) & (d_right > 0.5 * r_big))
    )
    is_dot = (d_right < r_small) | (d_left < r_small)
    label = np.where(is_dot, 2, is_yang.astype(np.int32))
    outside = np.hypot(x - r_big, y - r_big) > r_big
    return np.where(outside, -1, label)


_MAX_DRAWS = 1 << 21
"""The most points one round of rejection sampling draws (about 100 MiB of work arrays)."""


def _draw_yinyang(
    rng: np.random.Generator, wanted: list[int], r_big: float, r_small: float
) -> np.ndarray:
    """`wanted[c]` points of each class `c`, uniform in the class's region, grouped by class.

    The dots cover 2 pi r_small^2 / (2 r_big)^2 of the square. Rounds of rejection sampling
    from the square are sized so that one round usually finds all dots; when that would
    take more than `_MAX_DRAWS` points (small dots, many samples), the dots are drawn inside
    their own discs instead (the same distribution, in bounded memory and time)."""
    batch = max(256, int(2 * max(wanted) * 4 * r_big**2 / (2 * math.pi * r_small**2)))
    if batch <= _MAX_DRAWS:
        return _reject_from_square(rng, wanted, r_big, r_small, batch)
    # Yin and yang each cover about a fifth of the square.
    batch = min(_MAX_DRAWS, max(256, 10 * max(wanted[:2])))
    body = _reject_from_square(rng, [wanted[0], wanted[1], 0], r_big, r_small, batch)
    return np.concatenate([body, _draw_dots(rng, wanted[2], r_big, r_small)])


def _draw_dots(rng: np.random.Generator, n: int, r_big: float, r_small: float) -> np.ndarray:
    """`n` points uniform in the two dots: a dot at random (they have equal areas), then a
    point of its bounding square, kept if it lies in the dot (pi / 4 of the draws)."""
    centres = np.array([[0.5 * r_big, r_big], [1.5 * r_big, r_big]])
    found: list[np.ndarray] = []
    while n:
        size = min(_MAX_DRAWS, max(256, 2 * n))
        xy = centres[rng.integers(0, 2, size)] + rng.uniform(-r_small, r_small, size=(size, 2))
        take = xy[_yinyang_class(xy, r_big, r_small) == 2][:n]
        found.append(take)
        n -= take.shape[0]
    return np.concatenate(found) if found else np.zeros((0, 2))


def _reject_from_square(
    rng: np.random.Generator, wanted: list[int], r_big: float, r_small: float, batch: int
) -> np.ndarray:
    """Rejection sampling from the square in rounds of `batch` points, grouped by class."""
    found: list[list[np.ndarray]] = [[], [], []]
    missing = list(wanted)
    while any(missing):
        xy = rng.uniform(0.0, 2 * r_big, size=(batch, 2))
        labels = _yinyang_class(xy, r_big, r_small)
        for c in range(3):
            take = xy[labels == c][: missing[c]]
            found[c].append(take)
            missing[c] -= take.shape[0]
    return np.concatenate([np.concatenate(points) for points in found if points])


def yinyang(
    key: PRNGKeyArray,
    n_samples: int,
    *,
    r_big: float = 0.5,
    r_small: float = 0.1,
    bias: bool = True,
) -> Dataset:
    r"""The Yin-Yang data set of Kriener, Göltz & Petrovici (NICE 2022).

    Points $(x, y)$ are drawn uniformly from the square $[0, 2 r_\mathrm{big}]^2$ and
    kept if they lie inside the big circle of radius $r_\mathrm{big}$. With
    $d_l, d_r$ the distances to the centres $(r_\mathrm{big}/2, r_\mathrm{big})$ and
    $(3 r_\mathrm{big}/2, r_\mathrm{big})$ of the two dots, a point is

    - class 2 (dot) if $d_l < r_\mathrm{small}$ or $d_r < r_\mathrm{small}$;
    - else class 1 if $d_r \le r_\mathrm{small}$, or $r_\mathrm{small} < d_l \le
      r_\mathrm{big}/2$, or ($y > r_\mathrm{big}$ and $d_r > r_\mathrm{big}/2$);
    - else class 0.

    The labels are those of the original data set, whose class names are
    `("yin", "yang", "dot")` (see `YINYANG_CLASS_NAMES`). Points are drawn by
    rejection sampling until every class is filled, so the classes are exactly
    balanced: class `c` has `n_samples // 3` samples, plus one for `c < n_samples % 3`.
    When the dots are too small to be hit often, they are drawn inside their own discs
    instead (the same distribution), so memory and time stay bounded for any `r_small`.
    The samples come in random order. Not traceable (`n_samples` fixes the shapes);
    call it outside `jit`.

    **Arguments:**

    - `key`: JAX PRNG key; the same key gives the same data set.
    - `n_samples`: number of samples (positive int).
    - `r_big`: radius of the big circle, in `(0, 0.5]` so that the features stay in `[0, 1]`.
    - `r_small`: radius of the two dots, in `(0, r_big / 2)`.
    - `bias`: append a constant bias feature with value `BIAS_VALUE = 0.0`.

    **Returns:** a [`eqsnn.datasets.Dataset`][] with features `(x, y, 1 - x, 1 - y)`
    (and the bias feature last), `n_classes=3`.

    **Example:**

    ```python
    import jax
    from eqsnn import datasets

    data = datasets.yinyang(jax.random.key(0), 1500)
    data.inputs.shape, data.n_classes  # ((1500, 5), 3)
    ```
    """
    n_samples = _check_n("yinyang", n_samples)
    _check_key("yinyang", key)
    if not 0.0 < r_big <= 0.5:
        raise ValueError(f"yinyang: `r_big` must lie in (0, 0.5], got {r_big!r}.")
    if not 0.0 < r_small < 0.5 * r_big:
        raise ValueError(f"yinyang: `r_small` must lie in (0, r_big / 2), got {r_small!r}.")
    wanted = [n_samples // 3 + (c < n_samples % 3) for c in range(3)]
    rng = _numpy_rng(key)
    xy = _draw_yinyang(rng, wanted, r_big, r_small)
    labels = np.repeat(np.arange(3, dtype=np.int32), wanted)
    order = rng.permutation(n_samples)
    return Dataset(_features(xy[order], bias), labels[order], 3)


def circle(key: PRNGKeyArray, n_samples: int, *, bias: bool = True) -> Dataset:
    r"""Two classes: points inside or outside a circle in the unit square.

    Points are uniform in $[0, 1]^2$; class 1 inside the circle of radius
    $\sqrt{1/(2\pi)}$ around $(0.5, 0.5)$, which covers half of the square, else class 0.
    The classes are therefore balanced on average, not exactly.

    **Arguments:**

    - `key`: JAX PRNG key.
    - `n_samples`: number of samples (positive int).
    - `bias`: append a constant bias feature with value `BIAS_VALUE = 0.0`.

    **Returns:** a [`eqsnn.datasets.Dataset`][] with features `(x, y, 1 - x, 1 - y)`
    (and the bias feature last), `n_classes=2`.

    **Example:**

    ```python
    import jax
    from eqsnn import datasets

    data = datasets.circle(jax.random.key(0), 100)
    ```
    """
    n_samples = _check_n("circle", n_samples)
    _check_key("circle", key)
    xy = _numpy_rng(key).uniform(size=(n_samples, 2))
    inside = np.sum((xy - 0.5) ** 2, axis=1) <= 0.5 / math.pi
    return Dataset(_features(xy, bias), inside.astype(np.int32), 2)


def linear(key: PRNGKeyArray, n_samples: int, *, bias: bool = True) -> Dataset:
    r"""Two linearly separable classes in the unit square.

    Points are uniform in $[0, 1]^2$; class 1 if $x < y$ (above the diagonal), else
    class 0.

    **Arguments:**

    - `key`: JAX PRNG key.
    - `n_samples`: number of samples (positive int).
    - `bias`: append a constant bias feature with value `BIAS_VALUE = 0.0`.

    **Returns:** a [`eqsnn.datasets.Dataset`][] with features `(x, y, 1 - x, 1 - y)`
    (and the bias feature last), `n_classes=2`.

    **Example:**

    ```python
    import jax
    from eqsnn import datasets

    data = datasets.linear(jax.random.key(0), 100)
    ```
    """
    n_samples = _check_n("linear", n_samples)
    _check_key("linear", key)
    xy = _numpy_rng(key).uniform(size=(n_samples, 2))
    return Dataset(_features(xy, bias), (xy[:, 0] < xy[:, 1]).astype(np.int32), 2)
