"""PAI — "Paying more attention to image" (Liu et al., 2024), as the CA-MER paper compares it (Table 7).

On the decoded query's row, in layers ``[start, end)`` and all heads, each
visual attention score a becomes ``a + α·|a|`` before the softmax.  The
optional guidance step mixes next-token logits as
``γ·(cond − uncond) + uncond``, the unconditional branch being the same
prompt without its visual tokens.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from transformers import LogitsProcessor

from modbias.interventions.base import Intervention, layer_set, register
from modbias.hf_compat import output_cache, with_cache
from modbias.models.base import position_ids_from_mask
from modbias.probe import RowContext, probing


def amplify_visual_scores(scores: torch.Tensor, visual_mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """PAI's edit on pre-softmax scores ``[..., T]``: a → a + α|a| on visual positions (masked ones stay masked)."""
    return torch.where(visual_mask & torch.isfinite(scores), scores + alpha * scores.abs(), scores)


class VisualFreeGuidance(LogitsProcessor):
    """γ·(cond − uncond) + uncond, the unconditional branch decoding the visual-free prompt alongside."""

    def __init__(self, model, uncond_batch, gamma: float):
        self.model, self.batch, self.gamma = model, uncond_batch, gamma
        self.cache, self.mask, self.position = None, uncond_batch.attention_mask, None

    @torch.no_grad()
    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        backbone = self.model.backbone
        with probing(None):  # the unconditional branch runs without any attention edit
            if self.cache is None:
                out = backbone(inputs_embeds=self.batch.inputs_embeds, attention_mask=self.mask,
                               position_ids=position_ids_from_mask(self.mask), use_cache=True, logits_to_keep=1)
                self.position = position_ids_from_mask(self.mask)[:, -1:]
            else:
                last = input_ids[:, -1:]
                self.mask = torch.cat([self.mask, torch.ones_like(last)], dim=1)
                self.position = self.position + 1
                out = backbone(inputs_embeds=self.model.embed_tokens(last), attention_mask=self.mask,
                               position_ids=self.position, use_cache=True, **with_cache(self.cache),
                               logits_to_keep=1)
        self.cache = output_cache(out)
        uncond = out.logits[:, -1].to(scores.dtype)
        return self.gamma * (scores - uncond) + uncond


@register("pai")
class PAI(Intervention):
    """PAI with amplification ``alpha`` on layers ``layers`` (default ``"2:"``) and optional guidance ``gamma``."""

    def __init__(self, alpha: float = 0.5, layers="2:", gamma: float | None = None):
        self.alpha, self.layers = float(alpha), layers
        self.gamma = None if gamma is None else float(gamma)
        self.active_layers: frozenset[int] | None = None

    def params(self) -> dict:
        return {"alpha": self.alpha, "layers": self.layers, "gamma": self.gamma}

    def attach(self, model) -> None:
        self.active_layers = layer_set(self.layers, model.n_layers)

    def edit_rows(self, rows: torch.Tensor, context: RowContext) -> torch.Tensor:
        if self.active_layers is not None and context.layer not in self.active_layers:
            return rows
        visual = context.masks["visual"][:, None, None, :]
        return amplify_visual_scores(context.scores, visual, self.alpha).softmax(-1)

    def logits_processors(self, model, batch, samples) -> list:
        if self.gamma is None:
            return []
        visual_free = [dataclasses.replace(s, visual=np.zeros((0, s.visual.shape[1]), s.visual.dtype))
                       for s in samples]
        return [VisualFreeGuidance(model, model.prepare(visual_free), self.gamma)]
