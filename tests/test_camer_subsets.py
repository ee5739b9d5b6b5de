"""CA-MER subset construction (App. A, Stage 2) on a table of hand-made cases."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

import modbias
from modbias.cli import app
from modbias.data.camer import assign_subset, build_subsets
from modbias.data.sample import SampleError

runner = CliRunner()

# (visual, audio, multimodal) → (subset or discard reason, final label), worked out from Sec. 3's rule
CASES = [
    ("happy", "happy", "happy", "consistent", "happy"),
    ("happy", "sad", "happy", "video_aligned", "happy"),
    ("angry", "neutral", "neutral", "audio_aligned", "neutral"),
    ("worried", "Doubt", "doubt", "audio_aligned", "doubt"),     # aliases and case are normalised
    ("fear", "contempt", "surprise", "fully_inconsistent", None),
    ("sad", "sad", "neutral", "unimodal_majority", None),
    ("surprise", "angry", "Surprised", "video_aligned", "surprise"),
]


@pytest.mark.parametrize("visual,audio,multimodal,subset,label", [(*c,) for c in CASES])
def test_stage_two_voting(visual, audio, multimodal, subset, label):
    rows = build_subsets([{"id": "x", "visual_label": visual, "audio_label": audio, "multimodal_label": multimodal}])
    assert rows.counts == {subset: 1}
    assert [(r["subset"], r["label"]) for r in rows.rows] == ([(subset, label)] if label else [])


def test_assign_subset_covers_every_agreement_pattern():
    patterns = {assign_subset(v, a, m)[0] for v in "xy" for a in "xy" for m in "xy"} | \
        {assign_subset("x", "y", "z")[0]}
    assert patterns == {"consistent", "video_aligned", "audio_aligned", "unimodal_majority", "fully_inconsistent"}


def test_command_writes_a_camer_annotation_file_the_reader_loads(tmp_path):
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "visual_emotion", "audio_emotion", "multimodal_emotion", "subtitle"])
        writer.writerows([(f"c{i}", v, a, m, f"line {i}") for i, (v, a, m, *_) in enumerate(CASES)])
    result = runner.invoke(app, ["data", "camer-subsets", str(tmp_path / "labels.csv")])
    assert result.exit_code == 0, result.output
    assert "consistent 1" in result.output and "video_aligned 2" in result.output and \
        "audio_aligned 2" in result.output and "discarded 2" in result.output
    written = [json.loads(line) for line in (tmp_path / "annotations.jsonl").read_text().splitlines()]
    assert [(r["id"], r["subset"], r["label"]) for r in written] == [
        (f"c{i}", c[3], c[4]) for i, c in enumerate(CASES) if c[4]]
    bench = modbias.load_benchmark(f"camer:{tmp_path / 'annotations.jsonl'}")
    sample = bench[1]
    assert (sample.subset, sample.label, sample.visual_emotion, sample.audio_emotion, sample.subtitle) == \
        ("video_aligned", "happy", "happy", "sad", "line 1")


def test_bad_labels_name_the_sample_and_the_column(tmp_path):
    with pytest.raises(SampleError, match="'b'.*'audio_label'.*bored"):
        build_subsets([{"id": "a", "visual_label": "sad", "audio_label": "sad", "label": "sad"},
                       {"id": "b", "visual_label": "sad", "audio_label": "bored", "label": "sad"}])
    with pytest.raises(SampleError, match="'a'.*multimodal_label.*no multimodal label"):
        build_subsets([{"id": "a", "visual_label": "sad", "audio_label": "sad"}])
    (tmp_path / "labels.jsonl").write_text(json.dumps({"id": "a", "visual_label": "x"}) + "\n")
    result = runner.invoke(app, ["data", "camer-subsets", str(tmp_path / "labels.jsonl")])
    assert result.exit_code != 0 and "unknown label 'x'" in result.output


def test_voting_rule_properties():
    from hypothesis import given, strategies as st

    from modbias.core.emotions import CLASSES

    @given(st.sampled_from(CLASSES), st.sampled_from(CLASSES), st.sampled_from(CLASSES))
    def check(v, a, m):
        subset, label = assign_subset(v, a, m)
        votes = [v, a, m]
        majority = max(set(votes), key=votes.count) if len(set(votes)) < 3 else None
        assert (subset == "fully_inconsistent") == (majority is None)
        if label is not None:  # kept: the multimodal label is the majority, and the subset names who agrees
            assert label == m == majority
            assert subset == {(True, True): "consistent", (True, False): "video_aligned",
                              (False, True): "audio_aligned"}[(v == m, a == m)]
        else:
            assert subset in ("fully_inconsistent", "unimodal_majority") and (majority is None or majority != m)

    check()
