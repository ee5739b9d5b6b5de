"""Causal tools at the emotion step: knockout, DLA, logit lens, head patching, counterfactuals, CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import modbias
from modbias.analysis.causal import attribution_agreement, compare, spearman
from modbias.cli import app
from modbias.core.causal import knock_out, logit_difference
from modbias.data.counterfactual import Counterfactuals
from modbias.data.sample import Benchmark, Sample, SampleError
from modbias.runs.causal import (CausalConfig, DecoderParts, at_query, capture, causal, emotion_step, knockout_batch,
                                 step_logit_diff)
from modbias.runs.patching import patch, patched_logit_diff
from modbias.runs.store import RunConfigMismatch, open_run

ATOL = 1e-4


@pytest.fixture(scope="module")
def bench():
    return modbias.load_benchmark("synth", subset="all", limit=4)


@pytest.fixture(scope="module")
def conflicts(bench):
    return [s for s in bench if s.subset != "consistent"]


@pytest.fixture(scope="module")
def steps(organism, bench, conflicts):
    """The conflict samples and their counterfactuals at the answer step, with their captures."""
    config = CausalConfig()
    step = emotion_step(organism, conflicts, config)
    cf_step = emotion_step(organism, [Counterfactuals(bench)(s) for s in conflicts], config, pair_of=conflicts)
    assert bool(step.valid.all()) and bool(cf_step.found.all())
    return step, cf_step, capture(organism, step), capture(organism, cf_step)


def all_heads(model):
    return [(layer, head) for layer in range(model.n_layers) for head in range(model.n_heads)]


# -- knockout --------------------------------------------------------------------------------------------

def test_knock_out_renormalises_the_other_keys():
    rows = torch.tensor([[[[0.2, 0.3, 0.5]], [[1.0, 0.0, 0.0]]]])  # [B=1, H=2, Q=1, T=3]
    out = knock_out(rows, torch.tensor([[True, False, False]]))
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.0, 0.375, 0.625]))
    assert torch.equal(out[0, 1, 0], torch.zeros(3))  # all mass was blocked: the head writes nothing


def test_knockout_with_an_empty_window_changes_nothing(organism, bench):
    ds = causal("knockout", organism, bench, progress=False, window=0, batch_size=12)
    assert np.nanmax(np.abs(ds.knockout_delta.values)) < ATOL
    assert np.nansum(ds.knockout_flipped.values) == 0


def eager_blocked_logit_diff(model, step, modality: str) -> torch.Tensor:
    """Reference: eager attention with a 4-D mask that blocks the query's keys of ``modality`` in every layer."""
    inputs = step.inputs
    n = inputs.inputs_embeds.shape[1]
    allowed = torch.tril(torch.ones(n, n, dtype=torch.bool))[None] & inputs.attention_mask.bool()[:, None, :]
    allowed |= torch.eye(n, dtype=torch.bool)[None]  # padded queries see themselves: no all-masked row
    for b, q in enumerate(step.query.tolist()):
        allowed[b, q] &= ~step.masks[modality][b]
    mask = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)[:, None]
    backbone = model.backbone
    previous = backbone.config._attn_implementation
    backbone.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            normed = backbone.get_decoder()(inputs_embeds=inputs.inputs_embeds, attention_mask=mask,
                                            position_ids=inputs.position_ids).last_hidden_state
    finally:
        backbone.set_attn_implementation(previous)
    return step_logit_diff(step, DecoderParts.of(model).logits(at_query(normed, step.query)))


def test_knockout_of_every_layer_matches_a_masked_eager_forward(organism, conflicts, steps):
    ds = causal("knockout", organism, conflicts, progress=False, window=organism.n_layers, batch_size=16)
    step = steps[0]
    for modality in ("visual", "audio"):
        expected = eager_blocked_logit_diff(organism, step, modality)
        got = torch.as_tensor(ds.knockout_logit_diff.sel(modality=modality, layer=0).values)
        assert torch.allclose(got, expected, atol=1e-3), modality
    assert np.nanmax(np.abs(ds.knockout_delta.sel(modality="audio").values)) > 0.5  # the edit does act


# -- direct logit attribution ------------------------------------------------------------------------------

def test_dla_components_sum_to_the_logit_difference(organism, bench):
    ds = causal("dla", organism, bench, progress=False, batch_size=12)
    conflict = (ds.subset != "consistent").values
    assert np.isnan(ds.logit_diff.values[~conflict]).all()  # both cues name one emotion: no LD to explain
    ds = ds.isel(sample=conflict)
    total = (ds.dla_head.sum(("layer", "head")) + ds.dla_mlp.sum("layer") + ds.dla_attn_bias.sum("layer")
             + ds.dla_embed)
    assert np.allclose(total.values, ds.logit_diff.values, atol=1e-3)
    assert np.abs(ds.logit_diff.values).max() > 1.0  # not a sum of zeros


def test_dla_matches_a_transformer_lens_style_computation(organism, conflicts, steps):
    """Per head: o_proj of z with the other heads zeroed (TL's hook_result), divided by the final norm's
    scale from its input hook (TL's ln_final.hook_scale), times its weight, dotted with W_U[a] − W_U[v]."""
    ds = causal("dla", organism, conflicts, progress=False, batch_size=16)
    step, _, clean, _ = steps
    parts = DecoderParts.of(organism)
    final = clean.resid_post[:, -1]
    scale = (final.pow(2).mean(-1, keepdim=True) + parts.norm.variance_epsilon).sqrt()
    w_u = parts.unembed.weight.detach()
    direction = w_u[step.audio_ids] - w_u[step.visual_ids]
    d_head = clean.z.shape[-1] // organism.n_heads
    for layer, head in all_heads(organism):
        z = torch.zeros_like(clean.z[:, layer])
        z[:, head * d_head:(head + 1) * d_head] = clean.z[:, layer, head * d_head:(head + 1) * d_head]
        with torch.no_grad():
            result = parts.attentions[layer].o_proj(z)
        expected = ((result / scale * parts.norm.weight.detach()) * direction).sum(-1)
        got = torch.as_tensor(ds.dla_head.sel(layer=layer, head=head).values)
        assert torch.allclose(got, expected, atol=1e-4), (layer, head)


# -- logit lens ---------------------------------------------------------------------------------------------

def test_logit_lens_last_layer_is_the_models_logit_difference(organism, bench):
    ds = causal("lens", organism, bench, progress=False, batch_size=12)
    assert np.allclose(ds.lens_logit_diff.isel(layer=-1).values, ds.logit_diff.values, atol=1e-4, equal_nan=True)
    found = ds.found.values
    assert np.allclose(ds.lens_p.sel(emotion=list(ds.emotion.values)).values[found].sum(-1) <= 1 + 1e-5, True)
    predicted = ds.lens_p.isel(layer=-1).argmax("emotion").values[found]
    assert [ds.emotion.values[i] for i in predicted] == list(ds.prediction.values[found])


def test_logit_difference_is_a_log_probability_difference():
    logits = torch.randn(3, 10)
    a, v = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    logp = logits.log_softmax(-1)
    assert torch.allclose(logit_difference(logits, a, v), logp[torch.arange(3), a] - logp[torch.arange(3), v])


# -- activation patching ------------------------------------------------------------------------------------

def test_patching_from_the_run_itself_changes_nothing(organism, steps):
    step, _, clean, _ = steps
    ld = step_logit_diff(step, clean.logits)
    for heads in ([(1, 2)], all_heads(organism)):
        assert torch.allclose(patched_logit_diff(organism, step, clean.z, heads, clean.resid_pre), ld, atol=ATOL)


def test_patching_every_head_and_the_residual_gives_the_counterfactual(organism, steps):
    step, cf_step, clean, cf = steps
    ld, ld_cf = step_logit_diff(step, clean.logits), step_logit_diff(cf_step, cf.logits)
    assert (ld - ld_cf).abs().min() > 1.0  # the counterfactual moves LD
    assert torch.allclose(patched_logit_diff(organism, step, cf.z, all_heads(organism), cf.resid_pre), ld_cf,
                          atol=ATOL)
    partial = patched_logit_diff(organism, step, cf.z, all_heads(organism)[:4], cf.resid_pre)
    assert not torch.allclose(partial, ld_cf, atol=ATOL)  # one layer's heads are not all of it


def test_attribution_patching_agrees_with_exact_patching_on_the_organism(organism, conflicts):
    ds = patch(organism, Benchmark("synth", conflicts, modbias.load_benchmark("synth", limit=1).config),
               progress=False, batch_size=16)
    agreement = attribution_agreement(ds)
    print(f"\nattribution vs exact patching on the organism: {agreement}")
    exact = ds.patch_effect.mean("sample").values.ravel()
    approx = ds.attribution_effect.mean("sample").values.ravel()
    largest = np.argsort(-np.abs(exact))[:3]
    assert np.array_equal(np.sign(exact[largest]), np.sign(approx[largest]))
    assert agreement["spearman"] > 0.5


def test_compare_ranks_heads_per_subset(organism, conflicts):
    ds = causal("dla", organism, conflicts, progress=False, batch_size=16)
    table = compare(ds, tau=1.0)
    assert set(table.index) == {"video_aligned", "audio_aligned", "all"}
    assert table.loc["all", "samples"] == len(conflicts)
    assert -1 <= table.loc["all", "spearman_c_h"] <= 1
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


# -- counterfactuals -----------------------------------------------------------------------------------------

def test_synthetic_counterfactual_keeps_everything_but_the_swapped_cue(bench):
    sample = next(s for s in bench if s.subset == "video_aligned")
    audio_cf, visual_cf = Counterfactuals(bench, "audio")(sample), Counterfactuals(bench, "visual")(sample)
    assert audio_cf.audio_emotion == audio_cf.visual_emotion == sample.visual_emotion == audio_cf.label
    assert np.array_equal(audio_cf.visual, sample.visual) and not np.array_equal(audio_cf.audio, sample.audio)
    assert audio_cf.subtitle == sample.subtitle and audio_cf.subset == "consistent"
    assert visual_cf.visual_emotion == sample.audio_emotion and np.array_equal(visual_cf.audio, sample.audio)


def _real(sid, subset, visual, audio, features):
    return Sample(sid, subset, visual if subset != "audio_aligned" else audio, np.full((2, 3), features, np.float32),
                  np.full((1, 3), features, np.float32), visual_emotion=visual, audio_emotion=audio,
                  extra={"audio_path": f"{sid}.wav"})


def test_real_data_counterfactual_takes_a_donors_audio():
    samples = [_real("a", "video_aligned", "happy", "sad", 0.0), _real("b", "consistent", "sad", "sad", 1.0),
               _real("c", "audio_aligned", "angry", "happy", 2.0)]
    cf = Counterfactuals(Benchmark("camer", samples))(samples[0])
    assert cf.audio_emotion == "happy" and cf.id == "a~cf-audio"
    assert np.array_equal(cf.audio, samples[2].audio) and np.array_equal(cf.visual, samples[0].visual)
    assert cf.extra["audio_path"] == "c.wav"
    with pytest.raises(SampleError, match="'b'.*no other sample"):
        Counterfactuals(Benchmark("camer", samples), "visual")(samples[1])


# -- CLI and stores ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["knockout", "patch", "dla", "lens"])
def test_cli_writes_a_store(tmp_path, kind):
    out = tmp_path / kind
    result = CliRunner().invoke(app, ["causal", kind, "--limit", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "says_audio_cue" in result.output
    ds = open_run(out)
    assert ds.attrs["kind"] == kind and ds.sizes["sample"] == 6
    assert ds.attrs["config"]["parameters"]["at"] == "answer"
    variable = {"knockout": "knockout_delta", "patch": "patch_effect", "dla": "dla_head", "lens": "lens_logit_diff"}
    assert ds[variable[kind]].dims[0] == "sample"
    conflict = (ds.subset != "consistent").values
    assert np.isfinite(ds[variable[kind]].values[conflict]).all()
    if kind in ("patch", "dla"):
        shown = CliRunner().invoke(app, ["causal", "compare", str(out)])
        assert shown.exit_code == 0 and "spearman_c_h" in shown.output, shown.output


def test_cli_rejects_a_bad_modality(tmp_path):
    result = CliRunner().invoke(app, ["causal", "knockout", "--modality", "smell", "--out", str(tmp_path / "k")])
    assert result.exit_code == 2 and "smell" in result.output


def test_a_causal_store_resumes_and_refuses_other_settings(tmp_path, organism, bench):
    from tests.conftest import Killed

    out, config, calls = tmp_path / "knockout", CausalConfig(window=2, batch_size=2), []

    def killed_after_one_batch(chunk):
        if calls:
            raise Killed("killed before batch 2")
        calls.append(len(chunk))
        return knockout_batch(organism, chunk, config)

    with pytest.raises(Killed):
        causal("knockout", organism, bench[:6], out=out, progress=False, window=2, batch_size=2,
               record_batch=killed_after_one_batch)
    calls.clear()
    resumed = causal("knockout", organism, bench[:6], out=out, progress=False, window=2, batch_size=2,
                     record_batch=lambda chunk: calls.append(len(chunk)) or knockout_batch(organism, chunk, config))
    assert calls == [2, 2]  # only the four samples not stored yet
    clean = causal("knockout", organism, bench[:6], progress=False, window=2, batch_size=3)  # in memory
    assert list(resumed.sample.values) == list(clean.sample.values)
    assert np.allclose(resumed.knockout_delta.values, clean.knockout_delta.values, equal_nan=True, atol=1e-5)
    with pytest.raises(RunConfigMismatch, match="parameters.window"):
        causal("knockout", organism, bench[:6], out=out, progress=False, window=3, batch_size=2)
