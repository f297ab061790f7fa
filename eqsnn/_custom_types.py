"""Named type aliases used across eqsnn signatures."""

from typing import TypeAlias

from jaxtyping import Array, ArrayLike, Float, Int

RealScalarLike: TypeAlias = float | int | Float[ArrayLike, ""]
"""A real scalar: a Python number or a 0-d array."""

Time: TypeAlias = Float[Array, ""]
"""A time in seconds (0-d array)."""

SpikeTimes: TypeAlias = Float[Array, " n"]
"""Spike times in seconds, one per buffer slot."""

SpikeIndices: TypeAlias = Int[Array, " n"]
"""Neuron indices, one per buffer slot; ``-1`` marks an empty slot."""
