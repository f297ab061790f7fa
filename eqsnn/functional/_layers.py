"""The layer factories of the functional API and the weight initialisers."""

from collections.abc import Callable, Sequence

from jaxtyping import PRNGKeyArray

from .._checks import check_size
from .._connectivity import Connectivity
from .._layers.feedforward import LIF as _LIFModule
from .._layers.feedforward import EventPropLIF as _EventPropLIFModule
from .._layers.keywords import engine_from_keywords
from .._layers.recurrent import RecurrentEventPropLIF as _RecurrentEventPropLIFModule
from .._layers.recurrent import RecurrentLIF as _RecurrentLIFModule
from .._overflow import Overflow
from .._params import LIFParameters
from .._weights import InputWeights, RecurrentWeights
from ..hardware._backend import Backend
from ..hardware._layers import HardwareLIF as _HardwareLIFModule
from ..hardware._layers import HardwareRecurrentLIF as _HardwareRecurrentLIFModule
from ..neurons._model import is_model
from ..solvers import AbstractCrossingSolver
from ._wrap import ApplyFn, InitFn, Skeletons, init_apply


def LIF(
    n_hidden: int,
    n_spikes: int,
    t_max: float,
    params: LIFParameters,
    mean: float = 0.5,
    std: float = 2.0,
    duplication: int | None = None,
    *,
    solver: AbstractCrossingSolver | None = None,
    max_spikes_per_neuron: int | None = None,
    max_spikes_per_interval: int | None = None,
    overflow: Overflow = Overflow.WARN,
) -> tuple[InitFn, ApplyFn]:
    r"""A feed-forward layer of LIF neurons, as jaxsnn's `(init_fn, apply_fn)` pair.

    A wrapper of [`eqsnn.LIF`][], with the signature of jaxsnn 0.2.0's `LIF`.

    **Arguments:**

    - `n_hidden`: number of neurons of the layer.
    - `n_spikes`: capacity of the layer's output buffer (its own spikes only).
    - `t_max`: simulation horizon in seconds.
    - `params`: the [`eqsnn.LIFParameters`][], or another neuron model
      ([`eqsnn.ALIFParameters`][], [`eqsnn.IFParameters`][]; window scan only, so not with
      `max_spikes_per_interval`).
    - `mean`, `std`: initial weights are drawn from $\mathcal N(\mathrm{mean}, \mathrm{std}^2)$.
    - `duplication`: inputs come in `duplication` consecutive copies with equal initial
      weights (the input size must be a multiple of it).
    - `solver`, `max_spikes_per_neuron`, `max_spikes_per_interval`, `overflow`
      (keyword-only, eqsnn additions): passed to [`eqsnn.LIF`][].

    **Returns:** `(init_fn, apply_fn)`:

    - `init_fn(rng, input_size) -> (rng, n_hidden, weights)`: splits `rng`, builds the
      [`eqsnn.LIF`][] with one half and returns the other half, the layer's output size
      and its [`eqsnn.InputWeights`][].
    - `apply_fn(weights, spikes, external=None, carry=None) -> (carry, weights[k], out,
      out)`: simulates layer `k = carry[0]` (0 if `carry` is None) on one sample of input
      [`eqsnn.Spikes`][] with global indices, and returns the new carry and the output
      spikes with [global indices](../howto/functional_api.md#the-calling-convention).

    **Example:**

    ```python
    import jax
    import jax.numpy as jnp
    import eqsnn
    from eqsnn import functional

    init_fn, apply_fn = functional.LIF(3, n_spikes=6, t_max=0.05, params=eqsnn.LIFParameters())
    _, n_out, weights = init_fn(jax.random.PRNGKey(0), 2)
    spikes = eqsnn.Spikes(time=jnp.array([1e-3, 2e-3]), idx=jnp.array([0, 1]))
    _, _, out, _ = apply_fn([weights], spikes)  # out.idx in 2..4 (global), or -1
    ```
    """
    options = dict(
        solver=solver,
        engine=engine_from_keywords(
            "eqsnn.functional", None, max_spikes_per_neuron, max_spikes_per_interval, warn=False
        ),
    )
    return _feedforward(_LIFModule, n_hidden, n_spikes, t_max, params, mean, std, duplication,
                        overflow=overflow, **options)  # fmt: skip


def EventPropLIF(
    n_hidden: int,
    n_spikes: int,
    t_max: float,
    params: LIFParameters,
    mean: float = 0.5,
    std: float = 2.0,
    wrap_only_step: bool = False,
    duplication: int | None = None,
    *,
    solver: AbstractCrossingSolver | None = None,
    max_spikes_per_neuron: int | None = None,
    max_spikes_per_interval: int | None = None,
    overflow: Overflow = Overflow.WARN,
) -> tuple[InitFn, ApplyFn]:
    r"""A feed-forward LIF layer with EventProp gradients, as jaxsnn's `(init_fn, apply_fn)`.

    A wrapper of `eqsnn.EventPropLIF`, with the signature of jaxsnn 0.2.0's
    `EventPropLIF`: the spikes are those of [`eqsnn.functional.LIF`][], the gradients come
    from the EventProp adjoint.

    **Arguments:** as [`eqsnn.functional.LIF`][], plus

    - `wrap_only_step`: if `False` (default), one custom VJP covers the whole trajectory;
      if `True`, each step has its own (same gradients).

    **Returns:** `(init_fn, apply_fn)` as for [`eqsnn.functional.LIF`][].
    """
    options = dict(
        solver=solver,
        engine=engine_from_keywords(
            "eqsnn.functional", None, max_spikes_per_neuron, max_spikes_per_interval, warn=False
        ),
    )
    return _feedforward(_EventPropLIFModule, n_hidden, n_spikes, t_max, params, mean, std,
                        duplication, overflow=overflow, wrap_only_step=wrap_only_step,
                        **options)  # fmt: skip


def HardwareLIF(
    n_hidden: int,
    n_spikes: int,
    t_max: float,
    params: LIFParameters,
    mean: float,
    std: float,
    duplication: int | None = None,
    *,
    backend: Backend,
    min_rise: float = 0.0,
) -> tuple[InitFn, ApplyFn]:
    r"""A feed-forward layer run on a backend (hardware in the loop), as jaxsnn's pair.

    A wrapper of [`eqsnn.HardwareLIF`][], with the signature of jaxsnn 0.2.0's
    `HardwareLIF` plus the backend: the forward pass runs on `backend`, the gradients come
    from EventProp on a software replay of the backend's spikes. jaxsnn's `apply_fn` takes
    the chip's spikes as `external`; here the backend produces them, so `external` must be
    `None`.

    **Arguments:** as [`eqsnn.functional.LIF`][], plus (keyword-only, eqsnn additions)

    - `backend`: the [`eqsnn.hardware.Backend`][] that runs the forward pass (required).
    - `min_rise`: the adjoint's floor on the membrane slope, as for [`eqsnn.HardwareLIF`][].

    **Returns:** `(init_fn, apply_fn)` as for [`eqsnn.functional.LIF`][].
    """
    return _feedforward(_HardwareLIFModule, n_hidden, n_spikes, t_max, params, mean, std,
                        duplication, backend=backend, min_rise=min_rise)  # fmt: skip


def _feedforward(module, n_hidden, n_spikes, t_max, params, mean, std, duplication, **options):
    """The `(init_fn, apply_fn)` pair of a feed-forward layer class."""
    who = module.__name__
    check_size("n_hidden", n_hidden, f"functional.{who}")

    def build(in_size: int, key: PRNGKeyArray):
        return module(
            in_size, n_hidden, n_spikes, t_max, params,
            key=key, mean=mean, std=std, duplication=duplication, **options,
        )  # fmt: skip

    return init_apply(Skeletons(build, duplication), n_hidden, who, "backend" in options)


def RecurrentLIF(
    layers: Sequence[int],
    n_spikes: int,
    t_max: float,
    params: LIFParameters,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    duplication: int | None = None,
    *,
    solver: AbstractCrossingSolver | None = None,
    overflow: Overflow = Overflow.WARN,
) -> tuple[InitFn, ApplyFn]:
    r"""A recurrent layer of LIF populations, as jaxsnn's `(init_fn, apply_fn)` pair.

    A wrapper of [`eqsnn.RecurrentLIF`][] with `Connectivity.FULL`, with the
    signature of jaxsnn 0.2.0's `RecurrentLIF`. As in jaxsnn, only the input block of the
    first population and the blocks from population $k$ to $k+1$ are drawn at
    initialisation, every other weight starts at zero, and *every* weight is simulated
    and trained (the recurrent weights are a full `(n, n)` matrix).

    **Arguments:**

    - `layers`: the population sizes; the layer has `sum(layers)` neurons, numbered
      population after population.
    - `n_spikes`: capacity of the output buffer (spikes of all populations together).
    - `t_max`: simulation horizon in seconds.
    - `params`: the [`eqsnn.LIFParameters`][] (LIF neurons only: the event loop of
      `Connectivity.FULL` runs no other neuron model, and another one raises a
      `ValueError`).
    - `mean`, `std`: one entry per drawn block (input block first, then population
      $k \to k+1$), or one number for all.
    - `duplication`: inputs come in `duplication` consecutive copies with equal initial
      weights.
    - `solver`, `overflow` (keyword-only, eqsnn additions): passed to the layer.

    **Returns:** `(init_fn, apply_fn)` as for [`eqsnn.functional.LIF`][]; `init_fn` returns
    `sum(layers)` as the output size and the weights have fields `input` `(in, n)` and
    `recurrent` `(n, n)`.
    """
    return _recurrent(_RecurrentLIFModule, layers, n_spikes, t_max, params, mean, std,
                      duplication, solver=solver, overflow=overflow)  # fmt: skip


def RecurrentEventPropLIF(
    layers: Sequence[int],
    n_spikes: int,
    t_max: float,
    params: LIFParameters,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    wrap_only_step: bool = False,
    duplication: int | None = None,
    *,
    solver: AbstractCrossingSolver | None = None,
    overflow: Overflow = Overflow.WARN,
) -> tuple[InitFn, ApplyFn]:
    r"""A recurrent layer with EventProp gradients, as jaxsnn's `(init_fn, apply_fn)` pair.

    A wrapper of [`eqsnn.RecurrentEventPropLIF`][] with `Connectivity.FULL`, with the
    signature of jaxsnn 0.2.0's `RecurrentEventPropLIF`: the spikes and weights are those
    of [`eqsnn.functional.RecurrentLIF`][], the gradients come from the EventProp adjoint.

    **Arguments:** as [`eqsnn.functional.RecurrentLIF`][], plus

    - `wrap_only_step`: if `False` (default), one custom VJP covers the whole event
      trajectory; if `True`, each event step has its own (same gradients).

    **Returns:** `(init_fn, apply_fn)` as for [`eqsnn.functional.RecurrentLIF`][].
    """
    return _recurrent(_RecurrentEventPropLIFModule, layers, n_spikes, t_max, params, mean,
                      std, duplication, solver=solver, overflow=overflow,
                      wrap_only_step=wrap_only_step)  # fmt: skip


def HardwareRecurrentLIF(
    layers: Sequence[int],
    n_spikes: int,
    t_max: float,
    params: LIFParameters,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    duplication: int | None = None,
    *,
    backend: Backend,
    min_rise: float = 0.0,
) -> tuple[InitFn, ApplyFn]:
    r"""A recurrent layer run on a backend (hardware in the loop), as jaxsnn's pair.

    A wrapper of [`eqsnn.HardwareRecurrentLIF`][] with `Connectivity.FULL`, with the
    signature of jaxsnn 0.2.0's `HardwareRecurrentLIF` plus the backend: the weights are
    those of [`eqsnn.functional.RecurrentLIF`][], the forward pass runs on `backend`, the
    gradients come from EventProp on a software replay. As for
    [`eqsnn.functional.HardwareLIF`][], `external` must be `None`.

    **Arguments:** as [`eqsnn.functional.RecurrentLIF`][], plus (keyword-only)

    - `backend`: the [`eqsnn.hardware.Backend`][] that runs the forward pass (required).
    - `min_rise`: the adjoint's floor on the membrane slope, as for
      [`eqsnn.HardwareRecurrentLIF`][].

    **Returns:** `(init_fn, apply_fn)` as for [`eqsnn.functional.RecurrentLIF`][].
    """
    return _recurrent(_HardwareRecurrentLIFModule, layers, n_spikes, t_max, params, mean,
                      std, duplication, backend=backend, min_rise=min_rise)  # fmt: skip


def _recurrent(module, layers, n_spikes, t_max, params, mean, std, duplication, **options):
    """The `(init_fn, apply_fn)` pair of a recurrent layer class, all weights trained."""
    who = module.__name__
    if isinstance(layers, int) or not isinstance(layers, Sequence) or not layers:
        raise ValueError(
            f"functional.{who}: `layers` must be a non-empty sequence of population sizes, "
            f"got {layers!r}."
        )
    sizes = tuple(check_size("layers[k]", size, f"functional.{who}") for size in layers)
    if is_model(params) and "backend" not in options:  # hardware layers say why themselves
        raise ValueError(
            f"functional.{who}: neurons of {type(params).__name__} are simulated by the "
            "window scan, for populations connected feed-forward (Connectivity.LAYERED); "
            "the functional recurrent layers connect every neuron to every other "
            "(Connectivity.FULL, the event loop), which runs LIF neurons "
            "(eqsnn.LIFParameters) only. Use eqsnn.RecurrentLIF(..., "
            "connectivity=eqsnn.Connectivity.LAYERED), or functional.LIF layers."
        )

    def build(in_size: int, key: PRNGKeyArray):
        return module(
            in_size, sizes, n_spikes, t_max, params, key=key, mean=mean, std=std,
            duplication=duplication, connectivity=Connectivity.FULL, **options,
        )  # fmt: skip

    return init_apply(Skeletons(build, duplication), sum(sizes), who, "backend" in options)


def construct_init_fn(
    n_hidden: int, mean: float, std: float, duplication: int | None = None
) -> Callable[[PRNGKeyArray, int], tuple[PRNGKeyArray, int, InputWeights]]:
    r"""The weight initialiser of a feed-forward layer, as in jaxsnn.

    **Arguments:** `n_hidden`, `mean`, `std`, `duplication` as for
    [`eqsnn.functional.LIF`][].

    **Returns:** `init_fn(rng, input_size) -> (rng, n_hidden, weights)`; the weights
    equal those that [`eqsnn.functional.LIF`][]'s `init_fn` returns for the same `rng`.
    """
    check_size("n_hidden", n_hidden, "functional.construct_init_fn")

    def build(in_size: int, key: PRNGKeyArray) -> _LIFModule:
        return _LIFModule(
            in_size, n_hidden, 1, 1.0, key=key, mean=mean, std=std, duplication=duplication
        )

    init_fn, _ = init_apply(Skeletons(build, duplication), n_hidden, "construct_init_fn")
    return init_fn


def construct_recurrent_init_fn(
    layers: Sequence[int],
    mean: float | Sequence[float],
    std: float | Sequence[float],
    duplication: int | None = None,
) -> Callable[[PRNGKeyArray, int], tuple[PRNGKeyArray, int, RecurrentWeights]]:
    r"""The weight initialiser of a recurrent layer, as in jaxsnn.

    **Arguments:** `layers`, `mean`, `std`, `duplication` as for
    [`eqsnn.functional.RecurrentLIF`][].

    **Returns:** `init_fn(rng, input_size) -> (rng, sum(layers), weights)`; the weights
    equal those that [`eqsnn.functional.RecurrentLIF`][]'s `init_fn` returns for the same
    `rng`.
    """
    init_fn, _ = RecurrentLIF(layers, 1, 1.0, LIFParameters(), mean, std, duplication)
    return init_fn
