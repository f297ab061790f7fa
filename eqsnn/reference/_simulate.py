r"""A slow, independent reference simulator built on Diffrax event detection.

The simulator integrates the LIF ODE numerically between events with
`diffrax.diffeqsolve` and locates threshold crossings with a `diffrax.Event` and
a Newton root finder on the dense solution (`_crossing.py`). It shares no code with the
closed-form simulators, so that tests can compare the two. This module holds the event
loop: input spikes, resets, recurrent jumps and the output buffer.
"""

from typing import NamedTuple

import diffrax
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from .._params import LIFParameters
from .._spikes import EMPTY_INDEX, Spikes
from ._crossing import Constants, SolverConfig, State, advance, coincidence_tol

_MIN_BUCKET = 8
"""Neurons are padded to a power of two (at least this), so that one compilation serves
networks of similar size."""


def _input_groups(
    input_spikes: Spikes, n_in: int, t_max: float, who: str
) -> list[tuple[float, np.ndarray]]:
    """Valid input events before `t_max`, grouped by time: `[(time, indices), ...]`."""
    time = np.asarray(input_spikes.time, dtype=np.float64)
    idx = np.asarray(input_spikes.idx)
    keep = idx != EMPTY_INDEX
    time, idx = time[keep], idx[keep]
    if np.any((idx < 0) | (idx >= n_in)):
        raise ValueError(f"{who}: input `idx` must be -1 or in [0, {n_in}), got {idx.tolist()}.")
    if np.any(np.isnan(time)) or np.any(time < 0):
        raise ValueError(f"{who}: valid input spike times must be >= 0, got {time.tolist()}.")
    keep = time < t_max
    time, idx = time[keep], idx[keep]
    order = np.argsort(time, kind="stable")
    time, idx = time[order], idx[order]
    return [(float(t), idx[time == t]) for t in np.unique(time)]


def _check_arguments(input_spikes, input_weights, recurrent_weights, t_max, who: str):
    if input_spikes.time.ndim != 1:
        raise ValueError(
            f"{who}: `input_spikes` must be a single unbatched buffer, got time "
            f"of shape {input_spikes.time.shape}; use a Python loop over the batch."
        )
    if input_weights.ndim != 2:
        raise ValueError(
            f"{who}: `input_weights` must have shape (n_in, n_neurons), got "
            f"shape {input_weights.shape}."
        )
    n = input_weights.shape[1]
    if recurrent_weights is not None and recurrent_weights.shape != (n, n):
        raise ValueError(
            f"{who}: `recurrent_weights` must have shape ({n}, {n}), got "
            f"shape {recurrent_weights.shape}."
        )
    if not (np.isfinite(t_max) and t_max > 0):
        raise ValueError(f"{who}: `t_max` must be positive and finite, got {t_max!r}.")


def simulate_diffrax(
    params: LIFParameters,
    input_spikes: Spikes,
    input_weights: Float[ArrayLike, "n_in n_neurons"],
    n_spikes: int,
    t_max: float,
    *,
    recurrent_weights: Float[ArrayLike, "n_neurons n_neurons"] | None = None,
    rtol: float = 1e-12,
    atol: float = 1e-12,
    dt0: float | None = None,
    max_steps: int = 4096,
    solver: diffrax.AbstractAdaptiveSolver | None = None,
    max_simulated_spikes: int = 10_000,
) -> Spikes:
    r"""Simulate a layer of LIF neurons by numerical integration: the slow reference.

    Each neuron follows the ODE of [`eqsnn.reference.lif_vector_field`][], starting at rest
    ($V = v_\mathrm{leak}$, $I = 0$) at $t = 0$. An input spike of input $j$ adds
    `input_weights[j, :]` to $I$. When $V_n$ reaches $v_\mathrm{th}$ from below, neuron
    $n$ spikes, $V_n \leftarrow v_\mathrm{reset}$ and, for a recurrent layer,
    `recurrent_weights[n, :]` is added to $I$. Events at or after `t_max` are ignored.

    This is a correctness reference, not a fast simulator: a Python loop over events
    calls a jitted `diffrax.diffeqsolve` (Tsit5, PID step control with `rtol`/`atol`)
    from one event to the next input spike, stopping at the first threshold crossing via
    a `diffrax.Event` on $\max_n (V_n - v_\mathrm{th})$ with an `optimistix.Newton`
    root finder. It is not jittable, vmappable or differentiable as a whole. On steep
    slopes (strong recurrent excitation, large currents) the root finder's voltage
    tolerance is relaxed to what the floating-point time can resolve (the voltage change
    over a few ulps of $t$), so crossings are located to a few ulps; any failure of the
    ODE solve raises a `RuntimeError` that says where it happened.

    Diffrax looks at the sign of the condition only at step ends, so a voltage that
    grazes threshold within one step would be missed. After every solve, each step is
    checked for an interior voltage maximum above threshold (its time is known in
    closed form: $dV/dt = 0$ where $V - v_\mathrm{leak} = I$); if one is found, the step
    is integrated again up to the peak, so the crossing is still located by the ODE
    solution. Neurons within `100 * (atol + rtol * |v_th|)` of threshold at a crossing
    spike at the same time.

    !!! warning

        The default tolerances need float64: call
        `jax.config.update("jax_enable_x64", True)` and pass float64 inputs. The solve
        runs in the floating dtype of `input_weights`; tolerances below its resolution
        raise a `ValueError`.

    **Arguments:**

    - `params`: the [`eqsnn.LIFParameters`][] (time constants in seconds).
    - `input_spikes`: input events, in any order; slots with `idx == -1` and times
      `>= t_max` are ignored; valid times must be `>= 0`.
    - `input_weights`: input weights, shape `(n_in, n_neurons)`.
    - `n_spikes`: number of output slots.
    - `t_max`: end of the simulation in seconds.
    - `recurrent_weights`: optional `(n_neurons, n_neurons)` weights; row $n$ is added
      to $I$ when neuron $n$ spikes. `None` for a feed-forward layer.
    - `rtol`, `atol`: tolerances of the step size controller and the root finder.
    - `dt0`: initial step size in seconds; `None` lets Diffrax choose.
    - `max_steps`: maximum number of solver steps between two events.
    - `solver`: an adaptive Diffrax solver; defaults to `diffrax.Tsit5()`.
    - `max_simulated_spikes`: the most spikes (kept and dropped together) simulated before
      `t_max`. Every spike up to `t_max` is simulated, one ODE solve each (milliseconds),
      so that `dropped` is exact; a network whose activity runs away (strong recurrent
      excitation that drives neurons back to threshold ever faster, so that the number
      of spikes before `t_max` is astronomical) would never finish. It raises a
      `RuntimeError` once it exceeds this many spikes.

    **Returns:** a [`eqsnn.Spikes`][] with `n_spikes` slots sorted by time (ties by
    neuron index), `current` the synaptic current of the spiking neuron just before any
    jump at that instant, and `dropped` the exact number of spikes before `t_max` that
    did not fit.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn

    jax.config.update("jax_enable_x64", True)
    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6)
    inputs = eqsnn.Spikes(time=jnp.array([1e-3]), idx=jnp.array([0]))
    weights = jnp.array([[3.0, 0.5]])
    out = eqsnn.reference.simulate_diffrax(params, inputs, weights, n_spikes=4, t_max=2e-2)
    out.idx  # Array([ 0, -1, -1, -1], dtype=int32)
    ```
    """
    if isinstance(n_spikes, bool) or not isinstance(n_spikes, int) or n_spikes < 1:
        raise ValueError(f"simulate_diffrax: `n_spikes` must be a positive int, got {n_spikes!r}.")
    network = prepare(
        params,
        input_spikes,
        input_weights,
        t_max,
        "simulate_diffrax",
        recurrent_weights=recurrent_weights,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        max_steps=max_steps,
        solver=solver,
        max_simulated_spikes=max_simulated_spikes,
    )
    spikes, _ = run(network, input_spikes, t_max)
    return _to_spikes(spikes, n_spikes, network.dtype)


class Network(NamedTuple):
    """A checked network, ready for `run`: weights padded to `n_pad` neurons."""

    consts: Constants
    config: SolverConfig
    w_in: np.ndarray
    w_rec: np.ndarray | None
    n: int
    dtype: np.dtype
    max_simulated_spikes: int
    who: str  # the public function, for error messages


def prepare(
    params,
    input_spikes,
    input_weights,
    t_max,
    who: str,
    *,
    recurrent_weights,
    rtol,
    atol,
    dt0,
    max_steps,
    solver,
    max_simulated_spikes,
) -> Network:
    """Check the arguments (errors name `who`) and pad the weights to a power of two."""
    input_weights = jnp.asarray(input_weights)
    if not jnp.issubdtype(input_weights.dtype, jnp.floating):
        input_weights = input_weights.astype(jnp.result_type(float))
    dtype = input_weights.dtype
    if recurrent_weights is not None:
        recurrent_weights = jnp.asarray(recurrent_weights, dtype)
    _check_arguments(input_spikes, input_weights, recurrent_weights, t_max, who)
    if (
        isinstance(max_simulated_spikes, bool)
        or not isinstance(max_simulated_spikes, (int, np.integer))
        or max_simulated_spikes < 1
    ):
        raise ValueError(
            f"{who}: `max_simulated_spikes` must be a positive int, got {max_simulated_spikes!r}."
        )
    resolution = float(jnp.finfo(dtype).eps)
    if rtol < resolution or atol < resolution * abs(params.v_th):
        raise ValueError(
            f"{who}: `rtol`={rtol!r} / `atol`={atol!r} are below the resolution "
            f"of {dtype} ({resolution:.1e}); enable float64 with "
            '`jax.config.update("jax_enable_x64", True)` or loosen the tolerances.'
        )
    n_in, n = input_weights.shape
    n_pad = max(_MIN_BUCKET, 1 << (n - 1).bit_length())
    w_in = np.zeros((n_in, n_pad), dtype)
    w_in[:, :n] = np.asarray(input_weights)
    w_rec = None
    if recurrent_weights is not None:
        w_rec = np.zeros((n_pad, n_pad), dtype)
        w_rec[:n, :n] = np.asarray(recurrent_weights)
    consts = Constants(*(jnp.asarray(getattr(params, f), dtype) for f in Constants._fields))
    config = SolverConfig(solver or diffrax.Tsit5(), float(rtol), float(atol), dt0, int(max_steps))
    return Network(consts, config, w_in, w_rec, n, dtype, int(max_simulated_spikes), who)


def run(network: Network, input_spikes: Spikes, t_max: float) -> tuple[list, list]:
    """Simulate to `t_max`: the spikes as `(time, neuron, current)` tuples in time order,
    and the checkpoints, the state at `t = 0` and after every event (all jumps at its time
    applied), in time order. No threshold is crossed between two checkpoints."""
    n_pad = network.w_in.shape[1]
    v_leak = float(network.consts.v_leak)
    state = State(0.0, np.full(n_pad, v_leak, network.dtype), np.zeros(n_pad, network.dtype))
    spikes: list[tuple[float, int, float]] = []
    checkpoints = [state]
    n_in = network.w_in.shape[0]
    for t_next, group in [*_input_groups(input_spikes, n_in, t_max, network.who), (t_max, None)]:
        state = _run_until(state, t_next, t_max, network, spikes, checkpoints)
        if group is not None:
            state = state._replace(i=state.i + network.w_in[group].sum(axis=0))
            checkpoints.append(state)
    return spikes, checkpoints


def _run_until(state, t_end, t_max, network: Network, spikes, checkpoints):
    """Integrate to `t_end`, appending `(time, neuron, current)` for every spike and the
    state after it to `checkpoints`; raise once there are more than
    `network.max_simulated_spikes` spikes."""
    consts, config, w_rec = network.consts, network.config, network.w_rec
    max_spikes = network.max_simulated_spikes
    v_th, v_reset = float(consts.v_th), float(consts.v_reset)
    tol = coincidence_tol(consts, config)
    while state.t < t_end:
        state, crossed = advance(state, t_end, consts, config)
        if not crossed or state.t >= t_max:
            break
        # The root finder may stop a hair below threshold: the highest neuron(s) spike.
        fired = np.flatnonzero(state.v >= min(v_th, float(np.max(state.v))) - tol)
        spikes.extend((state.t, int(n), float(state.i[n])) for n in fired)
        if len(spikes) > max_spikes:
            raise RuntimeError(
                f"{network.who}: more than `max_simulated_spikes`={max_spikes} spikes "
                f"before t={state.t!r} (t_max={t_max!r}; largest synaptic current "
                f"{float(np.max(state.i)):.3g}): the activity runs away, as with strong "
                "recurrent excitation. Every spike before `t_max` is simulated so that "
                "`dropped` is exact; shorten `t_max` or raise `max_simulated_spikes`."
            )
        v = state.v.copy()
        v[fired] = v_reset
        i = state.i if w_rec is None else state.i + w_rec[fired].sum(axis=0)
        state = state._replace(v=v, i=i)
        checkpoints.append(state)
    return state._replace(t=t_end)


def _to_spikes(spikes, n_spikes, dtype) -> Spikes:
    """Pack `(time, neuron, current)` tuples (in time order) into a padded buffer."""
    spikes = sorted(spikes, key=lambda s: (s[0], s[1]))
    kept = spikes[:n_spikes]
    time = np.full(n_spikes, np.inf, dtype)
    idx = np.full(n_spikes, EMPTY_INDEX, np.int32)
    current = np.zeros(n_spikes, dtype)
    for slot, (t, n, c) in enumerate(kept):
        time[slot], idx[slot], current[slot] = t, n, c
    return Spikes(time, idx, current, dropped=len(spikes) - len(kept))
