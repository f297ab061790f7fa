"""The documentation is complete and its examples run.

- every public name of eqsnn (and of its public sub-packages and modules) has a docstring;
- every public name has a `::: module.NAME` entry on a page under `docs/api/`;
- the Python code blocks of the README and of `docs/getting_started.md` run, in order;
- `.ci/run` runs the README's test command;
- the site's scripts ship with it (MathJax too): maths renders without network.
"""

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap
import types
from pathlib import Path

import jax
import pytest

import eqsnn

ROOT = Path(__file__).resolve().parents[1]
API_DIR = ROOT / "docs" / "api"
README_TEST_COMMAND = "python -m pytest -q -n auto"


def _public_namespaces() -> list[types.ModuleType]:
    """`eqsnn` and its public sub-packages and modules, recursively."""
    found = [eqsnn]
    for module in found:
        for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
            if not info.name.startswith("_"):
                found.append(importlib.import_module(f"{module.__name__}.{info.name}"))
    return found


def _public_names(namespace: types.ModuleType) -> list[str]:
    """Names that `namespace` exports: its `__all__`, or else what it defines or re-exports.

    A package only re-exports (`from ._x import X as X`), so everything without a leading
    underscore counts. A flat module also holds its imports (`jnp`, `Array`, ...), so only
    the objects defined in eqsnn count there.
    """
    if hasattr(namespace, "__all__"):
        return sorted(namespace.__all__)
    is_package = hasattr(namespace, "__path__")
    names = []
    for name, obj in vars(namespace).items():
        if name.startswith("_") or isinstance(obj, types.ModuleType):
            continue
        origin = getattr(obj, "__module__", None)
        if origin is None and not is_package:
            continue
        if origin is not None and not origin.startswith(namespace.__name__):
            continue
        names.append(name)
    return sorted(names)


PUBLIC = [(ns.__name__, name) for ns in _public_namespaces() for name in _public_names(ns)]


def test_public_names_found():
    # Guards the discovery above: if it returned nothing, the tests below would pass vacuously.
    assert ("eqsnn", "LIFParameters") in PUBLIC
    assert ("eqsnn", "Spikes") in PUBLIC
    assert all(name != "__version__" for _, name in PUBLIC)


def _attribute_docstring(module: types.ModuleType, name: str) -> str | None:
    """The string literal that follows `name = ...` in `module`, following re-exports."""
    body = ast.parse(inspect.getsource(module)).body
    for stmt, after in zip(body, [*body[1:], None], strict=True):
        if isinstance(stmt, ast.ImportFrom) and stmt.level > 0:
            for alias in stmt.names:
                if (alias.asname or alias.name) == name:
                    relative = "." * stmt.level + (stmt.module or "")
                    source = importlib.import_module(relative, module.__package__)
                    return _attribute_docstring(source, alias.name)
        if isinstance(stmt, ast.Assign):
            targets = stmt.targets
        elif isinstance(stmt, ast.AnnAssign):
            targets = [stmt.target]
        else:
            continue
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            is_doc = isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
            return after.value.value if is_doc and isinstance(after.value.value, str) else None
    return None


def _docstring(namespace: types.ModuleType, name: str) -> str | None:
    obj = getattr(namespace, name)
    if inspect.isclass(obj):
        # Not `obj.__doc__`: dataclasses (and so eqx.Module) invent one from the signature.
        return ast.get_docstring(ast.parse(textwrap.dedent(inspect.getsource(obj))).body[0])
    if callable(obj):
        return obj.__doc__
    return _attribute_docstring(namespace, name)


@pytest.mark.parametrize(("namespace", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_has_docstring(namespace, name):
    doc = _docstring(importlib.import_module(namespace), name)
    assert doc is not None and doc.strip(), f"{namespace}.{name} has no docstring."


def _api_directives() -> set[str]:
    pattern = re.compile(r"^:::\s+(\S+)", re.MULTILINE)
    return {m for page in API_DIR.glob("*.md") for m in pattern.findall(page.read_text())}


@pytest.mark.parametrize(("namespace", "name"), PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_public_name_is_on_an_api_page(namespace, name):
    assert f"{namespace}.{name}" in _api_directives(), (
        f"{namespace}.{name} is public but no page in docs/api/ has `::: {namespace}.{name}`."
    )


def _python_blocks(path: Path) -> list[str]:
    blocks = re.findall(r"^```python\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)
    assert blocks, f"{path} has no ```python blocks."
    return blocks


@pytest.mark.standard_promotion
@pytest.mark.parametrize("page", ["README.md", "docs/getting_started.md"])
def test_code_blocks_run(page, tmp_path, monkeypatch, capsys):
    # Run as a user would: JAX's default float32 and dtype promotion, in an empty directory.
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    with jax.enable_x64(False):
        for number, block in enumerate(_python_blocks(ROOT / page)):
            code = compile(block, f"{page} (python block {number})", "exec")
            exec(code, namespace)


def test_ci_runs_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert f'pip install -e ".[test]" && {README_TEST_COMMAND}' in readme
    assert re.search(rf"^{re.escape(README_TEST_COMMAND)}$", ci, re.MULTILINE)


def test_site_loads_no_script_from_the_network():
    # Maths renders offline: every script of mkdocs.yml ships with the docs (MathJax
    # included, with its licence), none is fetched from a CDN.
    config = (ROOT / "mkdocs.yml").read_text()
    section = re.search(r"^extra_javascript:\n((?:[ \t]+.*\n|\n)+)", config, re.MULTILINE)
    assert section is not None
    scripts = re.findall(r"^\s+-\s+(\S+)", section.group(1), re.MULTILINE)
    assert "javascripts/mathjax/tex-svg-full.js" in scripts
    for script in scripts:
        assert "://" not in script, script
        assert (ROOT / "docs" / script).is_file(), script
    assert (ROOT / "docs" / "javascripts" / "mathjax" / "LICENSE").is_file()
