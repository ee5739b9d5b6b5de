"""The notebooks in notebooks/ run top to bottom (nbclient, a fresh kernel each) and show what they claim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, cache: Path, monkeypatch) -> list[str]:
    """Run ``notebooks/<name>.ipynb``; return every code cell's text output (streams and plain results)."""
    monkeypatch.setenv("MODBIAS_NOTEBOOK_CACHE", str(cache))  # the kernel inherits the environment
    monkeypatch.setenv("MODBIAS_NOTEBOOK_LIMIT", "8")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    return ["".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in c.outputs) for c in code]


def test_organism_analysis(tmp_path, monkeypatch):
    outputs = execute("organism_analysis", tmp_path, monkeypatch)
    visual, audio = map(float, re.search(r"per visual token (\S+), per audio token (\S+)", "".join(outputs)).groups())
    assert audio > 10 * visual  # Fig. 3b: the one audio token outweighs each visual token
    ar_table = outputs[-1]
    assert all(s in ar_table for s in ("video_aligned", "audio_aligned", "consistent", "overall", "Correct"))
    assert (tmp_path / "organism-trace" / "modbias.json").exists()


def test_bring_your_own_model(tmp_path, monkeypatch):
    outputs = execute("bring_your_own_model", tmp_path, monkeypatch)
    assert "6 of 6 samples ok" in "".join(outputs)
    assert "UAP_v" in outputs[2] and "Correct" in outputs[3]
    assert any(p.name.startswith("intervene-features-") and "-ar-tau" in p.name for p in tmp_path.iterdir())
