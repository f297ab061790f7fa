"""eqsnn: exact event-driven spiking neural networks in JAX and Equinox."""

from ._params import LIFParameters as LIFParameters
from ._spikes import Spikes as Spikes

__version__ = "0.1.0"
