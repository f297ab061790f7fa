r"""The frame of a per-neuron EventProp: each neuron of a feed-forward layer simulated on its
own by a custom VJP whose backward pass sees only that neuron's spike record.

Used by the per-neuron LIF path (`per_neuron`) and by the neuron models (`neuron_model`):
each gives its forward (the neuron's simulation) and its backward (its adjoint), and
`neuron_core` turns the pair into one differentiable core,

$$
\texttt{core}(\underbrace{(w, t, p)}_{\texttt{diff}}, \texttt{idx}, \texttt{static})
    \mapsto \text{the neuron's spikes},
$$

whose residuals are the spikes it found. `layer_eventprop` runs a core over the neurons
of a layer, with the parameters' arrays as the differentiated argument `p` and their
constants, the configuration and the spike budget as the static one.
"""

from collections.abc import Callable

import equinox as eqx

from .._engine.base import SimulationConfig
from .._engine.per_neuron import collect, per_neuron_spikes
from .._engine.window_scan import NeuronSpikes
from .._spikes import Spikes


class Static(eqx.Module):
    """The settings of one neuron's simulation: the configuration with the parameters'
    constants (their arrays are a differentiated argument) and the budget."""

    config: SimulationConfig
    budget: int = eqx.field(static=True)

    def params(self, arrays):
        """The parameters from their array fields `arrays` and the constants held here."""
        return eqx.combine(arrays, self.config.params)


Forward = Callable[[tuple, object, Static], NeuronSpikes]
Backward = Callable[[NeuronSpikes, NeuronSpikes, tuple, object, Static], tuple]


def neuron_core(forward: Forward, backward: Backward):
    """The core `core(diff, idx, static)` that returns `forward(diff, idx, static)`, one
    neuron's spikes, and whose VJP to `diff = (weight, time, arrays)` is
    `backward(found, grad_out, diff, idx, static)` (`found`: the spikes, stored by the
    forward pass; `grad_out`: their cotangent, with `None` for unused fields)."""

    @eqx.filter_custom_vjp
    def core(diff, idx, static: Static) -> NeuronSpikes:
        return forward(diff, idx, static)

    @core.def_fwd
    def _fwd(perturbed, diff, idx, static: Static):
        del perturbed
        found = core(diff, idx, static)
        return found, found

    @core.def_bwd
    def _bwd(found: NeuronSpikes, grad_out, perturbed, diff, idx, static: Static):
        del perturbed
        return backward(found, grad_out, diff, idx, static)

    return core


def layer_eventprop(core, config: SimulationConfig, weights, spikes: Spikes, budget: int) -> Spikes:
    """The spikes of a feed-forward layer, each neuron simulated by `core` (from
    `neuron_core`): differentiable to the weights, delays, input times and the array fields
    of the parameters."""
    _, constants = eqx.partition(config.params, eqx.is_array)
    static = Static(config=eqx.tree_at(lambda c: c.params, config, constants), budget=budget)

    def one(weight, time, idx, arrays):
        return core((weight, time, arrays), idx, static)

    return collect(per_neuron_spikes(one, config, weights, spikes), config.n_spikes)
