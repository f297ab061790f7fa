"""Neuron models beyond the LIF (ALIFParameters, IFParameters) in the rest of the library:
what supports them runs them (the functional API's feed-forward layers), what was written
for the LIF's closed forms refuses them with a message that names the place and says what
is supported (traces, lif_exponential_flow, hardware layers and backends, the functional
recurrent layers). Save/load, summary and NIR have their own test files.

Runtime: one compilation (the functional layer); the refusals happen before any."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn
from eqsnn import functional
from eqsnn.hardware import EmulatedBackend, SoftwareBackend

KEY = jax.random.PRNGKey(0)
T_MAX = 0.02
ALIF = eqsnn.ALIFParameters(tau_adapt=3e-2, beta=0.3)
IF = eqsnn.IFParameters(tau_mem=2e-2)
SPIKES = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3, 4e-3]), idx=jnp.array([0, 1, 0]))


@pytest.mark.parametrize("params", [ALIF, IF], ids=["ALIF", "IF"])
def test_traces_and_the_lif_flow_refuse_models(params):
    layer = eqsnn.LIF(2, 3, 6, T_MAX, params, key=KEY, mean=2.0)
    name = type(params).__name__
    with pytest.raises(TypeError, match=rf"traces\(LIF.*`params` are {name}, not eqsnn.LIFPa"):
        eqsnn.traces(layer, SPIKES, jnp.array([0.0, 1e-2]))
    with pytest.raises(TypeError, match=rf"lif_exponential_flow: `params` are {name}.*flow\(x"):
        eqsnn.lif_exponential_flow(params)


def test_hardware_layers_and_backends_refuse_models():
    backend = SoftwareBackend()
    with pytest.raises(TypeError, match="HardwareLIF: `params` are ALIFParameters.*runs LIF"):
        eqsnn.HardwareLIF(2, 3, 6, T_MAX, ALIF, key=KEY, backend=backend)
    with pytest.raises(TypeError, match="HardwareRecurrentLIF: `params` are IFParameters"):
        eqsnn.HardwareRecurrentLIF(2, [2, 2], 6, T_MAX, IF, key=KEY, backend=backend)
    with pytest.raises(TypeError, match="HardwareLIF: `params` are ALIFParameters"):
        functional.HardwareLIF(3, 6, T_MAX, ALIF, 1.0, 0.5, backend=backend)
    weights = eqsnn.InputWeights(input=np.ones((2, 3)))
    time, idx = np.array([[1e-3, np.inf]]), np.array([[0, -1]])
    for chip in (backend, EmulatedBackend()):
        name = type(chip).__name__
        with pytest.raises(TypeError, match=f"{name}.run: `params` are ALIFParameters"):
            chip.run(weights, time, idx, params=ALIF, t_max=T_MAX, n_spikes=4)


def test_functional_layers_run_models_or_say_why_not():
    count = eqsnn.Overflow.COUNT
    init_fn, apply_fn = functional.LIF(3, 8, T_MAX, ALIF, mean=2.0, overflow=count)
    _, _, weights = init_fn(KEY, 2)
    _, _, out, _ = apply_fn([weights], SPIKES)
    # init_fn builds its layer with the second half of the split key: the same weights.
    layer = eqsnn.LIF(2, 3, 8, T_MAX, ALIF, key=jax.random.split(KEY)[1], mean=2.0, overflow=count)
    np.testing.assert_array_equal(layer.weights.input, weights.input)
    expected = layer(eqsnn.Spikes(time=SPIKES.time, idx=SPIKES.idx, n_sources=2))  # same trace
    assert out.count() > 0
    np.testing.assert_array_equal(out.time, expected.time)
    np.testing.assert_array_equal(out.idx, jnp.where(expected.idx >= 0, expected.idx + 2, -1))
    with pytest.raises(ValueError, match=r"functional.RecurrentLIF: neurons of IFParameters.*"
                       r"Connectivity.FULL.*Connectivity.LAYERED"):  # fmt: skip
        functional.RecurrentLIF([2, 2], 6, T_MAX, IF, 1.0, 0.5)
    with pytest.raises(ValueError, match="LIF: neurons of ALIFParameters are simulated by the "):
        functional.LIF(3, 6, T_MAX, ALIF, max_spikes_per_interval=2)
