"""Build a buffer of input spikes and print it.

Run with `python examples/simulate_layer.py`. The spikes are what an eqsnn layer takes
as input: a fixed-length `eqsnn.Spikes` buffer, padded with empty slots (`idx == -1`).
"""

import jax.numpy as jnp

import eqsnn


def main() -> None:
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6, v_reset=-1000.0)
    print(f"LIF parameters: {params}")

    # Three input neurons; neuron 1 spikes twice, and two slots of the buffer are empty.
    spikes = eqsnn.Spikes(
        time=jnp.array([4e-3, 1e-3, 2.5e-3, 6e-3, 0.0, 0.0]),
        idx=jnp.array([2, 0, 1, 1, -1, -1]),
    ).sort()
    print(f"{spikes.count()} spikes in a buffer of {spikes.n_slots} slots:")
    for time, idx in zip(spikes.time.tolist(), spikes.idx.tolist(), strict=True):
        print(f"  t = {time * 1e3:5.2f} ms  neuron {idx}" if idx >= 0 else "  (empty)")
    print(f"first spike time per neuron (s): {spikes.first_spike_times(3)}")


if __name__ == "__main__":
    main()
