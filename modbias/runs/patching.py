"""Head activation patching between modality-swapped pairs at the emotion step (run kind ``patch``).

For each sample, its counterfactual (:class:`modbias.data.counterfactual.Counterfactuals`: the
``swap`` modality replaced so it agrees with the other one) is generated on its own and its
emotion-step query captured.  Then, in the original run, each head's output at the query (its
slice of ``o_proj``'s input) is replaced by the counterfactual's, with nnsight, and the logit
difference LD = log p(audio-cue emotion) − log p(visual-cue emotion) of the *original* sample is
read again.  Recorded per (sample, layer, head): ``patch_logit_diff`` and the normalised
``patch_effect = (LD_patched − LD) / (LD_cf − LD)`` (:func:`modbias.core.causal.normalised_effect`).

The attribution-patching fast path (``method="attribution"`` or ``"both"``) estimates every head's
patching effect from one forward and one backward on the original:
``∂LD/∂z_h · (z_h^cf − z_h)`` (:func:`modbias.core.causal.attribution_estimate`), stored as
``attribution_effect`` (normalised the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import nnsight
import torch
import xarray as xr

from modbias.core.causal import attribution_estimate, normalised_effect
from modbias.data.counterfactual import Counterfactuals
from modbias.data.sample import Benchmark, Sample
from modbias.models.base import ModelAdapter
from modbias.runs.causal import (CausalConfig, DecoderParts, EmotionStep, _dataset, _nan_where_invalid, at_query,
                                 capture, causal, emotion_step, forward_kwargs, step_logit_diff)

METHODS = ("exact", "attribution", "both")


def patched_logit_diff(model: ModelAdapter, step: EmotionStep, z_cf: torch.Tensor, heads: list[tuple[int, int]],
                       resid_cf: torch.Tensor | None = None, parts: DecoderParts | None = None) -> torch.Tensor:
    """LD ``[B]`` of the original run with ``heads`` patched at the query, with nnsight.

    Args:
        model: the adapter.
        step: the original batch at its emotion step.
        z_cf: ``[B, L, H·D]`` the counterfactual's ``o_proj`` inputs at its own emotion-step query.
        heads: ``(layer, head)`` pairs to patch.
        resid_cf: ``[B, d]`` also patch the residual stream entering the first layer at the query.
        parts: the decoder's parts (found from ``model`` if not given).
    Returns:
        ``[B]`` float32, NaN where the sample has no emotion step or no emotion pair.
    """
    parts = parts or DecoderParts.of(model)
    d_head = z_cf.shape[-1] // parts.n_heads
    rows = torch.arange(z_cf.shape[0])
    query = step.query
    embeds = step.inputs.inputs_embeds
    if resid_cf is not None:
        embeds = embeds.clone()
        embeds[rows, query] = resid_cf.to(embeds)
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    traced = nnsight.NNsight(parts.decoder)
    with torch.no_grad(), traced.trace(**forward_kwargs(step, embeds)):
        for layer in sorted(by_layer):  # modules in execution order
            z = traced.layers[layer].self_attn.o_proj.input
            for head in by_layer[layer]:
                cut = slice(head * d_head, (head + 1) * d_head)
                z[rows, query, cut] = z_cf[:, layer, cut].to(z.dtype)
        normed = traced.output.last_hidden_state.save()
    with torch.no_grad():
        return step_logit_diff(step, parts.logits(at_query(torch.as_tensor(normed).detach(), query)))


def attribution_gradient(model: ModelAdapter, step: EmotionStep, parts: DecoderParts | None = None) -> torch.Tensor:
    """Gradient of LD with respect to every ``o_proj`` input at the query: one forward, one backward.

    Args:
        model, step: the adapter and the original batch at its emotion step.
        parts: the decoder's parts (found from ``model`` if not given).
    Returns:
        ``[B, L, H·D]`` float32 on the CPU.
    """
    parts = parts or DecoderParts.of(model)
    inputs = []
    hooks = [attention.o_proj.register_forward_pre_hook(lambda m, args: inputs.append(args[0]))
             for attention in parts.attentions]
    try:
        with torch.enable_grad():
            embeds = step.inputs.inputs_embeds.detach().requires_grad_(True)
            normed = parts.decoder(**forward_kwargs(step, embeds)).last_hidden_state
            ld = step_logit_diff(step, parts.logits(at_query(normed, step.query)))
            grads = torch.autograd.grad(torch.nan_to_num(ld).sum(), inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack([at_query(g, step.query) for g in grads], 1).float().cpu()


def patch_batch(model: ModelAdapter, samples: list[Sample], config: CausalConfig,
                counterfactuals: Counterfactuals) -> xr.Dataset:
    """Exact and/or attribution patching of every head for one batch.

    Args:
        model, samples, config: the adapter, one batch, the run's settings (``method``).
        counterfactuals: builds each sample's counterfactual.
    Returns:
        Dataset: ``patch_logit_diff``, ``patch_effect``, ``attribution_effect`` (sample, layer, head),
        ``logit_diff``, ``logit_diff_cf``, ``cf_prediction``, ``S_v``, ``S_a``.
    """
    step = emotion_step(model, samples, config)
    cf_samples = [counterfactuals(s) for s in samples]
    cf_step = emotion_step(model, cf_samples, config, pair_of=samples)
    parts = DecoderParts.of(model)
    clean, cf = capture(model, step, parts), capture(model, cf_step, parts)
    ld, ld_cf = step_logit_diff(step, clean.logits), step_logit_diff(cf_step, cf.logits)
    valid = step.valid & cf_step.found
    n_layers, n_heads = model.n_layers, parts.n_heads
    data = {"logit_diff_cf": ("sample", _nan_where_invalid(ld_cf, valid).numpy()),
            "cf_prediction": ("sample", [d.prediction for d in cf_step.decoded])}
    heads = ("sample", "layer", "head")
    if config.method in ("exact", "both"):
        patched = torch.stack([patched_logit_diff(model, step, cf.z, [(layer, head)], parts=parts)
                               for layer in range(n_layers) for head in range(n_heads)], 1)
        patched = _nan_where_invalid(patched.reshape(-1, n_layers, n_heads), valid[:, None, None].expand(
            -1, n_layers, n_heads))
        data["patch_logit_diff"] = (heads, patched.numpy())
        data["patch_effect"] = (heads, normalised_effect(patched, ld, ld_cf).numpy())
    if config.method in ("attribution", "both"):
        estimate = attribution_estimate(attribution_gradient(model, step, parts), clean.z, cf.z, n_heads)
        data["attribution_effect"] = (heads, normalised_effect(estimate + ld[:, None, None], ld, ld_cf).numpy())
    return _dataset(samples, step, clean, ld, data)


def patch(model: ModelAdapter, data: Iterable[Sample], *, out: str | Path | None = None,
          cache_dir: str | Path | None = None, progress: bool = True, **settings) -> xr.Dataset:
    """Run head patching over ``data`` (a Benchmark: counterfactuals are built from it); see module doc.

    Args:
        model: the adapter.
        data: samples; a Benchmark's config enters the run identity (others are wrapped as ``samples``).
        out: store path (resumable).
        cache_dir: without ``out``, store under this folder at the name of the run's identity.
        progress: show a progress bar.
        settings: :class:`~modbias.runs.causal.CausalConfig` fields; ``swap`` (audio | visual) and
            ``method`` (exact | attribution | both) matter here.
    Returns:
        Dataset: ``patch_effect``, ``patch_logit_diff``, ``attribution_effect`` (sample, layer, head),
        ``logit_diff``, ``logit_diff_cf``, ``S_v``, ``S_a`` and the per-sample coords.
    """
    config = CausalConfig(**settings)
    if config.method not in METHODS:
        raise ValueError(f"method={config.method!r}; expected one of {METHODS}")
    benchmark = data if isinstance(data, Benchmark) else Benchmark("samples", list(data))
    counterfactuals = Counterfactuals(benchmark, config.swap)
    return causal("patch", model, benchmark, out=out, cache_dir=cache_dir, progress=progress,
                  record_batch=lambda chunk: patch_batch(model, chunk, config, counterfactuals), **settings)
