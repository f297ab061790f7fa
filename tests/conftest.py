"""Test-wide JAX configuration.

Numerical tests compare against closed forms and finite differences, so everything runs
in float64. Dtype promotion is strict, so that a silent float32/float64 or int/float mix
inside eqsnn fails loudly here instead of costing precision for users.

Strict promotion was checked against the libraries we build on (jax 0.10, equinox 0.13,
diffrax 0.7, optax 0.2): Equinox modules and Diffrax solves (including event detection)
work, but `optax.adam` and `optax.adamw` do not (they compute `decay ** count` with a
Python float and an int32 step count). A test that drives such an optimiser, or that runs
user-facing code as users would, takes `@pytest.mark.standard_promotion`.
"""

import jax
import pytest

jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture(autouse=True)
def _standard_promotion(request):
    """Relax dtype promotion to JAX's default for tests marked `standard_promotion`."""
    if request.node.get_closest_marker("standard_promotion") is None:
        yield
    else:
        with jax.numpy_dtype_promotion("standard"):
            yield


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module.

    Every program XLA compiles for the CPU keeps a few memory mappings (its code and data)
    for as long as a cache holds it, and a test worker runs hundreds of modules' programs:
    `tests/test_trainable.py` alone leaves about 9,500 mappings. Linux refuses new mappings
    past `vm.max_map_count` (65,530 by default), and XLA's compiler then crashes with a
    segmentation fault instead of raising, which is how a full `-n 2` run ended in two CI
    runs on 2026-12-05 (always in the same worker, late in the run). Modules share no
    compiled programs that matter for time, so each starts from empty caches.
    """
    yield
    jax.clear_caches()
