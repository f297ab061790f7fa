r"""The neuron models the reference knows, written from their equations.

Each model is a `NamedTuple` of per-neuron constants (arrays of shape `(n,)`, traced by
the jitted ODE solve, so one compilation serves every value) plus what the event loop
needs to know of it: the vector field (`_vector_field.py`), the state at $t = 0$, the
voltage threshold, the jumps at a spike and a bound on the slope of the distance to
threshold. The state is a tuple of arrays whose first two entries are the voltage $V$ and
the synaptic current $I$ (inputs add to $I$; refractory neurons hold $V$):

- LIF ([`eqsnn.LIFParameters`][] or any object with its attributes): $(V, I)$, threshold
  $v_\mathrm{th}$, a spike sets $V \to v_\mathrm{reset}$;
- ALIF ([`eqsnn.ALIFParameters`][]): $(V, I, a)$, threshold $v_\mathrm{th} + a$, a spike
  sets $V \to v_\mathrm{reset}$ and $a \to a + \beta$;
- IF ([`eqsnn.IFParameters`][]): $(V, I)$ with $V(0) = v_\mathrm{init}$, threshold
  $v_\mathrm{th}$, a spike sets $V \to v_\mathrm{reset}$.

Nothing here uses the closed forms of `eqsnn.neurons`: the reference integrates the ODEs.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..neurons._alif import ALIFParameters
from ..neurons._integrate_and_fire import IFParameters
from ..neurons._model import AbstractNeuronModel
from ._vector_field import alif_vector_field, if_vector_field, lif_vector_field


class Constants(NamedTuple):
    """The LIF parameters, one value per (padded) neuron, as arrays so that they are traced
    rather than compiled in."""

    tau_syn: Float[Array, " n"]
    tau_mem: Float[Array, " n"]
    v_th: Float[Array, " n"]
    v_leak: Float[Array, " n"]
    v_reset: Float[Array, " n"]


class ALIFConstants(NamedTuple):
    """The ALIF parameters, one value per (padded) neuron."""

    tau_syn: Float[Array, " n"]
    tau_mem: Float[Array, " n"]
    v_th: Float[Array, " n"]
    v_leak: Float[Array, " n"]
    v_reset: Float[Array, " n"]
    tau_adapt: Float[Array, " n"]
    beta: Float[Array, " n"]


class IFConstants(NamedTuple):
    """The IF parameters, one value per (padded) neuron."""

    tau_syn: Float[Array, " n"]
    tau_mem: Float[Array, " n"]
    v_th: Float[Array, " n"]
    v_init: Float[Array, " n"]
    v_reset: Float[Array, " n"]


AnyConstants = Constants | ALIFConstants | IFConstants

_CHECKS = {
    # (parameter, predicate on the per-neuron values, what it must be)
    Constants: (
        ("tau_syn", lambda v: v["tau_syn"] > 0, "positive (seconds)"),
        ("tau_mem", lambda v: v["tau_mem"] > 0, "positive (seconds)"),
        ("v_th", lambda v: v["v_th"] > v["v_leak"], "greater than `v_leak`"),
        ("v_reset", lambda v: v["v_reset"] < v["v_th"], "below `v_th`"),
        ("t_ref", lambda v: v["t_ref"] >= 0, ">= 0 (seconds)"),
    ),
    ALIFConstants: (
        ("tau_syn", lambda v: v["tau_syn"] > 0, "positive (seconds)"),
        ("tau_mem", lambda v: v["tau_mem"] > 0, "positive (seconds)"),
        ("tau_adapt", lambda v: v["tau_adapt"] > 0, "positive (seconds)"),
        ("v_th", lambda v: v["v_th"] > v["v_leak"], "greater than `v_leak`"),
        ("v_reset", lambda v: v["v_reset"] < v["v_th"], "below `v_th`"),
        ("beta", lambda v: v["beta"] >= 0, ">= 0"),
    ),
    IFConstants: (
        ("tau_syn", lambda v: v["tau_syn"] > 0, "positive (seconds)"),
        ("tau_mem", lambda v: v["tau_mem"] > 0, "positive (seconds)"),
        ("v_init", lambda v: v["v_init"] < v["v_th"], "below `v_th`"),
        ("v_reset", lambda v: v["v_reset"] < v["v_th"], "below `v_th`"),
    ),
}


def constants_type(params, who: str) -> type:
    """The constants class of the model `params` describes; a `TypeError` naming `params`
    for a model the reference does not know."""
    if isinstance(params, ALIFParameters):
        return ALIFConstants
    if isinstance(params, IFParameters):
        return IFConstants
    known = "eqsnn.LIFParameters, eqsnn.ALIFParameters or eqsnn.IFParameters"
    if isinstance(params, AbstractNeuronModel):
        raise TypeError(
            f"{who}: `params` must be {known} (the models the reference integrates), got "
            f"{type(params).__name__}: write its vector field and events with Diffrax to "
            "cross-check it."
        )
    missing = [name for name in Constants._fields if not hasattr(params, name)]
    if missing:
        raise TypeError(
            f"{who}: `params` must be {known} (or an object with the LIF attributes), got "
            f"{type(params).__name__} without {', '.join(f'`{m}`' for m in missing)}."
        )
    return Constants


def checks(kind: type):
    """`(parameter, predicate, what)` triples that the per-neuron values must satisfy."""
    return _CHECKS[kind]


def vector_field(t, y, consts: AnyConstants):
    """The model's vector field (no threshold, no jumps)."""
    if isinstance(consts, ALIFConstants):
        return alif_vector_field(t, y, consts)
    if isinstance(consts, IFConstants):
        return if_vector_field(t, y, consts)
    return lif_vector_field(t, y, consts)


def threshold(y, consts: AnyConstants):
    """The voltage at which each neuron spikes: `v_th`, or `v_th + a` for the ALIF."""
    if isinstance(consts, ALIFConstants):
        return consts.v_th + y[2]
    return consts.v_th


def initial_state(consts: AnyConstants) -> tuple[np.ndarray, ...]:
    """The state at `t = 0` as host arrays: at rest, no current (and no adaptation)."""
    if isinstance(consts, IFConstants):
        v = np.array(consts.v_init)
    else:
        v = np.array(consts.v_leak)
    state = (v, np.zeros_like(v))
    if isinstance(consts, ALIFConstants):
        state = (*state, np.zeros_like(v))
    return state


def fire(y: tuple[np.ndarray, ...], fired: np.ndarray, consts: AnyConstants):
    """The state right after the neurons `fired` spike: `V -> v_reset` (and `a -> a + beta`
    for the ALIF); the current is unchanged."""
    v = y[0].copy()
    v[fired] = np.asarray(consts.v_reset)[fired]
    if isinstance(consts, ALIFConstants):
        a = y[2].copy()
        a[fired] = a[fired] + np.asarray(consts.beta)[fired]
        return (v, y[1], a)
    return (v, *y[1:])


def max_gap_slope(y0, free, consts: AnyConstants):
    r"""An upper bound on the rate at which the distance to threshold grows at a crossing
    after the state `y0` (jnp, for the root finder's tolerance, see `_root_atol`).

    LIF: $\dot V = (I - \theta)/\tau_\mathrm{mem}$ at $V - v_\mathrm{leak} = \theta$, at most
    $(\max(I_0, 0) + \theta)/\tau_\mathrm{mem}$ as currents only decay. ALIF: the same plus
    $a_0 / \tau_\mathrm{adapt}$ (the threshold decays). IF: $\dot V = I/\tau_\mathrm{mem}
    \le \max(I_0, 0)/\tau_\mathrm{mem}$.
    """
    i0 = y0[1]
    if isinstance(consts, IFConstants):
        return jnp.max(free * (jnp.maximum(i0, 0.0) / consts.tau_mem))
    theta = consts.v_th - consts.v_leak
    slope = (jnp.maximum(i0, 0.0) + theta) / consts.tau_mem
    if isinstance(consts, ALIFConstants):
        slope = slope + jnp.maximum(y0[2], 0.0) / consts.tau_adapt
    return jnp.max(free * slope)
