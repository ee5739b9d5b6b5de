"""``modbias.attention_rows``: attention rows of generated steps from any HF causal LM, no adapter.

For a LLaMA / Qwen2 / Mistral-style ``transformers`` model (anything whose attention
modules go through ``AttentionInterface``), generate greedily and return, for each asked
step k, the attention row of the query that decodes generated token k (the token at
position ``prompt_len - 1 + k``), per layer and head, over every earlier position.  The
rows come from the probe (:mod:`modbias.core.probe`): fused SDPA everywhere, ``softmax(q·Kᵀ)``
for the asked queries only, so memory grows with L·H·T, never T².

>>> rows = modbias.attention_rows(model, tokenizer("The face looks", return_tensors="pt"), steps=[0, 3])
>>> rows.sel(step=3, layer=5).sum("head")                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from modbias.core.hf_compat import crop_cache, output_cache, with_cache
from modbias.core.probe import instrumented, tapped_rows

DIMS = ("sample", "step", "layer", "head", "token")


def _ids_and_mask(inputs) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` ``[B, T]`` and a 2-D padding mask from ids or a tokenizer's output."""
    if isinstance(inputs, Mapping):
        if "input_ids" not in inputs:
            raise ValueError("attention_rows: the inputs mapping has no 'input_ids'")
        ids, mask = torch.as_tensor(inputs["input_ids"]), inputs.get("attention_mask")
    else:
        ids, mask = torch.as_tensor(inputs), None
    if ids.dim() == 1:
        ids = ids[None]
    if ids.dim() != 2 or ids.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"attention_rows: input_ids must be integer ids [batch, tokens], got {tuple(ids.shape)} "
                         f"{ids.dtype}")
    mask = torch.ones_like(ids) if mask is None else torch.as_tensor(mask).reshape(ids.shape)
    return ids, mask.long()


def _check_steps(steps: Sequence[int]) -> list[int]:
    steps = [int(s) for s in steps]
    if not steps or min(steps) < 0:
        raise ValueError(f"attention_rows: steps must be non-negative generated-step indices, got {steps}")
    return steps


@torch.no_grad()
def attention_rows(model, inputs, steps: Sequence[int] = (0,), layers: Sequence[int] | None = None,
                   masks: Mapping[str, torch.Tensor] | None = None, pad_token_id: int | None = None,
                   max_new_tokens: int | None = None) -> xr.DataArray:
    """Attention rows of generated steps ``steps`` of ``model`` on ``inputs``.

    Args:
        model: a ``transformers`` causal LM (LLaMA, Qwen2, Mistral, ...).  It is switched to the
            probe attention for the call and restored afterwards.
        inputs: ``input_ids`` ``[T]`` or ``[B, T]`` (left-padded), or a tokenizer's output
            (a mapping with ``input_ids`` and optionally ``attention_mask``).
        steps: generated-step indices k (0 = the first generated token).
        max_new_tokens: how many tokens to generate greedily (default and minimum ``max(steps) + 1``).
        layers: layer indices to keep (default: all).
        masks: optional modality masks ``name -> bool [B, T]`` over the prompt positions; each
            becomes a ``(sample, token)`` coordinate (False on generated positions), so e.g.
            ``rows.where(rows.visual).sum("token")`` is the visual attention sum.
        pad_token_id: passed to ``generate`` (default: the model's, else 0).

    Returns:
        ``DataArray`` of float32 rows, dims ``(sample, step, layer, head, token)``; ``token`` runs
        over the prompt and the generated tokens before the last asked step; each row sums to 1
        over real (non-padded) positions.  Coordinates: ``token_id`` ``(sample, token)``, and
        ``ended`` ``(sample, step)``: True where the sample had finished (EOS) before that step, in
        which case its row is NaN.
    """
    ids, mask = _ids_and_mask(inputs)
    steps = _check_steps(steps)
    n_prompt, n_new = ids.shape[1], max(max(steps) + 1, max_new_tokens or 0)
    config = model.config.get_text_config()
    if pad_token_id is None:
        pad_token_id = getattr(model.generation_config, "pad_token_id", None) or 0
    device = next(model.parameters()).device
    ids, mask = ids.to(device), mask.to(device)
    with instrumented(model):
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=n_new, do_sample=False,
                             pad_token_id=pad_token_id, return_dict_in_generate=True)
        generated = out.sequences[:, n_prompt:]
        if generated.shape[1] < n_new:  # every sample ended early: pad (those rows are NaN below)
            generated = torch.cat([generated, generated.new_full((ids.shape[0], n_new - generated.shape[1]),
                                                                 pad_token_id)], dim=1)
        sequence = torch.cat([ids, generated[:, :max(steps)]], dim=1)  # up to the last asked query
        full_mask = torch.cat([mask, torch.ones_like(generated[:, :max(steps)])], dim=1)
        positions = (full_mask.cumsum(-1) - 1).clamp(min=0)
        query = torch.tensor(steps, device=device).expand(ids.shape[0], -1)
        cache = output_cache(out)
        if hasattr(cache, "crop") and cache.get_seq_length() >= n_prompt - 1:  # re-run from the last prompt token
            crop_cache(cache, n_prompt - 1)
            rows = tapped_rows(model, query, input_ids=sequence[:, n_prompt - 1:], attention_mask=full_mask,
                               position_ids=positions[:, n_prompt - 1:], use_cache=True, **with_cache(cache))
        else:  # a cache that cannot be cropped: one forward over the whole sequence
            rows = tapped_rows(model, query + n_prompt - 1, input_ids=sequence, attention_mask=full_mask,
                               position_ids=positions)
    rows = rows.permute(0, 3, 1, 2, 4).float().cpu()  # [B, step, L, H, T]
    ended = _ended_before(generated.cpu(), steps, model.generation_config.eos_token_id)
    rows[torch.as_tensor(ended)] = float("nan")
    keep = list(range(config.num_hidden_layers)) if layers is None else [int(i) for i in layers]
    rows = rows[:, :, keep]
    coords = {"step": steps, "layer": keep, "head": np.arange(rows.shape[3]), "token": np.arange(rows.shape[-1]),
              "token_id": (("sample", "token"), sequence.cpu().numpy()), "ended": (("sample", "step"), ended)}
    for name, modality in (masks or {}).items():
        modality = torch.as_tensor(modality).bool().cpu().reshape(ids.shape)
        coords[name] = (("sample", "token"), torch.cat([modality, modality.new_zeros(ids.shape[0], max(steps))], 1)
                        .numpy())
    return xr.DataArray(rows.numpy(), dims=DIMS, coords=coords, name="rows",
                        attrs={"prompt_length": n_prompt, "model": type(model).__name__})


def _ended_before(generated: torch.Tensor, steps: list[int], eos) -> np.ndarray:
    """``[B, steps]``: True where an EOS was generated before step k (the row then means nothing)."""
    eos_ids = torch.as_tensor([] if eos is None else eos).reshape(-1)
    is_eos = torch.isin(generated, eos_ids)
    before = (is_eos.long().cumsum(-1) - is_eos.long()) > 0  # an EOS strictly earlier
    return before[:, steps].numpy()
