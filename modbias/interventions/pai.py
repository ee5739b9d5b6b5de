"""PAI — "Paying more attention to image" (Liu et al., 2024), as its reference code does it.

The CA-MER paper compares AR with PAI (Table 7).  This follows the
reference implementation (github.com/LALBJ/PAI: ``attention.py``, ``CFG.py``):

1. **Attention amplification.**  In layers ``[start, end)``, on the row of
   the query being decoded (``attn_weights[:, :, -1]``), every visual score
   ``a`` (scaled q·k plus mask, before the softmax) becomes ``a + α·|a|``, in
   all heads.  Here the edit acts on the rows it receives as the equivalent
   factor ``exp(α·|a|)`` on visual weights followed by renormalisation, so
   ``softmax(a + α|a|·1_V)`` when it comes first and a composition when
   another row edit (AR) came before it.
2. **Image-free guidance** (``CFG.py``), a logits processor: with
   ``c = log_softmax(cond)`` and ``u = log_softmax(uncond)`` of the same
   prompt without its visual tokens (decoded alongside, with no
   amplification), the next-token scores are ``γ·(c − u) + u``, set to −inf
   wherever ``c < log(0.1) + max c`` (the adaptive plausibility cutoff).

Defaults are the reference's for LLaVA-1.5 (32 layers): ``alpha=0.2``
(``--alpha`` default of ``pope_eval.py``/``chair_eval.py`` and every command of
its README), ``layers="2:"`` (``--start-layer 2 --end-layer 32``: from layer 2
to the last), ``gamma=1.1`` (the README's commands and ``init_cfg_processor``'s
default; the scripts' argparse default is 2), plausibility 0.1 (hard-coded in
``CFG.py``).  ``gamma=None`` switches guidance off (amplification only; the
reference's γ = 1 returns the conditional log-probabilities, the same greedy
choice).  The reference recommends sampling with guidance; modbias decodes greedily.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from transformers import LogitsProcessor

from modbias.core.hf_compat import output_cache, with_cache
from modbias.core.layout import position_ids_from_mask
from modbias.core.probe import RowContext, probing
from modbias.interventions.base import Intervention, layer_set, register

DEFAULT_ALPHA, DEFAULT_LAYERS, DEFAULT_GAMMA, DEFAULT_PLAUSIBILITY = 0.2, "2:", 1.1, 0.1


def amplify_visual_scores(scores: torch.Tensor, visual_mask: torch.Tensor, alpha: float) -> torch.Tensor:
    """PAI's edit on pre-softmax scores ``[..., T]``: a → a + α|a| on visual positions (masked ones stay masked).

    Args:
        scores: ``[..., T]``.
        visual_mask: bool, broadcastable to ``scores``.
        alpha: α.

    Returns:
        ``[..., T]``.
    """
    return torch.where(visual_mask & torch.isfinite(scores), scores + alpha * scores.abs(), scores)


def amplify_visual_rows(rows: torch.Tensor, scores: torch.Tensor, visual_mask: torch.Tensor,
                        alpha: float) -> torch.Tensor:
    """The same edit on attention rows: ``rows · exp(α|a|·1_V)``, renormalised (equals
    ``softmax(amplify_visual_scores(a))`` when ``rows = softmax(a)``).

    Args:
        rows: attention rows ``[..., T]``.
        scores: the rows' pre-softmax scores ``[..., T]``.
        visual_mask: bool, broadcastable to ``rows``.
        alpha: α.

    Returns:
        ``[..., T]`` rows summing to 1 (zeros stay zero).
    """
    boost = torch.where(visual_mask & torch.isfinite(scores), alpha * scores.abs(), torch.zeros_like(scores))
    weighted = torch.where(rows > 0, rows.double() * boost.double().exp(), 0.0)  # masked keys stay at 0
    return (weighted / weighted.sum(-1, keepdim=True)).to(rows.dtype)


def guided_scores(cond: torch.Tensor, uncond: torch.Tensor, gamma: float,
                  plausibility: float = DEFAULT_PLAUSIBILITY) -> torch.Tensor:
    """``γ·(c − u) + u`` on log-probabilities, −inf where ``c < log(plausibility) + max c`` (``CFG.py``).

    Args:
        cond: next-token logits with the visual tokens ``[B, V]``.
        uncond: next-token logits of the visual-free prompt ``[B, V]``.
        gamma: γ.
        plausibility: the cutoff's fraction of the top probability.

    Returns:
        ``[B, V]`` scores in ``cond``'s dtype.
    """
    c, u = F.log_softmax(cond.float(), dim=-1), F.log_softmax(uncond.float(), dim=-1)
    cutoff = math.log(plausibility) + c.max(dim=-1, keepdim=True).values
    return (gamma * (c - u) + u).masked_fill(c < cutoff, float("-inf")).to(cond.dtype)


class VisualFreeGuidance(LogitsProcessor):
    """Image-free guidance: decodes the visual-free prompt alongside (see module doc, step 2)."""

    def __init__(self, model, uncond_batch, gamma: float, plausibility: float = DEFAULT_PLAUSIBILITY):
        self.model, self.batch, self.gamma, self.plausibility = model, uncond_batch, gamma, plausibility
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
        return guided_scores(scores, out.logits[:, -1], self.gamma, self.plausibility)


@register("pai")
class PAI(Intervention):
    """PAI: amplification ``alpha`` on layers ``layers`` and image-free guidance ``gamma`` (see module doc)."""

    def __init__(self, alpha: float = DEFAULT_ALPHA, layers=DEFAULT_LAYERS, gamma: float | None = DEFAULT_GAMMA,
                 plausibility: float = DEFAULT_PLAUSIBILITY):
        if not 0.0 < float(plausibility) <= 1.0:
            raise ValueError(f"plausibility must lie in (0, 1], got {plausibility}")
        self.alpha, self.layers = float(alpha), layers
        self.gamma = None if gamma is None else float(gamma)
        self.plausibility = float(plausibility)
        self.active_layers: frozenset[int] | None = None

    def params(self) -> dict:
        """``alpha``, ``layers``, ``gamma`` and ``plausibility``."""
        return {"alpha": self.alpha, "layers": self.layers, "gamma": self.gamma, "plausibility": self.plausibility}

    def attach(self, model) -> None:
        """Resolve the layer spec against the model's depth.

        Args:
            model: the adapter.
        """
        self.active_layers = layer_set(self.layers, model.n_layers)

    def edit_rows(self, rows: torch.Tensor, context: RowContext) -> torch.Tensor:
        """Amplify visual attention on the decoded query's rows of the active layers.

        Args:
            rows: ``[B, H, Q, T_k]``.
            context: the layer, the ``visual`` mask ``[B, T_k]`` and the pre-softmax scores.

        Returns:
            ``[B, H, Q, T_k]`` (unchanged outside the active layers).
        """
        if self.active_layers is not None and context.layer not in self.active_layers:
            return rows
        visual = context.masks["visual"][:, None, None, :]
        return amplify_visual_rows(rows, context.scores, visual, self.alpha)

    def logits_processors(self, model, batch, samples) -> list:
        """Image-free guidance for this batch (none when ``gamma`` is ``None``).

        Args:
            model: the adapter.
            batch: the prepared batch (unused: the visual-free batch is built from ``samples``).
            samples: the batch's samples.

        Returns:
            ``[VisualFreeGuidance]`` or ``[]``.
        """
        if self.gamma is None:
            return []
        visual_free = [dataclasses.replace(s, visual=np.zeros((0, s.visual.shape[1]), s.visual.dtype))
                       for s in samples]
        return [VisualFreeGuidance(model, model.prepare(visual_free), self.gamma, self.plausibility)]
