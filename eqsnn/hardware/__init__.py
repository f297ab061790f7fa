r"""Hardware in the loop: backends that run the forward pass outside JAX.

[`eqsnn.HardwareLIF`][] and [`eqsnn.HardwareRecurrentLIF`][] take a
[`Backend`][eqsnn.hardware.Backend]: the contract of an external executor (a chip, an
emulator, another simulator). This package holds the contract and the backends that
ship with eqsnn:

- [`SoftwareBackend`][eqsnn.hardware.SoftwareBackend]: eqsnn's exact simulator;
- [`EmulatedBackend`][eqsnn.hardware.EmulatedBackend]: a seeded model of analog
  hardware (weight quantisation, fixed-pattern variation, jitter, clock);
- [`Brian2Backend`][eqsnn.hardware.Brian2Backend]: the Brian2 simulator (extra
  `eqsnn[brian2]`).

See [Hardware in the loop](../concepts/hardware.md) and
[Write a backend](../howto/write_a_backend.md).
"""

from ._backend import Backend as Backend
from ._backend import BackendError as BackendError
from ._brian2 import Brian2Backend as Brian2Backend
from ._emulated import EmulatedBackend as EmulatedBackend
from ._replay import Mismatch as Mismatch
from ._software import SoftwareBackend as SoftwareBackend
