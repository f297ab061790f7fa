r"""RecurrentEventPropLIF: EventProp gradients equal autodiff through RecurrentLIF.

Tolerance. EventProp and autodiff compute the same derivative by different sequences of
floating-point operations, so they agree to rounding: 1e-8 relative (to the largest gradient
entry of the same leaf) leaves orders of magnitude of margin over the ~1e-13 measured. The
two `wrap_only_step` settings apply the same adjoint jumps and flows and differ only in how
cotangents are carried between steps (as $-\tau\lambda$ and back) and summed: 1e-10
relative, over the ~5e-15 measured.

Runtime. Compilation dominates (most of the file's time), so three configurations cover
layered one-spike (tau ratio 2), layered multi-spike with a full buffer and dense recurrence
multi-spike with a full buffer and a silent neuron (ratio 1.5); each compiles one
autodiff and one EventProp gradient function per `wrap_only_step` setting, for both losses
at once, and the other tests reuse those compilations.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eqsnn import LIFParameters, Spikes
from eqsnn._recurrent_eventprop import RecurrentEventPropLIF
from eqsnn._recurrent_lif import Connectivity, RecurrentLIF
from eqsnn._weights import RecurrentWeights

T_MAX = 0.05
IN_SIZE, N_INPUTS = 3, 8
RTOL = 1e-8
RTOL_WRAP = 1e-10


def _params(ratio, v_reset):
    return LIFParameters(tau_syn=5e-3, tau_mem=ratio * 5e-3, v_th=1.0, v_reset=v_reset)


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return Spikes(
        time=jnp.asarray(rng.uniform(0.0, 0.02, N_INPUTS)),
        idx=jnp.asarray(rng.integers(0, IN_SIZE, N_INPUTS), jnp.int32),
    )


def _all_times_loss(out, n):
    """Smooth loss of all valid spike times and currents (distinct weight per neuron)."""
    coef = 1.0 + jnp.arange(n, dtype=out.time.dtype) / n
    valid = out.idx >= 0
    c = coef[jnp.maximum(out.idx, 0)]
    time = jnp.where(valid, out.time, 0.0)
    current = jnp.where(valid, out.current, 0.0)
    return jnp.sum(c * time**2) * 1e3 + jnp.sum(c * time) + 1e-3 * jnp.sum(current)


def _first_spike_loss(out, n):
    first = out.first_spike_times(n)
    first = jnp.where(jnp.isfinite(first), first, T_MAX)
    coef = 1.0 + jnp.arange(n, dtype=first.dtype) / n
    return jnp.sum(coef * first) + 1e3 * jnp.sum(first**2)


LOSSES = {"all": _all_times_loss, "first": _first_spike_loss}


def _loss_values(out, n):
    return jnp.stack([loss(out, n) for loss in LOSSES.values()])


@eqx.filter_jit
def _grads(layer, times, idx, forward_mode=False):
    """Both losses, their gradients w.r.t. (layer, input times), and the output spikes.

    The autodiff reference is taken in forward mode (`jacfwd`: cheaper to compile than
    reverse mode through the event loop); EventProp (a custom VJP) only has reverse mode.
    In reverse mode a third cotangent is pulled back as well: that of the first loss, but
    NaN on the empty output slots (as a loss evaluated on their `+inf` times could give).

    **Returns:** `(values, grads, out, nan_grads)`; `nan_grads` is `None` in forward mode.
    """
    if forward_mode:

        def losses(diff):
            model, t = diff
            out = model(Spikes(t, idx))
            return _loss_values(out, model.size), out

        values, out = losses((layer, times))
        grads = eqx.filter_jacfwd(losses, has_aux=True)((layer, times))[0]
        return values, grads, out, None
    out, pull = eqx.filter_vjp(lambda diff: diff[0](Spikes(diff[1], idx)), (layer, times))
    diff_out, static = eqx.partition(out, eqx.is_inexact_array)
    values = _loss_values(out, layer.size)
    jacobian = jax.jacrev(lambda o: _loss_values(eqx.combine(o, static), layer.size))(diff_out)
    nan = jnp.where(out.valid, 0.0, jnp.nan)
    cotangents = jax.tree.map(lambda g: jnp.concatenate([g, (g[0] + nan)[None]]), jacobian)
    (grads,) = jax.vmap(pull)(cotangents)
    return (
        values,
        jax.tree.map(lambda g: g[:2], grads),
        out,
        jax.tree.map(lambda g: g[2], grads),
    )


def _pair(
    layers, ratio, v_reset, connectivity, seed, n_spikes, w_rec_std=None, wrap_only_step=False
):
    """An EventProp layer and a RecurrentLIF with identical weights."""
    kwargs = dict(
        in_size=IN_SIZE,
        layers=layers,
        n_spikes=n_spikes,
        t_max=T_MAX,
        params=_params(ratio, v_reset),
        key=jax.random.PRNGKey(seed),
        mean=[3.0] + [2.0] * (len(layers) - 1),
        std=1.0,
        connectivity=connectivity,
    )
    eventprop = RecurrentEventPropLIF(**kwargs, wrap_only_step=wrap_only_step)
    if w_rec_std is not None:
        rng = np.random.default_rng(seed)
        n = sum(layers)
        w_in = jnp.asarray(rng.normal(2.5, 1.0, (IN_SIZE, n)))
        w_rec = jnp.asarray(rng.normal(0.0, w_rec_std, (n, n)))
        eventprop = eqx.tree_at(lambda m: m.weights, eventprop, RecurrentWeights(w_in, w_rec))
    autodiff = RecurrentLIF(**kwargs)
    autodiff = eqx.tree_at(lambda m: m.weights, autodiff, eventprop.weights)
    return eventprop, autodiff


def _max_rel(a, b):
    """Largest leafwise max|a - b| / max|b|."""
    errors = []
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        scale = max(float(jnp.max(jnp.abs(y))), 1e-300)
        errors.append(float(jnp.max(jnp.abs(x - y))) / scale)
    return max(errors)


# (name, layers, ratio, v_reset, connectivity, seed, n_spikes, recurrent weight std);
# every multi-spike case overflows its buffer, and the dense one has a silent neuron.
CASES = [
    ("layered-one-spike-2", [4, 3], 2.0, -1000.0, Connectivity.LAYERED, 0, 7, None),
    ("layered-multi-spike-1.5", [4, 3], 1.5, 0.0, Connectivity.LAYERED, 3, 16, None),
    ("full-multi-spike-1.5", [4, 2], 1.5, 0.0, Connectivity.FULL, 5, 20, 0.8),
]
WRAP = [False, True]
WRAP_IDS = ["trajectory", "per-step"]


def _rows(grads, k):
    """Row `k` of a Jacobian (loss `k`): the weight and input-time gradients."""
    return jax.tree.map(lambda g: g[k], (grads[0].weights, grads[1]))


@pytest.mark.parametrize("wrap_only_step", WRAP, ids=WRAP_IDS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_gradients_match_autodiff(case, wrap_only_step):
    _, layers, ratio, v_reset, connectivity, seed, n_spikes, w_rec_std = case
    config = (layers, ratio, v_reset, connectivity, seed, n_spikes, w_rec_std)
    eventprop, autodiff = _pair(*config, wrap_only_step=wrap_only_step)
    inputs = _inputs(seed)
    values, grads, out, nan_grads = _grads(eventprop, inputs.time, inputs.idx)
    ref_values, ref_grads, ref, _ = _grads(autodiff, inputs.time, inputs.idx, True)
    # The same spikes. The trajectory version runs RecurrentLIF's loop unchanged: the same
    # times bit for bit. Currents, losses and the per-step version's times come from
    # differently compiled programs (a custom VJP inside the scan changes XLA's fusions,
    # reductions may sum in another order): equal up to the last bit or two.
    np.testing.assert_array_equal(out.idx, ref.idx)
    if not wrap_only_step:
        np.testing.assert_array_equal(out.time, ref.time)
    np.testing.assert_allclose(out.time, ref.time, rtol=1e-14)
    np.testing.assert_allclose(out.current, ref.current, rtol=1e-14)
    np.testing.assert_allclose(values, ref_values, rtol=1e-14)
    assert int(jnp.sum(out.idx >= 0)) >= 4, "the configuration should spike"
    counts = np.bincount(np.asarray(out.idx[out.idx >= 0]), minlength=sum(layers))
    if v_reset == 0.0:  # multi-spike: some neuron spikes more than once; full buffer
        assert np.max(counts) > 1 and int(out.dropped) > 0
    if wrap_only_step:  # the trajectory version (compiled by the other parametrisation)
        trajectory, _ = _pair(*config)
        _, traj_grads, _, _ = _grads(trajectory, inputs.time, inputs.idx)
    for k, loss_name in enumerate(LOSSES):  # row k of the Jacobian: loss k
        ours, theirs = _rows(grads, k), _rows(ref_grads, k)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(ours)), loss_name
        assert float(jnp.max(jnp.abs(ours[0].recurrent))) > 0, loss_name
        error = _max_rel(ours, theirs)
        print(f"{case[0]} {loss_name}: max relative error vs autodiff {error:.2e}")
        assert error < RTOL, (loss_name, error)
        if wrap_only_step:
            error = _max_rel(ours, _rows(traj_grads, k))
            print(f"{case[0]} {loss_name}: max relative error vs trajectory {error:.2e}")
            assert error < RTOL_WRAP, (loss_name, error)
        # Silent neurons (never spiking) get exactly zero weight gradients.
        silent = counts == 0
        assert bool(jnp.all(ours[0].input[:, silent] == 0.0))
        assert bool(jnp.all(ours[0].recurrent[:, silent] == 0.0))
    if case[0].startswith("full"):
        assert np.any(counts == 0), "the dense case should have a silent neuron"
    # NaN cotangents on empty output slots are ignored: the gradient of loss 0 again.
    if not bool(jnp.all(out.valid)):
        nan_rows, rows = jax.tree.leaves((nan_grads[0].weights, nan_grads[1])), _rows(grads, 0)
        for got, want in zip(nan_rows, jax.tree.leaves(rows), strict=True):
            np.testing.assert_array_equal(got, want)
    # Masked-out weights get exactly zero gradient.
    mask = eventprop.mask
    assert bool(jnp.all(jnp.where(mask.input, 0.0, grads[0].weights.input) == 0.0))
    assert bool(jnp.all(jnp.where(mask.recurrent, 0.0, grads[0].weights.recurrent) == 0.0))


@pytest.mark.parametrize("wrap_only_step", WRAP, ids=WRAP_IDS)
def test_silent_network_has_zero_finite_gradients(wrap_only_step):
    eventprop, _ = _pair(
        [4, 2], 1.5, 0.0, Connectivity.FULL, 5, 20, 0.8, wrap_only_step=wrap_only_step
    )
    n = eventprop.size
    eventprop = eqx.tree_at(
        lambda m: m.weights,
        eventprop,
        RecurrentWeights(-jnp.ones((IN_SIZE, n)), jnp.zeros((n, n))),
    )
    inputs = _inputs(7)
    _, grads, out, nan_grads = _grads(eventprop, inputs.time, inputs.idx)
    assert bool(jnp.all(out.idx == -1))
    for g in jax.tree.leaves((grads[0].weights, grads[1], nan_grads[0].weights, nan_grads[1])):
        assert bool(jnp.all(g == 0.0)), g


@pytest.mark.parametrize("wrap_only_step", WRAP, ids=WRAP_IDS)
def test_empty_input_slots_get_zero_gradient(wrap_only_step):
    eventprop, _ = _pair(
        [4, 3], 1.5, 0.0, Connectivity.LAYERED, 3, 16, None, wrap_only_step=wrap_only_step
    )
    inputs = _inputs(3)
    idx = inputs.idx.at[-2:].set(-1)
    times = inputs.time.at[-1].set(jnp.inf)
    _, grads, _, _ = _grads(eventprop, times, idx)
    assert bool(jnp.all(jnp.isfinite(grads[1])))
    assert bool(jnp.all(grads[1][:, -2:] == 0.0))
    assert bool(jnp.any(grads[1][:, :-2] != 0.0))


def test_bad_wrap_only_step_raises():
    with pytest.raises(TypeError, match="wrap_only_step"):
        RecurrentEventPropLIF(2, [3], 4, T_MAX, key=jax.random.PRNGKey(0), wrap_only_step=1)
