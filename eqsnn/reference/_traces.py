r"""The reference's state at given times: the ODE integrated from the last event before each.

[`eqsnn.reference.traces_diffrax`][] runs the event loop of
[`eqsnn.reference.simulate_diffrax`][] and keeps the state after every event (a
*checkpoint*); the state at a time $t$ is then the ODE integrated with
`diffrax.diffeqsolve` from the last checkpoint before $t$ (no threshold is crossed in
between). It shares no code with [`eqsnn.traces`][], which it checks.
"""

import bisect
import itertools

import diffrax
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import ArrayLike, Float

from .._flow import LIFState
from .._params import LIFParameters
from .._spikes import Spikes
from ._crossing import Constants, SolverConfig, State, integrate
from ._models import constants_type
from ._network import Network, prepare
from ._simulate import run


def traces_diffrax(
    params: LIFParameters,
    input_spikes: Spikes,
    input_weights: Float[ArrayLike, "n_in n_neurons"],
    times: Float[ArrayLike, " n_times"],
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
) -> LIFState:
    r"""The state $(V, I)$ of every neuron at given times, by numerical integration.

    The network of [`eqsnn.reference.simulate_diffrax`][] (same arguments, same event
    loop, same per-neuron parameters, refractory periods and delays) is simulated to
    `t_max`, keeping the state after every event (arrival, spike or end of a refractory
    period, with all jumps at its time applied). The state at a time $t$ is the LIF ODE
    ([`eqsnn.reference.lif_vector_field`][], with the voltage of refractory neurons held)
    integrated with `diffrax.diffeqsolve` (the `solver`, `rtol`, `atol`) from the last
    event *before* $t$: left-continuous, as [`eqsnn.traces`][], so at a spike time
    $V = v_\mathrm{th}$ and an input arriving at $t$ is not yet in $I(t)$. After `t_max`
    the neurons relax without threshold and without arrivals; a refractory period that
    reaches past `t_max` still ends at its time. The independent check of
    [`eqsnn.traces`][]; as slow as the simulator (one ODE solve per time).

    !!! warning

        The default tolerances need float64 (`jax.config.update("jax_enable_x64", True)`).

    **Arguments:** as [`eqsnn.reference.simulate_diffrax`][] (without `n_spikes`), plus

    - `times`: the times in seconds, shape `(n_times,)`, any order, `>= 0`.

    **Returns:** an [`eqsnn.LIFState`][] with `v` and `i` of shape `(n_times, n_neurons)`.

    **Raises:** as [`eqsnn.reference.simulate_diffrax`][], and a `TypeError` for `params`
    of another model than the LIF ([`eqsnn.ALIFParameters`][], [`eqsnn.IFParameters`][]):
    their traces are not implemented.

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn

    jax.config.update("jax_enable_x64", True)
    inputs = eqsnn.Spikes(time=jnp.array([1e-3]), idx=jnp.array([0]))
    state = eqsnn.reference.traces_diffrax(
        eqsnn.LIFParameters(), inputs, jnp.array([[3.0, 0.5]]), jnp.array([2e-3, 5e-3]), 2e-2
    )
    state.v.shape  # (2, 2)
    ```
    """
    who = "traces_diffrax"
    if constants_type(params, who) is not Constants:
        raise TypeError(
            f"{who}: `params` must be eqsnn.LIFParameters (traces of the LIF only), got "
            f"{type(params).__name__}; eqsnn.reference.simulate_diffrax simulates it."
        )
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or not np.all(times >= 0):
        raise ValueError(
            f"{who}: `times` must have shape (n_times,) and hold times >= 0 (seconds), got "
            f"{times!r}."
        )
    network = prepare(
        params,
        input_spikes,
        input_weights,
        t_max,
        who,
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
    _, checkpoints, late = run(network, input_spikes, t_max)
    checkpoints = checkpoints + _releases(checkpoints[-1], late, network)
    starts = [c.t for c in checkpoints]
    v = np.empty((len(times), network.n), network.dtype)
    i = np.empty((len(times), network.n), network.dtype)
    for k, t in enumerate(times):
        # The last checkpoint strictly before t (the first one, at t = 0, for t = 0).
        start = checkpoints[max(bisect.bisect_left(starts, t) - 1, 0)]
        if t == start.t:
            v_t, i_t = start.v, start.i
        else:
            v_t, i_t = _integrate(start, t, network.consts, network.config)
        v[k], i[k] = np.asarray(v_t)[: network.n], np.asarray(i_t)[: network.n]
    return LIFState(v=jnp.asarray(v), i=jnp.asarray(i))


def _releases(last: State, late: list, network: Network) -> list[State]:
    """Checkpoints at the ends of the refractory periods that reach past `t_max` (the
    flow without threshold from `last`, the last checkpoint before `t_max`)."""
    v_reset = np.asarray(network.consts.v_reset)
    checkpoints = []
    for t, group in itertools.groupby(late, key=lambda release: release[0]):
        neurons = [k for _, k in group]
        v, i = (np.array(x) for x in _integrate(last, t, network.consts, network.config))
        free = last.free.copy()
        v[neurons], free[neurons] = v_reset[neurons], 1.0
        last = State(t, (v, i), free)
        checkpoints.append(last)
    return checkpoints


def _integrate(start: State, t1: float, consts: Constants, config: SolverConfig):
    dtype = consts.v_th.dtype
    return _integrate_jit(
        jnp.asarray(start.t, dtype),
        jnp.asarray(t1, dtype),
        jnp.asarray(start.v),
        jnp.asarray(start.i),
        jnp.asarray(start.free),
        consts,
        config,
    )


@eqx.filter_jit
def _integrate_jit(t0, t1, v0, i0, free, consts: Constants, config: SolverConfig):
    """The ODE from `(t0, v0, i0)` to `t1`, no threshold (no crossing lies in between)."""
    sol = integrate(t0, t1, (v0, i0), free, consts, config, saveat=diffrax.SaveAt(t1=True))
    v, i = sol.ys
    return v[0], i[0]
