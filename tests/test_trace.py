"""trace(): stored metrics agree with the rows, rows agree with eager attention, runs resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

import modbias
from modbias.core.emotions import WORD_TO_CLASS
from modbias.core.layout import position_ids_from_mask
from modbias.core.probe import eager_rows
from modbias.runs import trace as tracing
from modbias.runs import schema
from modbias.runs.store import RunConfigMismatch, RunStore, open_run


@pytest.fixture(scope="module")
def traced(organism, small_bench):
    return modbias.trace(organism, small_bench, at="both", batch_size=5, save_rows=True)


def test_store_metrics_agree_with_rows(traced):
    ds = traced
    rows = ds.rows.values.astype(np.float64)
    for kind, name in (("visual", "S_v"), ("audio", "S_a"), ("text", "S_t")):
        mask = ds[f"{kind}_mask"].values[:, None, None, None, :]
        np.testing.assert_allclose((rows * mask).sum(-1), ds[name].values, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.UAP_v.values, ds.S_v.values.mean(-1), rtol=1e-6)
    np.testing.assert_allclose(ds.UAP_a.values, ds.S_a.values.mean(-1), rtol=1e-6)
    np.testing.assert_allclose(ds.c_h.values, ds.S_a.values / ds.S_v.values, rtol=1e-5)
    np.testing.assert_allclose(ds.c.values, ds.S_a.values.sum(-1) / ds.S_v.values.sum(-1), rtol=1e-5)
    # every key position up to the query is an input modality or a generated token
    total = ds.S_v + ds.S_a + ds.S_t + ds.S_g
    np.testing.assert_allclose(total.values, 1.0, atol=1e-5)


def test_rows_equal_eager_attention_of_each_sample_alone(traced, organism, small_bench):
    for i in (0, 7, 13):
        sample, stored = small_bench[i], traced.isel(sample=i)
        batch = organism.prepare([sample])
        generated = organism.generate(batch, 16)
        full = organism.extend(batch, generated)
        prompt_len = batch.layouts[0].prompt_len
        for a, at in enumerate(stored.at.values):
            step = int(stored.emotion_step.sel(at=at))
            query = torch.tensor([[prompt_len + step - 1]])
            expected = eager_rows(organism.backbone, query, inputs_embeds=full.inputs_embeds,
                                  attention_mask=full.attention_mask,
                                  position_ids=position_ids_from_mask(full.attention_mask))[0, :, :, 0]
            n = int(stored.length.sel(at=at))
            assert n == prompt_len + step
            np.testing.assert_allclose(stored.rows.sel(at=at).values[..., :n], expected[..., :n].numpy(), atol=1e-5)
            assert np.all(stored.rows.sel(at=at).values[..., n:] == 0)


def test_emotion_steps_point_at_emotion_words(traced):
    for text, steps, found in zip(traced.text.values, traced.emotion_step.values, traced.found.values):
        words = str(text).split()
        assert found.all(), f"organism output without an emotion word: {text!r}"
        assert words[steps[0]] in WORD_TO_CLASS
        assert not any(w in WORD_TO_CLASS for w in words[:steps[0]]), "first means first"
        assert WORD_TO_CLASS[words[steps[1]]] == WORD_TO_CLASS[str(text).split()[-2]]


def test_predictions_match_plain_generation(traced, small_bench):
    fresh = modbias.load_model("organism")  # never instrumented
    batch = fresh.prepare(list(small_bench))
    texts = [fresh.tokenizer.decode(row.tolist()) for row in fresh.generate(batch, 16)]
    assert [str(t) for t in traced.text.values] == texts


def test_samples_without_emotion_are_kept_and_flagged(small_bench):
    from modbias.models.organism import Organism

    torch.manual_seed(3)
    untrained = Organism().eval()  # babbles without emotion words
    ds = modbias.trace(untrained, small_bench[:4], batch_size=4)
    assert ds.sizes["sample"] == 4
    missing = ~ds.found.values[:, 0]
    assert missing.any()
    assert np.all(ds.emotion_step.values[missing] == -1)
    assert np.isnan(ds.S_v.values[missing]).all() and np.isnan(ds.UAP_a.values[missing]).all()
    assert not ds.correct.values[missing].any()


def _interrupt_after(monkeypatch, n_batches):
    real = tracing.trace_batch
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        if calls["n"] == n_batches:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(tracing, "trace_batch", flaky)


def test_interrupted_run_resumes_without_loss_or_duplicates(tmp_path, monkeypatch, organism, small_bench, traced):
    out = tmp_path / "run"
    _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        modbias.trace(organism, small_bench, out=out, at="both", batch_size=5, save_rows=True)
    assert open_run(out).sizes["sample"] == 10  # two finished batches survived
    monkeypatch.undo()
    ds = modbias.trace(organism, small_bench, out=out, at="both", batch_size=5, save_rows=True)
    assert list(ds.sample.values) == [s.id for s in small_bench]
    stored = traced.assign(rows=traced.rows.astype(np.float16))  # rows are stored in float16
    xr.testing.assert_allclose(ds.drop_attrs().load(), stored.drop_attrs(), atol=1e-6)


def test_half_written_unit_is_hidden_and_rewritten_on_resume(tmp_path, monkeypatch, organism, small_bench):
    out = tmp_path / "run"
    _interrupt_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        modbias.trace(organism, small_bench[:10], out=out, batch_size=5)
    monkeypatch.undo()
    # a kill while unit 1 was being written: its region holds values, its commit is missing
    clean = modbias.trace(organism, small_bench[:10], batch_size=5)
    stored = list(xr.open_zarr(out).data_vars)  # the raw variables (derived ones are computed on read)
    garbage = clean[stored].isel(sample=slice(5, 10)).map(lambda v: v * 0 + 7 if v.dtype.kind == "f" else v)
    schema.write_region(out, garbage.drop_attrs(), 5, 10)
    assert float(xr.open_zarr(out).S_a.isel(sample=7).max()) == 7  # on disk, not committed
    assert open_run(out).sizes["sample"] == 5
    ds = modbias.trace(organism, small_bench[:10], out=out, batch_size=5)  # same config: resume
    xr.testing.assert_allclose(ds.drop_attrs().load(), clean.drop_attrs(), atol=1e-6)


def test_rerun_is_idempotent_and_other_configs_are_refused(tmp_path, organism, small_bench):
    out = tmp_path / "run"
    first = modbias.trace(organism, small_bench[:6], out=out, batch_size=3).load()
    again = modbias.trace(organism, small_bench[:6], out=out, batch_size=3).load()
    xr.testing.assert_identical(first, again)
    with pytest.raises(RunConfigMismatch, match="trace"):
        modbias.trace(organism, small_bench[:6], out=out, batch_size=3, at="answer")
    assert RunStore(out).exists
