"""eqsnn: exact event-driven spiking neural networks in JAX and Equinox.

The sub-packages `eqsnn.nir`, `eqsnn.plot`, `eqsnn.reference` and `eqsnn.training` are
imported on first use (`eqsnn.reference` loads Diffrax, `eqsnn.training` optax,
`eqsnn.plot` matplotlib when it draws), so `import eqsnn` stays fast; names that moved to
a sub-package still work from here, with a `DeprecationWarning` (see `_MOVED`).
"""

import importlib as _importlib
import typing as _typing
import warnings as _warnings

from . import datasets as datasets
from . import encode as encode
from . import eventprop as eventprop
from . import functional as functional
from . import hardware as hardware
from . import loss as loss
from . import neurons as neurons
from . import solvers as solvers
from ._adjoint.base import AbstractAdjoint as AbstractAdjoint
from ._adjoint.base import AutoDiff as AutoDiff
from ._adjoint.base import EventProp as EventProp
from ._connectivity import Connectivity as Connectivity
from ._connectivity import ConnectivityMask as ConnectivityMask
from ._engine.auto import AutoEngine as AutoEngine
from ._engine.base import AbstractEngine as AbstractEngine
from ._engine.base import SimulationConfig as SimulationConfig
from ._engine.event_loop import EventLoop as EventLoop
from ._engine.interval_scan import IntervalScan as IntervalScan
from ._engine.window_scan import WindowScan as WindowScan
from ._flow import LIFState as LIFState
from ._flow import lif_exponential_flow as lif_exponential_flow
from ._layers.base import AbstractLayer as AbstractLayer
from ._layers.base import AbstractSimulatedLayer as AbstractSimulatedLayer
from ._layers.feedforward import LIF as LIF
from ._layers.feedforward import EventPropLIF as EventPropLIF
from ._layers.recurrent import RecurrentEventPropLIF as RecurrentEventPropLIF
from ._layers.recurrent import RecurrentLIF as RecurrentLIF
from ._overflow import Overflow as Overflow
from ._overflow import SpikesDroppedWarning as SpikesDroppedWarning
from ._overflow import reset_dropped_warnings as reset_dropped_warnings
from ._params import LIFParameters as LIFParameters
from ._spikes import Spikes as Spikes
from ._summary import summary as summary
from ._traces import traces as traces
from ._weights import InputWeights as InputWeights
from ._weights import RecurrentWeights as RecurrentWeights
from .hardware._layers import HardwareLIF as HardwareLIF
from .hardware._layers import HardwareRecurrentLIF as HardwareRecurrentLIF
from .neurons import ALIFParameters as ALIFParameters
from .neurons import IFParameters as IFParameters

if _typing.TYPE_CHECKING:
    from . import nir as nir
    from . import plot as plot
    from . import reference as reference
    from . import training as training

__version__ = "0.1.0"

_LAZY_SUBPACKAGES = ("nir", "plot", "reference", "training")
"""Public sub-packages imported on first attribute access rather than with `eqsnn`."""

_MOVED = {
    "simulate_diffrax": ("eqsnn.reference", "simulate_diffrax"),
    "lif_vector_field": ("eqsnn.reference", "lif_vector_field"),
    "AdjointState": ("eqsnn.eventprop", "AdjointState"),
    "adjoint_input_transition": ("eqsnn.eventprop", "adjoint_input_transition"),
    "adjoint_lif_exponential_flow": ("eqsnn.eventprop", "adjoint_lif_exponential_flow"),
    "adjoint_transition_with_recurrence": (
        "eqsnn.eventprop",
        "adjoint_transition_with_recurrence",
    ),
    "adjoint_transition_without_recurrence": (
        "eqsnn.eventprop",
        "adjoint_transition_without_recurrence",
    ),
    "adjoint_trajectory": ("eqsnn.eventprop", "adjoint_trajectory"),
    "step_bwd": ("eqsnn.eventprop", "step_bwd"),
}
"""Deprecated top-level names: `old_name -> (new module, attribute)`. Accessing
`eqsnn.old_name` (or `from eqsnn import old_name`) returns the new object and warns."""


def __getattr__(name: str):
    # PEP 562: called only for names not found in the module's namespace.
    if name in _LAZY_SUBPACKAGES:
        return _importlib.import_module(f"{__name__}.{name}")  # also sets the attribute
    if name in _MOVED:
        module, attribute = _MOVED[name]
        _warnings.warn(
            f"`eqsnn.{name}` is deprecated; use `{module}.{attribute}` instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy sub-packages are listed; the deprecated names are not.
    return sorted({*globals(), *_LAZY_SUBPACKAGES})
