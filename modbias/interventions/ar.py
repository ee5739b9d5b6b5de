"""Attention Reallocation (AR), CA-MER paper Sec. 5.2, Algorithm 1, App. A.

Per layer, with S_h(ω, X) the attention head h puts on token set X:
  c(ω)  = Σ_h S_h(A) / Σ_h S_h(V)                       (Eq. 6)
  c_h(ω) = S_h(A) / S_h(V)                              (Eq. 5)
  H_bias = {h | c > τ and c_h > c}                      (Eq. 7)
and for each biased head, with Δ_h = (S_h(A) − c·S_h(V)) / (1 + c)   (Eq. 14),
  ω'(a) = ω(a)·(1 − Δ_h / S_h(A)),  ω'(v) = ω(v)·(1 + Δ_h / S_h(V))  (Eqs. 12-13)
which satisfies c_h(ω') = c (Eq. 8), keeps S_h(A∪V) (Eq. 9) and the
proportions inside each modality (Eqs. 10-11).  Other tokens are untouched.

Zero attention: a head with S_h(V) = 0 has c_h = inf (see modbias.core.metrics)
but cannot receive mass proportionally (Eq. 13 divides by S_h(V)), so it is
left unchanged, as are heads with S_h(A) = 0 (c_h = 0, never biased), layers
with c = nan (no A or V attention) and layers with c = inf.  No NaN or inf
is ever produced.

The same edit is a per-modality additive bias on the scores:
``softmax(s + log f) = ω·f`` because Σ ω·f = 1 (Eq. 9); see :func:`log_factors`.
"""

from __future__ import annotations

import numpy as np
import torch

from modbias.core.metrics import biased_heads
from modbias.core.probe import RowContext
from modbias.interventions.base import Intervention, layer_set, register


DEFAULT_FLOOR = 1e-6


def modality_columns(visual_mask: torch.Tensor, audio_mask: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """The masks of V and A as the two columns of one matrix (Sec. 5.2).

    Args:
        visual_mask: V ``[..., T]``.
        audio_mask: A (the competitor set) ``[..., T]``, broadcastable with ``visual_mask``.
        dtype: dtype of the result.
    Returns:
        ``[..., T, 2]`` (V first), so that ``rows @ columns`` gives S_h(V) and S_h(A) of every head at once.
    """
    visual, audio = torch.broadcast_tensors(visual_mask, audio_mask)
    return torch.stack([visual, audio], -1).to(dtype)


def edit_plan(weights: torch.Tensor, visual_mask: torch.Tensor, audio_mask: torch.Tensor, tau: float = 1.0,
              floor: float = DEFAULT_FLOOR) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Algorithm 1's plan for every head and row at once.

    Args:
        weights: attention rows ``[..., H, T]`` (any leading dims: batch, queries).
        visual_mask, audio_mask: V and A ``[..., T]``, broadcastable to the leading dims of ``weights``.
        tau: τ of Eq. (7).
        floor: biased heads with 0 < S_h(V) < ``floor`` are left alone (module doc).
    Returns:
        ``(f_a, f_v, edited, floored)``, each ``[..., H]``: the factors of Eqs. (12)-(14) (1 where not
        edited), the heads edited, and the biased heads the floor left alone.  S_h(V), S_h(A) of all
        heads come from one product ``weights @ [V, A]`` in float64.
    """
    weights = weights.double()
    S_v, S_a = (weights @ modality_columns(visual_mask, audio_mask)).unbind(-1)
    c = (S_a.sum(-1) / S_v.sum(-1))[..., None]  # Eq. (6)
    candidates = biased_heads(S_a, S_v, tau) & (S_v > 0)  # Eq. (7); S_v = 0 cannot receive mass (Eq. 13)
    floored = candidates & (S_v < floor)
    biased = candidates & ~floored
    one = torch.ones_like(S_a)
    safe_a, safe_v = torch.where(biased, S_a, one), torch.where(biased, S_v, one)
    safe_c = torch.where(biased, c.expand_as(S_a), torch.zeros_like(S_a))
    delta = (safe_a - safe_c * safe_v) / (1 + safe_c)  # Eq. (14)
    f_a = torch.where(biased, 1 - delta / safe_a, one)   # Eq. (12)
    f_v = torch.where(biased, 1 + delta / safe_v, one)   # Eq. (13)
    return f_a, f_v, biased, floored


def reallocation_factors(weights: torch.Tensor, visual_mask: torch.Tensor, audio_mask: torch.Tensor,
                         tau: float = 1.0, floor: float = DEFAULT_FLOOR) -> tuple[torch.Tensor, torch.Tensor]:
    """Multiplicative factors of Eqs. (12)-(14) per head (the first half of :func:`edit_plan`).

    Args:
        weights: attention rows ``[..., H, T]``.
        visual_mask: V ``[..., T]``.
        audio_mask: A ``[..., T]``.
        tau: τ of Eq. (7).
        floor: biased heads with 0 < S_h(V) < ``floor`` are left alone (module doc).
    Returns:
        ``(f_a, f_v)``, each ``[..., H]`` float64; 1 where a head is not edited.
    """
    return edit_plan(weights, visual_mask, audio_mask, tau, floor)[:2]


def reallocate(weights: torch.Tensor, visual_mask: torch.Tensor, audio_mask: torch.Tensor,
               tau: float = 1.0, floor: float = DEFAULT_FLOOR) -> torch.Tensor:
    """AR on one layer's attention rows (Algorithm 1, Eqs. 5-7 and 12-14).

    >>> w = torch.tensor([[0.1, 0.1, 0.6, 0.2], [0.3, 0.3, 0.2, 0.2]])   # 2 heads; V = {0, 1}, A = {2}
    >>> v, a = torch.tensor([1, 1, 0, 0.]), torch.tensor([0, 0, 1, 0.])
    >>> reallocate(w, v.bool(), a.bool(), tau=0.5)  # c = 0.8/0.8 = 1; head 0 has c_h = 3 > c
    tensor([[0.2000, 0.2000, 0.4000, 0.2000],
            [0.3000, 0.3000, 0.2000, 0.2000]])

    Args:
        weights: attention rows ``[..., H, T]``.
        visual_mask: V ``[..., T]``.
        audio_mask: A ``[..., T]``.
        tau: τ of Eq. (7).
        floor: biased heads with 0 < S_h(V) < ``floor`` are left alone (module doc).
    Returns:
        The reallocated rows ω', ``weights``' shape and dtype.
    """
    f_a, f_v = reallocation_factors(weights, visual_mask, audio_mask, tau, floor)
    return apply_factors(weights, f_a, f_v, visual_mask, audio_mask)


def factor_rows(f_a: torch.Tensor, f_v: torch.Tensor, visual_mask: torch.Tensor,
                audio_mask: torch.Tensor) -> torch.Tensor:
    """Per-token factors: f_a on A, f_v on V, 1 elsewhere (Eqs. 12-13).

    Computed as one product ``[f_v - 1, f_a - 1] @ [V, A]ᵀ`` for every head.

    Args:
        f_a: factor on A per head ``[..., H]``.
        f_v: factor on V per head ``[..., H]``.
        visual_mask: V ``[..., T]``.
        audio_mask: A ``[..., T]``.
    Returns:
        ``[..., H, T]`` float64.
    """
    steps = torch.stack([f_v, f_a], -1).double() - 1  # [..., H, 2]
    return 1 + steps @ modality_columns(visual_mask, audio_mask).transpose(-1, -2)


def apply_factors(weights, f_a, f_v, visual_mask, audio_mask) -> torch.Tensor:
    """ω' = ω·f_a on A and ω·f_v on V (per head), other tokens unchanged.

    Args:
        weights: rows ``[..., H, T]``; f_a, f_v: ``[..., H]``; masks ``[..., T]``.
    Returns:
        The edited rows, ``weights``' shape and dtype (the product is taken in float64).
    """
    return (weights.double() * factor_rows(f_a, f_v, visual_mask, audio_mask)).to(weights.dtype)


def log_factors(weights, visual_mask, audio_mask, tau: float = 1.0, floor: float = DEFAULT_FLOOR) -> torch.Tensor:
    """The AR edit as an additive score bias: ``softmax(scores + bias) = reallocate(weights)``.

    Exact because Σ ω·f = 1 (Eq. 9), see the module doc.

    Args:
        weights: attention rows ``[..., H, T]`` (the softmax of the scores the bias is added to).
        visual_mask: V ``[..., T]``.
        audio_mask: A ``[..., T]``.
        tau: τ of Eq. (7).
        floor: biased heads with 0 < S_h(V) < ``floor`` are left alone (module doc).
    Returns:
        ``log f`` ``[..., H, T]`` in ``weights``' dtype (0 on unedited heads and on tokens outside A ∪ V).
    """
    f_a, f_v = reallocation_factors(weights, visual_mask, audio_mask, tau, floor)
    return factor_rows(f_a, f_v, visual_mask, audio_mask).log().to(weights.dtype)


@register("ar")
class AttentionReallocation(Intervention):
    """AR at every generated step on the selected layers (default all).

    ``competitor`` names the token set playing A: ``audio`` (default) or ``text``
    (image-only models, the hallucination setting of App. D.1).  ``floor``: see module doc.
    """

    def __init__(self, tau: float = 1.0, layers=None, competitor: str = "audio", floor: float = DEFAULT_FLOOR):
        if competitor not in ("audio", "text"):
            raise ValueError(f"competitor must be 'audio' or 'text', got {competitor!r}")
        if not 0.0 <= float(floor) < 1.0:
            raise ValueError(f"floor must lie in [0, 1), got {floor}")
        self.tau, self.layers, self.competitor, self.floor = float(tau), layers, competitor, float(floor)
        self.active_layers: frozenset[int] | None = None  # resolved against the model in attach()
        self._counts: dict[str, torch.Tensor] = {}

    def params(self) -> dict:
        """``tau``, ``layers``, ``competitor`` and ``floor``, as stored in run configs."""
        return {"tau": self.tau, "layers": self.layers, "competitor": self.competitor, "floor": self.floor}

    def attach(self, model) -> None:
        """Resolve ``layers`` against the model (``None``: all layers).

        Args:
            model: the model adapter; its ``n_layers`` bounds the layer set.
        """
        self.active_layers = layer_set(self.layers, model.n_layers)

    def begin_batch(self, model, batch, samples) -> None:
        """Reset the per-sample edit counts of :meth:`batch_counts`.

        Args:
            model: the model adapter (unused).
            batch: the prepared batch (unused).
            samples: the batch's samples (unused).
        """
        self._counts = {}

    def batch_counts(self) -> dict[str, np.ndarray]:
        """Per sample of the current batch: head rows edited and head rows stopped by the floor."""
        return {k: v.cpu().numpy().copy() for k, v in self._counts.items()}

    def edit_rows(self, rows: torch.Tensor, context: RowContext) -> torch.Tensor:
        """Algorithm 1 on one layer's rows: every head and query in one pass.

        Layers stay sequential (layer l+1's rows depend on layer l's edited output); a layer outside
        ``layers``, or where no head is biased, returns ``rows`` itself, so the model keeps its own attention
        output there.  Edited and floored head rows are added to :meth:`batch_counts`.

        Args:
            rows: attention weights ``[B, H, Q, T]``.
            context: the layer index and the token masks ``[B, T]`` by token set (``visual``, ``audio``, ``text``, ...).
        Returns:
            ω' of Eqs. (12)-(13), ``[B, H, Q, T]``, ``rows``' dtype.
        """
        if self.active_layers is not None and context.layer not in self.active_layers:
            return rows
        masks = context.masks
        visual, competitor = masks["visual"][:, None, :], masks[self.competitor][:, None, :]
        per_query = rows.transpose(1, 2)  # [B, Q, H, T]: heads next to tokens
        f_a, f_v, edited, floored = edit_plan(per_query, visual, competitor, self.tau, self.floor)
        for name, heads in (("edited", edited), ("floored", floored)):
            count = heads.flatten(1).sum(1)
            self._counts[name] = self._counts[name] + count if name in self._counts else count
        if not edited.any():
            return rows
        return apply_factors(per_query, f_a, f_v, visual, competitor).transpose(1, 2)
