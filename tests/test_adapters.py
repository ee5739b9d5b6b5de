"""Real-model adapters on offline tiny checkpoints: loading, layouts, probe rows, interventions, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import modbias
from modbias.core.probe import AttentionProbe, eager_rows
from modbias.data.readers import unpack_streams
from modbias.interventions import make
from modbias.runs.store import open_run
from modbias.testing import feature_streams, make_tiny_checkpoint, synthetic_clip, write_camer_benchmark

pytest.importorskip("av")
pytest.importorskip("PIL")

FAMILIES = ("features", "qwen2_5_omni", "llava")
GEN = 6  # generated tokens: enough for an emotion word from the tiny models


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("checkpoints")
    return {family: make_tiny_checkpoint(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def models(checkpoints):
    torch.manual_seed(0)
    return {family: modbias.load_model(f"{family}:{path}") for family, path in checkpoints.items()}


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory, checkpoints):
    """Three samples (one per subset) with media and the features checkpoint's streams."""
    path = write_camer_benchmark(tmp_path_factory.mktemp("bench"), n=3, media=True,
                                 features=feature_streams(checkpoints["features"]))
    rows = [json.loads(line) for line in (path / "annotations.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):  # prompts of different lengths, so batches are left-padded
        row["subtitle"] = " ".join(["i think it is here"] * (i + 1))
    (path / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def bench(bench_dir):
    return modbias.load_benchmark(str(bench_dir))


@pytest.fixture(scope="module")
def traces(models, bench):
    return {family: modbias.trace(model, bench, at="both", max_new_tokens=GEN, batch_size=3, save_rows=True)
            for family, model in models.items()}


# -- loading and layouts -------------------------------------------------------------------------
def test_unknown_family_and_missing_path_are_clear_errors(checkpoints):
    with pytest.raises(ValueError, match="available"):
        modbias.load_model(f"nope:{checkpoints['llava']}")
    with pytest.raises(ValueError, match="checkpoint path"):
        modbias.load_model("llava")


def test_features_layout_follows_the_template(models, bench):
    model, sample = models["features"], bench[0]
    batch = model.prepare([sample])
    layout = batch.layouts[0]
    config = model.config
    order = config.placeholders["<FeatureHere>"]
    tokens = {name: config.streams[name].tokens for name in order}
    block = int(min(layout.visual.min(), layout.audio.min()))
    assert layout.n_visual == sum(t for n, t in tokens.items() if config.streams[n].modality == "visual")
    # HuBERT sits at its configured offset inside the feature block (258 in Emotion-LLaMA, 10 here)
    offset = sum(tokens[n] for n in order[:order.index("hubert")])
    assert layout.audio.tolist() == [block + offset]
    block_len = sum(tokens.values())
    assert sorted(np.concatenate([layout.visual, layout.audio]).tolist()) == list(range(block, block + block_len))
    assert layout.prompt_len == batch.inputs_embeds.shape[1] == model.prompt_length(sample)
    # each position holds what the config says: projected streams inside the block, template text around it
    streams = {**unpack_streams(sample, "visual"), **unpack_streams(sample, "audio")}
    start = block
    for name in order:
        expected = model.projectors[name](torch.as_tensor(streams[name]))
        torch.testing.assert_close(batch.inputs_embeds[0, start:start + tokens[name]], expected)
        start += tokens[name]
    prefix = model.tokenizer("[INST] <video>", add_special_tokens=True).input_ids
    torch.testing.assert_close(batch.inputs_embeds[0, :block], model.embed_tokens(torch.tensor(prefix)))
    assert layout.text.tolist()[:block] == list(range(block))


def test_features_rejects_samples_that_do_not_fit(models, bench):
    import dataclasses

    from modbias.data.sample import SampleError

    sample = bench[0]
    narrow = dataclasses.replace(sample, audio=np.zeros((1, 3), np.float32),
                                 extra={**sample.extra, "streams": {**sample.extra["streams"],
                                                                   "audio": [["hubert", 1, 3]]}})
    with pytest.raises(SampleError, match=r"clip000.*audio_features\.hubert.*width 3 != checkpoint's 16"):
        models["features"].prepare([narrow])


def test_qwen_layout_is_read_from_token_ids_and_matches_native_forward(models, bench):
    model, sample = models["qwen2_5_omni"], bench[1]
    inputs, interleaved = model.processed(sample)
    assert interleaved
    batch = model.prepare([sample])
    ids = inputs["input_ids"][0].numpy()
    cfg = model.backbone.config
    layout = batch.layouts[0]
    assert layout.visual.tolist() == np.flatnonzero(ids == cfg.video_token_id).tolist()
    assert layout.audio.tolist() == np.flatnonzero(ids == cfg.audio_token_id).tolist()
    assert layout.n_visual > 0 and layout.n_audio > 0
    # the thinker run natively (ids + pixels + audio, its own 3-D positions) gives the same logits
    with torch.no_grad():
        native = model.backbone(**inputs, use_audio_in_video=True).logits
        ours = model.backbone(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                              position_ids=batch.position_ids).logits
        flat = model.backbone(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask).logits
    torch.testing.assert_close(ours, native, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(flat[:, -1], native[:, -1], atol=1e-4), "1-D positions should differ from M-RoPE"


def test_qwen_interleaves_audio_with_video_chunks(tmp_path, models):
    from modbias.data.media import write_video, write_wav

    frames, audio = synthetic_clip(7, n_frames=24, seconds=3.0)  # 3 s at 8 fps: two 2-s chunks
    write_video(tmp_path / "long.mp4", frames, fps=8, audio=audio)
    write_wav(tmp_path / "long.wav", audio)
    (tmp_path / "annotations.jsonl").write_text(json.dumps(
        {"id": "long", "subset": "consistent", "label": "sad", "video": "long.mp4", "audio": "long.wav"}) + "\n")
    sample = modbias.load_benchmark(str(tmp_path))[0]
    layout = models["qwen2_5_omni"].prepare([sample]).layouts[0]
    kinds = np.zeros(layout.prompt_len, dtype="<U1")
    kinds[layout.visual], kinds[layout.audio] = "V", "A"
    runs = [k for i, k in enumerate(kinds) if k and (i == 0 or kinds[i - 1] != k)]
    assert runs == ["V", "A", "V", "A"], "".join(runs)


def test_llava_layout_and_native_forward(models, bench):
    model, sample = models["llava"], bench[2]
    inputs = model.processed(sample)
    batch = model.prepare([sample])
    layout = batch.layouts[0]
    ids = inputs["input_ids"][0].numpy()
    assert layout.visual.tolist() == np.flatnonzero(ids == model.backbone.config.image_token_id).tolist()
    assert layout.n_visual == 16 and layout.n_audio == 0
    with torch.no_grad():
        native = model.backbone(**inputs).logits
        ours = model.backbone(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask).logits
    torch.testing.assert_close(ours, native, atol=1e-5, rtol=1e-4)


def test_qwen2_backbone_variant_of_features_loads(tmp_path, bench):
    path = make_tiny_checkpoint("features", tmp_path / "q2", backbone="qwen2")
    model = modbias.load_model(f"features:{path}")
    assert model.backbone.config.model_type == "qwen2"
    rows = AttentionProbe(model.backbone)
    batch = model.prepare(list(bench[:2]))
    query = torch.tensor([[batch.inputs_embeds.shape[1] - 1]] * 2)
    kwargs = dict(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                  position_ids=batch.position_ids)
    torch.testing.assert_close(rows.rows(query, **kwargs), eager_rows(model.backbone, query, **kwargs), atol=1e-5,
                               rtol=1e-4)


# -- probe rows ----------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_probe_rows_equal_eager_attention_on_a_padded_batch(family, models, bench):
    model = models[family]
    batch = model.prepare(list(bench))
    assert len(set(batch.offsets.tolist())) > 1, "the batch should be left-padded"
    generated = model.generate(batch, 3)
    full = model.extend(batch, generated)
    n = full.inputs_embeds.shape[1]
    query = torch.tensor([[n - 4, n - 1]] * len(bench))
    kwargs = dict(inputs_embeds=full.inputs_embeds, attention_mask=full.attention_mask,
                  position_ids=full.position_ids)
    probed = AttentionProbe(model.backbone).rows(query, **kwargs)
    expected = eager_rows(model.backbone, query, **kwargs)
    for b, off in enumerate(batch.offsets.tolist()):  # padded keys differ between eager and SDPA
        torch.testing.assert_close(probed[b, ..., off:], expected[b, ..., off:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_traced_rows_equal_eager_rows_of_each_sample(family, models, bench, traces):
    model, ds = models[family], traces[family]
    assert ds.found.values.any(), f"{family}: no emotion word in {ds.text.values}"
    for i, sample in enumerate(bench):
        stored = ds.isel(sample=i)
        batch = model.prepare([sample])
        full = model.extend(batch, model.generate(batch, GEN))
        prompt_len = batch.layouts[0].prompt_len
        assert int(stored.n_visual) == batch.layouts[0].n_visual and int(stored.n_audio) == batch.layouts[0].n_audio
        for kind in ("visual", "audio", "text"):
            mask = stored[f"{kind}_mask"].values
            assert np.flatnonzero(mask[:prompt_len]).tolist() == getattr(batch.layouts[0], kind).tolist()
        for at in stored.at.values:
            if not bool(stored.found.sel(at=at)):
                continue
            step = int(stored.emotion_step.sel(at=at))
            query = torch.tensor([[prompt_len + step - 1]])
            expected = eager_rows(model.backbone, query, inputs_embeds=full.inputs_embeds,
                                  attention_mask=full.attention_mask, position_ids=full.position_ids)[0, :, :, 0]
            n = prompt_len + step
            np.testing.assert_allclose(stored.rows.sel(at=at).values[..., :n], expected[..., :n].numpy(), atol=1e-5)


# -- interventions -------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_every_intervention_runs(family, models, bench, traces):
    model, base = models[family], traces[family]
    competitor = "text" if family == "llava" else "audio"
    runs = {
        "ar": [make("ar", tau=0.0, competitor=competitor)],
        "pai": [make("pai", alpha=0.5, layers="1:")],
        "duplicate_audio": [make("duplicate_audio", k=2)],
    }
    for name, interventions in runs.items():
        ds = modbias.trace(model, bench[:2], max_new_tokens=GEN, batch_size=2, interventions=interventions)
        assert ds.sizes["sample"] == 2, name
        assert np.isfinite(ds.UAP_v.values[ds.found.values[:, 0]]).all(), name
        if name == "duplicate_audio":
            np.testing.assert_array_equal(ds.n_audio.values, 2 * base.n_audio.values[:2])
            np.testing.assert_array_equal(ds.n_visual.values, base.n_visual.values[:2])
        else:
            np.testing.assert_array_equal(ds.n_audio.values, base.n_audio.values[:2])


def test_ar_moves_attention_from_the_competitor_to_visual_tokens(models, bench, traces):
    for family, competitor in (("features", "audio"), ("llava", "text")):
        ds = modbias.trace(models[family], bench, at="both", max_new_tokens=GEN, batch_size=3,
                           interventions=[make("ar", tau=0.0, competitor=competitor)])
        base = traces[family]
        both = base.found.values[:, 0] & ds.found.values[:, 0] & (base.emotion_step.values[:, 0] == 0) \
            & (ds.emotion_step.values[:, 0] == 0)
        assert both.any(), family
        # at the first decoding step layer 0 sees the same input, so AR's edit shows directly there
        assert ds.S_v.values[both, 0, 0].sum() > base.S_v.values[both, 0, 0].sum(), family
        competing = "S_a" if competitor == "audio" else "S_t"
        assert ds[competing].values[both, 0, 0].sum() < base[competing].values[both, 0, 0].sum(), family


def test_pai_visual_free_guidance_runs_on_qwen(models, bench):
    ds = modbias.trace(models["qwen2_5_omni"], bench[:1], max_new_tokens=3, batch_size=1,
                       interventions=[make("pai", alpha=0.5, layers="1:", gamma=1.1)])
    assert ds.sizes["sample"] == 1


# -- command line --------------------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_cli_trace_and_intervene(family, tmp_path, checkpoints, models, bench_dir):
    from modbias.cli import app

    runner = CliRunner()
    spec = f"{family}:{checkpoints[family]}"
    out = tmp_path / "trace"
    data = ["--data", str(bench_dir), "--subset", "video_aligned"]  # one sample keeps it fast
    result = runner.invoke(app, ["trace", "--model", spec, *data, "--out", str(out),
                                 "--max-new-tokens", str(GEN), "--save-rows"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    ds = open_run(out)
    assert ds.attrs["config"]["model"]["family"] == family and ds.sizes["sample"] == 1
    model = models[family]
    for i, sample_id in enumerate(ds.sample.values):
        sample = next(s for s in modbias.load_benchmark(str(bench_dir)) if s.id == sample_id)
        layout = model.prepare([sample]).layouts[0]
        for kind in ("visual", "audio", "text"):
            assert np.flatnonzero(ds[f"{kind}_mask"].values[i]).tolist() == getattr(layout, kind).tolist()
    args = ["intervene", "--method", "ar", "--tau", "0", "--model", spec, *data,
            "--cache", str(tmp_path / "cache"), "--max-new-tokens", str(GEN)]
    if family == "llava":
        args += ["--competitor", "text"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert any(p.name.startswith(f"intervene-{family}-") and "-ar-tau" in p.name for p in (tmp_path / "cache").iterdir())
