"""The package's namespaces: what `import eqsnn` loads, lazy sub-packages, moved names.

- `import eqsnn` does not import Diffrax, optax, matplotlib or the `nir` package (a fresh
  interpreter);
- `eqsnn.reference`, `eqsnn.training`, `eqsnn.nir` and `eqsnn.plot` load on first attribute
  access;
- every name in `eqsnn._MOVED` still works from the top level, with a `DeprecationWarning`
  that names its replacement, and is the same object as the replacement.
"""

import importlib
import json
import subprocess
import sys
import warnings

import pytest

import eqsnn

LAZY = ("nir", "plot", "reference", "training")
HEAVY = ("diffrax", "optimistix", "optax", "nir", "matplotlib")


def _fresh(code: str) -> dict:
    """Run `code` (which sets `result`) in a fresh interpreter; return `result`."""
    program = f"import json\n{code}\nprint(json.dumps(result))"
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.splitlines()[-1])


def test_import_eqsnn_loads_no_heavy_optional_package():
    watched = [*HEAVY, *(f"eqsnn.{name}" for name in LAZY)]
    result = _fresh(
        f"import sys\nimport eqsnn\nresult = [n for n in {watched} if n in sys.modules]"
    )
    assert result == [], f"`import eqsnn` imported {result}"


def test_lazy_subpackages_load_on_attribute_access():
    result = _fresh(
        "import sys\nimport eqsnn\n"
        "f = eqsnn.reference.simulate_diffrax\n"
        "g = eqsnn.training.train_step\n"
        "result = {'diffrax': 'diffrax' in sys.modules, 'optax': 'optax' in sys.modules,\n"
        "          'simulate': f.__module__, 'train': g.__module__}"
    )
    assert result == {
        "diffrax": True,
        "optax": True,
        "simulate": "eqsnn.reference._simulate",
        "train": "eqsnn.training._step",
    }


@pytest.mark.parametrize("name", LAZY)
def test_lazy_subpackage_is_the_module(name):
    assert getattr(eqsnn, name) is importlib.import_module(f"eqsnn.{name}")
    assert name in dir(eqsnn)


def test_unknown_attribute_raises_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        eqsnn.no_such_name  # noqa: B018


def test_moved_names_are_listed():
    # The table the deprecations come from holds at least the Diffrax reference.
    assert eqsnn._MOVED["simulate_diffrax"] == ("eqsnn.reference", "simulate_diffrax")
    assert eqsnn._MOVED["lif_vector_field"] == ("eqsnn.reference", "lif_vector_field")


@pytest.mark.parametrize("old", sorted(eqsnn._MOVED))
def test_moved_name_warns_and_names_its_replacement(old):
    module, attribute = eqsnn._MOVED[old]
    new = f"{module}.{attribute}"
    with pytest.warns(DeprecationWarning, match=f"`eqsnn.{old}` is deprecated; use `{new}`"):
        obj = getattr(eqsnn, old)
    assert obj is getattr(importlib.import_module(module), attribute)
    assert old not in dir(eqsnn)  # not suggested any more


def test_from_import_of_a_moved_name_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from eqsnn import simulate_diffrax
    assert simulate_diffrax is eqsnn.reference.simulate_diffrax
    messages = {str(w.message) for w in caught if w.category is DeprecationWarning}
    assert messages == {
        "`eqsnn.simulate_diffrax` is deprecated; use `eqsnn.reference.simulate_diffrax` instead."
    }
    assert all(w.filename == __file__ for w in caught)  # points at the importing line


def test_fresh_interpreter_helper():
    # Guards `_fresh`: a result it cannot see would make the tests above vacuous.
    assert _fresh("import sys\nresult = 'json' in sys.modules") is True
