"""Smoke tests of eqsnn.plot with matplotlib's Agg backend: every function draws into new
or given axes and returns them; bad arguments raise naming them; without matplotlib the
error says how to install it."""

import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

T_MAX = 0.02
SPIKES = eqsnn.Spikes(
    time=jnp.array([1e-3, 4e-3, 2e-3, jnp.inf]), idx=jnp.array([0, 2, 1, -1]), n_sources=3
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _layer():
    return eqsnn.LIF(2, 3, n_spikes=15, t_max=T_MAX, key=jax.random.PRNGKey(0), mean=2.0)


def test_raster_one_sample_and_batch():
    ax = eqsnn.plot.raster(SPIKES)
    assert isinstance(ax, matplotlib.axes.Axes)
    (points,) = ax.collections
    np.testing.assert_allclose(points.get_offsets(), [[1.0, 0], [4.0, 2], [2.0, 1]])
    assert ax.get_ylim() == (-0.5, 2.5) and ax.get_xlabel() == "time (ms)"
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), SPIKES)
    _, given = plt.subplots()
    assert eqsnn.plot.raster(batch, sample=1, ax=given, time_unit="s") is given
    np.testing.assert_allclose(given.collections[0].get_offsets()[:, 0], [1e-3, 4e-3, 2e-3])
    with pytest.raises(ValueError, match="sample"):
        eqsnn.plot.raster(batch)
    with pytest.raises(ValueError, match="sample"):
        eqsnn.plot.raster(batch, sample=2)
    with pytest.raises(ValueError, match="time_unit"):
        eqsnn.plot.raster(SPIKES, time_unit="minutes")
    with pytest.raises(TypeError, match="ax"):
        eqsnn.plot.raster(SPIKES, ax="axes")


def test_traces_voltage_threshold_spikes_and_current():
    layer = _layer()
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))
    times = jnp.linspace(0.0, T_MAX, 101)
    state = eqsnn.traces(layer, spikes, times)
    out = layer(spikes)
    ax = eqsnn.plot.traces(times, state, v_th=layer.params.v_th, spikes=out)
    assert isinstance(ax, matplotlib.axes.Axes)
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), state.v[:, 0])
    assert any(np.all(line.get_ydata() == layer.params.v_th) for line in lines)  # threshold
    ax_v, ax_i = eqsnn.plot.traces(times, state, neurons=[1], current=True)
    np.testing.assert_allclose(ax_i.get_lines()[0].get_ydata(), state.i[:, 1])
    assert len(ax_v.get_lines()) == 1
    with pytest.raises(ValueError, match="neurons"):
        eqsnn.plot.traces(times, state, neurons=[3])
    with pytest.raises(ValueError, match="n_times"):
        eqsnn.plot.traces(times[:-1], state)
    with pytest.raises(TypeError, match="state"):
        eqsnn.plot.traces(times, state.v)
    with pytest.raises(TypeError, match="ax"):
        eqsnn.plot.traces(times, state, current=True, ax=ax)


def test_first_spike_histogram():
    first = jnp.array([[1e-3, 3e-3], [2.5e-3, 1.2e-3], [0.9e-3, jnp.inf]])
    ax = eqsnn.plot.first_spike_histogram(first)
    assert isinstance(ax, matplotlib.axes.Axes)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["neuron 0", "neuron 1 (1 silent)"]
    ax = eqsnn.plot.first_spike_histogram(first, jnp.array([0, 1, 0]), names=["a", "b"])
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert texts == ["class a", "class b", "other neurons (1 silent)"]
    # A batch of output spikes works as well (n_sources set by the layer).
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), SPIKES)
    assert isinstance(eqsnn.plot.first_spike_histogram(batch), matplotlib.axes.Axes)
    with pytest.raises(ValueError, match="labels"):
        eqsnn.plot.first_spike_histogram(first, jnp.array([0, 2, 0]))
    with pytest.raises(ValueError, match="first_times"):
        eqsnn.plot.first_spike_histogram(first[0])
    with pytest.raises(ValueError, match="names"):
        eqsnn.plot.first_spike_histogram(first, names=["a"])


def test_missing_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises
    with pytest.raises(ImportError, match=r'pip install "eqsnn\[plots\]"'):
        eqsnn.plot.raster(SPIKES)


def test_importing_the_plots_does_not_import_matplotlib():
    import subprocess

    code = "import sys, eqsnn, eqsnn.plot; print('matplotlib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr
