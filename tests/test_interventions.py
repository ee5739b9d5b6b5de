"""Interventions through the probe: registry, composition, clean removal, PAI, duplication, intervene()."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

import modbias
from modbias.interventions import make
from modbias.interventions.pai import amplify_visual_scores
from modbias.runs.intervene import build_interventions
from modbias.runs.store import read_manifest


@pytest.fixture(scope="module")
def baseline(organism, small_bench):
    return modbias.trace(organism, small_bench, batch_size=9)


def test_registry_and_parameter_routing():
    ar, pai = build_interventions("ar+pai", tau=2.0, alpha=0.3)
    assert (ar.tau, pai.alpha) == (2.0, 0.3)
    assert build_interventions("none") == []
    with pytest.raises(ValueError, match="unknown method"):
        build_interventions("magic")
    with pytest.raises(ValueError, match=r"\['alpha'\] are not taken"):
        build_interventions("ar", alpha=1.0)


def test_interventions_change_predictions_and_removal_restores_the_baseline(organism, small_bench, baseline):
    edited = modbias.trace(organism, small_bench, batch_size=9, interventions=[make("ar", tau=0.0)])
    assert (edited.text.values != baseline.text.values).any(), "AR at tau=0 should change some answers"
    assert not np.allclose(edited.S_v.values, baseline.S_v.values, equal_nan=True)
    again = modbias.trace(organism, small_bench, batch_size=9)
    xr.testing.assert_identical(again.drop_attrs(), baseline.drop_attrs())


def test_ar_editor_reallocates_each_query_row_over_heads():
    from modbias.core.probe import RowContext
    from modbias.interventions.ar import reallocate

    rng = np.random.default_rng(1)
    rows = torch.tensor(rng.dirichlet(np.ones(12), size=(2, 4, 3)))  # [B, H, Q, T] as the probe hands them
    visual = torch.tensor(rng.random((2, 12)) < 0.5)
    audio = ~visual & torch.tensor(rng.random((2, 12)) < 0.5)
    context = RowContext(layer=0, masks={"visual": visual, "audio": audio}, query_index=None, scores=rows.log())
    edited = make("ar", tau=0.0).edit_rows(rows, context)
    for b in range(2):
        for q in range(3):
            torch.testing.assert_close(edited[b, :, q], reallocate(rows[b, :, q], visual[b], audio[b], 0.0))
    assert not torch.allclose(edited, rows)


def test_ar_layer_range_limits_the_edit(organism, small_bench, baseline):
    none_edited = modbias.trace(organism, small_bench, batch_size=9, interventions=[make("ar", tau=0.0, layers=[])],
                                tau=1.0)  # read at the baseline's τ (by default an AR run is read at its own)
    assert list(none_edited.text.values) == list(baseline.text.values)
    xr.testing.assert_allclose(none_edited.drop_attrs(), baseline.drop_attrs(), atol=1e-6)
    with pytest.raises(ValueError, match="outside the model's 4 layers"):
        modbias.trace(organism, small_bench[:2], interventions=[make("ar", layers="2,9")])


def test_pai_score_edit_by_hand():
    scores = torch.tensor([[-2.0, 1.0, 3.0, 0.5]])
    visual = torch.tensor([[True, True, False, False]])
    # a + 0.5|a|: -2 -> -1, 1 -> 1.5; non-visual scores unchanged
    expected = torch.tensor([[-1.0, 1.5, 3.0, 0.5]])
    torch.testing.assert_close(amplify_visual_scores(scores, visual, 0.5), expected)


def test_pai_guidance_at_gamma_one_is_the_conditional_branch(organism, small_bench, baseline):
    guided = modbias.trace(organism, small_bench, batch_size=9, interventions=[make("pai", alpha=0.0, gamma=1.0)])
    assert list(guided.text.values) == list(baseline.text.values)
    strong = modbias.trace(organism, small_bench, batch_size=9, interventions=[make("pai", alpha=0.0, gamma=3.0)])
    assert list(strong.text.values) != list(baseline.text.values)


def test_duplicate_audio_updates_the_layout(organism, small_bench, baseline):
    once = modbias.trace(organism, small_bench, batch_size=9, interventions=[make("duplicate_audio", k=1)])
    xr.testing.assert_identical(once.drop_attrs(), baseline.drop_attrs())
    many = modbias.trace(organism, small_bench[:4], batch_size=4, interventions=[make("duplicate_audio", k=50)],
                         save_rows=True)
    assert (many.n_audio.values == 50).all()
    assert (many.audio_mask.values.sum(-1) == 50).all()
    np.testing.assert_allclose((many.rows * many.audio_mask).sum("token").values, many.S_a.values, rtol=1e-5)


def test_intervene_summary_deltas_and_cached_baseline(tmp_path, organism, small_bench, monkeypatch):
    run = modbias.intervene(organism, small_bench, method="ar", tau=0.0, cache_dir=tmp_path, batch_size=9)
    summary = run.attrs["summary"]
    base = read_manifest(summary["baseline"])["summary"]["metrics"]
    for subset, values in summary["metrics"].items():
        for metric in ("acc", "rec", "avg", "hit"):
            assert summary["deltas"][subset][metric] == pytest.approx(values[metric] - base[subset][metric])
    on_disk = json.loads((tmp_path / run.attrs["path"].split("/")[-1] / "modbias.json").read_text())
    for subset, values in summary["metrics"].items():
        assert on_disk["summary"]["metrics"][subset] == pytest.approx(values)

    calls = []
    real = modbias.runs.trace.trace_batch
    monkeypatch.setattr(modbias.runs.trace, "trace_batch", lambda *a, **k: calls.append(1) or real(*a, **k))
    modbias.intervene(organism, small_bench, method="ar", tau=2.0, cache_dir=tmp_path, batch_size=9)
    assert len(calls) == 2, "only the new run's two batches: the baseline is re-used"
