"""The maths of the causal tools, as pure functions on tensors (no model, no hooks).

Notation, at the emotion step (the query whose output is decoded into the emotion word):
``a`` / ``v`` are the tokens of the audio-cue and the visual-cue emotion, ``h_L`` the final
residual stream, ``g`` and ``eps`` the final RMSNorm's weight and epsilon, ``W_U`` the unembedding.

- Logit difference  LD = log p(a) − log p(v) = logit_a − logit_v  (the softmax normaliser cancels).
  LD > 0: the model leans to the audio cue.
- Direct logit attribution (DLA): with the final-norm scale ``s = (mean(h_L²) + eps)^(-1/2)`` frozen at
  its value on the run, ``logits = W_U (g ⊙ s·h_L)`` is linear in ``h_L = Σ_c x_c``, so each component
  ``x_c`` (embedding, head output ``z_h W_O^h``, MLP output) contributes ``s · (g ⊙ x_c) · (W_U[a] − W_U[v])``
  and the contributions sum to LD exactly (TransformerLens' ``apply_ln_to_stack`` convention).
- Activation patching: the normalised effect ``(LD_patched − LD) / (LD_cf − LD)``: 0 when patching
  changes nothing, 1 when it moves LD all the way to the counterfactual's.
- Attribution patching: the first-order estimate ``∂LD/∂z_h · (z_h^cf − z_h)`` of patching head h
  (one forward and one backward for every head).
"""

from __future__ import annotations

import torch


def logit_difference(logits: torch.Tensor, audio_ids: torch.Tensor, visual_ids: torch.Tensor) -> torch.Tensor:
    """``log p(a) − log p(v)`` per row.

    Args:
        logits: ``[..., V]`` (any leading dims, e.g. ``[B, V]`` or ``[B, L, V]`` for the lens).
        audio_ids, visual_ids: ``[B]`` token ids of each row's audio-cue and visual-cue emotion.
    Returns:
        ``[...]`` float32.
    """
    shape = (audio_ids.shape[0],) + (1,) * (logits.dim() - 2)
    a = logits.float().gather(-1, audio_ids.reshape(*shape, 1).expand(*logits.shape[:-1], 1))
    v = logits.float().gather(-1, visual_ids.reshape(*shape, 1).expand(*logits.shape[:-1], 1))
    return (a - v)[..., 0]


def rms_scale(resid: torch.Tensor, eps: float) -> torch.Tensor:
    """The RMSNorm scale ``s = (mean(x²) + eps)^(-1/2)`` over the last dim (frozen for DLA, see module doc).

    Args:
        resid: ``[..., d]`` residual-stream states, e.g. the final residual ``h_L`` ``[B, d]``.
        eps: the norm's epsilon.
    Returns:
        ``[..., 1]`` float32.
    """
    return torch.rsqrt(resid.float().pow(2).mean(-1, keepdim=True) + eps)


def head_outputs(z: torch.Tensor, o_weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Each head's write to the residual stream, ``z_h W_O^h``.

    Args:
        z: ``[B, H·D]`` one layer's input of ``o_proj`` at one position (heads concatenated).
        o_weight: ``[d, H·D]`` the ``o_proj`` weight (``nn.Linear`` layout).
        n_heads: H.
    Returns:
        ``[B, H, d]``; summed over heads (plus the bias, if any) it is ``o_proj(z)``.
    """
    d_head = z.shape[-1] // n_heads
    z_heads = z.float().reshape(z.shape[0], n_heads, d_head)
    w_heads = o_weight.float().reshape(o_weight.shape[0], n_heads, d_head)  # [d, H, D]
    return torch.einsum("bhk,dhk->bhd", z_heads, w_heads)


def direct_logit_attribution(components: torch.Tensor, scale: torch.Tensor, norm_weight: torch.Tensor,
                             direction: torch.Tensor) -> torch.Tensor:
    """Direct contribution of residual-stream components to the logit difference (frozen scale).

    Args:
        components: ``[B, C, d]`` writes to the final residual stream at the emotion step.
        scale: ``[B, 1]`` the final norm's scale on the run (:func:`rms_scale` of the final residual).
        norm_weight: ``[d]`` the final norm's weight ``g``.
        direction: ``[B, d]`` ``W_U[a] − W_U[v]`` per sample.
    Returns:
        ``[B, C]``: summed over every component of ``h_L`` it is the logit difference.
    """
    normed = components.float() * scale.float()[:, None, :] * norm_weight.float()
    return torch.einsum("bcd,bd->bc", normed, direction.float())


def normalised_effect(patched: torch.Tensor, clean: torch.Tensor, counterfactual: torch.Tensor,
                      min_gap: float = 1e-3) -> torch.Tensor:
    """``(LD_patched − LD) / (LD_cf − LD)``; NaN where ``|LD_cf − LD| < min_gap`` (nothing to recover).

    Args:
        patched: ``[B, ...]`` LD with something patched (e.g. ``[B, L, H]``: one value per head).
        clean: ``[B]`` LD of the run.
        counterfactual: ``[B]`` LD of the counterfactual run.
        min_gap: the smallest ``|LD_cf − LD|`` for which the effect is defined.
    Returns:
        ``[B, ...]`` float32.
    """
    gap = (counterfactual - clean).float()
    gap = torch.where(gap.abs() < min_gap, torch.full_like(gap, float("nan")), gap)
    shape = (-1,) + (1,) * (patched.dim() - 1)
    return (patched.float() - clean.float().reshape(shape)) / gap.reshape(shape)


def attribution_estimate(grad: torch.Tensor, clean: torch.Tensor, counterfactual: torch.Tensor,
                         n_heads: int) -> torch.Tensor:
    """First-order estimate of patching each head: ``Σ_k ∂LD/∂z_{h,k} · (z^cf_{h,k} − z_{h,k})``.

    Args:
        grad, clean, counterfactual: ``[B, L, H·D]`` gradient of LD w.r.t. ``o_proj``'s input and that
            input on the run and on the counterfactual, at the emotion step.
        n_heads: H.
    Returns:
        ``[B, L, H]``: estimated change of LD (divide by ``LD_cf − LD`` for the normalised effect).
    """
    product = grad.float() * (counterfactual.float() - clean.float())
    return product.reshape(*product.shape[:-1], n_heads, -1).sum(-1)


def knock_out(rows: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Attention rows with the ``keys`` set to zero and the rest renormalised (Geva et al. 2023's knockout).

    Equivalent to setting those keys' scores to −inf before the softmax.  A row whose whole mass was
    on ``keys`` becomes zero (the head then writes nothing at that query).

    Args:
        rows: ``[B, H, Q, T]`` softmax rows.
        keys: ``[B, T]`` bool, the keys to block.
    Returns:
        ``[B, H, Q, T]`` rows, each summing to 1 (or 0, see above).
    """
    kept = rows * (~keys.bool())[:, None, None, :].to(rows.dtype)
    total = kept.sum(-1, keepdim=True)
    return torch.where(total > 0, kept / total.clamp(min=torch.finfo(rows.dtype).tiny), kept)
