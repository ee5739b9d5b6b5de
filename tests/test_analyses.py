"""The figure scripts: the numbers in each figure and table equal those computed here from the stores."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analyses import figures
from analyses.synthetic_runs import random_run, run_config, write_run
from modbias.core.evaluation import deltas, subset_metrics
from modbias.runs.store import open_run
from modbias_app.runs import StoreFieldError, clear_caches, scan

pytestmark = pytest.mark.filterwarnings("ignore:Object at modbias.json is not recognized")
ROOT = Path(__file__).resolve().parents[1]
L, H = 8, 4
needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None,
                                    reason="kaleido renders PNGs with Chromium (apt-get install -y chromium)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A baseline with rows, an AR τ sweep, a duplicate_audio sweep, and a trace without rows or summary."""
    root = tmp_path_factory.mktemp("cache")
    shape = dict(n_layers=L, n_heads=H)
    base = write_run(root / "baseline", random_run(30, **shape, rows=15, accuracy={"video_aligned": 0.2}, seed=1),
                     run_config(**shape), created="2025-01-01T00:00:00")
    for i, tau in enumerate((0.0, 1.0, 3.0)):
        write_run(root / f"ar-{tau:g}", random_run(30, **shape, seed=10 + i),
                  run_config(interventions=[{"name": "ar", "tau": tau, "layers": None}], **shape),
                  created=f"2025-01-0{2 + i}T00:00:00", baseline=base)
    for i, k in enumerate((4, 16)):
        write_run(root / f"dup-{k}", random_run(30, **shape, n_audio=k, seed=20 + i),
                  run_config(interventions=[{"name": "duplicate_audio", "k": k}], **shape),
                  created=f"2025-01-1{i}T00:00:00", baseline=base)
    write_run(root / "trace", random_run(12, **shape, seed=5), run_config("trace", **shape),
              created="2024-12-01T00:00:00", summary=False)
    clear_caches()
    return root


def test_fig3a_middle_layer_uap_of_failures(cache):
    path = str(cache / "baseline")
    data = figures.fig3a_data(path)
    ds = open_run(path).sel(at="first")
    middle = list(range(2, 6))  # the middle half of 8 layers
    assert list(data["middle"]) == middle
    pick = (ds.subset.values == "video_aligned") & ~ds.correct.values
    group = data["groups"][("video_aligned", "incorrect")]
    assert group["n"] == pick.sum() > 0
    assert group["UAP_v"] == pytest.approx(ds.UAP_v.values[pick][:, middle].mean())
    assert group["UAP_a"] == pytest.approx(ds.UAP_a.values[pick][:, middle].mean())
    np.testing.assert_allclose(data["failures"]["UAP_a"], ds.UAP_a.values[pick].mean(0), rtol=1e-6)

    fig = figures.fig3a(path)
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert bars["UAP_v"].y[0] == pytest.approx(group["UAP_v"]) and bars["UAP_v"].x[0].startswith("video_aligned incorrect")
    assert path in fig.layout.title.text and "model random" in fig.layout.title.text


def test_fig3b_token_attention_of_failures(cache):
    path = str(cache / "baseline")
    data = figures.fig3b_data(path)
    ds = open_run(path).sel(at="first")
    pick = (ds.subset.values == "video_aligned") & ~ds.correct.values & (ds.length.values > 0)
    assert data["n"] == pick.sum() > 0
    rows = ds.rows.values[pick].astype(np.float64)  # stored in float16
    expected = rows[:, 2:6].mean(axis=(1, 2))[:, : int(ds.length.values[pick].max())].mean(0)
    np.testing.assert_allclose(data["profile"], expected, rtol=1e-6)

    fig = figures.fig3b(path)
    visual = next(t for t in fig.data if t.name == "visual")
    first = np.flatnonzero(pick)[0]
    assert list(visual.x) == np.flatnonzero(ds.visual_mask.values[first]).tolist()
    assert fig.layout.yaxis.type == "log" and path in fig.layout.title.text


def test_fig3b_names_a_run_without_rows(cache):
    with pytest.raises(StoreFieldError, match=r"trace has no 'rows' variable.*--save-rows"):
        figures.fig3b(str(cache / "trace"))


def _avg(path):
    return subset_metrics(open_run(path))


def test_fig3c_duplication_sweep(cache):
    fig = figures.fig3c(scan(cache))
    video = next(t for t in fig.data if t.name.startswith("video_aligned"))
    assert list(video.x) == [1, 4, 16]
    expected = [_avg(cache / name)["video_aligned"]["avg"] for name in ("baseline", "dup-4", "dup-16")]
    np.testing.assert_allclose(video.y, expected)
    assert "dup-4" in fig.layout.title.text and "baseline" in fig.layout.title.text


def test_table7_values_and_deltas(cache):
    runs = scan(cache)
    chosen = [r for r in runs if r.name in ("baseline", "ar-1")]
    text, fig = figures.table7(chosen, runs)
    lines = text.splitlines()
    assert len(lines) == 2 + 2 and lines[2].startswith("| baseline |") and lines[3].startswith("| ar-1 |")
    run, base = _avg(cache / "ar-1"), _avg(cache / "baseline")
    delta = deltas(run, base)
    for subset in ("video_aligned", "audio_aligned", "consistent", "overall"):
        assert f"{run[subset]['avg']:.2f} ({delta[subset]['avg']:+.2f}" in lines[3]
        assert f"{base[subset]['avg']:.2f}" in lines[2]
    ar_bars = next(t for t in fig.data if t.name.startswith("ar-1"))
    np.testing.assert_allclose(ar_bars.y, [run[s]["avg"] for s in ar_bars.x])


def test_table8_tau_sweep(cache):
    text, fig = figures.table8(scan(cache))
    rows = [line for line in text.splitlines()[2:]]
    assert [row.split("|")[2].strip() for row in rows] == ["0", "1", "3"]
    for row, name in zip(rows, ("ar-0", "ar-1", "ar-3")):
        cells = [c.strip() for c in row.split("|")[3:7]]
        metrics = _avg(cache / name)
        assert cells == [f"{metrics[s]['avg']:.2f}" for s in ("video_aligned", "audio_aligned", "consistent", "overall")]
        assert row.rstrip(" |").endswith(name)
    assert "ar-0" in fig.layout.title.text


def test_table8_without_ar_runs_says_so(cache):
    with pytest.raises(StoreFieldError, match="no run applies AR"):
        figures.table8([r for r in scan(cache) if r.name == "baseline"])


@needs_chromium
def test_scripts_write_html_and_png(cache, tmp_path):
    """The command lines, as documented: default run = newest suitable one; outputs name their runs."""
    from analyses import fig3a

    fig3a.main(["--cache", str(cache), "--out", str(tmp_path)])
    png = (tmp_path / "fig3a.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    html = (tmp_path / "fig3a.html").read_text()
    assert "baseline (model random, data random" in html and "trace (model" not in html  # newest baseline
    result = subprocess.run([sys.executable, str(ROOT / "analyses" / "table7.py"), "--cache", str(cache),
                             "--out", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    markdown = (tmp_path / "table7.md").read_text()
    assert markdown.count("\n| ") == 1 + 6  # header + the five intervene runs and their baseline
    assert "| dup-16 | random | duplicate_audio(k=16) | baseline |" in result.stdout
    assert (tmp_path / "table7.png").exists() and (tmp_path / "table7.html").exists()


def test_scripts_write_under_cache_unless_told_docs(cache, tmp_path):
    """A plain run never touches the tracked docs/figures/; --docs names it and only it."""
    parse = figures.single_run_parser("")
    assert parse.parse_args([]).out == Path("cache/figures")
    assert parse.parse_args(["--docs"]).out == ROOT / "docs" / "figures"
    with pytest.raises(SystemExit):  # one destination
        parse.parse_args(["--docs", "--out", str(tmp_path)])
    tracked = {p: p.stat().st_mtime_ns for p in (ROOT / "docs" / "figures").iterdir()}
    result = subprocess.run([sys.executable, str(ROOT / "analyses" / "table8.py"), "--cache", str(cache)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "cache" / "figures" / "table8.md").exists()
    assert {p: p.stat().st_mtime_ns for p in (ROOT / "docs" / "figures").iterdir()} == tracked


def test_table6_trains_from_the_base_state_and_scores_each_row(tmp_path, capsys):
    """A tiny Table 6: the LoRA baseline and MoSE without router, trained a few steps; rows equal the runs."""
    from analyses import table6

    table6.main(["--variants", "lora,no-router", "--n-train", "16", "--epochs", "1", "--limit", "2",
                 "--cache", str(tmp_path), "--out", str(tmp_path / "figures")])
    out = capsys.readouterr().out
    text = (tmp_path / "figures" / "table6.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| row")]
    assert [line.split(" | ")[0] for line in lines] == [
        "| base state, no fine-tuning", "| full fine-tuning (shipped organism-attn)",
        "| LoRA baseline (matched parameters)", "| MoSE w/o router"]
    ds = open_run(next(p for p in tmp_path.iterdir() if "checkpointlora" in p.name))
    video = subset_metrics(ds)["video_aligned"]["avg"]
    assert f"| {video:.1f} |" in lines[2] and "48,640" in lines[2] and "39,936" in lines[3]
    assert "python analyses/table6.py" in out
