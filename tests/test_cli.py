"""The command line, end to end on the shipped organism, and its one error path."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

import modbias
from modbias.cli import app
from modbias.runs.store import list_runs

runner = CliRunner()


def test_trace_command_writes_a_store_and_prints_the_summary(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["trace", "--subset", "video_aligned", "--limit", "4", "--out", str(out)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    ds = modbias.open_run(out)
    assert ds.sizes["sample"] == 4 and set(ds.subset.values) == {"video_aligned"}
    header = next(line for line in result.output.splitlines() if "UAP_v" in line)
    assert all(name in header for name in ("Correct", "UAP_v", "UAP_a", " c ", "biased", "no emotion"))
    row = next(line for line in result.output.splitlines() if "video_aligned" in line and "│" in line)
    correct = float(ds.correct.values.mean()) * 100
    middle = ds.isel(layer=[1, 2]).sel(at="first")  # the organism's 4 layers: middle 1-2
    cells = [c.strip() for c in row.split("│") if c.strip()]
    assert cells[2] == f"{correct:.1f}" and cells[3] == f"{float(middle.UAP_v.mean()):.3f}"
    assert cells[5] == f"{float(np.nanmedian(middle.c.values)):.3f}"


def test_intervene_sweep_writes_one_run_per_value(tmp_path):
    result = runner.invoke(app, ["intervene", "--method", "ar", "--tau", "0,2", "--limit", "2", "--cache", str(tmp_path)])
    assert result.exit_code == 0, result.output
    runs = list_runs(tmp_path)
    taus = sorted(modbias.open_run(r).attrs["config"]["interventions"][0]["tau"] for r in runs if "intervene-" in r.name)
    assert taus == [0.0, 2.0]
    assert sum(r.name.startswith("baseline-") for r in runs) == 1
    assert "video_aligned" in result.output and "Avg" in result.output


def modbias_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m modbias ARGS`` in a fresh interpreter that then reports which heavy modules it imported."""
    code = ("import runpy, sys\n"
            "try:\n    runpy.run_module('modbias', run_name='__main__')\n"
            "finally:\n    print('imported:', *sorted(m for m in ('torch', 'transformers', 'xarray') "
            "if m in sys.modules), file=sys.stdout)")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, **(env or {})})


@pytest.mark.parametrize("args, message", [
    (["trace", "--model", "nosuch:/x"], "unknown model family 'nosuch'"),
    (["trace", "--tau", "abc"], "Invalid value for '--tau'"),
    (["trace", "--data", "/missing"], "benchmark path /missing does not exist"),
    (["trace", "--model", "features:/no/such/checkpoint"], "checkpoint path /no/such/checkpoint"),
    (["trace", "--subset", "video"], "'video' is not one of video_aligned"),
    (["intervene", "--tau", "1,x"], "'1,x' is not a float"),
    (["trace", "--limit", "0"], "--limit: 0 is below 1"),
    (["nosuchcommand"], "No such command"),
])
def test_user_errors_are_one_line_before_anything_heavy_loads(args, message):
    result = modbias_cli(*args)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip().endswith("imported:"), result.stdout  # no torch, transformers, xarray


def test_help_imports_nothing_heavy():
    for args in (["--help"], ["trace", "--help"]):
        result = modbias_cli(*args)
        assert result.returncode == 0 and "Usage" in result.stdout
        assert result.stdout.strip().endswith("imported:"), result.stdout[-200:]


def test_debug_shows_the_traceback():
    for env, args in (({}, ["--debug", "trace", "--model", "nosuch"]),
                      ({"MODBIAS_DEBUG": "1"}, ["trace", "--model", "nosuch"])):
        result = modbias_cli(*args, env=env)
        assert result.returncode != 0 and "Traceback" in result.stderr and "unknown model family" in result.stderr


def test_errors_after_torch_loads_are_one_line_too(tmp_path, capsys):
    """A method or parameter mistake is found once the intervention registry (torch) is imported,
    still before the model loads and before anything is written."""
    from modbias.cli.errors import main

    for args, message in ((["intervene", "--method", "ar", "--alpha", "1"], "not taken by ['ar']"),
                          (["intervene", "--method", "nosuch"], "unknown method 'nosuch'"),
                          (["intervene", "--device", "nosuch"], "'nosuch' is not a torch device")):
        with pytest.raises(SystemExit) as exit_:
            main([*args, "--cache", str(tmp_path), "--limit", "1"])
        err = capsys.readouterr().err
        assert exit_.value.code in (1, 2) and err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not list(tmp_path.iterdir())


def test_out_that_is_not_a_store_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    result = modbias_cli("trace", "--out", str(tmp_path), "--limit", "1")
    assert result.returncode == 1 and "is not a modbias run store" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_a_missing_optional_package_names_its_extra():
    from modbias.cli.errors import error_message

    assert error_message(ModuleNotFoundError("No module named 'av'", name="av")) == (
        "this command needs the package 'av', which is not installed: pip install -e \".[media]\"")
    assert 'pip install -e ".[test]"' in error_message(ModuleNotFoundError("x", name="nbclient.client"))
    assert "pip install foo" in error_message(ModuleNotFoundError("x", name="foo"))


def test_a_data_problem_is_one_line_naming_sample_and_field(tmp_path):
    from modbias.testing import write_camer_benchmark

    path = write_camer_benchmark(tmp_path / "camer", n=3, media=False, features={"eva": ("visual", 2, 32)})
    lines = (path / "annotations.jsonl").read_text().splitlines()
    (path / "annotations.jsonl").write_text("\n".join([lines[0], "[1, 2]", *lines[1:]]) + "\n")
    result = modbias_cli("trace", "--data", str(path))
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: sample '<line 2>', field 'line': line 2 is a JSON list, not an object")
    assert result.stdout.strip().endswith("imported:")


def test_a_store_of_another_configuration_is_one_line(tmp_path):
    from analyses.synthetic_runs import random_run, run_config, write_run

    store = write_run(tmp_path / "other", random_run(4, seed=1), run_config("trace"), summary=False)
    result = modbias_cli("trace", "--out", str(store), "--limit", "1")
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "holds another trace run; it differs in" in result.stderr and "Traceback" not in result.stderr
    assert "parameters.at ('both' → 'first')" in result.stderr and "model.family ('random' → 'organism')" in result.stderr


def test_intervene_scope_grouper_and_the_second_organism(tmp_path):
    args = ["intervene", "--model", "organism-attn", "--method", "ar", "--tau", "0", "--limit", "2",
            "--cache", str(tmp_path), "--scope", "answer", "--grouper", "tests.test_evaluation:coarse"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    (run,) = [r for r in list_runs(tmp_path) if r.name.startswith("intervene-organism-attn-synth-ar-tau0.0")]
    summary = modbias.open_run(run).attrs.get("summary") or modbias.runs.store.read_manifest(run)["summary"]
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
