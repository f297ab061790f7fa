"""Solvers for the next threshold crossing of LIF neurons.

[`eqsnn.solvers.BracketedSolver`][] works for any ratio; [`eqsnn.solvers.TTFSSolver`][] and
[`eqsnn.solvers.LambertWSolver`][] are analytic for `tau_mem == 2 * tau_syn` and
`tau_mem == tau_syn`. [`eqsnn.solvers.default_solver`][] picks the right one from the
parameters. They agree on which neurons spike except within rounding of a tangency, and
never return NaN for a valid state (see [`eqsnn.solvers.AbstractCrossingSolver`][]).
"""

from ._analytic import LambertWSolver as LambertWSolver
from ._analytic import TTFSSolver as TTFSSolver
from ._analytic import lambert_w0 as lambert_w0
from ._base import AbstractCrossingSolver as AbstractCrossingSolver
from ._base import crossing_bracket as crossing_bracket
from ._bracketed import BracketedSolver as BracketedSolver
from ._select import default_solver as default_solver
from ._select import ttfs_solver as ttfs_solver
