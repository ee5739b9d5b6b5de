"""analyses/tables.py: the paper's tables from stored runs, every cell traceable to its run."""

from __future__ import annotations

import json

import pytest

import modbias
from analyses import tables
from modbias.runs.store import read_manifest
from modbias.testing import make_tiny_checkpoint, write_dfew_benchmark, write_mer2023_benchmark


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Real runs: the organism on the synthetic subsets (base, PAI, AR at two τ, MoSE, MoSE + AR), tiny
    features / LLaVA checkpoints on EMER, MER2023 and DFEW fixtures, and a CHAIR run."""
    from modbias.data.coco import read_coco
    from modbias.runs.captioning import caption_chair
    from tests.test_chair import write_coco

    root = tmp_path_factory.mktemp("tables")
    cache = root / "cache"
    organism = modbias.load_model("organism")
    synth = modbias.load_benchmark("synth", subset="all", limit=2)
    for method, params in (("pai", {"alpha": 0.5}), ("ar", {"tau": 0.0}), ("ar", {"tau": 1.0}), ("mose", {}),
                           ("mose+ar", {"tau": 1.0})):
        modbias.intervene(organism, synth, method, cache_dir=cache, max_new_tokens=8, **params)
    features = modbias.load_model(f"features:{make_tiny_checkpoint('features', root / 'features')}")
    emer_root = write_mer2023_benchmark(root / "emer", features.path, reasons=["so sad", "happy", "worried"])
    emer = modbias.load_benchmark(f"emer:{emer_root}")
    modbias.intervene(features, emer, "ar", cache_dir=cache, max_new_tokens=6, tau=0.0)
    mer = modbias.load_benchmark(f"mer2023:{write_mer2023_benchmark(root / 'mer', features.path)}")
    modbias.trace(features, mer, out=cache / "trace-mer", max_new_tokens=6)
    llava = modbias.load_model(f"llava:{make_tiny_checkpoint('llava', root / 'llava')}")
    modbias.trace(llava, modbias.load_benchmark(f"dfew:{write_dfew_benchmark(root / 'dfew')}"),
                  out=cache / "trace-dfew", max_new_tokens=6)
    caption_chair(llava, read_coco(write_coco(root / "coco"), limit=2), out=cache / "chair-none", max_new_tokens=6)
    return cache


def _stored(path, *keys):
    value = read_manifest(path)["summary"]["evaluation"]["metrics"]
    for key in keys:
        value = value[key]
    return value


def test_every_cell_is_the_stored_value_of_the_run_it_names(cache, tmp_path):
    cost = tmp_path / "table14.json"
    cost.write_text(json.dumps({"command": "python analyses/table14.py", "model": "organism", "rows": [
        {"configuration": "base", "flops": 6.0e8, "ms": 50.0}, {"configuration": "+ AR", "flops": 6.1e8, "ms": 60.0}]}))
    built = {t.name: t for t in tables.paper_tables(tables.scan(cache), cost)}
    assert all(built[name].rows for name in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 7", "Table 8",
                                             "Table 13", "Table 14"))
    checked = 0
    for table in built.values():
        for _, cells, _ in table.rows:
            for cell in cells:
                if cell.value is None or table.name == "Table 14":
                    continue
                path, keys = cell.source.split(" · ")
                assert cell.value == _stored(path, *keys.split("."))
                checked += 1
    assert checked > 60
    assert [c.value for c in built["Table 14"].rows[1][1]] == [0.61, 60.0]
    assert len(built["Table 1"].rows) == 6  # the five organism runs and their baseline
    assert [len(built[n].rows) for n in ("Table 2", "Table 3", "Table 4", "Table 13")] == [2, 1, 1, 1]


def test_table7_arrows_compare_with_the_design_alone_and_table8_sweeps_tau(cache):
    built = {t.name: t for t in tables.paper_tables(tables.scan(cache))}
    rows = built["Table 7"].rows
    labels = [label for label, _, _ in rows]
    mose = next(label for label in labels if label.startswith("organism + mose"))
    assert labels[:3] == ["organism", "+ pai(alpha=0.5, layers=2:, gamma=1.1, plausibility=0.1)",
                          "+ ar(tau=1, layers=all, competitor=audio, floor=1e-06)"]
    assert labels[labels.index(mose) + 1].startswith("+ ar(tau=1")
    alone = None
    for label, cells, _ in rows:
        if not label.startswith("+ "):
            alone = cells
            assert all(c.delta is None for c in cells)
            continue
        for cell, ref in zip(cells, alone):
            if cell.value is not None and ref.value is not None:
                assert cell.delta == pytest.approx(cell.value - ref.value)
                assert cell.text().endswith("(↑)" if cell.delta > 0 else "(↓)" if cell.delta < 0 else "(=)")
    taus = [label for label, _, _ in built["Table 8"].rows]
    assert taus == ["organism · τ=0", "organism · τ=1", f"{mose} · τ=1"]


def test_the_script_writes_markdown_and_html_with_cell_sources(cache, tmp_path, capsys):
    tables.main(["--cache", str(cache), "--out", str(tmp_path), "--cost", str(tmp_path / "none.json")])
    markdown = (tmp_path / "tables.md").read_text()
    assert "### Table 1:" in markdown and "### Table 14:" in markdown and "no run for this table" in markdown
    page = (tmp_path / "tables.html").read_text()
    assert f'title="{cache / "trace-dfew"} · uar"' in page
    assert "trace-mer" in capsys.readouterr().out
