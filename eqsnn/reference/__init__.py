r"""The Diffrax reference: the neuron equations solved numerically, as an independent check.

[`eqsnn.reference.lif_vector_field`][] is the LIF ODE as a Diffrax vector field
([`eqsnn.reference.alif_vector_field`][] and [`eqsnn.reference.if_vector_field`][] those
of the ALIF and IF neurons), and [`eqsnn.reference.simulate_diffrax`][] a slow reference
simulator that integrates them with `diffrax.diffeqsolve` and locates threshold crossings
with `diffrax.Event`; [`eqsnn.reference.traces_diffrax`][] gives the LIF's states
$(V, I)$ at chosen times. Both take per-neuron parameters, an absolute refractory period
(`t_ref`, LIF) and transmission delays of the input and recurrent spikes. They share no
code with the closed-form simulators of the layers, so tests (and users) can compare the
two; see
[Cross-check against Diffrax](../howto/diffrax_crosscheck.md).

This sub-package imports Diffrax, so `import eqsnn` does not load it: it is imported on
first use of `eqsnn.reference` (or with `import eqsnn.reference`).
"""

from ._simulate import simulate_diffrax as simulate_diffrax
from ._traces import traces_diffrax as traces_diffrax
from ._vector_field import alif_vector_field as alif_vector_field
from ._vector_field import if_vector_field as if_vector_field
from ._vector_field import lif_vector_field as lif_vector_field
