"""EventProp's building blocks: the adjoint state, its closed-form flow and its jumps.

The layers use these through [`eqsnn.EventProp`][]; they are public for who wants to
check the adjoint by hand or build an EventProp for another engine (see
[EventProp](../concepts/eventprop.md)).
"""

from .._adjoint.trajectory import adjoint_trajectory as adjoint_trajectory
from .._adjoint.trajectory import step_bwd as step_bwd
from .._adjoint.transitions import AdjointState as AdjointState
from .._adjoint.transitions import adjoint_input_transition as adjoint_input_transition
from .._adjoint.transitions import adjoint_lif_exponential_flow as adjoint_lif_exponential_flow
from .._adjoint.transitions import (
    adjoint_transition_with_recurrence as adjoint_transition_with_recurrence,
)
from .._adjoint.transitions import (
    adjoint_transition_without_recurrence as adjoint_transition_without_recurrence,
)
