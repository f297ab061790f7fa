"""Second (and third) derivatives of spike times: closed forms and finite differences.

A crossing time's first derivative comes from the implicit-function theorem (the custom JVP
of `eqsnn.solvers`); its second derivative is right only if that rule is itself
differentiated correctly, evaluation point included. Checked in float64:

- one neuron, one input, `tau_mem = 2 tau_syn`: the first spike time has a closed form
  (a quadratic in `exp(-t / tau_mem)`), differentiated by JAX independently of eqsnn's
  simulation. Both sides are exact up to rounding (relative <= 3e-15 measured), so 1e-10
  relative leaves over four orders of margin; the bug this guards against was 78 % off.
- a multi-spike network (`v_reset = 0`, several spikes per neuron), Hessian with respect to
  6 input weights and 4 input times (in ms, so that all variables are O(1)) against central
  differences of the gradient with step h = 1e-4. Their truncation error is
  h^2 / 6 * |d^3 L| ~ 1e-8 times the O(10) ratio of third to first derivatives, ~1e-7
  relative to the largest entry (<= 9e-8 measured, and 4x that at step 2h, as O(h^2)
  says), and their rounding error ~eps * |grad| / h ~ 1e-12; 1e-6 relative to the
  largest entry is a safe bound that a wrong second-derivative term exceeds by orders of
  magnitude (the bug: 0.9). The autodiff Hessian is symmetric to rounding (<= 1e-15).

Autodiff layers give second derivatives in every combination of modes; EventProp layers
give those whose innermost transformation is reverse mode (`jax.hessian`,
`jax.grad(jax.grad(...))`) and refuse forward mode innermost with JAX's `TypeError`.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eqsnn

T_IN = 1e-3
ONE_SPIKE = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6, v_reset=-1000.0)
W_ONE = jnp.array([2.6, 3.0, 6.0])  # a spike needs w > 4 v_th = 2.4; 2.6 is near tangency


def _closed_form_time(w):
    """First spike time for `tau_mem = 2 tau_syn`, from rest, one input of weight `w`.

    With z = exp(-s / tau_mem) after the input, V = w (z - z^2), so V = v_th at the larger
    root z = (1 + sqrt(1 - 4 v_th / w)) / 2.
    """
    z = 0.5 * (1.0 + jnp.sqrt(1.0 - 4.0 * ONE_SPIKE.v_th / w))
    return T_IN - ONE_SPIKE.tau_mem * jnp.log(z)


# name: (layer class, layer sizes, gradient method)
ONE_NEURON = {
    "LIF": (eqsnn.LIF, 1, eqsnn.AutoDiff()),
    "RecurrentLIF": (eqsnn.RecurrentLIF, [1], eqsnn.AutoDiff()),
    "LIF-EventProp": (eqsnn.LIF, 1, eqsnn.EventProp()),
    "RecurrentLIF-EventProp": (eqsnn.RecurrentLIF, [1], eqsnn.EventProp()),
}


def _one_neuron(name):
    cls, size, adjoint = ONE_NEURON[name]
    layer = cls(1, size, 1, 0.05, ONE_SPIKE, key=jax.random.PRNGKey(0), adjoint=adjoint)
    inputs = eqsnn.Spikes(time=jnp.array([T_IN]), idx=jnp.array([0]))

    def first_spike_time(w):
        model = eqx.tree_at(lambda m: m.weights.input, layer, jnp.reshape(w, (1, 1)))
        return model(inputs).time[0]

    return first_spike_time


def _batched(f):
    """`f` over the weights `W_ONE`, compiled as one function (one XLA compilation)."""
    return jax.jit(jax.vmap(f))(W_ONE)


def _all_at_once(ways):
    """Every function of the dict `ways` over `W_ONE`, from one compiled program (one per
    function would compile the simulation, and its derivatives, several times)."""
    return _batched(lambda w: {way: f(w) for way, f in ways.items()})


@pytest.mark.parametrize("name", ONE_NEURON)
def test_one_neuron_second_derivative_matches_closed_form(name):
    t = _one_neuron(name)
    autodiff = isinstance(ONE_NEURON[name][2], eqsnn.AutoDiff)
    closed = {"time": _closed_form_time, "second": jax.grad(jax.grad(_closed_form_time))}
    # Reverse over reverse, and forward over reverse (`jax.hessian`).
    ways = {"time": t, "grad(grad)": jax.grad(jax.grad(t)), "hessian": jax.hessian(t)}
    if autodiff:
        ways["jacfwd(jacfwd)"] = jax.jacfwd(jax.jacfwd(t))
    if name == "LIF":  # the rule is differentiable again: third derivatives, forward mode
        ways["third"] = jax.jacfwd(jax.jacfwd(jax.jacfwd(t)))
        closed["third"] = jax.grad(jax.grad(jax.grad(_closed_form_time)))
    expected, got = _all_at_once(closed), _all_at_once(ways)
    # The value.
    assert float(expected["second"][1]) == pytest.approx(0.0031712244, rel=1e-8)
    np.testing.assert_allclose(got.pop("time"), expected["time"], rtol=1e-12)
    if "third" in got:
        np.testing.assert_allclose(got.pop("third"), expected["third"], rtol=1e-10)
    assert len(got) == (3 if autodiff else 2)
    for way, second in got.items():
        np.testing.assert_allclose(second, expected["second"], rtol=1e-10, err_msg=way)
    if not autodiff:  # a custom VJP: forward mode innermost is refused (JAX's TypeError)
        with pytest.raises(TypeError, match="forward-mode"):
            jax.jacfwd(jax.jacfwd(t))(W_ONE[1])


# The multi-spike network: 3 inputs, 2 neurons, 4 input spikes, `v_reset = 0`.
MULTI = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6, v_reset=0.0)
T_MAX = 0.03
W_IN = jnp.array([[2.0, 1.5], [1.2, 2.2], [0.9, -0.7]])
W_REC = jnp.array([[-0.3, 0.4], [0.5, -0.2]])  # genuine recurrence, for the recurrent layers
TIMES_MS = jnp.array([1.0, 2.5, 4.0, 9.0])
IDX = jnp.array([0, 1, 2, 0])
H = 1e-4
KEY = jax.random.PRNGKey(0)
FULL = eqsnn.Connectivity.FULL
EVENTPROP = eqsnn.EventProp()
INTERVAL_SCAN = eqsnn.IntervalScan(max_spikes_per_interval=2)
LAYERS = {
    "LIF": lambda: eqsnn.LIF(3, 2, 8, T_MAX, MULTI, key=KEY),
    "LIF-IntervalScan": lambda: eqsnn.LIF(3, 2, 8, T_MAX, MULTI, key=KEY, engine=INTERVAL_SCAN),
    "RecurrentLIF": lambda: eqsnn.RecurrentLIF(3, [2], 8, T_MAX, MULTI, key=KEY, connectivity=FULL),
    "RecurrentLIF-WindowScan": lambda: eqsnn.RecurrentLIF(
        3, [2], 8, T_MAX, MULTI, key=KEY, engine=eqsnn.WindowScan(max_spikes_per_neuron=4)
    ),
    "LIF-EventProp": lambda: eqsnn.LIF(3, 2, 8, T_MAX, MULTI, key=KEY, adjoint=EVENTPROP),
    "LIF-IntervalScan-EventProp-per-step": lambda: eqsnn.LIF(
        3,
        2,
        8,
        T_MAX,
        MULTI,
        key=KEY,
        engine=INTERVAL_SCAN,
        adjoint=eqsnn.EventProp(per_step=True),
    ),  # fmt: skip
    "RecurrentLIF-EventProp": lambda: eqsnn.RecurrentLIF(
        3, [2], 8, T_MAX, MULTI, key=KEY, connectivity=FULL, adjoint=EVENTPROP
    ),
}


SLOW = {"LIF-IntervalScan"}  # the interval scan's Hessian compiles for ~30 s


def _loss_with_spikes(layer):
    """Weighted sum of the spike times (seconds) as a function of 6 input weights and 4
    input times (ms); the output indices and `dropped` come along, to check that no spike
    appears, disappears or is lost within the finite-difference steps."""
    if isinstance(layer, eqsnn.RecurrentLIF) and layer.mask.recurrent.any():
        layer = eqx.tree_at(lambda m: m.weights.recurrent, layer, W_REC)

    def loss(x):
        model = eqx.tree_at(lambda m: m.weights.input, layer, jnp.reshape(x[:6], (3, 2)))
        out = model(eqsnn.Spikes(time=1e-3 * x[6:], idx=IDX))
        weight = 1.0 + jnp.arange(out.n_slots, dtype=out.time.dtype)
        return jnp.sum(jnp.where(out.valid, weight * out.time, 0.0)), (out.idx, out.dropped)

    return loss


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in LAYERS]
)
def test_hessian_matches_finite_differences_of_gradient(name):
    loss = _loss_with_spikes(LAYERS[name]())
    x = jnp.concatenate([jnp.ravel(W_IN), TIMES_MS])
    n = x.size
    # One compiled program: forward over reverse mode (what `jax.hessian` computes: `jvp`
    # of the gradient along each basis vector, `vmap`ped) at `x`, and, with zero tangents,
    # the gradients at the finite-difference steps (a separate `jax.hessian` and a forward
    # pass would compile two more programs).
    grad = jax.grad(loss, has_aux=True)

    def gradient_and_tangent(point, tangent):
        (g, aux), (dg, _) = jax.jvp(grad, (point,), (tangent,))
        return g, aux, dg

    points = jnp.concatenate([jnp.broadcast_to(x, (n, n)), x + H * jnp.eye(n), x - H * jnp.eye(n)])
    tangents = jnp.concatenate([jnp.eye(n), jnp.zeros((2 * n, n))])
    grads, (idxs, dropped), hvps = jax.jit(jax.vmap(gradient_and_tangent))(points, tangents)
    hessian = hvps[:n].T  # column i: the derivative of the gradient along x_i
    idx, grads, idxs = idxs[0], grads[n:], idxs[n:]
    assert int(dropped[0]) == 0
    counts = np.bincount(np.asarray(idx)[np.asarray(idx) >= 0])
    assert counts.sum() >= 5 and counts.max() >= 3  # several spikes per neuron
    np.testing.assert_array_equal(idxs, jnp.broadcast_to(idx, idxs.shape))
    finite = (grads[:n] - grads[n:]) / (2 * H)
    scale = float(jnp.max(jnp.abs(finite)))
    assert scale > 0
    np.testing.assert_allclose(hessian, hessian.T, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(hessian, finite, rtol=0, atol=1e-6 * scale)
