"""`serial`: chain `(init_fn, apply_fn)` pairs into one network."""

from collections.abc import Callable, Sequence
from typing import Any

from jaxtyping import PRNGKeyArray

from .._spikes import Spikes
from ._wrap import ApplyFn, Carry, InitFn, Weights


def serial(*layers: tuple[InitFn, ApplyFn]) -> tuple[Callable, Callable]:
    r"""Chain `(init_fn, apply_fn)` pairs into one network, as jaxsnn's `serial`.

    **Arguments:**

    - `*layers`: `(init_fn, apply_fn)` pairs of layers, first layer first.

    **Returns:** `(init_fn, apply_fn)`:

    - `init_fn(rng, input_size) -> (output_size, weights)`: initialises the layers in
      order, threading `rng` and the sizes; `weights` is a flat list, one entry per layer.
    - `apply_fn(weights, spikes, external=None, carry=None) -> (carry, weights, out,
      recording)`: simulates the layers in order on one sample; `out` is the last layer's
      output and `recording` the list of every layer's output, all with global indices.
      Use `jax.vmap(apply_fn, in_axes=(None, 0))` for a batch.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn
    from eqsnn import functional

    params = eqsnn.LIFParameters()
    init_fn, apply_fn = functional.serial(
        functional.LIF(4, n_spikes=8, t_max=0.05, params=params, mean=2.0, std=0.5),
        functional.LIF(2, n_spikes=4, t_max=0.05, params=params, mean=1.0, std=0.5),
    )
    n_out, weights = init_fn(jax.random.PRNGKey(0), 3)
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3, 3e-3]), idx=jnp.array([0, 1, 2]))
    _, _, out, recording = apply_fn(weights, spikes)  # out.idx in 7..8 (global), or -1
    ```
    """
    if not layers:
        raise ValueError("functional.serial: needs at least one (init_fn, apply_fn) pair.")
    for k, layer in enumerate(layers):
        if not (isinstance(layer, tuple) and len(layer) == 2 and all(map(callable, layer))):
            raise TypeError(
                f"functional.serial: layer {k} must be an (init_fn, apply_fn) pair, got {layer!r}."
            )
    init_fns, apply_fns = zip(*layers, strict=True)

    def init_fn(rng: PRNGKeyArray, input_size: int) -> tuple[int, list[Weights]]:
        """Initialise every layer's weights, in order."""
        weights: list[Weights] = []
        for layer_init in init_fns:
            rng, input_size, layer_weights = layer_init(rng, input_size)
            weights.append(layer_weights)
        return input_size, weights

    def apply_fn(
        weights: Sequence[Weights],
        spikes: Spikes,
        external: Any = None,
        carry: Carry | None = None,
    ) -> tuple[Carry | None, list[Weights], Spikes, list[Spikes]]:
        """Simulate the layers in order; returns every layer's output spikes."""
        if carry is None and len(weights) != len(apply_fns):
            raise ValueError(
                f"functional.serial: `weights` holds {len(weights)} entries for "
                f"{len(apply_fns)} layers; pass the list that init_fn returned."
            )
        used: list[Weights] = []
        recording: list[Spikes] = []
        for layer_apply in apply_fns:
            carry, layer_weights, spikes, _ = layer_apply(weights, spikes, external, carry)
            used.append(layer_weights)
            recording.append(spikes)
        return carry, used, spikes, recording

    return init_fn, apply_fn
