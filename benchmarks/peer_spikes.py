"""Reference output spikes of one jaxsnn feed-forward LIF layer.

For cross-checking eqsnn against jaxsnn (>=0.3 Topology API): given weights
`(in_size, out_size)` and input spike times/indices, run jaxsnn's event-based
LIF forward pass (float64 by default) and return its output spikes.

jaxsnn conventions this script relies on (read from jaxsnn 0.3.0):

- `Spike(time, idx, current, layer_idx, internal)`; a slot is a real spike iff
  `internal` is True. Empty/unused *output* slots hold `time = t_max`,
  `idx = -1`, `internal = False`; `Spike.empty` (used to pre-fill buffers and
  to mask with `Spike.where`) uses `time = inf`, `idx = -1`.
- Input spikes are consumed in array order from a queue head; the input must
  be sorted by time (jaxsnn's encoders sort; this script sorts for you).
- `n_steps` counts processed *events* of the layer: every input spike and
  every own spike consumes one step. Events past the budget are dropped.
- Anything at `t >= t_max` is not an event.

Usage: `python -m benchmarks.peer_spikes --demo`, or import `jaxsnn_lif_spikes`.
"""

import argparse

import numpy as np


def jaxsnn_lif_spikes(
    weights: np.ndarray,
    input_times: np.ndarray,
    input_idx: np.ndarray,
    *,
    tau_syn: float = 5e-3,
    tau_mem: float = 1e-2,
    v_th: float = 1.0,
    v_reset: float = -1000.0,
    t_max: float = 2e-2,
    n_steps: int | None = None,
    float64: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Output spikes of a jaxsnn `LIF` layer fed through a `Linear` projection.

    **Arguments:**

    - `weights`: `(in_size, out_size)`; an input spike from source `j` adds
      `weights[j, k]` to the synaptic current of neuron `k`.
    - `input_times`, `input_idx`: 1-D, one entry per input spike (any order;
      `inf` times are treated as padding and dropped).
    - `tau_syn`, `tau_mem`: seconds; jaxsnn's analytical solver requires
      `tau_mem / tau_syn` to round to 1 or 2.
    - `n_steps`: event budget (default: number of inputs + `out_size` + 8,
      enough for one spike per neuron).

    **Returns:** `(times, idx)` of the output spikes in emission order.
    """
    import jax

    if float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jaxsnn.event import modules, topology, types

    weights = np.asarray(weights, dtype=np.float64 if float64 else np.float32)
    in_size, out_size = weights.shape
    times = np.asarray(input_times, dtype=weights.dtype).ravel()
    idx = np.asarray(input_idx, dtype=np.int64).ravel()
    keep = np.isfinite(times)
    order = np.argsort(times[keep], kind="stable")
    times, idx = times[keep][order], idx[keep][order]
    if n_steps is None:
        n_steps = times.size + out_size + 8

    params = modules.LIFParameters(v_reset=v_reset, v_th=v_th, tau_syn=tau_syn, tau_mem=tau_mem)
    builder = topology.Topology(t_max=t_max)
    builder.add(
        {
            "inp": modules.Source(in_size),
            "syn": modules.Linear(pre_weights=weights),
            "lif": modules.LIF(out_size, n_steps, params),
        }
    )
    builder.connect([("inp", "syn"), ("syn", "lif")])
    init_fn, apply_fn = builder.done()
    spikes_in = types.Spike(
        time=jnp.asarray(times)[None],
        idx=jnp.asarray(idx)[None],
        current=jnp.zeros((1, times.size), weights.dtype),
        layer_idx=jnp.zeros((1, times.size), dtype=int),
        internal=jnp.ones((1, times.size), dtype=bool),
    )
    out = jax.jit(apply_fn)({"inp": spikes_in}, init_fn(jax.random.PRNGKey(0)))
    lif = jax.tree.map(lambda leaf: np.asarray(leaf[0]), out["lif"])
    mask = lif.internal
    return lif.time[mask], lif.idx[mask]


def _demo() -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(0.6, 0.3, size=(5, 4))
    times = rng.uniform(0.0, 1e-2, size=10)
    idx = rng.integers(0, 5, size=10)
    out_t, out_i = jaxsnn_lif_spikes(weights, times, idx)
    for t, i in zip(out_t, out_i, strict=True):
        print(f"neuron {int(i)}  t = {float(t)!r} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", help=".npy file, (in_size, out_size)")
    parser.add_argument("--times", help=".npy file, input spike times (s)")
    parser.add_argument("--idx", help=".npy file, input spike source indices")
    parser.add_argument("--demo", action="store_true")
    args = parser.parse_args()
    if args.demo or args.weights is None:
        _demo()
        return
    out_t, out_i = jaxsnn_lif_spikes(np.load(args.weights), np.load(args.times), np.load(args.idx))
    for t, i in zip(out_t, out_i, strict=True):
        print(f"{int(i)} {float(t)!r}")


if __name__ == "__main__":
    main()
