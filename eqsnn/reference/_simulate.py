r"""A slow, independent reference simulator built on Diffrax event detection.

The simulator integrates the neuron model's ODE (LIF, ALIF or IF, `_models.py`)
numerically between events with `diffrax.diffeqsolve` and locates threshold crossings
with a `diffrax.Event` and a root finder on the dense solution (`_crossing.py`). It
shares no code with the closed-form simulators, so that tests can compare the two. This
module holds the event loop: a queue of pending events (`_events.py`: input and recurrent
arrivals, possibly delayed, and the ends of refractory periods), the resets and the
output buffer; the checked, padded network is built in `_network.py`.
"""

import diffrax
import numpy as np
from jaxtyping import ArrayLike, Float

from .._params import LIFParameters
from .._spikes import EMPTY_INDEX, Spikes
from ..neurons._alif import ALIFParameters
from ..neurons._integrate_and_fire import IFParameters
from ._crossing import State, advance, coincidence_tol
from ._events import EventQueue, arrivals, input_spike_list
from ._models import fire, initial_state, threshold
from ._network import Network, prepare


def simulate_diffrax(
    params: LIFParameters | ALIFParameters | IFParameters,
    input_spikes: Spikes,
    input_weights: Float[ArrayLike, "n_in n_neurons"],
    n_spikes: int,
    t_max: float,
    *,
    recurrent_weights: Float[ArrayLike, "n_neurons n_neurons"] | None = None,
    input_delays: Float[ArrayLike, " n_in"] | Float[ArrayLike, "n_in n_neurons"] | None = None,
    recurrent_delays: (
        Float[ArrayLike, " n_neurons"] | Float[ArrayLike, "n_neurons n_neurons"] | None
    ) = None,
    rtol: float = 1e-12,
    atol: float = 1e-12,
    dt0: float | None = None,
    max_steps: int = 4096,
    solver: diffrax.AbstractAdaptiveSolver | None = None,
    max_simulated_spikes: int = 10_000,
) -> Spikes:
    r"""Simulate a layer of spiking neurons by numerical integration: the slow reference.

    Each neuron $k$ follows the ODE of [`eqsnn.reference.lif_vector_field`][] with its
    own constants, starting at rest ($V_k = v_{\mathrm{leak},k}$, $I_k = 0$) at $t = 0$.
    A spike of input $j$ at time $t$ arrives at neuron $k$ at $t + d_{jk}$ and then adds
    `input_weights[j, k]` to $I_k$. When $V_k$ reaches $v_{\mathrm{th},k}$ from below at
    time $s$, neuron $k$ spikes and $V_k \leftarrow v_{\mathrm{reset},k}$; with a refractory
    period $t_{\mathrm{ref},k} > 0$ the voltage is held at $v_{\mathrm{reset},k}$ on
    $[s, s + t_{\mathrm{ref},k}]$ (no crossing there) while $I_k$ keeps integrating,
    inputs included, and evolves freely from $v_{\mathrm{reset},k}$ afterwards. In a
    recurrent layer the spike arrives at neuron $m$ at $s + D_{km}$ and adds
    `recurrent_weights[k, m]` to $I_m$. Arrivals at or after `t_max` are ignored; the
    output holds the emission times $s$ (not delayed).

    **Simultaneous events.** At one instant $t$, in this order: crossings at $t$ are found
    from the state just before $t$ (the reported `current` holds no jump at $t$); the
    spiking neurons are reset, start their refractory periods and add their zero-delay
    recurrent weights (in neuron order); then the arrivals due at $t$ (inputs and delayed
    recurrent spikes) are added, summed; then refractory periods ending at $t$ release
    their neurons. As jumps only change $I$ and $V$ is continuous, the order matters only
    for rounding. With no delays and `t_ref = 0` this is exactly the simulation without
    delays and refractoriness.

    **Other neuron models.** With [`eqsnn.ALIFParameters`][] the state is $(V, I, a)$
    with the vector field [`eqsnn.reference.alif_vector_field`][], $a_k = 0$ at $t = 0$;
    neuron $k$ spikes when $V_k$ reaches $v_{\mathrm{th},k} + a_k$, and then
    $V_k \leftarrow v_{\mathrm{reset},k}$ and $a_k \leftarrow a_k + \beta_k$. With
    [`eqsnn.IFParameters`][] the state is $(V, I)$ with the vector field
    [`eqsnn.reference.if_vector_field`][] (no leak), $V_k = v_{\mathrm{init},k}$ at
    $t = 0$, a spike at $v_{\mathrm{th},k}$ and $V_k \leftarrow v_{\mathrm{reset},k}$.
    Inputs, recurrent spikes and delays act as for the LIF (they add to $I$); these models
    have no refractory period. The simulation integrates their ODEs: it uses none of the
    closed forms of `eqsnn.neurons`.

    This is a correctness reference, not a fast simulator: a Python loop over events
    (a heap of pending arrivals and refractory ends) calls a jitted
    `diffrax.diffeqsolve` (Tsit5, PID step control with `rtol`/`atol`) from one event to
    the next, stopping at the first threshold crossing via a `diffrax.Event` on
    $\max_k (V_k - v_{\mathrm{th},k})$ (ALIF: $V_k - v_{\mathrm{th},k} - a_k$) with an
    `optimistix.Newton` root finder (LIF; where Newton fails, at a crossing nearly
    tangent to threshold, the solve is repeated with `optimistix.Bisection`) or an
    `optimistix.Bisection` (ALIF, IF); held voltages have $dV/dt = 0$. It is not
    jittable, vmappable or differentiable as a whole. On steep slopes (strong recurrent
    excitation, large currents) the root finder's voltage tolerance is relaxed to what
    the floating-point time can resolve (the voltage change over a few ulps of $t$), so
    crossings are located to a few ulps; any failure of the ODE solve raises a
    `RuntimeError` that says where it happened.

    Diffrax looks at the sign of the condition only at step ends, so a voltage that
    grazes threshold within one step would be missed. After every solve, each step is
    checked for an interior voltage maximum above threshold (its time is known in
    closed form: $dV/dt = 0$ where $V - v_\mathrm{leak} = I$; for the ALIF the maximum
    of $V - v_\mathrm{th} - a$ is searched in the steps where a bound allows one, and
    the IF voltage is monotone between events); if one is found, the step is integrated
    again up to the peak, so the crossing is still located by the ODE solution. Neurons
    within `100 * (atol + rtol * |v_th|)` of threshold at a crossing spike at the same
    time.

    !!! warning

        The default tolerances need float64: call
        `jax.config.update("jax_enable_x64", True)` and pass float64 inputs. The solve
        runs in the floating dtype of `input_weights`; tolerances below its resolution
        raise a `ValueError`.

    **Arguments:**

    - `params`: the [`eqsnn.LIFParameters`][] (time constants and `t_ref` in seconds);
      each of `tau_syn`, `tau_mem`, `v_th`, `v_leak`, `v_reset` and `t_ref` is a scalar
      or an array of shape `(n_neurons,)` (one value per neuron). Any object with these
      attributes works; a missing `t_ref` means 0. Or [`eqsnn.ALIFParameters`][] or
      [`eqsnn.IFParameters`][], their fields scalars or `(n_neurons,)` arrays likewise.
    - `input_spikes`: input events, in any order; slots with `idx == -1` and times
      `>= t_max` are ignored; valid times must be `>= 0`.
    - `input_weights`: input weights, shape `(n_in, n_neurons)`.
    - `n_spikes`: number of output slots.
    - `t_max`: end of the simulation in seconds.
    - `recurrent_weights`: optional `(n_neurons, n_neurons)` weights; row $k$ is added
      to $I$ when neuron $k$'s spike arrives. `None` for a feed-forward layer.
    - `input_delays`: transmission delays of the input spikes in seconds, finite and
      `>= 0`: shape `(n_in,)` (one per input, to every neuron) or `(n_in, n_neurons)`
      (one per synapse). `None` for no delay.
    - `recurrent_delays`: transmission delays of the recurrent spikes in seconds, finite
      and `>= 0`: shape `(n_neurons,)` (one per source neuron) or
      `(n_neurons, n_neurons)` (entry `[k, m]` from neuron `k` to `m`). Needs
      `recurrent_weights`; `None` for no delay.
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

    **Raises:** `ValueError` naming the argument for a parameter of the wrong shape or
    out of range, or delays of the wrong shape, negative or not finite; `TypeError` for
    `params` of another neuron model (a subclass of
    [`eqsnn.neurons.AbstractNeuronModel`][] the reference does not know) or without the
    LIF attributes.

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
    # the input reaches neuron 0 two milliseconds later, so it spikes 2 ms later
    late = eqsnn.reference.simulate_diffrax(
        params, inputs, weights, n_spikes=4, t_max=2e-2, input_delays=jnp.array([[2e-3, 0.0]])
    )
    late.time[0] - out.time[0]  # 0.002
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
        input_delays=input_delays,
        recurrent_delays=recurrent_delays,
        rtol=rtol,
        atol=atol,
        dt0=dt0,
        max_steps=max_steps,
        solver=solver,
        max_simulated_spikes=max_simulated_spikes,
    )
    spikes, _, _ = run(network, input_spikes, t_max)
    return _to_spikes(spikes, n_spikes, network.dtype)


def run(network: Network, input_spikes: Spikes, t_max: float) -> tuple[list, list, list]:
    """Simulate to `t_max`.

    Returns the spikes as `(time, neuron, current)` tuples in time order; the checkpoints,
    the state at `t = 0` and after every event (all jumps at its time applied), in time
    order, with no threshold crossed and the refractory neurons unchanged between two
    checkpoints; and the `(time, neuron)` ends of the refractory periods that reach past
    `t_max`, in time order."""
    consts = network.consts
    free = np.ones(network.w_in.shape[1], network.dtype)
    state = State(0.0, initial_state(consts), free)
    queue = EventQueue()
    for t, j in input_spike_list(input_spikes, network.w_in.shape[0], t_max, network.who):
        delays = None if network.d_in is None else network.d_in[j]
        for arrival, jump in arrivals(t, network.w_in[j], delays, t_max):
            queue.push_arrival(arrival, jump)
    spikes: list[tuple[float, int, float]] = []
    checkpoints = [state]
    while True:
        t_next = min(queue.next_time(), t_max)
        if state.t < t_next:
            state, crossed = advance(state, t_next, consts, network.config)
            if crossed and state.t < t_max:
                state = _fire(state, network, queue, spikes, t_max)
                checkpoints.append(state)
                continue
            state = state._replace(t=t_next)
        if t_next >= t_max:
            return spikes, checkpoints, queue.releases()
        state = _apply_due(state, queue, network)
        checkpoints.append(state)


def _fire(state: State, network: Network, queue: EventQueue, spikes: list, t_max: float):
    """Spike the neurons at threshold at `state.t`: record them (raise once there are more
    than `network.max_simulated_spikes`), reset them, start their refractory periods,
    apply their zero-delay recurrent jumps and queue the delayed ones."""
    consts, max_spikes = network.consts, network.max_simulated_spikes
    v_th = np.asarray(threshold(state.y, consts))
    tol = coincidence_tol(consts, network.config)
    # The root finder may stop a hair below threshold: the highest neuron(s) spike.
    free = state.free > 0
    gap = np.max(np.where(free, state.v - v_th, -np.inf))
    fired = np.flatnonzero(free & (state.v >= np.minimum(v_th, v_th + gap) - tol))
    s = state.t
    spikes.extend((s, int(k), float(state.i[k])) for k in fired)
    if len(spikes) > max_spikes:
        raise RuntimeError(
            f"{network.who}: more than `max_simulated_spikes`={max_spikes} spikes "
            f"before t={s!r} (t_max={t_max!r}; largest synaptic current "
            f"{float(np.max(state.i)):.3g}): the activity runs away, as with strong "
            "recurrent excitation. Every spike before `t_max` is simulated so that "
            "`dropped` is exact; shorten `t_max` or raise `max_simulated_spikes`."
        )
    y, held = fire(state.y, fired, consts), state.free.copy()
    now = []
    for k in fired:
        if network.w_rec is not None:
            delays = None if network.d_rec is None else network.d_rec[k]
            for arrival, jump in arrivals(s, network.w_rec[k], delays, t_max):
                if arrival <= s:
                    now.append(jump)
                else:
                    queue.push_arrival(arrival, jump)
        release = s + float(network.t_ref[k])
        if release > s:
            held[k] = 0.0
            queue.push_release(release, int(k))
    i = y[1] + np.stack(now).sum(axis=0) if now else y[1]
    return state._replace(y=(y[0], i, *y[2:]), free=held)


def _apply_due(state: State, queue: EventQueue, network: Network) -> State:
    """Apply the events due at `state.t`: add the arrivals' jumps to the currents, then
    release the neurons whose refractory period ends."""
    jumps, released = queue.pop_due(state.t)
    i = state.i + np.stack(jumps).sum(axis=0) if jumps else state.i
    v, free = state.v, state.free
    if released:
        v, free = v.copy(), free.copy()
        v[released] = np.asarray(network.consts.v_reset)[released]
        free[released] = 1.0
    return state._replace(y=(v, i, *state.y[2:]), free=free)


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
