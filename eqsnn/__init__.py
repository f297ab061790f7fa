"""eqsnn: exact event-driven spiking neural networks in JAX and Equinox."""

from . import solvers as solvers
from ._events import Overflow as Overflow
from ._flow import LIFState as LIFState
from ._flow import lif_exponential_flow as lif_exponential_flow
from ._lif import LIF as LIF
from ._params import LIFParameters as LIFParameters
from ._spikes import Spikes as Spikes
from ._weights import InputWeights as InputWeights

__version__ = "0.1.0"
