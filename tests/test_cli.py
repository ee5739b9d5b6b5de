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


def test_intervene_scope_grouper_and_the_second_organism(tmp_path):
    args = ["intervene", "--model", "organism-attn", "--method", "ar", "--tau", "0", "--limit", "2",
            "--cache", str(tmp_path), "--scope", "answer", "--grouper", "tests.test_evaluation:coarse"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = [r for r in list_runs(tmp_path) if r.name.startswith("intervene-organism-attn-ar")]
    summary = modbias.open_run(run).attrs.get("summary") or modbias.store.read_manifest(run)["summary"]
    assert summary["scope"] == "answer" and summary["grouper"] == "tests.test_evaluation:coarse"
    assert summary["edits"]["ar_edited"] > 0 and "ar edited head rows" in result.output
    assert modbias.open_run(run).n_visual.values.tolist() == [64] * 6  # synth-attn, the model's own data
    bad = runner.invoke(app, ["intervene", "--grouper", "nocolon", "--cache", str(tmp_path)])
    assert bad.exit_code != 0 and "module:function" in bad.output


def test_mose_train_lora_baseline_from_the_base_state(tmp_path):
    out = tmp_path / "lora"
    result = runner.invoke(app, ["mose", "train", "--model", "organism-attn", "--lora-baseline", "--n-train", "8",
                                 "--epochs", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    mose = modbias.interventions.mose.load_mose(out)
    assert mose.config.experts == ("omni",) and mose.config.n_experts == 1 and not mose.config.router
    assert mose.metadata["training"]["base_model"]["name"] == "organism-attn-base"
    mose_size = modbias.interventions.mose.count_parameters(128, 4, 8, 2)
    assert abs(mose.trainable_parameters() - mose_size) / mose_size < 0.02
