"""AR and PAI as TransformerLens hooks on a TransformerBridge give the probe path's logits."""

from __future__ import annotations

import types

import pytest
import torch

pytest.importorskip("transformer_lens")

from modbias.interventions import make  # noqa: E402
from modbias.interventions.ar import AttentionReallocation  # noqa: E402
from modbias.interventions.base import Intervention  # noqa: E402
from modbias.interventions.duplicate_audio import DuplicateAudio  # noqa: E402
from modbias.interventions.pai import PAI  # noqa: E402
from modbias.reference.transformer_lens_hooks import (  # noqa: E402
    ar_pattern_hook, ar_scores_hook, bridge_from_hf, fwd_hooks_for, pai_scores_hook,
)
from modbias.core.probe import AttentionProbe, ProbeRequest, probing  # noqa: E402
from tests.conftest import left_padded_batch, tiny_causal_lm  # noqa: E402

N_LAYERS, T = 2, 16
ATOL = 1e-4
# (intervention, AR hook form): AR at both τ in both hook forms, PAI on layers "1:" (scores only)
CASES = [
    pytest.param(lambda: AttentionReallocation(tau=0.0), "pattern", id="ar-tau0-pattern"),
    pytest.param(lambda: AttentionReallocation(tau=1.0), "pattern", id="ar-tau1-pattern"),
    pytest.param(lambda: AttentionReallocation(tau=0.0), "scores", id="ar-tau0-scores"),
    pytest.param(lambda: AttentionReallocation(tau=1.0), "scores", id="ar-tau1-scores"),
    pytest.param(lambda: PAI(alpha=0.5, layers="1:", gamma=None), "scores", id="pai-0.5-layers1:"),
]


@pytest.fixture(scope="module")
def models():
    """A tiny GQA LLaMA (4 heads, 2 KV heads) with peaked attention, probed; a bridge over a copy."""
    model = tiny_causal_lm("llama", n_kv_heads=2, seed=0)
    with torch.no_grad():  # random init gives near-uniform rows; sharpen them so edits show in logits
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(5.0)
            layer.self_attn.k_proj.weight.mul_(5.0)
    bridge = bridge_from_hf(model)  # deep copy: the bridge rewires the model it wraps
    compat = bridge_from_hf(model)
    compat.enable_compatibility_mode(no_processing=True)  # masks with -inf instead of finfo.min
    AttentionProbe(model)  # switches `model` to the probe attention
    return model, bridge, compat


def spans(lengths: list[int]) -> dict[str, torch.Tensor]:
    """Per left-padded row: 1 text token, 5 visual, 7 audio, then text (audio outweighs visual: c > 1)."""
    visual = torch.zeros(len(lengths), T, dtype=torch.bool)
    audio = torch.zeros_like(visual)
    for b, n in enumerate(lengths):
        start = T - n
        visual[b, start + 1:start + 6] = True
        audio[b, start + 6:start + 13] = True
    return {"visual": visual, "audio": audio}


def probe_logits(model, editor, masks, query_index=None, **inputs) -> torch.Tensor:
    if editor is not None:
        editor.attach(types.SimpleNamespace(n_layers=N_LAYERS))
    request = ProbeRequest(query_index=query_index, masks=masks, editors=[] if editor is None else [editor])
    with torch.no_grad(), probing(request):
        return model(**inputs).logits


def tl_logits(bridge, intervention, masks, form, query_index=None, ids=None, **kwargs) -> torch.Tensor:
    hooks = [] if intervention is None else fwd_hooks_for(intervention, bridge.cfg.n_layers, masks,
                                                          query_index=query_index, ar_form=form)
    with torch.no_grad():
        return bridge.run_with_hooks(ids, fwd_hooks=hooks, **kwargs)


def test_unhooked_bridge_logits_equal_hf(models):
    model, bridge, compat = models
    assert (bridge.cfg.n_layers, bridge.cfg.n_heads, bridge.cfg.n_key_value_heads) == (2, 4, 2)
    ids, mask, pos = left_padded_batch([T, 11], seed=3)
    with torch.no_grad():
        hf_single = model(input_ids=ids[:1]).logits
        hf_padded = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        for b in (bridge, compat):
            torch.testing.assert_close(b(ids[:1]), hf_single, atol=1e-5, rtol=0)
            # the bridge derives mask-aware positions itself; pad positions are never compared
            torch.testing.assert_close(b(ids, attention_mask=mask)[mask.bool()], hf_padded[mask.bool()],
                                       atol=1e-5, rtol=0)


@pytest.mark.parametrize("make_intervention,form", CASES)
def test_hooks_give_the_probe_paths_next_token_logits(models, make_intervention, form):
    model, bridge, _ = models
    ids, _, _ = left_padded_batch([T], seed=1)
    masks = spans([T])
    base = probe_logits(model, None, masks, input_ids=ids)[:, -1]
    probed = probe_logits(model, make_intervention(), masks, input_ids=ids)[:, -1]
    hooked = tl_logits(bridge, make_intervention(), masks, form, ids=ids)[:, -1]
    torch.testing.assert_close(tl_logits(bridge, None, masks, form, ids=ids)[:, -1], base, atol=ATOL, rtol=0)
    assert (probed - base).abs().max() > 10 * ATOL, "the probe's edit must change the logits"
    assert (hooked - base).abs().max() > 10 * ATOL, "the hooks' edit must change the logits"
    torch.testing.assert_close(hooked, probed, atol=ATOL, rtol=0)


@pytest.mark.parametrize("compatibility", [False, True], ids=["finfo-min-mask", "inf-mask"])
@pytest.mark.parametrize("make_intervention,form", CASES)
def test_left_padded_batch_with_several_queries(models, make_intervention, form, compatibility):
    model, bridge, compat = models
    lengths = [T, 12]
    ids, mask, pos = left_padded_batch(lengths, seed=2)
    masks = spans(lengths)
    # row 0: a query inside the audio span (later audio keys causally masked) and the last one;
    # row 1 (4 pads): a text query and the last one
    query = torch.tensor([[10, T - 1], [14, T - 1]])
    real = mask.bool()
    base = probe_logits(model, None, masks, input_ids=ids, attention_mask=mask, position_ids=pos)
    probed = probe_logits(model, make_intervention(), masks, query, input_ids=ids, attention_mask=mask,
                          position_ids=pos)
    hooked = tl_logits(compat if compatibility else bridge, make_intervention(), masks, form, query,
                       ids=ids, attention_mask=mask)
    assert not torch.isnan(hooked[real]).any()
    torch.testing.assert_close(hooked[real], probed[real], atol=ATOL, rtol=0)
    for b in range(len(lengths)):  # each row's edit shows at its edited queries, and only from there on
        first = int(query[b].min())
        torch.testing.assert_close(hooked[b, :first][real[b, :first]], base[b, :first][real[b, :first]],
                                   atol=ATOL, rtol=0)
        assert (hooked[b, query[b]] - base[b, query[b]]).abs().max() > 10 * ATOL


def test_fwd_hooks_follow_the_layer_spec_and_hook_point():
    masks = {"visual": torch.ones(1, 4, dtype=torch.bool), "audio": torch.zeros(1, 4, dtype=torch.bool),
             "text": torch.zeros(1, 4, dtype=torch.bool)}
    names = lambda hooks: [name for name, _ in hooks]  # noqa: E731
    assert names(fwd_hooks_for(make("pai", alpha=0.5, layers="1:", gamma=None), 3, masks)) == [
        "blocks.1.attn.hook_attn_scores", "blocks.2.attn.hook_attn_scores"]
    assert names(fwd_hooks_for(make("ar", tau=1.0), 2, masks)) == [
        "blocks.0.attn.hook_pattern", "blocks.1.attn.hook_pattern"]
    assert names(fwd_hooks_for(make("ar", layers="0,2", competitor="text"), 3, masks, ar_form="scores")) == [
        "blocks.0.attn.hook_attn_scores", "blocks.2.attn.hook_attn_scores"]
    assert fwd_hooks_for(Intervention(), 2, masks) == []
    with pytest.raises(ValueError):
        fwd_hooks_for(make("ar"), 2, masks, ar_form="z")
    with pytest.raises(ValueError):
        fwd_hooks_for(make("pai", layers="5", gamma=None), 2, masks)  # layer 5 of 2
    with pytest.raises(ValueError, match="guidance"):
        fwd_hooks_for(make("pai", gamma=1.1), 2, masks)
    with pytest.raises(TypeError):
        fwd_hooks_for(DuplicateAudio(), 2, masks)


@pytest.mark.parametrize("sentinel", [float("-inf"), torch.finfo(torch.float32).min], ids=["-inf", "finfo-min"])
def test_score_hooks_keep_masked_entries_and_make_no_nan(sentinel):
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 3, 6, 6, generator=gen)
    causal = torch.ones(6, 6, dtype=torch.bool).tril()
    scores = scores.masked_fill(~causal, sentinel)
    scores[1, :, :2, :] = sentinel  # two left pads in row 1: their query rows are fully masked
    scores[1, :, :, :2] = sentinel
    visual = torch.tensor([[0, 1, 1, 1, 0, 0]]).bool()  # query 2 cannot see visual key 3
    audio = torch.tensor([[0, 0, 0, 0, 1, 1]]).bool()
    query = torch.tensor([[2, 5], [0, 5]])  # row 1 selects a fully masked (pad) query too
    for hook in (pai_scores_hook(visual, alpha=2.0, query_index=query),
                 ar_scores_hook(visual, audio, tau=0.0, query_index=query)):
        out = hook(scores.clone())
        masked = scores <= torch.finfo(torch.float32).min / 2
        assert torch.equal(out[masked], scores[masked]), "masked entries keep their sentinel"
        assert torch.isfinite(out[~masked]).all()
        pattern = out.softmax(-1)
        assert not torch.isnan(pattern[:, :, 2:]).any()
        untouched = torch.ones(2, 6, dtype=torch.bool)
        untouched[0, [2, 5]] = untouched[1, [0, 5]] = False
        assert torch.equal(out.transpose(1, 2)[untouched], scores.transpose(1, 2)[untouched])
        assert not torch.equal(out[0, :, 5], scores[0, :, 5]), "the last query is edited"


def test_pattern_hook_edits_only_the_selected_rows_and_keeps_their_mass():
    gen = torch.Generator().manual_seed(1)
    pattern = torch.randn(1, 4, 8, 8, generator=gen).masked_fill(~torch.ones(8, 8).tril().bool(), -torch.inf)
    pattern = pattern.softmax(-1)
    visual = torch.tensor([0, 1, 1, 0, 0, 0, 0, 0]).bool()  # a [T] mask broadcasts over the batch
    audio = torch.tensor([0, 0, 0, 1, 1, 1, 1, 0]).bool()
    out = ar_pattern_hook(visual, audio, tau=0.0)(pattern)
    assert torch.equal(out[:, :, :-1], pattern[:, :, :-1])
    assert not torch.equal(out[:, :, -1], pattern[:, :, -1])
    torch.testing.assert_close(out.sum(-1), pattern.sum(-1))
    # scores form on the same rows: softmax(s + log f) is the pattern form's row
    scores = pattern.log()
    via_scores = ar_scores_hook(visual, audio, tau=0.0)(scores).softmax(-1)
    torch.testing.assert_close(via_scores, out, atol=1e-6, rtol=0)
