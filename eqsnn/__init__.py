"""eqsnn: exact event-driven spiking neural networks in JAX and Equinox."""

from . import datasets as datasets
from . import encode as encode
from . import functional as functional
from . import hardware as hardware
from . import loss as loss
from . import nir as nir
from . import solvers as solvers
from ._adjoint import AdjointState as AdjointState
from ._adjoint import adjoint_input_transition as adjoint_input_transition
from ._adjoint import adjoint_lif_exponential_flow as adjoint_lif_exponential_flow
from ._adjoint import adjoint_transition_with_recurrence as adjoint_transition_with_recurrence
from ._adjoint import (
    adjoint_transition_without_recurrence as adjoint_transition_without_recurrence,
)
from ._adjoint_trajectory import adjoint_trajectory as adjoint_trajectory
from ._adjoint_trajectory import step_bwd as step_bwd
from ._diffrax_reference import simulate_diffrax as simulate_diffrax
from ._eventprop import EventPropLIF as EventPropLIF
from ._flow import LIFState as LIFState
from ._flow import lif_exponential_flow as lif_exponential_flow
from ._lif import LIF as LIF
from ._overflow import Overflow as Overflow
from ._overflow import SpikesDroppedWarning as SpikesDroppedWarning
from ._overflow import reset_dropped_warnings as reset_dropped_warnings
from ._params import LIFParameters as LIFParameters
from ._recurrent_eventprop import RecurrentEventPropLIF as RecurrentEventPropLIF
from ._recurrent_lif import Connectivity as Connectivity
from ._recurrent_lif import ConnectivityMask as ConnectivityMask
from ._recurrent_lif import RecurrentLIF as RecurrentLIF
from ._spikes import Spikes as Spikes
from ._vector_field import lif_vector_field as lif_vector_field
from ._weights import InputWeights as InputWeights
from ._weights import RecurrentWeights as RecurrentWeights
from .hardware._layers import HardwareLIF as HardwareLIF
from .hardware._layers import HardwareRecurrentLIF as HardwareRecurrentLIF

__version__ = "0.1.0"
