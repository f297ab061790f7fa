"""The hardware-in-the-loop layers: forward pass from a backend, EventProp from a replay."""

from collections.abc import Sequence

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray

from .._checks import check_layer_weights, layer_name
from .._connectivity import Connectivity, ConnectivityMask
from .._engine.buffers import sort_inputs
from .._flow import check_lif
from .._layers.base import AbstractLayer, check_input
from .._layers.feedforward import AbstractFeedForwardLayer
from .._layers.recurrent import AbstractRecurrentLayer
from .._overflow import report_dropped
from .._params import LIFParameters
from .._spikes import Spikes, with_sources
from ._backend import BACKEND_RUNS_LIF, Backend, call_backend
from ._replay import Mismatch, ReplayConfig, replay


def _check_backend(backend, who: str) -> Backend:
    if not isinstance(backend, Backend):
        raise TypeError(f"{who}: `backend` must be an eqsnn.hardware.Backend, got {backend!r}.")
    return backend


def _check_min_rise(min_rise, who: str) -> float:
    try:
        value = float(min_rise)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: `min_rise` must be a number >= 0, got {min_rise!r}.") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"{who}: `min_rise` must be a finite number >= 0, got {min_rise!r}.")
    return value


def _run(layer, spikes: Spikes) -> tuple[Spikes, Mismatch]:
    """Backend call on the sorted inputs, then the replay (differentiable, EventProp)."""
    who = layer_name(layer)
    spikes = check_input(spikes, layer.in_size, who)
    layer = check_layer_weights(layer, who)
    recurrent = isinstance(layer, AbstractRecurrentLayer)
    weights = layer.effective_weights() if recurrent else layer.weights
    time = spikes.time
    idx = jax.lax.stop_gradient(spikes.idx)
    sorted_in = sort_inputs(Spikes(time=jax.lax.stop_gradient(time), idx=idx), layer.t_max)
    sent_time = jax.numpy.where(sorted_in.valid, sorted_in.time, jax.numpy.inf)
    sent_idx = jax.numpy.where(sorted_in.valid, sorted_in.idx, -1)
    hw = call_backend(
        layer.backend, weights, sent_time, sent_idx, layer.params, layer.t_max, layer.n_spikes
    )
    config = ReplayConfig(layer.params, layer.t_max, layer.min_rise, who)
    out, mismatch = replay((weights, time), idx, hw, config)
    # The backend's losses, reported as a software layer's, plus those upstream.
    out = report_dropped(out, layer, per_neuron="the backend's spike budget")
    out = eqx.tree_at(lambda s: s.dropped, out, out.dropped + jax.lax.stop_gradient(spikes.dropped))
    return with_sources(out, layer.size), mismatch


class AbstractHardwareLayer(AbstractLayer):
    """Base class of the hardware-in-the-loop layers: a backend runs the forward pass,
    a replay in software gives the EventProp gradients.

    **Fields** (besides those of [`eqsnn.AbstractLayer`][]): `backend` (the
    [`eqsnn.hardware.Backend`][]) and `min_rise` (the floor of the replayed membrane slope).
    """

    backend: Backend = eqx.field(static=True)
    min_rise: float = eqx.field(static=True)

    def _init_backend(self, backend, min_rise) -> None:
        """Check and set `backend` and `min_rise` (called by `__init__`)."""
        who = type(self).__name__
        check_lif(self.params, who, BACKEND_RUNS_LIF)
        if self.params.arrays or self.params.refractory:
            raise ValueError(
                f"{who}: a backend runs neurons with constant parameters and no refractory "
                f"period (params must hold floats and t_ref=0.0), got params={self.params!r}."
            )
        self.backend = _check_backend(backend, who)
        self.min_rise = _check_min_rise(min_rise, who)

    def replay(self, spikes: Spikes) -> tuple[Spikes, Mismatch]:
        """Run one sample on the backend (a batch under `jax.vmap`: one backend call).

        **Returns:** `(spikes, mismatch)`: the output spikes (differentiable with EventProp)
        and the [`eqsnn.hardware.Mismatch`][] between the replay and the backend.
        """
        return _run(self, spikes)

    def __call__(self, spikes: Spikes, *, key: PRNGKeyArray | None = None) -> Spikes:
        """The output spikes of `replay` (`key` is unused)."""
        return self.replay(spikes)[0]


class HardwareLIF(AbstractFeedForwardLayer, AbstractHardwareLayer):
    r"""A feed-forward LIF layer whose forward pass runs on a backend (hardware in the loop).

    The layer sends its weights and the input spikes to `backend` (one call per batch
    under `jax.vmap`, through `jax.pure_callback`, so it works under `jax.jit` too) and
    returns the spikes the backend reports. The gradients are EventProp's
    ([`eqsnn.EventPropLIF`][]), computed on a software replay that takes the backend's
    spike times as given and recovers the synaptic current at each spike (see
    [Hardware in the loop](../concepts/hardware.md)). With
    [`eqsnn.hardware.SoftwareBackend`][] the layer reproduces [`eqsnn.EventPropLIF`][]
    (spikes and gradients) up to rounding. Reverse mode only.

    **Arguments:** `in_size`, `out_size`, `n_spikes`, `t_max`, `params`, `key`, `mean`,
    `std`, `duplication` as for [`eqsnn.LIF`][] (the model of the network that the backend
    runs: [`eqsnn.LIFParameters`][] of floats; another neuron model, such as
    [`eqsnn.ALIFParameters`][] or [`eqsnn.IFParameters`][], raises a `TypeError`), plus
    - `backend`: the [`eqsnn.hardware.Backend`][] that runs the forward pass
      (keyword-only, required).
    - `min_rise`: floor of the membrane slope used by the adjoint, as a fraction of
      $v_\mathrm{th} - v_\mathrm{leak}$: at a backend spike the adjoint divides by the
      replayed $I - (v_\mathrm{th} - v_\mathrm{leak})$ ($\tau_\mathrm{mem}\dot V$), which a
      mismatched backend can make tiny or negative; it is raised to at least
      `min_rise` $\cdot (v_\mathrm{th} - v_\mathrm{leak})$ (spikes the replay cannot
      explain included). Default `0.0`: exact EventProp (spikes with a non-positive
      replayed slope then get zero gradient, as in autodiff). See
      [Hardware in the loop](../concepts/hardware.md).

    **Returns (from `__call__`):** the output [`eqsnn.Spikes`][] as the backend reported
    them, with the replayed currents; `dropped` is the backend's count of lost spikes plus
    the input's `dropped`, and a call whose backend lost spikes issues a
    [`eqsnn.SpikesDroppedWarning`][]. `replay` also returns the
    [`eqsnn.hardware.Mismatch`][].

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.hardware import SoftwareBackend

    layer = eqsnn.HardwareLIF(
        2,
        3,
        n_spikes=15,
        t_max=0.05,
        key=jax.random.PRNGKey(0),
        mean=2.0,
        backend=SoftwareBackend(),
    )
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))
    out, mismatch = layer.replay(spikes)
    ```
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        n_spikes: int,
        t_max: float,
        params: LIFParameters | None = None,
        *,
        key: PRNGKeyArray,
        mean: float = 0.5,
        std: float = 2.0,
        duplication: int | None = None,
        backend: Backend,
        min_rise: float = 0.0,
    ):
        self._init_layer(in_size, out_size, n_spikes, t_max, params, key, mean, std, duplication)
        self._init_backend(backend, min_rise)


class HardwareRecurrentLIF(AbstractRecurrentLayer, AbstractHardwareLayer):
    r"""A recurrent LIF layer whose forward pass runs on a backend (hardware in the loop).

    As [`eqsnn.HardwareLIF`][] for the populations of an [`eqsnn.RecurrentLIF`][]: the
    backend runs the whole layer (all populations, one call per batch) and reports all
    spikes; the replay walks the inputs and the reported spikes in time order, applying the
    recurrent weights at each spike (the reference's `next_queue`), and the gradients are
    those of [`eqsnn.RecurrentEventPropLIF`][]. With [`eqsnn.hardware.SoftwareBackend`][]
    the layer reproduces [`eqsnn.RecurrentEventPropLIF`][] up to rounding (ties between
    spikes of different neurons excepted: the replay records the second spike's current
    after the first spike's recurrent jump).

    The backend receives the effective weights (zero outside the connectivity). As for
    [`eqsnn.HardwareLIF`][], `dropped` is the backend's count of lost spikes plus the
    input's, and a call whose backend lost spikes issues a [`eqsnn.SpikesDroppedWarning`][].

    **Arguments:** `in_size`, `layers`, `n_spikes`, `t_max`, `params`, `key`, `mean`,
    `std`, `duplication`, `connectivity` as for [`eqsnn.RecurrentLIF`][], and `backend`
    (keyword-only, required) and `min_rise` as for [`eqsnn.HardwareLIF`][].

    **Returns (from `__call__`):** the output [`eqsnn.Spikes`][] of all populations
    (`population_spikes` selects one). `replay` also returns the
    [`eqsnn.hardware.Mismatch`][].

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn
    from eqsnn.hardware import SoftwareBackend

    layer = eqsnn.HardwareRecurrentLIF(
        2,
        [4, 3],
        n_spikes=16,
        t_max=0.05,
        key=jax.random.PRNGKey(0),
        mean=[2.0, 1.0],
        std=0.5,
        backend=SoftwareBackend(),
    )
    out = layer(eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1])))
    ```
    """

    def __init__(
        self,
        in_size: int,
        layers: Sequence[int],
        n_spikes: int,
        t_max: float,
        params: LIFParameters | None = None,
        *,
        key: PRNGKeyArray,
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 2.0,
        duplication: int | None = None,
        backend: Backend,
        min_rise: float = 0.0,
        connectivity: Connectivity | ConnectivityMask = Connectivity.LAYERED,
    ):
        self._init_layer(
            in_size, layers, n_spikes, t_max, params, key, mean, std, duplication, connectivity
        )
        self._init_backend(backend, min_rise)
