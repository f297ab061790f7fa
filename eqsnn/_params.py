"""Parameters of the current-based leaky integrate-and-fire neuron, and what every neuron
model's parameters share (`AbstractNeuronParameters`)."""

import dataclasses
import typing

import jax
import jax.numpy as jnp
import numpy as np

from ._checks import is_concrete


def _parameter(value):
    """A Python float stays a float (a constant); an array becomes a JAX array (a leaf
    that `eqx.filter_grad` reaches)."""
    if isinstance(value, (jax.Array, np.ndarray)) or hasattr(value, "__jax_array__"):
        array = jnp.asarray(value)
        if not jnp.issubdtype(array.dtype, jnp.floating):
            array = array.astype(float)
        # A strong dtype: a weakly typed array (`jnp.full(n, 1e-2)`) would be promoted
        # differently after the first optimiser step and recompile the training step.
        return jax.lax.convert_element_type(array, array.dtype)
    return float(value)


class AbstractNeuronParameters:
    """Base class of the neuron parameters: a frozen dataclass whose float fields are
    constants (static structure) and whose array fields (shape `()` or `(n,)`) are leaves.

    A subclass is a `dataclasses.dataclass(frozen=True, eq=False, repr=False)` registered
    with `jax.tree_util.register_pytree_with_keys_class`, lists its fields in `_FIELDS`
    (with their defaults in `_DEFAULTS`) and checks concrete values in `_check`. The class
    of the parameters is the neuron model: see [Neuron models](../concepts/neurons.md).
    """

    _FIELDS: typing.ClassVar[tuple[str, ...]] = ()
    _DEFAULTS: typing.ClassVar[tuple[float, ...]] = ()

    def __post_init__(self):
        who = type(self).__name__
        for name in self._FIELDS:
            value = _parameter(getattr(self, name))
            if not isinstance(value, float) and jnp.ndim(value) > 1:
                raise ValueError(
                    f"{who}: `{name}` must be a float or an array of shape () or "
                    f"(n_neurons,), got shape {jnp.shape(value)}."
                )
            object.__setattr__(self, name, value)
        values = _concrete_values(self)
        if values is not None:
            self._check(_Checker(who, values))

    def _check(self, check: "_Checker") -> None:
        """Check concrete values (subclasses); `check(bad, message, *names)` raises."""

    # A pytree whose leaves are the array fields; the float fields are static structure.
    def tree_flatten_with_keys(self):
        fields = self._FIELDS
        arrays = tuple(name for name in fields if not isinstance(getattr(self, name), float))
        children = [(jax.tree_util.GetAttrKey(name), getattr(self, name)) for name in arrays]
        constants = tuple((name, getattr(self, name)) for name in fields if name not in arrays)
        return children, (arrays, constants)

    @classmethod
    def tree_unflatten(cls, aux, children):
        arrays, constants = aux
        obj = object.__new__(cls)
        for name, value in (*zip(arrays, children, strict=True), *constants):
            object.__setattr__(obj, name, value)
        return obj

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        if self.arrays or other.arrays:
            return self is other
        return all(getattr(self, n) == getattr(other, n) for n in self._FIELDS)

    def __hash__(self):
        if self.arrays:
            return id(self)
        return hash((type(self), *(getattr(self, n) for n in self._FIELDS)))

    def __repr__(self):
        shown = []
        for name, default in zip(self._FIELDS, self._DEFAULTS, strict=True):
            value = getattr(self, name)
            if isinstance(value, float):
                if value != default:
                    shown.append(f"{name}={value!r}")
            elif hasattr(value, "shape") and hasattr(value, "dtype"):
                shape = ",".join(str(d) for d in value.shape)
                shown.append(f"{name}={jnp.dtype(value.dtype).name}[{shape}]")
            else:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"

    @property
    def tau_ratio(self) -> float | None:
        r"""The ratio $\tau_\mathrm{mem} / \tau_\mathrm{syn}$ that selects an LIF crossing
        solver; `None` for other models and for array time constants."""
        return None

    @property
    def arrays(self) -> tuple[str, ...]:
        """The names of the fields that are arrays (per neuron or trainable)."""
        return tuple(name for name in self._FIELDS if not isinstance(getattr(self, name), float))

    @property
    def refractory(self) -> bool:
        """Whether there may be a refractory period (`t_ref` is an array or a positive
        float)."""
        t_ref = getattr(self, "t_ref", 0.0)
        return not isinstance(t_ref, float) or t_ref > 0

    def check_size(self, n: int, who: str) -> None:
        """Raise a `ValueError` naming `who` unless every array field has shape `()` or
        `(n,)`."""
        for name in self.arrays:
            shape = jnp.shape(getattr(self, name))
            if shape not in ((), (n,)):
                raise ValueError(
                    f"{who}: `params.{name}` must be a float or an array of shape () or "
                    f"({n},) (one value per neuron), got shape {shape}."
                )

    def per_neuron(self, n: int):
        """These parameters with every array field broadcast to shape `(n,)` (floats stay
        floats)."""
        return jax.tree.map(lambda value: jnp.broadcast_to(value, (n,)), self)


def _concrete_values(params: AbstractNeuronParameters) -> dict | None:
    """The fields as float64 numpy arrays broadcast together, or `None` when one is traced."""
    values = {}
    for name in params._FIELDS:
        value = getattr(params, name)
        if isinstance(value, float):
            values[name] = np.asarray(value)
        elif is_concrete(value):
            values[name] = np.asarray(value, dtype=np.float64)
        else:
            return None  # traced (inside a transformation): nothing to check here
    shape = np.broadcast_shapes(*(v.shape for v in values.values()))
    return {name: np.broadcast_to(v, shape) for name, v in values.items()}


class _Checker:
    """`check(bad, message, *names, single=False)` raises a `ValueError` naming the
    class, the fields and, for arrays, the first offending neuron."""

    def __init__(self, who: str, values: dict):
        self.who = who
        self.values = values
        self.shape = next(iter(values.values())).shape if values else ()

    def __call__(self, bad, message, *names, single=False):
        if not np.any(bad):
            return
        values, shape = self.values, self.shape
        k = None if shape == () else int(np.argmax(np.reshape(bad, -1)))

        def show(name):
            value = float(values[name]) if k is None else float(values[name][k])
            label = name if k is None else f"{name}[{k}]"
            return repr(value) if single else f"{label}={value!r}"

        shown = " and ".join(show(name) for name in names)
        where = "" if k is None or not single else f" (neuron {k})"
        raise ValueError(f"{self.who}: {message}, got {shown}{where}.")

    def voltages(self, rest: str = "v_leak"):
        """`rest < v_th` and `v_reset < v_th` (`rest`: the field the voltage starts at)."""
        v = self.values
        self(v["v_th"] <= v[rest], f"`v_th` must be greater than `{rest}`", "v_th", rest)
        self(v["v_reset"] >= v["v_th"], "`v_reset` must be below `v_th`", "v_reset", "v_th")

    def common(self, *positive):
        """Every field finite; the fields in `positive` > 0 (seconds)."""
        for name in self.values:
            self(~np.isfinite(self.values[name]), f"`{name}` must be finite", name, single=True)
        for name in positive:
            self(self.values[name] <= 0, f"`{name}` must be positive (seconds)", name, single=True)


@jax.tree_util.register_pytree_with_keys_class
@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class LIFParameters(AbstractNeuronParameters):
    r"""Parameters of a current-based LIF neuron with exponential synapses.

    The membrane voltage $V$ and synaptic current $I$ follow

    $$
    \tau_\mathrm{mem} \frac{dV}{dt} = v_\mathrm{leak} - V + I, \qquad
    \tau_\mathrm{syn} \frac{dI}{dt} = -I .
    $$

    When $V$ reaches $v_\mathrm{th}$ the neuron emits a spike and $V$ is set to
    $v_\mathrm{reset}$. With an absolute refractory period $t_\mathrm{ref} > 0$ the voltage
    is then held at $v_\mathrm{reset}$ for $t_\mathrm{ref}$ while the current keeps
    integrating its inputs; afterwards the flow resumes from $v_\mathrm{reset}$. A very low
    `v_reset` (e.g. `-1000.0`) gives the usual one-spike-per-neuron regime of
    time-to-first-spike coding.

    **Constants and trainable parameters.** Each field is either a Python float, a
    constant shared by all neurons (part of the pytree's static structure: it selects the
    crossing solver at trace time, `jax.grad` never sees it), or a JAX array of shape `()`
    or `(n_neurons,)`: one value per neuron, a leaf of the layer that `eqx.filter_grad`
    differentiates and optax trains, exactly (see
    [Trainable parameters and delays](../concepts/trainable.md)). To keep an array fixed,
    leave it out of the filter spec (`eqx.filter_grad` with `eqx.partition`), or pass a
    float. `dataclasses.replace(params, tau_mem=...)` builds a
    changed copy (checked again). With an array time constant the default solver is
    the bracketed one, as the ratio $\tau_\mathrm{mem}/\tau_\mathrm{syn}$ is no longer a
    constant.

    **Arguments:**

    - `tau_syn`: synaptic time constant $\tau_\mathrm{syn}$ in seconds (> 0).
    - `tau_mem`: membrane time constant $\tau_\mathrm{mem}$ in seconds (> 0).
    - `v_th`: threshold voltage (volt-like units; must exceed `v_leak`).
    - `v_leak`: leak (resting) voltage.
    - `v_reset`: voltage after a spike (must be below `v_th`).
    - `t_ref`: absolute refractory period in seconds (>= 0; default 0, no refractory
      period).

    Values are checked when they are concrete (not inside `jax.jit`): a `ValueError` names
    the field, and for arrays the first offending neuron.

    **Example:**

    ```python
    import jax.numpy as jnp
    import eqsnn

    params = eqsnn.LIFParameters(tau_syn=5e-3, tau_mem=1e-2, v_th=0.6)
    # per-neuron, trainable membrane time constants and thresholds for 4 neurons
    trained = eqsnn.LIFParameters(tau_mem=jnp.full(4, 1e-2), v_th=jnp.full(4, 0.6))
    ```
    """

    tau_syn: float | jax.Array = 5e-3
    tau_mem: float | jax.Array = 1e-2
    v_th: float | jax.Array = 0.6
    v_leak: float | jax.Array = 0.0
    v_reset: float | jax.Array = 0.0
    t_ref: float | jax.Array = 0.0

    _FIELDS = ("tau_syn", "tau_mem", "v_th", "v_leak", "v_reset", "t_ref")
    _DEFAULTS = (5e-3, 1e-2, 0.6, 0.0, 0.0, 0.0)

    @property
    def tau_ratio(self) -> float | None:
        r"""The ratio $\tau_\mathrm{mem} / \tau_\mathrm{syn}$, or `None` if a time constant
        is an array (per neuron or trainable)."""
        if isinstance(self.tau_mem, float) and isinstance(self.tau_syn, float):
            return self.tau_mem / self.tau_syn
        return None

    def _check(self, check) -> None:
        """Finite values, positive time constants, `v_leak < v_th`, `v_reset < v_th`,
        `t_ref >= 0`."""
        check.common("tau_syn", "tau_mem")
        values = check.values
        check(values["t_ref"] < 0, "`t_ref` must be >= 0 (seconds)", "t_ref", single=True)
        check.voltages()
