"""The command line, end to end on the shipped organism."""

from __future__ import annotations

from typer.testing import CliRunner

import modbias
from modbias.cli import app
from modbias.store import list_runs

runner = CliRunner()


def test_trace_command_writes_a_store_and_prints_the_summary(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["trace", "--subset", "video_aligned", "--limit", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ds = modbias.open_run(out)
    assert ds.sizes["sample"] == 4 and set(ds.subset.values) == {"video_aligned"}
    assert "video_aligned" in result.output and "UAP_a" in result.output
    accuracy = float(ds.correct.values.mean())
    assert f"{accuracy:.3f}" in result.output


def test_intervene_sweep_writes_one_run_per_value(tmp_path):
    result = runner.invoke(app, ["intervene", "--method", "ar", "--tau", "0,2", "--limit", "2", "--cache", str(tmp_path)])
    assert result.exit_code == 0, result.output
    runs = list_runs(tmp_path)
    taus = sorted(modbias.open_run(r).attrs["config"]["interventions"][0]["tau"] for r in runs if "intervene-" in r.name)
    assert taus == [0.0, 2.0]
    assert sum(r.name.startswith("baseline-") for r in runs) == 1
    assert "video_aligned" in result.output and "Avg" in result.output


def test_bad_arguments_give_clear_errors(tmp_path):
    result = runner.invoke(app, ["trace", "--subset", "video", "--out", str(tmp_path / "x")])
    assert result.exit_code != 0 and "unknown subset 'video'" in str(result.exception)
    result = runner.invoke(app, ["intervene", "--method", "ar", "--alpha", "1", "--cache", str(tmp_path)])
    assert result.exit_code != 0 and "not taken by ['ar']" in str(result.exception)
