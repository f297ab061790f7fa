"""The examples' training recipe, piece by piece and without training: the revival of
silent neurons bumps only the silent ones, by the bump times the learning-rate fraction;
the moving average of the weights; the digits' noise augmentation; checkpoints, also
those of earlier versions."""

import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from eqsnn import datasets

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import _common  # noqa: E402
import _loop  # noqa: E402
import digits  # noqa: E402
import yinyang  # noqa: E402


def _network(style: str = "feedforward"):
    cfg, _ = yinyang.parse_args(
        ["--hidden", "4", "--style", style, "--out", "unused", "--overwrite", "--no-plots"]
    )
    return cfg, _common.build_network(cfg, 5, 3, key=jax.random.key(0))


def _metrics(silent_hidden, missed):
    zero = jnp.zeros(())
    return _common.Metrics(
        zero, zero, zero, jnp.asarray(silent_hidden), zero, jnp.asarray(missed), zero
    )


def test_revive_bumps_only_silent_neurons_scaled_by_the_schedule():
    cfg, network = _network()
    cfg.bump, cfg.quiet_hidden, cfg.quiet_output = 1e-3, 1.0, 0.0
    # Hidden neuron 1 was silent in every sample of the batch, neuron 2 in half of them;
    # output neuron 2 missed a third of its class's samples (missed is a batch mean).
    aux = _metrics([0.0, 1.0, 0.5, 0.0], [0.0, 0.0, 0.1])
    revived, n_hidden, n_output = _loop.revive(cfg, network, aux, scale=0.25)
    assert (n_hidden, n_output) == (1, 1)
    step = np.float32(0.25e-3)
    d_hidden = revived.layers[0].weights.input - network.layers[0].weights.input
    d_out = revived.layers[1].weights.input - network.layers[1].weights.input
    np.testing.assert_array_equal(d_hidden != 0, np.tile([False, True, False, False], (5, 1)))
    np.testing.assert_allclose(d_hidden[:, 1], step, rtol=1e-3)  # float32 sums
    np.testing.assert_array_equal(d_out != 0, np.tile([False, False, True], (4, 1)))
    np.testing.assert_allclose(d_out[:, 2], step, rtol=1e-3)


def test_revive_recurrent_bumps_the_blocks_into_silent_neurons():
    cfg, network = _network("recurrent")
    cfg.bump, cfg.quiet_hidden, cfg.quiet_output = 1.0, 1.0, 0.0
    revived, *_ = _loop.revive(cfg, network, _metrics([1.0, 0, 0, 0], [0.2, 0, 0]), 1.0)
    w, w0 = revived.layers[0].weights, network.layers[0].weights
    d_in, d_rec = np.asarray(w.input - w0.input), np.asarray(w.recurrent - w0.recurrent)
    assert np.all(d_in[:, 0] == 1.0) and np.count_nonzero(d_in) == d_in.shape[0]
    assert np.all(d_rec[:4, 4] == 1.0) and np.count_nonzero(d_rec) == 4  # hidden -> output 0


def test_no_revival_without_silent_neurons_or_bump():
    cfg, network = _network()
    quiet = _metrics([1.0, 1.0, 1.0, 1.0], [0.3, 0.3, 0.3])
    cfg.bump = 0.0
    assert _loop.revive(cfg, network, quiet)[1:] == (0, 0)
    cfg.bump = 1e-3
    assert _loop.revive(cfg, network, _metrics([0.9] * 4, [0.0] * 3))[1:] == (0, 0)


def test_average_is_the_exponential_moving_average_of_the_weights():
    _, a = _network()
    _, b = _network()
    b = jax.tree.map(lambda x: x + 1.0 if eqx_array(x) else x, b)
    mixed = _loop.average(a, b, 0.75)
    for x, y, m in zip(_leaves(a), _leaves(b), _leaves(mixed), strict=True):
        np.testing.assert_allclose(m, 0.75 * x + 0.25 * y, rtol=1e-6)


def eqx_array(x) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating)


def _leaves(network):
    return [x for x in jax.tree.leaves(network) if eqx_array(x)]


def test_add_noise_perturbs_pixels_within_bounds_and_keeps_the_bias():
    inputs = np.concatenate([np.full((200, 64), 0.5), np.zeros((200, 1))], axis=1)
    batch = datasets.Dataset(inputs.astype(np.float32), np.zeros(200, int), 10)
    noisy = np.asarray(digits.add_noise(np.random.default_rng(0), batch, 0.1).inputs)
    assert np.all(noisy[:, 64] == 0.0)
    pixels = noisy[:, :64]
    assert np.all((pixels >= 0.0) & (pixels <= 1.0))
    assert abs(pixels.std() - 0.1) < 0.005 and abs(pixels.mean() - 0.5) < 0.005
    edge = datasets.Dataset(np.ones((50, 65), np.float32), np.zeros(50, int), 10)
    assert np.all(np.asarray(digits.add_noise(np.random.default_rng(1), edge, 0.3).inputs) <= 1)


def test_checkpoints_round_trip_and_older_ones_still_resume(tmp_path):
    cfg, network = _network()
    optimiser = _common.make_optimiser(cfg, 10)
    opt_state = optimiser.init(_common.trainable(network))
    averaged = _loop.average(network, jax.tree.map(_plus_one, network), 0.5)
    _loop.save_checkpoint(tmp_path, network, opt_state, averaged, cfg, [{"epoch": 1}])
    loaded = _loop.load_checkpoint(tmp_path, network, opt_state)
    for x, y in zip(_leaves(loaded[2]), _leaves(averaged), strict=True):
        np.testing.assert_array_equal(x, y)
    # A checkpoint written before the averaged network was kept: (network, opt_state).
    eqx.tree_serialise_leaves(tmp_path / "checkpoint.eqx", (averaged, opt_state))
    net, _, avg = _loop.load_checkpoint(tmp_path, network, opt_state)
    for x, y, z in zip(_leaves(net), _leaves(avg), _leaves(averaged), strict=True):
        np.testing.assert_array_equal(x, z)
        np.testing.assert_array_equal(y, z)


def _plus_one(x):
    return x + 1.0 if eqx_array(x) else x
