"""Modality Importance: the paper's rule by hand, ablations, runs on the organism, resume, CLI."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

import modbias
from modbias.runs.importance import (CONDITIONS, NeutralFeatures, ablate, dominant_modality, expected_modality,
                                         mi, mi_crosstab, mi_summary)
from modbias.runs.store import RunConfigMismatch, open_run


@pytest.fixture(scope="module")
def bench():
    return modbias.load_benchmark("synth", subset="all", limit=3)


@pytest.fixture(scope="module")
def run(organism, bench):
    return mi(organism, bench, batch_size=9, ablation="noise")


def test_rule_by_hand():
    # (audio-only correct, visual-only correct) -> emotion-dominant modality
    table = {(True, False): "audio", (False, True): "visual", (True, True): "both", (False, False): "neither"}
    for (a, v), expected in table.items():
        assert dominant_modality(a, v) == expected
    a, v = zip(*table)
    assert dominant_modality(np.array(a), np.array(v)).tolist() == list(table.values())


def test_expected_modality_from_cue_emotions(bench):
    def cues(label, visual, audio):
        return expected_modality(dataclasses.replace(bench[0], label=label, visual_emotion=visual, audio_emotion=audio))

    assert cues("happy", "happy", "sad") == "visual"
    assert cues("sad", "happy", "sad") == "audio"
    assert cues("sad", "sad", "sad") == "both"
    assert cues("fear", "sad", "happy") == "neither"
    assert expected_modality(dataclasses.replace(bench[0], audio_emotion=None)) == ""
    by_subset = {"video_aligned": "visual", "audio_aligned": "audio", "consistent": "both"}
    assert all(expected_modality(x) == by_subset[x.subset] for x in bench)


def test_ablations(bench, organism):
    s = bench[0]
    stats = NeutralFeatures.from_samples(bench)
    feats = np.concatenate([x.visual for x in bench]).astype(np.float64)
    np.testing.assert_allclose(stats.visual_mean, feats.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats.visual_std, feats.std(0), atol=1e-4)

    removed = ablate(s, "visual", "remove")
    assert removed.visual.shape == (0, s.visual.shape[1]) and removed.audio is s.audio
    layout = organism.prepare([removed]).layouts[0]
    assert layout.n_visual == 0 and layout.n_audio == s.audio.shape[0]
    assert not ablate(s, "audio", "zeros").audio.any()
    np.testing.assert_allclose(ablate(s, "visual", "mean", stats).visual,
                               np.tile(stats.visual_mean, (len(s.visual), 1)))
    noisy = ablate(s, "visual", "noise", stats)
    assert noisy.visual.shape == s.visual.shape and not np.allclose(noisy.visual, s.visual)
    np.testing.assert_array_equal(noisy.visual, ablate(s, "visual", "noise", stats).visual)  # seeded by id
    assert not np.array_equal(noisy.visual, ablate(bench[1], "visual", "noise", stats).visual)
    with pytest.raises(ValueError, match="needs NeutralFeatures"):
        ablate(s, "visual", "mean")
    with pytest.raises(ValueError, match="ablation"):
        ablate(s, "visual", "blur")


def test_run_predictions_are_the_models_answers_on_each_input(run, organism, bench):
    assert run.sizes == {"sample": 9, "condition": 3}
    stats = NeutralFeatures.from_samples(bench)
    for i in (0, 4, 8):  # each sample alone, generated directly (no batching, no MI code)
        s = bench[i]
        inputs = {"audio_visual": s, "audio_only": ablate(s, "visual", "noise", stats),
                  "visual_only": ablate(s, "audio", "noise", stats)}
        for condition in CONDITIONS:
            text = organism.tokenizer.decode(organism.generate(organism.prepare([inputs[condition]]), 16)[0].tolist())
            assert str(run.text.sel(condition=condition).values[i]) == text
            words = [w for w in text.split() if w in modbias.core.emotions.WORD_TO_CLASS]
            expected = modbias.core.emotions.WORD_TO_CLASS[words[-1]] if words else ""
            assert str(run.prediction.sel(condition=condition).values[i]) == expected
    correct = run.correct.values
    np.testing.assert_array_equal(correct, run.prediction.values == run.label.values[:, None])
    assert run.mi.values.tolist() == dominant_modality(correct[:, 1], correct[:, 2]).tolist()


def test_summary_crosstab_and_agreement(run):
    summary = run.attrs["summary"]
    assert summary == mi_summary(run)
    table = mi_crosstab(run)
    assert table.sum().item() == 9 and table.sel(subset="video_aligned").sum().item() == 3
    for subset in ("video_aligned", "audio_aligned", "consistent"):
        counts = dict(zip(table.mi.values.tolist(), table.sel(subset=subset).values.tolist()))
        assert summary["crosstab"][subset] == counts
    agree = np.mean(run.mi.values == run.expected_mi.values)
    assert summary["agreement"]["overall"] == pytest.approx(agree)
    video = run.subset.values == "video_aligned"
    assert summary["recovery"]["video_aligned"] == pytest.approx(np.mean(run.mi.values[video] == "visual"))
    assert np.allclose(mi_crosstab(run, normalize=True).sum("mi"), 1.0)


def test_store_resumes_and_checks_config(organism, bench, run, tmp_path, interrupt):
    import modbias.runs.importance as importance
    from tests.conftest import Killed

    out = tmp_path / "mi"
    resume = interrupt(importance, "mi_batch", after=2)
    with pytest.raises(Killed):
        mi(organism, bench, out=out, batch_size=2, ablation="noise", neutral=NeutralFeatures.from_samples(bench))
    assert open_run(out).sizes["sample"] == 4 and open_run(out).attrs["kind"] == "mi"
    resume()
    full = mi(organism, bench, out=out, batch_size=9, ablation="noise")  # another batch size resumes
    assert full.sample.values.tolist() == run.sample.values.tolist()
    assert full.text.values.tolist() == run.text.values.tolist()
    assert full.mi.values.tolist() == run.mi.values.tolist()
    assert open_run(out).attrs["summary"]["agreement"] == run.attrs["summary"]["agreement"]
    with pytest.raises(RunConfigMismatch):
        mi(organism, bench, out=out, batch_size=3, ablation="zeros")


def test_cli_mi_command(tmp_path):
    from modbias.cli.migr import mi as mi_command

    app = typer.Typer()
    app.command("mi")(mi_command)
    app.command("noop")(lambda: None)  # keep "mi" a subcommand
    out = tmp_path / "cli-mi"
    result = CliRunner().invoke(app, ["mi", "--limit", "1", "--ablation", "remove", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ds = open_run(out)
    assert ds.sizes["sample"] == 3 and ds.attrs["config"]["parameters"]["ablation"] == "remove"
    assert "emotion-dominant modality" in result.output and "agreement" in result.output
    assert "video_aligned" in result.output
    bad = CliRunner().invoke(app, ["mi", "--ablation", "blur", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0



def test_processor_families_only_allow_removal(bench):
    import types

    with pytest.raises(ValueError, match="only ablation='remove'"):
        mi(types.SimpleNamespace(family="qwen2_5_omni"), bench, ablation="zeros")
