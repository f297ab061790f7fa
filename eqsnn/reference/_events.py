r"""The reference's queue of pending events: synaptic arrivals and refractory ends.

A spike (input or recurrent) of source $j$ at time $s$ reaches target $k$ at
$s + d_{jk}$ and then adds $w_{jk}$ to $I_k$. `arrivals` groups the targets of one spike
by arrival time, so that a spike with one delay for all targets (or none) is one event
whose jump is the whole weight row. `EventQueue` holds the arrivals and the ends of
refractory periods in time order; events at the same time leave it in the order they
were pushed.
"""

import heapq
import itertools

import numpy as np

from .._spikes import EMPTY_INDEX, Spikes


def arrivals(
    time: float, weights: np.ndarray, delays: np.ndarray | None, t_max: float
) -> list[tuple[float, np.ndarray]]:
    """The `(arrival time, current jump)` pairs of one spike at `time` of a source with
    weight row `weights` and delay row `delays` (`None`: no delay), in time order; those
    at or after `t_max` are left out."""
    if delays is None:
        return [(time, weights)] if time < t_max else []
    at = time + delays
    return [
        (float(a), np.where(at == a, weights, np.zeros_like(weights)))
        for a in np.unique(at[at < t_max])
    ]


def input_spike_list(input_spikes: Spikes, n_in: int, t_max: float, who: str) -> list:
    """Valid input events before `t_max` as `(time, input index)` in time order (stable:
    simultaneous spikes keep their order in the buffer)."""
    time = np.asarray(input_spikes.time, dtype=np.float64)
    idx = np.asarray(input_spikes.idx)
    keep = idx != EMPTY_INDEX
    time, idx = time[keep], idx[keep]
    if np.any((idx < 0) | (idx >= n_in)):
        raise ValueError(f"{who}: input `idx` must be -1 or in [0, {n_in}), got {idx.tolist()}.")
    if np.any(np.isnan(time)) or np.any(time < 0):
        raise ValueError(f"{who}: valid input spike times must be >= 0, got {time.tolist()}.")
    keep = time < t_max
    time, idx = time[keep], idx[keep]
    order = np.argsort(time, kind="stable")
    return [(float(t), int(j)) for t, j in zip(time[order], idx[order], strict=True)]


class EventQueue:
    """Pending events in time order: arrivals (a jump of the synaptic currents) and
    refractory ends (a neuron whose voltage is released)."""

    def __init__(self):
        self._heap: list = []
        self._order = itertools.count()  # ties leave in the order they were pushed

    def push_arrival(self, time: float, jump: np.ndarray) -> None:
        heapq.heappush(self._heap, (time, next(self._order), jump, -1))

    def push_release(self, time: float, neuron: int) -> None:
        heapq.heappush(self._heap, (time, next(self._order), None, neuron))

    def next_time(self) -> float:
        """The time of the earliest pending event, `inf` when there is none."""
        return self._heap[0][0] if self._heap else np.inf

    def pop_due(self, t: float) -> tuple[list[np.ndarray], list[int]]:
        """Remove every event at or before `t`: the jumps of the arrivals and the released
        neurons, each in queue order."""
        jumps, released = [], []
        while self._heap and self._heap[0][0] <= t:
            _, _, jump, neuron = heapq.heappop(self._heap)
            if jump is None:
                released.append(neuron)
            else:
                jumps.append(jump)
        return jumps, released

    def releases(self) -> list[tuple[float, int]]:
        """The pending refractory ends as `(time, neuron)`, in time order."""
        return [(time, neuron) for time, _, jump, neuron in sorted(self._heap) if jump is None]
