r"""Every engine x gradient method on the shared networks of `tests/_networks.py`.

For each layer kind (feed-forward, recurrent layered, recurrent full, recurrent with a
connectivity mask) every valid `(engine, adjoint)` pair runs the same layer on the same
input in one compiled program: the output spikes, two losses of them (weighted first-spike
times; all spike times and currents) and their Jacobian with respect to the weights and
the input spike times; with EventProp also the gradient of the first loss pulled back with
a cotangent that is NaN on the empty output slots. Then:

- (a) **spikes**: each engine's spikes are those of the event loop (the reference: no
  per-neuron budget) less exactly the spikes its budget loses (`_expected`): none where the
  budget does not bind; all but the first `k` of each neuron for `WindowScan(k)`; all but
  the first `m` of each neuron in each input interval for `IntervalScan(m)`, whose neuron
  is reset at a lost crossing so that its later spikes stay right. `dropped` counts the
  loss as documented. Every adjoint of an engine runs the engine's forward pass (a plain
  call: bit for bit), and float32 gives the float64 spikes to float32 rounding.
- (b) **gradients**: EventProp (over the trajectory and, where valid, per step) equals
  autodiff through the same engine; autodiff through an engine that loses nothing equals
  autodiff through the reference; never-spiking neurons, masked-out weights and empty
  input slots get exactly zero; NaN cotangents on empty output slots are ignored.
- (c) **invalid pairs** raise a `ValueError` that names the layer and the remedy.

Tolerances (float64; measured maxima in brackets). Spikes found by different engines are
the same crossings computed along different routes (a state re-evolved once per event or
once per window, another root bracket): a few ulps per event, 1e-12 relative on times and
currents [1.8e-15, 3.6e-15]. EventProp over the trajectory runs the engine's forward pass
as autodiff does, bit for bit; the per-step version's program is fused differently: 1e-14
[1.9e-15]. EventProp and autodiff compute the same derivative by different sequences of
operations, and autodiff through two engines differentiates spike times that differ by
ulps (amplified by 1/(dV/dt) at a crossing): 1e-10 relative to the largest entry of each
gradient leaf [4.9e-15, 7.0e-14].

Runtime: compilation dominates (one program per pair, 2-14 s of CPU each for these
sizes); `_result` computes each pair once per process and the tests share it. Autodiff is
differentiated in forward mode, which compiles faster than reverse mode.
"""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _networks import KINDS, T_MAX, build, skip_mask

import eqsnn

RTOL_SPIKES = 1e-12
"""Spike times and currents found by two engines (see the module docstring)."""
RTOL_FUSION = 1e-14
"""The forward pass of one engine in the programs of two adjoints."""
RTOL_GRADIENTS = 1e-10
"""Gradients of one engine by two methods, or by autodiff through two engines."""

AUTODIFF = eqsnn.AutoDiff()
ADJOINTS = (AUTODIFF, eqsnn.EventProp(), eqsnn.EventProp(per_step=True))
REFERENCE = eqsnn.EventLoop()
ENGINES = {
    "feedforward": (
        eqsnn.WindowScan(max_spikes_per_neuron=1),
        eqsnn.WindowScan(max_spikes_per_neuron=3),
        eqsnn.IntervalScan(max_spikes_per_interval=1),
        eqsnn.IntervalScan(max_spikes_per_interval=2),
        REFERENCE,
    ),
    "layered": (REFERENCE, eqsnn.WindowScan(max_spikes_per_neuron=2)),
    "full": (REFERENCE,),
    "mask": (REFERENCE, eqsnn.WindowScan(max_spikes_per_neuron=(2, 3, 2))),
}
assert tuple(ENGINES) == KINDS


def _valid(engine, adjoint):
    """`EventProp(per_step=True)` wraps the steps of the interval scan or the event loop."""
    return not (isinstance(engine, eqsnn.WindowScan) and getattr(adjoint, "per_step", False))


def _id(value):
    text = repr(value)
    for long, short in (
        ("max_spikes_per_neuron=", ""),
        ("max_spikes_per_interval=", ""),
        ("per_step=True", "per_step"),
    ):
        text = text.replace(long, short)
    return text.replace(" ", "")


CASES = [
    pytest.param(kind, engine, adjoint, id=f"{kind}-{_id(engine)}-{_id(adjoint)}")
    for kind, engines in ENGINES.items()
    for engine in engines
    for adjoint in ADJOINTS
    if _valid(engine, adjoint)
]
ENGINE_CASES = [
    pytest.param(kind, engine, id=f"{kind}-{_id(engine)}")
    for kind, engines in ENGINES.items()
    for engine in engines
]


def _losses(out, n):
    """Weighted first-spike times (silent neurons excluded) and a smooth function of all
    spike times and currents (a distinct weight per neuron)."""
    first = out.first_spike_times(n)
    coeff = jnp.linspace(1.0, -0.5, n, dtype=out.time.dtype)
    first_loss = jnp.sum(jnp.where(jnp.isfinite(first), coeff * first, 0.0)) / T_MAX
    scale = (1.0 + jnp.arange(n, dtype=out.time.dtype) / n)[jnp.maximum(out.idx, 0)]
    terms = scale * jnp.sin(150.0 * out.time) + 0.1 * out.current
    return jnp.stack([first_loss, jnp.sum(jnp.where(out.valid, terms, 0.0))])


@eqx.filter_jit
def _run(layer, time, idx):
    """The output, the two losses and their Jacobian with respect to (layer, input times)
    (leaves with a leading axis of 2); with EventProp also the gradient of the first loss
    pulled back with a cotangent that is NaN on the empty output slots (as a loss
    evaluated on their `+inf` times could give), else `None`.

    Autodiff is taken in forward mode (`jacfwd` compiles in two thirds of the time of
    reverse mode here); EventProp, a custom VJP, in reverse mode.
    """

    def forward(x):
        return x[0](eqsnn.Spikes(x[1], idx))

    if isinstance(layer.adjoint, eqsnn.AutoDiff):

        def losses_and_out(x):
            out = forward(x)
            return _losses(out, layer.size), out

        jacobian, out = eqx.filter_jacfwd(losses_and_out, has_aux=True)((layer, time))
        return out, _losses(out, layer.size), jacobian, None
    out, pull = eqx.filter_vjp(forward, (layer, time))
    diff, static = eqx.partition(out, eqx.is_inexact_array)

    def losses(diff):
        return _losses(eqx.combine(diff, static), layer.size)

    jacobian = jax.jacrev(losses)(diff)
    nan = jnp.where(out.valid, 0.0, jnp.nan)
    nan_row = eqx.tree_at(
        lambda s: (s.time, s.current),
        jax.tree.map(lambda g: g[0], jacobian),
        replace_fn=lambda g: g + nan,
    )
    cotangents = jax.tree.map(lambda j, g: jnp.concatenate([j, g[None]]), jacobian, nan_row)
    (grads,) = jax.vmap(pull)(cotangents)
    return (
        out,
        losses(diff),
        jax.tree.map(lambda g: g[:2], grads),
        jax.tree.map(lambda g: g[2], grads),
    )


@functools.cache
def _result(kind, engine, adjoint):
    """`(layer, spikes, out, values, grads, nan_grads)` of one pair, computed once;
    `grads` and `nan_grads` are `(weights, input times)` (`nan_grads` `None` for autodiff)."""
    layer, spikes = build(kind, engine, adjoint)
    out, values, grads, nan_grads = jax.device_get(_run(layer, spikes.time, spikes.idx))
    if nan_grads is not None:
        nan_grads = _weights_and_times(nan_grads)
    return layer, spikes, out, values, _weights_and_times(grads), nan_grads


def _weights_and_times(grads):
    layer_grads, time_grads = grads
    return layer_grads.weights, time_grads


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _max_rel(got, want):
    """Largest leafwise max|got - want| / max|want| (each gradient leaf on its own scale)."""
    errors = [0.0]
    for g, w in zip(_leaves(got), _leaves(want), strict=True):
        assert np.all(np.isfinite(g)), "non-finite gradient"
        scale = np.max(np.abs(w))
        errors.append(
            float(np.max(np.abs(g - w)) / scale) if scale > 0 else float(np.max(np.abs(g)))
        )
    return max(errors)


def _spike_list(out):
    """`(neuron, time, current)` of the valid spikes, in buffer order (sorted by time)."""
    valid = np.asarray(out.idx) >= 0
    return np.asarray(out.idx)[valid], np.asarray(out.time)[valid], np.asarray(out.current)[valid]


def _expected(kind, engine):
    """The reference's spikes that `engine` keeps (a boolean per valid reference spike),
    and the `dropped` it reports."""
    layer, spikes, ref = _result(kind, REFERENCE, AUTODIFF)[:3]
    idx, time, _ = _spike_list(ref)
    keep = np.ones(idx.shape, bool)
    if isinstance(engine, eqsnn.WindowScan):
        # The first `budget` spikes of each neuron; one dropped per neuron that had more.
        budget = engine.max_spikes_per_neuron
        per_neuron = (
            np.repeat(budget, layer.layers)
            if isinstance(budget, tuple)
            else np.full(layer.size, budget)
        )
        rank = np.array([np.sum(idx[:k] == n) for k, n in enumerate(idx)], dtype=int)
        keep = rank < per_neuron[idx]
        return keep, int(np.sum(np.bincount(idx, minlength=layer.size) > per_neuron))
    if isinstance(engine, eqsnn.IntervalScan):
        # The first `budget` spikes of each neuron in each input interval; every crossing
        # beyond is counted (the neuron is reset there, its later spikes stay right).
        inputs = np.sort(np.asarray(spikes.time)[np.asarray(spikes.idx) >= 0])
        interval = np.searchsorted(inputs, time, side="right")
        rank = np.array(
            [np.sum((idx[:k] == n) & (interval[:k] == interval[k])) for k, n in enumerate(idx)],
            dtype=int,
        )
        keep = rank < engine.max_spikes_per_interval
        return keep, int(np.sum(~keep))
    return keep, int(ref.dropped)


# --- the networks ----------------------------------------------------------------------


def test_networks_are_as_documented():
    """The properties that `tests/_networks.py` promises, so that no case is vacuous."""

    def counts(kind):
        layer, _, out = _result(kind, REFERENCE, AUTODIFF)[:3]
        idx = np.asarray(out.idx)
        return np.bincount(idx[idx >= 0], minlength=layer.size), out

    ff, out = counts("feedforward")
    assert ff.tolist() == [3, 3, 2, 1, 0] and int(out.dropped) == 0
    assert _expected("feedforward", eqsnn.IntervalScan(max_spikes_per_interval=1))[1] == 1
    layered, out = counts("layered")
    assert layered.tolist() == [1] * 7 and int(out.dropped) == 0
    full, out = counts("full")
    assert bool(np.all(out.valid)) and int(out.dropped) > 0 and np.sum(full == 0) == 1
    mask, out = counts("mask")
    assert [int(np.max(c)) for c in np.split(mask, [4, 7])] == [2, 3, 2]
    assert np.sum(mask == 0) == 2 and int(out.dropped) == 0


# --- (a) spikes ------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "engine"), ENGINE_CASES)
def test_spikes_are_the_reference_less_what_the_budget_loses(kind, engine):
    keep, dropped = _expected(kind, engine)
    ref = _result(kind, REFERENCE, AUTODIFF)[2]
    out = _result(kind, engine, AUTODIFF)[2]
    (idx, time, current), (ref_idx, ref_time, ref_current) = _spike_list(out), _spike_list(ref)
    np.testing.assert_array_equal(idx, ref_idx[keep])
    np.testing.assert_allclose(time, ref_time[keep], rtol=RTOL_SPIKES)
    np.testing.assert_allclose(current, ref_current[keep], rtol=RTOL_SPIKES)
    assert int(out.dropped) == dropped
    assert len(idx) >= 4  # not vacuous


@pytest.mark.parametrize(("kind", "engine"), ENGINE_CASES)
def test_every_adjoint_runs_the_engines_forward_pass(kind, engine):
    """The spikes in the differentiated programs of every adjoint: bit for bit over the
    trajectory, to an ulp or two per step (a custom VJP inside the loop fuses differently)."""
    out, values = _result(kind, engine, AUTODIFF)[2:4]
    for adjoint in ADJOINTS[1:]:
        if not _valid(engine, adjoint):
            continue
        other, other_values = _result(kind, engine, adjoint)[2:4]
        np.testing.assert_array_equal(other.idx, out.idx)
        np.testing.assert_array_equal(other.dropped, out.dropped)
        if not adjoint.per_step:
            np.testing.assert_array_equal(other.time, out.time)
            np.testing.assert_array_equal(other.current, out.current)
        np.testing.assert_allclose(other.time, out.time, rtol=RTOL_FUSION)
        np.testing.assert_allclose(other.current, out.current, rtol=RTOL_FUSION)
        np.testing.assert_allclose(other_values, values, rtol=RTOL_FUSION)


# One case per forward code path (the feed-forward engines, the per-population window
# scan, the recurrent event loop): the checks below compile one more program per case.
CODE_PATHS = [
    pytest.param(kind, engine, id=f"{kind}-{_id(engine)}")
    for kind, engine in (
        ("feedforward", eqsnn.WindowScan(max_spikes_per_neuron=3)),
        ("feedforward", eqsnn.IntervalScan(max_spikes_per_interval=2)),
        ("feedforward", REFERENCE),
        ("layered", eqsnn.WindowScan(max_spikes_per_neuron=2)),
        ("full", REFERENCE),
    )
]


@pytest.mark.parametrize(("kind", "engine"), CODE_PATHS)
def test_a_plain_call_gives_the_same_spikes_bit_for_bit_with_every_adjoint(kind, engine):
    """A plain (undifferentiated) call through EventProp's custom VJP, per step where valid
    (the one adjoint whose differentiated program fuses differently), gives the spikes of
    autodiff's program bit for bit; the other adjoints' spikes are those of autodiff's
    program bit for bit in `test_every_adjoint_runs_the_engines_forward_pass`. (One plain
    call per code path: each compiles the layer's loops op by op, 1.5-3 s of CPU.)"""
    adjoint = ADJOINTS[2] if _valid(engine, ADJOINTS[2]) else ADJOINTS[1]
    layer, spikes = build(kind, engine, adjoint)
    out = layer(spikes)
    want = _result(kind, engine, AUTODIFF)[2]
    for field in ("time", "idx", "current", "dropped"):
        np.testing.assert_array_equal(getattr(out, field), getattr(want, field))


@pytest.mark.parametrize(("kind", "engine"), CODE_PATHS)
def test_float32_gives_the_float64_spikes(kind, engine):
    """The engines run in the input's dtype: in float32 the same spikes, to float32
    rounding amplified by 1/(dV/dt) at the crossings (1e-4 relative; measured 3e-6)."""
    layer, spikes = build(kind, engine, AUTODIFF, jnp.float32)
    out = layer(spikes)
    want = _result(kind, engine, AUTODIFF)[2]
    assert out.time.dtype == jnp.float32 and out.current.dtype == jnp.float32
    np.testing.assert_array_equal(out.idx, want.idx)
    np.testing.assert_array_equal(out.dropped, want.dropped)
    valid = np.asarray(want.valid)
    np.testing.assert_allclose(out.time[valid], want.time[valid], rtol=1e-4)
    np.testing.assert_allclose(out.current[valid], want.current[valid], rtol=1e-4)


# --- (b) gradients ----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "engine", "adjoint"), CASES)
def test_gradients(kind, engine, adjoint):
    layer, spikes, out, values, grads, nan_grads = _result(kind, engine, adjoint)
    assert np.all(values != 0.0)
    for leaf in _leaves(grads):
        assert np.all(np.isfinite(leaf))
    if adjoint != AUTODIFF:
        assert _max_rel(grads, _result(kind, engine, AUTODIFF)[4]) < RTOL_GRADIENTS
    if getattr(adjoint, "per_step", False):
        trajectory = _result(kind, engine, eqsnn.EventProp())[4]
        assert _max_rel(grads, trajectory) < RTOL_GRADIENTS
    if adjoint == AUTODIFF and engine != REFERENCE and _expected(kind, engine)[1] == 0:
        # No spike lost: the same derivative as through the reference engine.
        assert _max_rel(grads, _result(kind, REFERENCE, AUTODIFF)[4]) < RTOL_GRADIENTS
    weights, time = grads
    # Never-spiking neurons get exactly zero weight gradient; so do masked-out weights
    # and empty input slots.
    idx = np.asarray(out.idx)
    silent = np.bincount(idx[idx >= 0], minlength=layer.size) == 0
    np.testing.assert_array_equal(np.asarray(weights.input)[..., silent], 0.0)
    if kind != "feedforward":
        assert np.all(np.max(np.abs(weights.recurrent), axis=(1, 2)) > 0)
        np.testing.assert_array_equal(np.asarray(weights.recurrent)[..., silent], 0.0)
        np.testing.assert_array_equal(np.where(layer.mask.input, 0.0, weights.input), 0.0)
        np.testing.assert_array_equal(np.where(layer.mask.recurrent, 0.0, weights.recurrent), 0.0)
    empty = np.asarray(spikes.idx) < 0
    np.testing.assert_array_equal(np.asarray(time)[:, empty], 0.0)
    assert np.all(np.any(np.asarray(time)[:, ~empty] != 0.0, axis=1))
    if adjoint != AUTODIFF:
        # A NaN cotangent on the empty output slots is ignored: the gradient of the first
        # loss. (The dense case fills its buffer: no empty slot there.)
        assert kind == "full" or not np.all(np.asarray(out.valid))
        for got, row in zip(_leaves(nan_grads), _leaves(grads), strict=True):
            np.testing.assert_array_equal(got, row[0])


# --- (c) invalid pairs ------------------------------------------------------------------


def _lif(**kwargs):
    return eqsnn.LIF(3, 2, 4, T_MAX, key=jax.random.PRNGKey(0), **kwargs)


def _recurrent(**kwargs):
    return eqsnn.RecurrentLIF(3, [2, 2], 4, T_MAX, key=jax.random.PRNGKey(0), **kwargs)


PER_STEP = eqsnn.EventProp(per_step=True)
INVALID = {
    "LIF-WindowScan-per_step": (
        lambda: _lif(engine=eqsnn.WindowScan(max_spikes_per_neuron=2), adjoint=PER_STEP),
        r"^LIF: `EventProp\(per_step=True\)`.*engine=eqsnn\.IntervalScan\(\.\.\.\)",
    ),
    "EventPropLIF-WindowScan-per_step": (
        lambda: eqsnn.EventPropLIF(
            3,
            2,
            4,
            T_MAX,
            key=jax.random.PRNGKey(0),
            wrap_only_step=True,
            engine=eqsnn.WindowScan(),
        ),  # fmt: skip
        r"^EventPropLIF: `EventProp\(per_step=True\)`.*per_step=False",
    ),
    "RecurrentLIF-WindowScan-per_step": (
        lambda: _recurrent(engine=eqsnn.WindowScan(max_spikes_per_neuron=2), adjoint=PER_STEP),
        r"^RecurrentLIF: `EventProp\(per_step=True\)`.*engine=eqsnn\.EventLoop\(\)",
    ),
    "RecurrentLIF-IntervalScan": (
        lambda: _recurrent(engine=eqsnn.IntervalScan()),
        r"^RecurrentLIF: `engine=IntervalScan\(\.\.\.\)` simulates feed-forward layers only; "
        r"use eqsnn\.EventLoop\(\)",
    ),
    "RecurrentLIF-full-WindowScan": (
        lambda: _recurrent(
            engine=eqsnn.WindowScan(max_spikes_per_neuron=2), connectivity=eqsnn.Connectivity.FULL
        ),
        r"^RecurrentLIF: engine=WindowScan\(.*\) simulates the populations one after the other, "
        r"which needs feed-forward connectivity.*Use engine=eqsnn\.EventLoop\(\)",
    ),
    "RecurrentLIF-mask-back-WindowScan": (
        lambda: _recurrent_with_back_connection(),
        r"^RecurrentLIF: engine=WindowScan.*feed-forward connectivity.*eqsnn\.EventLoop\(\)",
    ),
}


def _recurrent_with_back_connection():
    """The skip mask of the shared networks plus one weight back into population 1."""
    layers, mask = skip_mask()
    back = np.array(mask.recurrent)
    back[5, 4] = True
    return eqsnn.RecurrentLIF(
        3, layers, 8, T_MAX, key=jax.random.PRNGKey(0), engine=eqsnn.WindowScan(),
        connectivity=eqsnn.ConnectivityMask(mask.input, back),
    )  # fmt: skip


@pytest.mark.parametrize("name", INVALID)
def test_invalid_pairs_raise(name):
    make, match = INVALID[name]
    with pytest.raises(ValueError, match=match):
        make()


def test_the_matrix_covers_every_valid_pair():
    """Every built-in engine that can run a kind appears with every adjoint it supports."""
    count = {
        kind: sum(_valid(e, a) for e in engines for a in ADJOINTS)
        for kind, engines in ENGINES.items()
    }
    assert count == {"feedforward": 13, "layered": 5, "full": 3, "mask": 5}
