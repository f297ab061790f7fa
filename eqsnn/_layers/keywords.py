"""The keywords that chose an engine before engines were values, mapped onto them.

`max_spikes_per_neuron=` and `max_spikes_per_interval=` on a layer are deprecated: each
still works, with a `DeprecationWarning` that names the `engine=` value replacing it.
`wrap_only_step=` of the seed's [`eqsnn.EventPropLIF`][] and
[`eqsnn.RecurrentEventPropLIF`][] is part of their seed signature and maps to
`EventProp(per_step=...)` without a warning.
"""

import os
import sys
import warnings

import equinox as eqx

from .._adjoint.base import EventProp
from .._checks import check_size
from .._engine.base import AbstractEngine
from .._engine.interval_scan import IntervalScan
from .._engine.window_scan import WindowScan


def engine_from_keywords(
    who: str,
    engine: AbstractEngine | None,
    max_spikes_per_neuron=None,
    max_spikes_per_interval=None,
    *,
    warn: bool = True,
) -> AbstractEngine | None:
    """`engine`, or the engine that the deprecated budget keywords select (with a
    `DeprecationWarning` if `warn`; the functional API passes them on silently).

    **Raises:** a `ValueError` naming both when a budget keyword is combined with `engine=`
    or when both budget keywords are given.
    """
    given = {
        name: value
        for name, value in (
            ("max_spikes_per_neuron", max_spikes_per_neuron),
            ("max_spikes_per_interval", max_spikes_per_interval),
        )
        if value is not None
    }
    if not given:
        return engine
    if len(given) == 2:
        raise ValueError(
            f"{who}: choose one spike budget: `max_spikes_per_neuron`={max_spikes_per_neuron!r} "
            f"(window scan) or `max_spikes_per_interval`={max_spikes_per_interval!r} "
            "(interval scan), not both; better, pass engine=eqsnn.WindowScan"
            "(max_spikes_per_neuron=...) or engine=eqsnn.IntervalScan(max_spikes_per_interval=...)."
        )
    ((name, value),) = given.items()
    if name == "max_spikes_per_neuron":
        value = tuple(value) if isinstance(value, list | tuple) else value
        for v in value if isinstance(value, tuple) else (value,):
            check_size(name, v, who)
        replacement = WindowScan(max_spikes_per_neuron=value)
    else:
        check_size(name, value, who)
        replacement = IntervalScan(max_spikes_per_interval=value)
    if engine is not None:
        raise ValueError(
            f"{who}: `{name}`={value!r} is the old spelling of engine={replacement!r}; it "
            f"cannot be combined with engine={engine!r}. Pass the budget to the engine."
        )
    if warn:
        warnings.warn(
            f"{who}: `{name}={value!r}` is deprecated; pass engine=eqsnn.{replacement!r} instead.",
            DeprecationWarning,
            stacklevel=_caller_level(),
        )
    return replacement


def _caller_level() -> int:
    """The `stacklevel` of the first frame outside eqsnn and Equinox (the user's line)."""
    inside = (os.path.dirname(os.path.dirname(__file__)), os.path.dirname(eqx.__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def seed_adjoint(who: str, wrap_only_step, keywords: dict, base: str) -> EventProp:
    """The adjoint of the seed's EventProp layers: `EventProp(per_step=wrap_only_step)`.

    `keywords` are the other keyword arguments; they must not choose an adjoint (the
    message points to `base`, the layer that takes one).
    """
    if not isinstance(wrap_only_step, bool):
        raise TypeError(f"{who}: `wrap_only_step` must be a bool, got {wrap_only_step!r}.")
    if "adjoint" in keywords:
        raise TypeError(
            f"{who} sets `adjoint=EventProp(per_step=wrap_only_step)`; use "
            f"eqsnn.{base}(..., adjoint=...) to choose another."
        )
    return EventProp(per_step=wrap_only_step)
