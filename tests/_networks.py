"""The shared test networks: one small layer and one input sample per layer kind.

`build(kind, engine, adjoint, dtype)` returns `(layer, spikes)` with fixed keys, so every
engine and gradient method sees the same weights and the same input. The kinds:

- `"feedforward"`: an `eqsnn.LIF` of 5 neurons on 4 inputs, tau_mem / tau_syn = 0.5
  (`BracketedSolver`). Four neurons spike 1-3 times (9 spikes), one of them twice in one
  input interval; the last neuron never spikes. Nothing is lost with a budget of 3 spikes
  per neuron or 2 per input interval, nor by the event loop (12 slots); `WindowScan(1)`
  and `IntervalScan(1)` lose spikes.
- `"layered"`: an `eqsnn.RecurrentLIF` [4, 3] with `Connectivity.LAYERED` in the one-spike
  regime (`v_reset = -1000`), ratio 2 (`TTFSSolver`): the seed's layered EventProp case,
  its last two input slots emptied; each of the 7 neurons spikes once (8 slots).
- `"full"`: a `RecurrentLIF` [4, 2] with `Connectivity.FULL` and dense random recurrent
  weights, ratio 1.5: the buffer of 20 overflows and one neuron never spikes (the seed's
  dense EventProp case, unchanged; no empty input slot).
- `"mask"`: a `RecurrentLIF` [4, 3, 2] with a `ConnectivityMask` that is feed-forward but
  not layered (inputs reach populations 0 and 1; 0 -> 1, 0 -> 2, 1 -> 2: a skip
  connection), ratio 1 (`LambertWSolver`); at most (2, 3, 2) spikes per neuron of each
  population (`WindowScan((2, 3, 2))` loses nothing, exactly at its budget), two silent
  neurons.

Input spikes include empty slots (`idx == -1`), one of them at `+inf` (except `"full"`).
The layer's `overflow` is `Overflow.COUNT`: losses are asserted, not warned about.
`tests/test_engine_matrix.py` asserts these properties (`test_networks_are_as_documented`).
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import eqsnn

T_MAX = 0.05
KINDS = ("feedforward", "layered", "full", "mask")


def _params(ratio, v_reset):
    return eqsnn.LIFParameters(
        tau_syn=5e-3, tau_mem=ratio * 5e-3, v_th=1.0, v_leak=0.0, v_reset=v_reset
    )


def _inputs(seed, in_size, n):
    """`n` input spikes uniform in [0, 20 ms) on random inputs; the first two slots are
    empty, one with a finite time (as a user's padding could be), one at `+inf`."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, in_size, n)
    idx[:2] = -1
    time = rng.uniform(0.0, 0.02, n)
    time[0] = np.inf
    return eqsnn.Spikes(time=jnp.asarray(time), idx=jnp.asarray(idx, jnp.int32))


def _seed_inputs(seed):
    """8 input spikes on 3 inputs as the seed's recurrent EventProp tests drew them."""
    rng = np.random.default_rng(seed)
    time = jnp.asarray(rng.uniform(0.0, 0.02, 8))
    return eqsnn.Spikes(time=time, idx=jnp.asarray(rng.integers(0, 3, 8), jnp.int32))


def skip_mask() -> tuple[tuple[int, ...], eqsnn.ConnectivityMask]:
    """Populations [4, 3, 2] on 3 inputs: inputs reach populations 0 and 1; 0 -> 1, 0 -> 2
    and 1 -> 2. Feed-forward between populations, but not `Connectivity.LAYERED`."""
    layers = (4, 3, 2)
    w_in = np.zeros((3, 9), bool)
    w_in[:, :7] = True
    w_rec = np.zeros((9, 9), bool)
    w_rec[:4, 4:] = True
    w_rec[4:7, 7:] = True
    return layers, eqsnn.ConnectivityMask(w_in, w_rec)


def _feedforward(engine, adjoint):
    layer = eqsnn.LIF(
        4, 5, 12, T_MAX, _params(0.5, -0.8), key=jax.random.PRNGKey(3), mean=0.6, std=0.3,
        engine=engine, adjoint=adjoint, overflow=eqsnn.Overflow.COUNT,
    )  # fmt: skip
    w = layer.weights.input
    layer = eqx.tree_at(lambda m: m.weights.input, layer, w.at[:, -1].set(-jnp.abs(w[:, -1])))
    return layer, _inputs(3, 4, 10)


def _recurrent(kind, engine, adjoint):
    common = dict(engine=engine, adjoint=adjoint, overflow=eqsnn.Overflow.COUNT)
    if kind == "layered":
        # The seed's layered one-spike EventProp case, its last two input slots emptied and
        # one more output slot (so that one stays empty).
        layer = eqsnn.RecurrentLIF(
            3, [4, 3], 8, T_MAX, _params(2.0, -1000.0), key=jax.random.PRNGKey(0),
            mean=[3.0, 2.0], std=1.0, **common,
        )  # fmt: skip
        spikes = _seed_inputs(0)
        idx = spikes.idx.at[-2:].set(-1)
        return layer, eqsnn.Spikes(time=spikes.time.at[-1].set(jnp.inf), idx=idx)
    if kind == "mask":
        layers, mask = skip_mask()
        layer = eqsnn.RecurrentLIF(
            3, layers, 20, T_MAX, _params(1.0, -0.2), key=jax.random.PRNGKey(4),
            mean=[0.96, 0.8, 0.64], std=0.5, connectivity=mask, **common,
        )  # fmt: skip
        return layer, _inputs(4, 3, 8)
    if kind == "full":
        layer = eqsnn.RecurrentLIF(
            3, [4, 2], 20, T_MAX, _params(1.5, 0.0), key=jax.random.PRNGKey(5),
            mean=[3.0, 2.0], std=1.0, connectivity=eqsnn.Connectivity.FULL, **common,
        )  # fmt: skip
        rng = np.random.default_rng(5)
        weights = eqsnn.RecurrentWeights(
            input=jnp.asarray(rng.normal(2.5, 1.0, (3, 6))),
            recurrent=jnp.asarray(rng.normal(0.0, 0.8, (6, 6))),
        )
        layer = eqx.tree_at(lambda m: m.weights, layer, weights)
        return layer, _seed_inputs(5)
    raise ValueError(f"unknown layer kind {kind!r}; one of {KINDS}")


@functools.cache
def build(kind, engine=None, adjoint=None, dtype=jnp.float64):
    """The network of `kind` run by `engine` with the gradient method `adjoint` (`None`:
    the layer's defaults), its weights and input times in `dtype`.

    **Returns:** `(layer, spikes)`: the same weights and input for every engine and
    adjoint (cached: a second call returns the same objects).
    """
    if kind == "feedforward":
        layer, spikes = _feedforward(engine, adjoint)
    else:
        layer, spikes = _recurrent(kind, engine, adjoint)
    cast = functools.partial(jnp.asarray, dtype=dtype)
    layer = jax.tree.map(lambda x: cast(x) if eqx.is_inexact_array(x) else x, layer)
    spikes = eqx.tree_at(lambda s: (s.time, s.current), spikes, replace_fn=cast)
    return layer, spikes
