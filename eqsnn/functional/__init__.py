r"""The reference's functional API: layers as `(init_fn, apply_fn)` pairs, chained by `serial`.

Code written for jaxsnn 0.2.0 ports by changing imports. Each factory wraps an eqsnn layer
module: `init_fn` builds the module and returns its weights, `apply_fn` puts the weights
into the module and calls it, so spikes and gradients are those of the module. As in
jaxsnn, spike indices are global across the network (inputs first, then each layer's
neurons); the modules use local indices and the wrappers translate. The calling
convention and the differences from jaxsnn are on the how-to page *Functional API
(jaxsnn style)*.
"""

from ._layers import LIF as LIF
from ._layers import EventPropLIF as EventPropLIF
from ._layers import HardwareLIF as HardwareLIF
from ._layers import HardwareRecurrentLIF as HardwareRecurrentLIF
from ._layers import RecurrentEventPropLIF as RecurrentEventPropLIF
from ._layers import RecurrentLIF as RecurrentLIF
from ._layers import construct_init_fn as construct_init_fn
from ._layers import construct_recurrent_init_fn as construct_recurrent_init_fn
from ._serial import serial as serial

__all__ = [
    "EventPropLIF",
    "HardwareLIF",
    "HardwareRecurrentLIF",
    "LIF",
    "RecurrentEventPropLIF",
    "RecurrentLIF",
    "construct_init_fn",
    "construct_recurrent_init_fn",
    "serial",
]
