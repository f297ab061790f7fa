"""eqsnn.nir with neuron models beyond the LIF.

- IFParameters (exponential synapse, non-leaky integration) is NIR's LI → IF pair: a round
  trip through a file gives back the same layer (floats as floats, arrays bit for bit,
  `tau_mem` exactly although `1 / (1 / tau_mem)` rounds), and a hand-built LI → IF graph
  spikes as NIR's equations say (forward Euler);
- what NIR cannot express is refused, naming the layer or the node: ALIFParameters (no
  adaptive threshold), a non-zero `v_init`, IF neurons in a recurrent layer, an IF node
  without its LI synapse, an LI that feeds no IF, an LI with a leak, IF/LI on a loop.

Runtime: one compilation (the Euler comparison); everything else builds layers only.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn.nir import from_nir, to_nir

nir = pytest.importorskip("nir")  # CI installs it; locally `pip install 'eqsnn[nir]'`.

T_MAX = 0.04
KEY = jax.random.key(0)
INPUT = eqsnn.Spikes(
    time=jnp.array([1e-3, 2e-3, 3e-3, 5e-3, 8e-3, jnp.inf]), idx=jnp.array([0, 2, 1, 0, 2, -1])
)


def _assert_same(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)  # float fields included
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert (a.dtype, a.shape) == (b.dtype, b.shape) and a.tobytes() == b.tobytes()


def test_if_layers_round_trip_through_li_and_if_nodes(tmp_path):
    assert 1.0 / (1.0 / 1.3e-2) != 1.3e-2  # so `tau_mem` needs the record to come back
    params = eqsnn.IFParameters(
        tau_syn=jnp.array([5e-3, 4e-3, 6e-3]), tau_mem=1.3e-2, v_th=0.5,
        v_init=jnp.zeros(3), v_reset=jnp.array([-0.1, 0.0, -0.2]),
    )  # fmt: skip
    model = eqx.nn.Sequential(
        [
            eqsnn.LIF(3, 3, 6, T_MAX, params, key=KEY, delays="source"),
            eqsnn.LIF(3, 2, 4, T_MAX, key=jax.random.key(1)),  # an LIF layer after it
        ]
    )
    graph = to_nir(model)
    assert list(graph.edges) == [
        ("input", "delay_0"), ("delay_0", "linear_0"), ("linear_0", "syn_0"),
        ("syn_0", "if_0"), ("if_0", "linear_1"), ("linear_1", "lif_1"), ("lif_1", "output"),
    ]  # fmt: skip
    synapse, neuron = graph.nodes["syn_0"], graph.nodes["if_0"]
    assert isinstance(synapse, nir.LI) and isinstance(neuron, nir.IF)
    np.testing.assert_array_equal(synapse.tau, params.tau_syn)
    np.testing.assert_array_equal(synapse.r, params.tau_syn)  # jump r W / tau = W
    np.testing.assert_array_equal(synapse.v_leak, np.zeros(3))
    np.testing.assert_array_equal(neuron.r, np.full(3, 1.0 / 1.3e-2))
    np.testing.assert_array_equal(neuron.v_reset, params.v_reset)
    path = tmp_path / "if.nir"
    nir.write(path, graph)
    loaded = from_nir(nir.read(path))
    _assert_same(loaded, model)
    assert loaded.layers[0].params.tau_mem == 1.3e-2


def _euler_first_spikes(weight, synapse, neuron, spikes, dt):
    """First spike of each neuron of NIR's LI → IF, by forward Euler with step `dt` (an
    input spike is a unit-area Dirac delta: one step of height 1/dt)."""
    n = weight.shape[0]
    x_steps = {}
    for t, i in zip(np.asarray(spikes.time), np.asarray(spikes.idx), strict=True):
        if i >= 0:
            x_steps.setdefault(round(t / dt), np.zeros(n))
            x_steps[round(t / dt)] += weight[:, i] / dt
    v, current = np.zeros(n), np.zeros(n)
    first = np.full(n, np.inf)
    for step in range(round(T_MAX / dt)):
        x = x_steps.get(step, 0.0)
        v = v + dt * neuron.r * current
        current = current + dt / synapse.tau * (synapse.v_leak - current + synapse.r * x)
        crossed = (v > neuron.v_threshold) & np.isinf(first)
        first[crossed] = (step + 1) * dt
        v[crossed] = neuron.v_reset[crossed]
        if np.all(np.isfinite(first)):
            break
    return first


def test_foreign_li_if_graph_follows_nir_equations():
    rng = np.random.default_rng(0)
    weight = rng.uniform(0.6, 1.4, (3, 3))
    synapse = nir.LI(tau=np.full(3, 5e-3), r=np.array([5e-3, 1e-2, 2.5e-3]), v_leak=np.zeros(3))
    neuron = nir.IF(r=np.array([100.0, 50.0, 80.0]), v_threshold=np.full(3, 0.5))
    graph = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([3])),
            "w": nir.Linear(weight=weight),
            "li": synapse,
            "if": neuron,
            "out": nir.Output(output_type=np.array([3])),
        },
        edges=[("in", "w"), ("w", "li"), ("li", "if"), ("if", "out")],
    )
    (layer,) = from_nir(graph, n_spikes=6, t_max=T_MAX, overflow=eqsnn.Overflow.COUNT).layers
    assert type(layer.params) is eqsnn.IFParameters
    assert layer.params.v_reset == 0.0 and layer.params.v_init == 0.0  # floats: all agree
    np.testing.assert_array_equal(layer.params.tau_mem, 1.0 / neuron.r)  # per neuron
    got = layer(INPUT).first_spike_times(3)
    dt = 1e-6
    want = _euler_first_spikes(weight, synapse, neuron, INPUT, dt)
    assert np.all(np.isfinite(want))
    # Forward Euler is first order (about 1-2 dt here); a wrong scale r / tau (up to 4x
    # between these neurons) or 1 / r would move the millisecond spike times by far more.
    np.testing.assert_allclose(got, want, rtol=0, atol=3 * dt)


def test_what_nir_cannot_express_is_refused():
    alif = eqsnn.LIF(2, 3, 6, T_MAX, eqsnn.ALIFParameters(), key=KEY)
    with pytest.raises(ValueError, match=r"layer 0 \(LIF\) has neurons of ALIFParameters, which "
                       "no NIR node describes .NIR has no adaptive threshold"):  # fmt: skip
        to_nir(alif)
    shifted = eqsnn.LIF(2, 3, 6, T_MAX, eqsnn.IFParameters(v_init=0.1), key=KEY)
    with pytest.raises(ValueError, match=r"layer 0 \(LIF\): NIR's IF node has no initial volt"):
        to_nir(shifted)
    recurrent = eqsnn.RecurrentLIF(2, [2, 1], 6, T_MAX, eqsnn.IFParameters(), key=KEY)
    with pytest.raises(ValueError, match=r"layer 0 \(RecurrentLIF\) has neurons of IFParam"):
        to_nir(recurrent)

    inp, out = nir.Input(input_type=np.array([2])), nir.Output(output_type=np.array([2]))
    w = nir.Linear(weight=np.ones((2, 2)))
    li = nir.LI(tau=np.full(2, 5e-3), r=np.full(2, 5e-3), v_leak=np.zeros(2))
    cell = nir.IF(r=np.full(2, 100.0), v_threshold=np.ones(2))
    chain = [("in", "w"), ("w", "li"), ("li", "if"), ("if", "out")]
    cases = {
        r"node 'if' \(IF\) integrates its input directly": (
            {"li": nir.Linear(weight=np.eye(2))}, chain,
        ),
        r"node 'li' \(LI\) is not followed by an IF node": (
            {"if": nir.Linear(weight=np.eye(2))}, chain,
        ),
        r"node 'li' \(LI\): `v_leak` must be 0 .* got v_leak\[1\]=0.5": (
            {"li": nir.LI(tau=li.tau, r=li.r, v_leak=np.array([0.0, 0.5]))}, chain,
        ),
        r"node 'if' \(IF\): `r` must be positive and finite .* got r\[0\]=0.0": (
            {"if": nir.IF(r=np.array([0.0, 1.0]), v_threshold=np.ones(2))}, chain,
        ),
        r"node 'li' \(LI\) is on a loop; eqsnn imports IF neurons .* feed-forward": (
            {"rec": nir.Linear(weight=np.eye(2))}, [*chain, ("if", "rec"), ("rec", "li")],
        ),
    }  # fmt: skip
    for message, (nodes, edges) in cases.items():
        graph = nir.NIRGraph(
            nodes={"in": inp, "w": w, "li": li, "if": cell, "out": out, **nodes}, edges=edges
        )
        with pytest.raises(ValueError, match=message):
            from_nir(graph, n_spikes=4, t_max=T_MAX)
