"""PAI against an independent re-implementation of its reference code (LALBJ/PAI), and row-edit stacking.

The reference path below is written from the reference's equations, not from modbias: an eager
attention function (scores = q·kᵀ/√d + mask, clamped at finfo.min; on the last query row of the
layers [start, end), visual scores a → |a|·α + a; softmax; ·V), cached greedy decoding, the
image-free branch built by deleting the visual rows of the prompt embeddings, and ``CFG.py``'s
mix of log-probabilities with the plausibility cutoff.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AttentionInterface, LogitsProcessor
from transformers.masking_utils import AttentionMaskInterface, eager_mask

import modbias
from modbias.core.layout import batch_masks
from modbias.core.probe import AttentionProbe, ProbeRequest, probing
from modbias.interventions import Intervention, applied, make
from modbias.interventions.ar import reallocate
from modbias.interventions.pai import DEFAULT_ALPHA, DEFAULT_GAMMA, DEFAULT_LAYERS, PAI
from modbias.runs.intervene import build_interventions

REFERENCE = {"layers": (), "alpha": 0.0, "image": (0, 0)}


def reference_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    groups = query.shape[1] // key.shape[1]
    key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    weights = query @ key.transpose(2, 3) / math.sqrt(query.shape[-1])
    if attention_mask is not None:
        weights = weights + attention_mask[:, :, :, :key.shape[-2]]
        weights = torch.max(weights, torch.tensor(torch.finfo(weights.dtype).min))
    if module.layer_idx in REFERENCE["layers"]:
        start, end = REFERENCE["image"]
        weights[:, :, -1, start:end] = weights[:, :, -1, start:end].abs() * REFERENCE["alpha"] \
            + weights[:, :, -1, start:end]
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    return (weights @ value).transpose(1, 2).contiguous(), weights


AttentionInterface.register("pai_reference_test", reference_attention)
AttentionMaskInterface.register("pai_reference_test", eager_mask)


class Recorder(LogitsProcessor):
    def __init__(self):
        self.scores = []

    def __call__(self, input_ids, scores):
        self.scores.append(scores.clone())
        return scores


def modbias_pai_scores(model, sample, pai: PAI, steps: int) -> list[torch.Tensor]:
    """The scores modbias hands to greedy decoding under ``pai``, step by step (the library's path)."""
    recorder = Recorder()
    with applied(model, [pai]), torch.no_grad():
        batch = model.prepare([sample])
        masks = batch_masks(batch.layouts, batch.offsets, batch.inputs_embeds.shape[1])
        AttentionProbe(model.backbone)  # instruments the backbone
        with probing(ProbeRequest(None, masks, [pai])):
            model.generate(batch, steps, logits_processor=pai.logits_processors(model, batch, [sample]) + [recorder])
    return recorder.scores


def reference_pai_scores(model, sample, alpha, layers, gamma, steps: int) -> list[torch.Tensor]:
    """Greedy decoding with a KV cache in both branches, as ``model.generate`` + ``CFGLogits`` run it:
    each step's query is the last row, and cached positions keep the states they had when decoded."""
    backbone = copy.deepcopy(model.backbone)
    backbone.set_attn_implementation("pai_reference_test")
    embeds, layout = model.embed_sample(sample)
    start, end = int(layout.visual.min()), int(layout.visual.max()) + 1
    assert end - start == len(layout.visual)  # one contiguous image span, as in LLaVA
    cond = embeds[None].detach()
    uncond = torch.cat([cond[:, :start], cond[:, end:]], dim=1)  # the prompt without its image
    out, cond_cache, uncond_cache = [], None, None
    with torch.no_grad():
        for _ in range(steps):
            REFERENCE.update(layers=layers, alpha=alpha, image=(start, end))
            step = backbone(inputs_embeds=cond, past_key_values=cond_cache, use_cache=True)
            c, cond_cache = F.log_softmax(step.logits[:, -1], dim=-1), step.past_key_values
            REFERENCE.update(layers=())  # use_cfg: no amplification in the image-free branch
            step = backbone(inputs_embeds=uncond, past_key_values=uncond_cache, use_cache=True)
            u, uncond_cache = F.log_softmax(step.logits[:, -1], dim=-1), step.past_key_values
            cutoff = torch.log(torch.tensor(0.1)) + c.max(dim=-1, keepdim=True).values
            scores = (gamma * (c - u) + u).masked_fill(c < cutoff, -float("inf"))
            out.append(scores)
            cond = uncond = model.embed_tokens(scores.argmax(-1))[:, None]
    return out


@pytest.fixture(scope="module")
def samples():
    return list(modbias.load_benchmark("synth", subset="all", limit=1, n_visual=24))


@pytest.mark.parametrize("alpha,layers,gamma", [(0.5, (1, 2, 3), 1.5), (DEFAULT_ALPHA, (2, 3), DEFAULT_GAMMA),
                                                (3.0, (0,), 2.0)])
def test_pai_next_token_scores_match_the_reference_equations(organism, samples, alpha, layers, gamma):
    spec = ",".join(map(str, layers))
    for sample in samples:
        ours = modbias_pai_scores(organism, sample, PAI(alpha=alpha, layers=spec, gamma=gamma), steps=3)
        ref = reference_pai_scores(organism, sample, alpha, set(layers), gamma, steps=3)
        for step, (a, b) in enumerate(zip(ours, ref)):
            assert torch.equal(torch.isinf(a), torch.isinf(b)), (sample.id, step)
            finite = torch.isfinite(b)
            torch.testing.assert_close(a[finite], b[finite], atol=2e-4, rtol=1e-4)
            assert finite.sum() >= 1


def test_the_reference_path_sees_the_amplification(organism, samples):
    """Guard against a vacuous comparison: α changes the reference's scores."""
    plain = reference_pai_scores(organism, samples[0], 0.0, {1, 2, 3}, 1.0, steps=1)[0]
    amplified = reference_pai_scores(organism, samples[0], 3.0, {1, 2, 3}, 1.0, steps=1)[0]
    finite = torch.isfinite(plain) & torch.isfinite(amplified)
    assert (plain[finite] - amplified[finite]).abs().max() > 1e-3


def test_defaults_are_the_reference_llava_settings():
    assert (DEFAULT_ALPHA, DEFAULT_LAYERS, DEFAULT_GAMMA) == (0.2, "2:", 1.1)
    pai = make("pai")
    assert (pai.alpha, pai.layers, pai.gamma, pai.plausibility) == (0.2, "2:", 1.1, 0.1)


# -- stacking: row edits compose in the order given ---------------------------------------------

class ByHand(Intervention):
    """PAI's score edit (layers 1:) and AR (Algorithm 1, every layer) in ``order``, from the equations:
    PAI multiplies the visual weights it receives by exp(α|a|) and renormalises (Eq. of the module doc)."""

    def __init__(self, alpha, tau, order=("pai", "ar")):
        self.alpha, self.tau, self.order = alpha, tau, order

    def edit_rows(self, rows, context):
        visual, audio = context.masks["visual"], context.masks["audio"]
        for step in self.order:
            if step == "pai" and context.layer >= 1:
                on_visual = visual[:, None, None, :] & torch.isfinite(context.scores)
                boost = torch.where(on_visual, torch.exp(self.alpha * context.scores.abs()), 1.0)
                rows = rows * boost / (rows * boost).sum(-1, keepdim=True)
            elif step == "ar":
                per_query = rows.transpose(1, 2)
                rows = reallocate(per_query, visual[:, None, :], audio[:, None, :], self.tau).transpose(1, 2)
        return rows


def test_pai_plus_ar_composes_and_equals_both_by_hand(organism, samples):
    bench = list(modbias.load_benchmark("synth", subset="all", limit=2, n_visual=24))
    batch = organism.prepare(bench)
    masks = batch_masks(batch.layouts, batch.offsets, batch.inputs_embeds.shape[1])
    probe = AttentionProbe(organism.backbone)
    forward = dict(inputs_embeds=batch.inputs_embeds, attention_mask=batch.attention_mask,
                   position_ids=batch.position_ids)

    def rows(editors):
        with applied(organism, editors):
            return probe.rows(None, masks=masks, editors=editors, **forward)

    pai_only = rows([make("pai", alpha=1.0, layers="1:")])
    ar_only = rows([make("ar", tau=0.0)])
    assert (pai_only - ar_only).abs().max() > 1e-3
    for method in ("pai+ar", "ar+pai"):
        stacked = build_interventions(method, alpha=1.0, layers="1:", tau=0.0)
        assert [iv.name for iv in stacked] == method.split("+")
        next(iv for iv in stacked if iv.name == "ar").layers = None  # AR on every layer, PAI on 1:
        both = rows(stacked)
        torch.testing.assert_close(both, rows([ByHand(1.0, 0.0, tuple(method.split("+")))]), atol=1e-5, rtol=1e-4)
        assert (both - pai_only).abs().max() > 1e-3, method
        assert (both - ar_only).abs().max() > 1e-3, method
