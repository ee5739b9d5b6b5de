"""The evaluation each benchmark calls for (Tables 1-4), stored with the run and re-scored from the store."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import modbias
from modbias.runs.summaries import (EvaluationError, evaluate_run, metric_deltas, reference_emotions,
                                       run_summary)
from modbias.cli import app
from modbias.runs.store import read_manifest
from modbias.testing import (feature_streams, make_tiny_checkpoint, write_camer_benchmark, write_dfew_benchmark,
                             write_mer2023_benchmark)

runner = CliRunner()


def _run(reader, labels, predictions, texts=None, references=None, subsets=None):
    n = len(labels)
    texts = texts if texts is not None else [f"so feels {p} ." if p else "no idea" for p in predictions]
    coords = {"sample": [f"s{i}" for i in range(n)], "subset": ("sample", subsets or ["consistent"] * n),
              "label": ("sample", list(labels)), "prediction": ("sample", list(predictions)),
              "correct": ("sample", [p == t for p, t in zip(predictions, labels)]), "text": ("sample", texts)}
    if references is not None:
        coords["reference"] = ("sample", references)
    return xr.Dataset(coords=coords, attrs={"config": {"data": {"name": reader, "reader": reader}}})


def test_mer2023_weighted_f1_by_hand():
    # happy: tp 2, support 3, predicted 2 → P 1, R 2/3, F1 0.8; sad: tp 1, support 1, predicted 2 → F1 2/3;
    # worry: tp 0, support 1, predicted 1 ('' predicted once, counts as wrong) → F1 0.
    ds = _run("mer2023", ["happy", "happy", "happy", "sad", "worry"], ["happy", "happy", "sad", "sad", ""])
    metrics = evaluate_run(ds)["metrics"]
    assert metrics["weighted_f1"] == pytest.approx((3 * 0.8 + 1 * 2 / 3 + 0) / 5)
    assert evaluate_run(ds)["table"] == "Table 3"


def test_dfew_per_class_recall_uar_war_by_hand():
    # DFEW's disgust is stored as contempt; a 'doubt' answer is outside DFEW's classes and counts as wrong.
    ds = _run("dfew", ["happy", "happy", "contempt", "fear", "fear", "sad"],
              ["happy", "sad", "contempt", "doubt", "fear", "sad"])
    metrics = evaluate_run(ds)["metrics"]
    assert metrics["recall"] == {"happy": 50.0, "sad": 100.0, "neutral": None, "angry": None, "surprise": None,
                                 "disgust": 100.0, "fear": 50.0}
    assert metrics["uar"] == pytest.approx((50 + 100 + 100 + 50) / 4)
    assert metrics["war"] == pytest.approx(4 / 6 * 100)


def test_emer_scores_against_the_reference_reasonings_emotions():
    references = ["a frown and a shaky voice: he is worried, maybe sad", "she smiles, clearly happy",
                  "nothing emotional here at all"]
    texts = ["he looks anxious and sad", "so feels angry .", "so feels happy ."]
    ds = _run("emer", ["worry", "happy", "neutral"], ["sad", "angry", "happy"], texts=texts, references=references)
    assert reference_emotions(references[0]) == ["worried", "sad"]
    metrics = evaluate_run(ds)["metrics"]
    # sample 1: Y {worry, sad}, Ŷ {worry, sad} → 1, 1; sample 2: Y {happy}, Ŷ {angry} → 0, 0; sample 3: Y {} → 0, 0
    assert metrics["acc"] == pytest.approx(100 / 3) and metrics["rec"] == pytest.approx(100 / 3)
    assert metrics["no_reference_emotion"] == 1
    with pytest.raises(EvaluationError, match="reference"):
        evaluate_run(ds.drop_vars("reference"))


def test_deltas_and_options_are_checked():
    run = {"uar": 50.0, "recall": {"happy": 40.0, "sad": None}, "n": 3}
    assert metric_deltas(run, {"uar": 45.0, "recall": {"happy": 50.0, "sad": 10.0}, "n": 9}) == \
        {"uar": 5.0, "recall": {"happy": -10.0}}
    ds = _run("mer2023", ["happy"], ["happy"])
    with pytest.raises(EvaluationError, match="conclusion's label alone"):
        evaluate_run(ds, grouper=lambda w: w)
    with pytest.raises(EvaluationError, match="no evaluation for benchmark 'imagenet'"):
        evaluate_run(ds, "imagenet")
    summary = run_summary(ds, "cache/base", run_summary(_run("mer2023", ["happy"], ["sad"])))
    assert summary["evaluation"]["deltas"] == {"weighted_f1": 1.0}


def test_a_grouper_changes_the_set_level_scores():
    ds = _run("camer", ["happy", "sad"], ["happy", "sad"], texts=["so feels glad .", "so feels gloomy ."])
    assert evaluate_run(ds)["metrics"]["overall"]["acc"] == 100.0
    knows_only_happy = evaluate_run(ds, grouper=lambda w: "happy" if w in ("glad", "happy") else None)
    assert knows_only_happy["metrics"]["overall"]["acc"] == 50.0
    assert knows_only_happy["options"]["grouper"].endswith("<lambda>")


# -- acceptance: a trace on each reader's tiny fixture stores and prints its table's metric ---------------
@pytest.fixture(scope="module")
def features_ckpt(tmp_path_factory):
    return make_tiny_checkpoint("features", tmp_path_factory.mktemp("features"))


def _fixture(kind, root, ckpt):
    if kind == "camer":
        return "features", write_camer_benchmark(root, n=3, media=False, features=feature_streams(ckpt))
    if kind == "mer2023":
        return "features", write_mer2023_benchmark(root, ckpt)
    if kind == "emer":
        return "features", write_mer2023_benchmark(root, ckpt, reasons=["he sounds worried", "a happy grin",
                                                                          "sad and tired eyes"])
    return "llava", write_dfew_benchmark(root)


HEADLINES = {"camer": ("Acc", "acc", ["overall", "acc"]), "emer": ("Acc", "acc", ["acc"]),
             "mer2023": ("F1 Score", "weighted_f1", ["weighted_f1"]), "dfew": ("UAR", "uar", ["uar"])}


@pytest.mark.parametrize("kind", ["camer", "emer", "mer2023", "dfew"])
def test_trace_stores_and_prints_its_tables_metric_and_evaluate_agrees(kind, tmp_path, features_ckpt):
    family, root = _fixture(kind, tmp_path / kind, features_ckpt)
    ckpt = features_ckpt if family == "features" else make_tiny_checkpoint("llava", tmp_path / "llava")
    out = tmp_path / "run"
    result = runner.invoke(app, ["trace", "--model", f"{family}:{ckpt}", "--data", f"{kind}:{root}",
                                 "--out", str(out), "--max-new-tokens", "6"])
    assert result.exit_code == 0, result.output
    evaluation = read_manifest(out)["summary"]["evaluation"]
    header, _, keys = HEADLINES[kind]
    assert evaluation["benchmark"] == kind and header in result.output
    value = evaluation["metrics"]
    for key in keys:
        value = value[key]
    # independent computation from the stored labels / predictions / texts
    ds = modbias.open_run(out)
    labels, predictions = ds.label.values.astype(str), ds.prediction.values.astype(str)
    if kind == "mer2023":
        expected = 0.0
        for c in set(labels):
            tp = np.sum((labels == c) & (predictions == c))
            p = tp / max(np.sum(predictions == c), 1)
            r = tp / np.sum(labels == c)
            expected += np.sum(labels == c) / len(labels) * (2 * p * r / (p + r) if p + r else 0)
        assert value == pytest.approx(expected)
    elif kind == "dfew":
        assert value == pytest.approx(np.mean([np.mean(predictions[labels == c] == c) for c in set(labels)]) * 100)
    else:
        assert 0 <= value <= 100
    if kind == "emer":
        assert ds.reference.values.tolist()[0] == "he sounds worried"
    assert f"{value:.4f}" in result.output if kind == "mer2023" else f"{value:.2f}" in result.output
    again = runner.invoke(app, ["evaluate", str(out)])
    assert again.exit_code == 0, again.output
    assert evaluate_run(ds) == {**evaluation, "deltas": None}
    assert (f"{value:.4f}" if kind == "mer2023" else f"{value:.2f}") in again.output


def test_intervene_stores_the_evaluation_with_deltas_and_evaluate_rescores(tmp_path, features_ckpt):
    root = write_mer2023_benchmark(tmp_path / "mer", features_ckpt)
    result = runner.invoke(app, ["intervene", "--model", f"features:{features_ckpt}", "--data", f"mer2023:{root}",
                                 "--method", "ar", "--tau", "0", "--cache", str(tmp_path / "cache"),
                                 "--max-new-tokens", "6"])
    assert result.exit_code == 0, result.output
    run = next(p for p in (tmp_path / "cache").iterdir() if p.name.startswith("intervene-"))
    summary = read_manifest(run)["summary"]
    base = read_manifest(summary["baseline"])["summary"]["evaluation"]["metrics"]["weighted_f1"]
    f1 = summary["evaluation"]["metrics"]["weighted_f1"]
    assert summary["evaluation"]["deltas"]["weighted_f1"] == pytest.approx(f1 - base)
    assert "F1 Score" in result.output
    rescored = runner.invoke(app, ["evaluate", str(run), "--as", "camer", "--write"])
    assert rescored.exit_code == 0, rescored.output
    assert read_manifest(run)["summary"]["evaluation"]["benchmark"] == "camer"
    bad = runner.invoke(app, ["evaluate", str(run), "--grouper", "nowhere:nothing"])
    assert bad.exit_code != 0 and "cannot be loaded" in bad.output
    json.dumps(summary)  # the stored summary stays plain JSON


def test_evaluate_finds_the_baseline_beside_the_run_from_another_directory(tmp_path, features_ckpt, monkeypatch):
    root = write_mer2023_benchmark(tmp_path / "mer", features_ckpt)
    monkeypatch.chdir(tmp_path)  # the summary names the baseline relative to here: cache/baseline-...
    result = runner.invoke(app, ["intervene", "--model", f"features:{features_ckpt}", "--data", f"mer2023:{root}",
                                 "--method", "ar", "--tau", "0", "--max-new-tokens", "4"])
    assert result.exit_code == 0, result.output
    run = next(p for p in (tmp_path / "cache").iterdir() if p.name.startswith("intervene-"))
    monkeypatch.chdir(tmp_path / "mer")
    again = runner.invoke(app, ["evaluate", str(run)])
    delta = read_manifest(run)["summary"]["evaluation"]["deltas"]["weighted_f1"]
    assert again.exit_code == 0 and f"({delta:+.4f})" in again.output
