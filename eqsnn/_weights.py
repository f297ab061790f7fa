"""Weight containers: what a layer learns."""

import equinox as eqx
from jaxtyping import Array, Float


class InputWeights(eqx.Module):
    """Weights of a feed-forward layer.

    **Arguments:**

    - `input`: `input[i, n]` is added to the synaptic current of neuron `n` when input `i`
      spikes; shape `(in_size, out_size)`.
    """

    input: Float[Array, "in_size out_size"]


class RecurrentWeights(eqx.Module):
    """Weights of a recurrent layer of `n` neurons.

    **Arguments:**

    - `input`: `input[i, n]` is added to the synaptic current of neuron `n` when input `i`
      spikes; shape `(in_size, n)`.
    - `recurrent`: `recurrent[j, n]` is added to the synaptic current of neuron `n` when
      neuron `j` of the same layer spikes; shape `(n, n)`.
    """

    input: Float[Array, "in_size n"]
    recurrent: Float[Array, "n n"]
