"""Neuron models beyond the LIF: the interface, the models, and their crossing solver.

See [Neuron models](../concepts/neurons.md). [`eqsnn.ALIFParameters`][] and
[`eqsnn.IFParameters`][] are also available from `eqsnn`.
"""

from ._alif import ALIFParameters as ALIFParameters
from ._crossing import exp_sum_roots as exp_sum_roots
from ._crossing import first_crossing as first_crossing
from ._integrate_and_fire import IFParameters as IFParameters
from ._model import AbstractNeuronModel as AbstractNeuronModel
