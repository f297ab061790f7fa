"""Weight containers: what a layer learns."""

import equinox as eqx
from jaxtyping import Array, Float


class InputWeights(eqx.Module):
    """Weights of a feed-forward layer.

    **Arguments:**

    - `input`: `input[i, n]` is added to the synaptic current of neuron `n` when input `i`
      spikes; shape `(in_size, out_size)`.
    - `delays`: synaptic delays in seconds, or `None` (no delay, the default): shape
      `(in_size, out_size)` (per synapse: input `i`'s spike at `t` reaches neuron `n` at
      `t + delays[i, n]`) or `(in_size,)` (per source, axonal: it reaches every neuron at
      `t + delays[i]`). Non-negative; trained like the weights. See
      [Trainable parameters and delays](../concepts/trainable.md).
    """

    input: Float[Array, "in_size out_size"]
    delays: Float[Array, "..."] | None = None


class RecurrentWeights(eqx.Module):
    """Weights of a recurrent layer of `n` neurons.

    **Arguments:**

    - `input`: `input[i, n]` is added to the synaptic current of neuron `n` when input `i`
      spikes; shape `(in_size, n)`.
    - `recurrent`: `recurrent[j, n]` is added to the synaptic current of neuron `n` when
      neuron `j` of the same layer spikes; shape `(n, n)`.
    - `delays`: delays of the input synapses in seconds, `(in_size, n)` or `(in_size,)`
      (per source), or `None` (no delay); as [`eqsnn.InputWeights`][].
    - `recurrent_delays`: delays of the recurrent synapses, `(n, n)` (`[j, n]`: from neuron
      `j` to `n`) or `(n,)` (per source, axonal), or `None`.
    """

    input: Float[Array, "in_size n"]
    recurrent: Float[Array, "n n"]
    delays: Float[Array, "..."] | None = None
    recurrent_delays: Float[Array, "..."] | None = None
