"""A timing task that needs delays: classify the interval between two input spikes."""

import math

import numpy as np
from jaxtyping import PRNGKeyArray

from .._checks import as_int
from ._dataset import Dataset, _check_key, _numpy_rng


def _check_real(who: str, name: str, value, upper_open: bool) -> float:
    """A real number in `[0, 1)` (`upper_open`) or `[0, inf)`, as a Python float."""
    if not isinstance(value, int | float | np.integer | np.floating) or isinstance(
        value, bool | np.bool_
    ):
        raise ValueError(f"{who}: `{name}` must be a real number, got {value!r}.")
    value = float(value)
    if upper_open and not 0.0 <= value < 1.0:
        raise ValueError(f"{who}: `{name}` must lie in [0, 1), got {value!r}.")
    if not upper_open and not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{who}: `{name}` must be finite and >= 0, got {value!r}.")
    return value


def _lengths(n_classes: int, spread: float) -> np.ndarray:
    """`d_k = (1 - spread) (k + 1) / (K (K + 1))`, so that `spread + 2 sum_k d_k = 1`."""
    return (1.0 - spread) * np.arange(1, n_classes + 1) / (n_classes * (n_classes + 1))


def interval_lengths(n_classes: int = 3, *, spread: float = 0.5) -> tuple[float, ...]:
    r"""The interval between the two spikes of each class of [`eqsnn.datasets.intervals`][].

    Class $k$ has the interval $d_k = (1 - \sigma)\,(k + 1) / (K (K + 1))$ for
    $k = 0, \dots, K - 1$, with $K$ = `n_classes` and $\sigma$ = `spread`: equally spaced
    multiples of $d_0$, with $\sigma + 2 \sum_k d_k = 1$. They are fractions of the
    encoding window: after [`eqsnn.encode.spatio_temporal_encode`][] with `t_late`, class
    $k$'s two spikes are $d_k$ `* t_late` seconds apart.

    **Arguments:** `n_classes` and `spread` as in [`eqsnn.datasets.intervals`][].

    **Returns:** the tuple $(d_0, \dots, d_{K-1})$ of Python floats.

    **Example:**

    ```python
    from eqsnn import datasets

    datasets.interval_lengths(3)  # (1/24, 2/24, 3/24) of the window
    ```
    """
    n_classes = as_int(n_classes, "n_classes", "interval_lengths", minimum=2)
    spread = _check_real("interval_lengths", "spread", spread, upper_open=True)
    return tuple(float(d) for d in _lengths(n_classes, spread))


def _background(rng: np.random.Generator, shape: tuple[int, ...], lengths, spread, halved=None):
    """Draws of `spread V + sum_k 2 d_k U_k`, the law of every channel; with `halved`
    (class labels, of `shape`), of the onset `s`: the term of class `c` is `d_c U_c`."""
    widths = np.broadcast_to(2.0 * lengths, (*shape, len(lengths)))
    if halved is not None:
        widths = np.where(np.arange(len(lengths)) == halved[..., None], 0.5, 1.0) * widths
    terms = widths * rng.uniform(size=widths.shape)
    return spread * rng.uniform(size=shape) + terms.sum(axis=-1)


def intervals(
    key: PRNGKeyArray,
    n_samples: int,
    *,
    n_classes: int = 3,
    n_channels: int = 2,
    jitter: float = 0.0,
    spread: float = 0.5,
) -> Dataset:
    r"""Two spikes whose interval is the class: a task for coincidence detection with delays.

    Each sample is one spike time per channel, as a fraction of the encoding window.
    Channels 0 and 1 spike $d_c$ apart, in random order, where $c$ is the class; the
    other channels are distractors. Every single channel's time has the same distribution
    in every class, so only the *interval* tells the classes apart. A neuron that delays
    one channel by $d_c$ and detects the coincidence (Jeffress's model of sound
    localisation) recognises one order of class $c$: with delays, $2K$ such hidden
    neurons solve the task. Without delays a neuron can compare times only through the
    decay of its synaptic current and membrane potential, which is hard when $d_0$ spans
    several synaptic time constants.

    **Generative model.** With $K$ = `n_classes`, $\sigma$ = `spread` and the intervals
    $d_k = (1 - \sigma)(k + 1) / (K (K + 1))$ of [`eqsnn.datasets.interval_lengths`][]
    (so that $\sigma + 2 \sum_k d_k = 1$), a sample of class $c$ draws independent
    $V, U_0, \dots, U_{K-1} \sim \mathcal{U}[0, 1)$ and a fair coin $B \in \{0, 1\}$, and
    sets

    $$
    s = \sigma V + d_c U_c + \sum_{k \ne c} 2 d_k U_k, \qquad
    x_0 = s + d_c B, \qquad x_1 = s + d_c (1 - B),
    $$

    so $|x_1 - x_0| = d_c$. Each distractor $x_j$, $j \ge 2$, is an independent draw of
    $\sigma V + \sum_k 2 d_k U_k$. Finally every $x_j$ gets independent Gaussian jitter of
    standard deviation `jitter` and is clipped to $[0, 1]$.

    **What the class changes.** Since $d_c (U_c + B)$ and $d_c (U_c + 1 - B)$ are
    uniform on $[0, 2 d_c)$, *every* channel is distributed as
    $\sigma V + \sum_k 2 d_k U_k$ (mean $1/2$, in $[0, 1)$) whatever the class, before and
    after the jitter: a single channel's spike time carries no information about the class.
    The pair's joint law does: through the interval, and weakly through the onset $s$ (the
    earlier spike of the pair). The latter cannot be avoided: if both channels' times are
    free of the class, the earlier one's is not. The uniform part $\sigma V$, common to all
    classes, blurs it: with the default `spread=0.5`, guessing the class from $s$ alone is
    right in about 54 % of the samples for $K = 2$ and 36 % for $K = 3$ (chance: 50 %,
    33 %), against 100 % from the interval when `jitter=0`. Classes stay told apart by the
    interval while $\sqrt{2}$ `jitter` is well below $d_0 / 2$.

    **Encoding.** With [`eqsnn.encode.spatio_temporal_encode`][] (`t_late`, no `t_bias`),
    channel $j$ becomes one spike of input neuron $j$ at $x_j$ `* t_late` seconds; class
    $c$'s two spikes are then $d_c$ `* t_late` apart, all spikes fall in `[0, t_late]`,
    and a delay network needs delays up to $d_{K-1}$ `* t_late`. The ratio
    $d_0$ `* t_late / tau_syn` sets how hard the task is without delays.

    The classes are exactly balanced (class $c$ has `n_samples // K` samples, plus one
    for `c < n_samples % K`) and come in random order. Built eagerly with NumPy: not
    traceable, call it outside `jit`.

    **Arguments:**

    - `key`: JAX PRNG key; the same key gives the same data set.
    - `n_samples`: number of samples (positive int).
    - `n_classes`: number of classes $K$, one interval each (int >= 2).
    - `n_channels`: number of features (int >= 2): the pair, then `n_channels - 2`
      distractors.
    - `jitter`: standard deviation of the Gaussian jitter of every spike, as a fraction of
      the window (finite, >= 0).
    - `spread`: $\sigma$, the share of the window taken by the onset common to all classes,
      in `[0, 1)`. Larger values hide the class better from the onset, and shorten the
      intervals.

    **Returns:** a [`eqsnn.datasets.Dataset`][] with `inputs` of shape
    `(n_samples, n_channels)` in `[0, 1]` and `n_classes` classes.

    **Example:**

    ```python
    import jax
    import numpy as np
    from eqsnn import datasets

    data = datasets.intervals(jax.random.key(0), 600, n_classes=3)
    gap = np.abs(np.asarray(data.inputs[:, 1] - data.inputs[:, 0]))
    lengths = np.array(datasets.interval_lengths(3))
    guess = np.argmin(np.abs(gap[:, None] - lengths), axis=1)
    assert np.all(guess == np.asarray(data.labels))  # the interval is the class
    ```
    """
    who = "intervals"
    n_samples = as_int(n_samples, "n_samples", who, minimum=1)
    n_classes = as_int(n_classes, "n_classes", who, minimum=2)
    n_channels = as_int(n_channels, "n_channels", who, minimum=2)
    jitter = _check_real(who, "jitter", jitter, upper_open=False)
    spread = _check_real(who, "spread", spread, upper_open=True)
    _check_key(who, key)
    rng = _numpy_rng(key)
    lengths = _lengths(n_classes, spread)
    counts = [n_samples // n_classes + (c < n_samples % n_classes) for c in range(n_classes)]
    labels = rng.permutation(np.repeat(np.arange(n_classes, dtype=np.int32), counts))
    d = lengths[labels]
    onset = _background(rng, (n_samples,), lengths, spread, halved=labels)
    first = rng.integers(0, 2, size=n_samples)
    times = np.empty((n_samples, n_channels))
    times[:, 0] = onset + d * first
    times[:, 1] = onset + d * (1 - first)
    times[:, 2:] = _background(rng, (n_samples, n_channels - 2), lengths, spread)
    if jitter > 0.0:
        times += jitter * rng.standard_normal(times.shape)
    return Dataset(np.clip(times, 0.0, 1.0), labels, n_classes)
