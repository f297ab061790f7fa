"""Tests for eqsnn.summary: one row per layer with its sizes, budgets, engine, adjoint and
parameter count, for a layer, a Sequential, a module of one's own and hardware layers."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import eqsnn

K1, K2, K3 = jax.random.split(jax.random.PRNGKey(0), 3)


def _rows(text: str) -> list[str]:
    """The table's rows, between its header line and the total."""
    lines = text.splitlines()
    return lines[2 : next(k for k, line in enumerate(lines) if line.startswith("total"))]


def test_single_layer():
    layer = eqsnn.LIF(5, 20, n_spikes=40, t_max=0.05, key=K1, adjoint=eqsnn.EventProp())
    text = eqsnn.summary(layer)
    lines = text.splitlines()
    assert lines[0] == "LIF: 1 layer"
    assert " ".join(lines[1].split()) == "layer sizes n_spikes t_max engine adjoint parameters"
    assert " ".join(lines[2].split()) == (
        "LIF 5 -> 20 40 0.05 s WindowScan(max_spikes_per_neuron=2) EventProp() 100"
    )
    assert lines[3] == "total: 100 trainable parameters"
    assert lines[4].startswith("neurons (the layer): tau_syn=5 ms, tau_mem=10 ms, v_th=0.6")


def test_sequential_counts_every_layer():
    net = eqx.nn.Sequential(
        [
            eqsnn.LIF(5, 120, n_spikes=240, t_max=0.1, key=K1),
            eqsnn.LIF(120, 3, n_spikes=6, t_max=0.1, key=K2, engine=eqsnn.EventLoop()),
        ]
    )
    text = eqsnn.summary(net)
    assert text.splitlines()[0] == "Sequential: 2 layers"
    rows = _rows(text)
    assert rows[0].split()[:2] == ["layers[0]:", "LIF"] and "600" in rows[0]
    assert "EventLoop()" in rows[1] and rows[1].split()[-1] == "360"
    assert "total: 960 trainable parameters" in text
    assert "neurons (every layer)" in text


def test_recurrent_counts_the_weights_inside_the_mask():
    params = eqsnn.LIFParameters(v_reset=-1.0)
    layer = eqsnn.RecurrentLIF(5, [4, 3], n_spikes=20, t_max=0.1, params=params, key=K1)
    text = eqsnn.summary(layer)
    # Layered connectivity: 5 x 4 input weights and 4 x 3 between the populations are
    # trained; the (5 x 7) + (7 x 7) = 84 stored weights include the masked-out zeros.
    assert "5 -> [4, 3]" in text and "32 (84 stored)" in text
    assert "total: 32 trainable parameters (84 stored)" in text
    assert "v_reset=-1" in text


def test_hardware_layer_and_a_module_of_ones_own():
    class Network(eqx.Module):
        hidden: eqsnn.LIF
        out: eqsnn.HardwareLIF
        scale: jax.Array

    net = Network(
        eqsnn.LIF(2, 4, n_spikes=8, t_max=0.05, key=K1, params=eqsnn.LIFParameters(v_th=0.5)),
        eqsnn.HardwareLIF(
            4, 3, n_spikes=6, t_max=0.05, key=K2, backend=eqsnn.hardware.SoftwareBackend()
        ),
        jnp.ones(2),
    )
    text = eqsnn.summary(net)
    rows = _rows(text)
    assert rows[0].startswith("  hidden: LIF")
    assert rows[1].startswith("  out: HardwareLIF")
    assert "backend SoftwareBackend" in rows[1] and "EventProp (replay)" in rows[1]
    assert "total: 22 trainable parameters" in text  # 8 + 12 + the module's own 2
    assert "neurons of hidden: " in text and "v_th=0.5" in text


def test_no_layer_raises():
    with pytest.raises(TypeError, match="model"):
        eqsnn.summary(eqx.nn.Linear(2, 3, key=K3))


def test_neuron_models_show_their_name_and_fields():
    alif = eqsnn.ALIFParameters(tau_adapt=4e-2, beta=jnp.full(3, 0.2))
    integrate = eqsnn.IFParameters(v_init=-0.1)
    net = eqx.nn.Sequential(
        [
            eqsnn.LIF(2, 3, n_spikes=6, t_max=0.05, params=alif, key=K1),
            eqsnn.LIF(3, 2, n_spikes=4, t_max=0.05, params=integrate, key=K2),
        ]
    )
    lines = eqsnn.summary(net).splitlines()
    assert lines[-2] == (
        "neurons of layers[0]: ALIFParameters: tau_syn=5 ms, tau_mem=10 ms, v_th=0.6, "
        "v_leak=0, v_reset=0, tau_adapt=40 ms, beta=array[3] (trainable)"
    )
    assert lines[-1] == (
        "neurons of layers[1]: IFParameters: tau_syn=5 ms, tau_mem=10 ms, v_th=0.6, "
        "v_init=-0.1, v_reset=0"
    )
    assert "total: 15 trainable parameters" in lines  # 6 + 6 weights and the 3 betas
