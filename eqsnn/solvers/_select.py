"""Choosing a solver from the parameters, and the reference's functional solver."""

import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._flow import LIFState
from .._params import LIFParameters
from ._analytic import LambertWSolver, TTFSSolver
from ._base import AbstractCrossingSolver
from ._bracketed import BracketedSolver


def default_solver(params: LIFParameters) -> AbstractCrossingSolver:
    """The fastest exact solver for `params`.

    [`eqsnn.solvers.TTFSSolver`][] when `tau_mem == 2 * tau_syn` exactly,
    [`eqsnn.solvers.LambertWSolver`][] when `tau_mem == tau_syn` exactly, otherwise
    [`eqsnn.solvers.BracketedSolver`][] (also whenever a time constant is an array: per
    neuron or trainable, the ratio is not a constant).
    """
    if params.tau_ratio is None:
        return BracketedSolver()
    if params.tau_mem == 2.0 * params.tau_syn:
        return TTFSSolver()
    if params.tau_mem == params.tau_syn:
        return LambertWSolver()
    return BracketedSolver()


def check_solver_ratio(solver: AbstractCrossingSolver, params: LIFParameters, who: str) -> None:
    """Raise a `ValueError` naming `who` if `solver` needs a fixed ratio
    `tau_mem / tau_syn` (the analytic solvers) but a time constant is an array."""
    if params.tau_ratio is None and isinstance(solver, (TTFSSolver, LambertWSolver)):
        raise ValueError(
            f"{who}: solver={solver!r} assumes a fixed ratio tau_mem / tau_syn, but "
            f"{' and '.join(n for n in params.arrays if n.startswith('tau'))} is an array "
            "(per neuron or trainable); use "
            "eqsnn.solvers.BracketedSolver() (the default for array time constants)."
        )


def ttfs_solver(
    tau_mem: float, v_th: float, state: LIFState, t_max: Float[ArrayLike, ""]
) -> Float[Array, "*n"]:
    """Next threshold crossing for `tau_mem = 2 tau_syn`, with the reference's signature.

    Assumes `v_leak = 0`, as the reference does.

    **Arguments:**

    - `tau_mem`: membrane time constant in seconds (`tau_syn = tau_mem / 2`).
    - `v_th`: threshold voltage.
    - `state`: the neurons' [`eqsnn.LIFState`][] now.
    - `t_max`: length of the search window in seconds.

    **Returns:** the time of the next crossing after now, or `t_max` where there is none.
    """
    t, _ = TTFSSolver()(state.v, state.i, v_th, t_max, tau_mem, tau_mem / 2.0)
    return jnp.where(jnp.isfinite(t), t, t_max)
