"""The how-to "Write your own neuron model" runs: its Python blocks, in order, as a user
would (JAX's default float32 and dtype promotion, in an empty directory). The blocks
define a model (an LIF neuron with a fast and a slow synapse), check its spike times
against a computation by hand and its EventProp gradients against autodiff's, and assert
both.

Runtime: two compilations (the layer's value and gradient with each gradient method).
"""

import re
from pathlib import Path

import jax
import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "howto" / "neuron_model.md"


def _python_blocks(path: Path) -> list[str]:
    # As tests/test_docs.py (not imported from there: it imports every sub-package).
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), re.MULTILINE | re.DOTALL)


@pytest.mark.standard_promotion
def test_neuron_model_howto_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    blocks = _python_blocks(PAGE)
    assert len(blocks) == 4, "the class, its use, and the two checks"
    with jax.enable_x64(False):
        for number, block in enumerate(blocks):
            exec(compile(block, f"{PAGE.name} (python block {number})", "exec"), namespace)
    # The checks ran (each block ends with its assertions).
    assert {"DualSynapseParameters", "spike_times_by_hand", "grads_ep"} <= set(namespace)
