"""Causal evidence for modality bias at the emotion step: knockout, direct logit attribution, logit lens.

Each run kind follows :mod:`modbias.runs.trace`: generate greedily, find the emotion step (the
``first`` emotion word y_k of Eq. 1 or the ``answer``'s), and take the query that produces it
(the token just before it).  One forward over the prompt and the generated tokens (left-padded,
keys after a sample's EOS masked; later positions cannot change the query's output) then measures,
at that query, the logit difference LD = log p(audio-cue emotion) − log p(visual-cue emotion)
(:mod:`modbias.core.causal`).  Every kind also stores the clean run's attention sums ``S_v, S_a``
per head at that query, so UAP, c_h and the biased set (Eqs. 1, 5-7) come with it on read.

Kinds (dims start with ``sample``):

- ``knockout``: LD after blocking the query's attention to one modality in layers ℓ..ℓ+w−1
  (window clipped at the top), per ``modality`` and window start ``layer``;
- ``dla``: each head's, MLP's and the embedding's direct contribution to LD (final-norm scale frozen);
- ``lens``: LD and the nine classes' probabilities read from each layer's residual stream;
- ``patch``: in :mod:`modbias.runs.patching`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import xarray as xr

from modbias.core.causal import direct_logit_attribution, head_outputs, logit_difference, rms_scale
from modbias.core.emotions import CLASSES
from modbias.core.layout import batch_masks
from modbias.core.metrics import modality_sums
from modbias.core.probe import ProbeRequest, attention_modules, instrument, probing
from modbias.data.sample import Sample
from modbias.interventions.knockout import AttentionKnockout
from modbias.models.base import ModelAdapter, PreparedBatch
from modbias.runs.identity import default_store, run_identity
from modbias.runs.loop import run
from modbias.runs.trace import Decoded, generate_under

STEPS = ("first", "answer")
KNOCKOUT_MODALITIES = ("visual", "audio")


@dataclass
class CausalConfig:
    """Settings of a causal run (``window``/``modalities``: knockout; ``swap``/``method``: patch).

    Args:
        at: the emotion step, ``answer`` (the conclusion's emotion word) or ``first`` (y_k of Eq. 1).
        max_new_tokens: generation length.
        batch_size: samples per forward.
        window: layers per knockout window (``0``: no edit).
        modalities: the knocked-out modalities, some of ``visual``, ``audio``.
        swap: the modality replaced in the counterfactual, ``audio`` or ``visual``.
        method: ``exact``, ``attribution`` or ``both``.
    """

    at: str = "answer"
    max_new_tokens: int = 16
    batch_size: int = 32
    window: int = 3
    modalities: tuple[str, ...] = KNOCKOUT_MODALITIES
    swap: str = "audio"
    method: str = "both"

    def __post_init__(self):
        if self.at not in STEPS:
            raise ValueError(f"at={self.at!r}; expected one of {STEPS}")
        if self.batch_size < 1 or self.max_new_tokens < 1 or self.window < 0:
            raise ValueError("batch_size and max_new_tokens must be positive, window non-negative")
        bad = [m for m in self.modalities if m not in KNOCKOUT_MODALITIES]
        if bad or not self.modalities:
            raise ValueError(f"knockout modalities {list(self.modalities)}; expected some of {KNOCKOUT_MODALITIES}")


KIND_SETTINGS = {"knockout": ("window", "modalities"), "patch": ("swap", "method"), "dla": (), "lens": ()}


def causal_run_config(kind: str, model: ModelAdapter, samples: list[Sample], data_config: dict,
                      config: CausalConfig) -> dict:
    """The run identity of a causal run (:func:`modbias.runs.identity.run_identity`).

    Args:
        kind: ``knockout``, ``patch``, ``dla`` or ``lens``.
        model: the adapter (its weights are fingerprinted).
        samples: the samples in run order.
        data_config: the benchmark's config.
        config: the run's settings; only those of :data:`KIND_SETTINGS` for ``kind`` enter besides ``at``
            and ``max_new_tokens`` (``batch_size`` never does).
    Returns:
        The JSON-able identity a store keeps (a resumed run must match it).
    """
    settings = {"at": config.at, "max_new_tokens": config.max_new_tokens,
                **{k: getattr(config, k) for k in KIND_SETTINGS[kind]}}
    return run_identity(kind, model, samples, data_config=data_config, **settings)


# -- the emotion step ---------------------------------------------------------------------------------

@dataclass
class EmotionStep:
    """One batch at its emotion step: the forward's inputs and, per sample, the query and the emotion pair."""

    inputs: PreparedBatch  # prompt + generated tokens up to the last query, left-padded
    query: torch.Tensor  # [B] absolute position of the query producing the emotion token
    found: torch.Tensor  # [B] bool: an emotion step exists
    audio_ids: torch.Tensor  # [B] token of the audio-cue emotion
    visual_ids: torch.Tensor  # [B] token of the visual-cue emotion
    defined: torch.Tensor  # [B] bool: the cue emotions are known and differ (LD defined)
    masks: dict[str, torch.Tensor]  # modality masks over the forward's keys, [B, T]
    decoded: list[Decoded]
    steps: torch.Tensor  # [B] generated-step index of the emotion token (-1: none)

    @property
    def valid(self) -> torch.Tensor:
        """``[B]`` bool: an emotion step exists and LD is defined (``found & defined``)."""
        return self.found & self.defined


def emotion_pair(model: ModelAdapter, samples: list[Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tokens of each sample's audio- and visual-cue emotion, the targets of LD.

    ``defined`` is False where a cue emotion is unknown or both cues name the same emotion (a consistent
    sample: LD would be 0 by construction), so LD-based values are NaN there and means are over conflicts.

    Args:
        model: the adapter (:meth:`~modbias.models.base.ModelAdapter.emotion_token_id`).
        samples: one batch.
    Returns:
        ``(audio_ids, visual_ids, defined)``, each ``[B]`` (ids 0 where not defined).
    """
    known = [s.audio_emotion is not None and s.visual_emotion is not None and s.audio_emotion != s.visual_emotion
             for s in samples]
    audio = [model.emotion_token_id(s.audio_emotion) if ok else 0 for s, ok in zip(samples, known)]
    visual = [model.emotion_token_id(s.visual_emotion) if ok else 0 for s, ok in zip(samples, known)]
    return torch.tensor(audio), torch.tensor(visual), torch.tensor(known)


def emotion_step(model: ModelAdapter, samples: list[Sample], config: CausalConfig,
                 pair_of: list[Sample] | None = None) -> EmotionStep:
    """Generate for ``samples`` and locate the ``config.at`` emotion step (as :func:`modbias.trace` does).

    Args:
        model: the adapter.
        samples: one batch.
        config: ``at`` and ``max_new_tokens`` are read.
        pair_of: the samples whose cue emotions define LD (default ``samples``; a counterfactual
            batch is measured on its original samples' emotion pair).
    Returns:
        :class:`EmotionStep`: inputs ``[B, T]`` cut after the last query, query positions ``[B]``.
    """
    gen = generate_under(model, samples, config.max_new_tokens)
    steps = torch.tensor([d.steps[config.at] for d in gen.decoded])
    n_prompt = gen.batch.inputs_embeds.shape[1]
    found = steps >= 0
    query = n_prompt - 1 + steps.clamp(min=0)
    end = int(query.max()) + 1
    full = model.extend(gen.batch, gen.generated)
    inputs = PreparedBatch(full.inputs_embeds[:, :end], full.attention_mask[:, :end], full.layouts, full.offsets)
    audio_ids, visual_ids, defined = emotion_pair(model, pair_of or samples)
    masks = batch_masks(inputs.layouts, inputs.offsets, end)
    return EmotionStep(inputs, query, found, audio_ids, visual_ids, defined, masks, gen.decoded, steps)


def forward_kwargs(step: EmotionStep, inputs_embeds: torch.Tensor | None = None) -> dict:
    """Keyword arguments of one decoder forward over the step's inputs.

    Args:
        step: the batch at its emotion step.
        inputs_embeds: ``[B, T, d]`` embeddings to use instead of the step's (e.g. with a patched position).
    Returns:
        ``{"inputs_embeds", "attention_mask", "position_ids"}``.
    """
    return {"inputs_embeds": step.inputs.inputs_embeds if inputs_embeds is None else inputs_embeds,
            "attention_mask": step.inputs.attention_mask, "position_ids": step.inputs.position_ids}


def at_query(hidden: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """``hidden[b, query[b]]`` for every b.

    Args:
        hidden: ``[B, T, ...]``.
        query: ``[B]`` positions.
    Returns:
        ``[B, ...]`` on ``hidden``'s device.
    """
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), query.to(hidden.device)]


# -- model parts --------------------------------------------------------------------------------------

@dataclass
class DecoderParts:
    """The parts of an HF decoder-only LM the causal tools read: layers, attention, norm, unembedding."""

    decoder: torch.nn.Module
    layers: list[torch.nn.Module]
    attentions: list[torch.nn.Module]
    norm: torch.nn.Module
    unembed: torch.nn.Module
    n_heads: int

    @classmethod
    def of(cls, model: ModelAdapter) -> "DecoderParts":
        """Find the parts in the adapter's backbone.

        Args:
            model: the adapter; its decoder must have ``layers`` and a final ``norm`` (LLaMA/Qwen2 layout).
        Returns:
            :class:`DecoderParts`; ``ValueError`` naming the decoder's class if it lacks them.
        """
        decoder = model.backbone.get_decoder()
        if not hasattr(decoder, "layers") or not hasattr(decoder, "norm"):
            raise ValueError(f"{type(decoder).__name__}: no decoder layers/norm found for the causal tools")
        attentions = [m for _, m in attention_modules(decoder)]
        return cls(decoder, list(decoder.layers), attentions, decoder.norm, model.backbone.get_output_embeddings(),
                   model.n_heads)

    def logits(self, normed: torch.Tensor) -> torch.Tensor:
        """Unembed final-normed states.

        Args:
            normed: ``[..., d]`` states after the final norm.
        Returns:
            ``[..., V]`` float32 logits.
        """
        return self.unembed(normed).float()


@dataclass
class Capture:
    """What a forward writes at the emotion-step query, per sample."""

    resid_pre: torch.Tensor  # [B, d]   input of the first layer (the query token's embedding)
    z: torch.Tensor  # [B, L, H·D]   input of each o_proj (heads concatenated)
    mlp: torch.Tensor  # [B, L, d]   output of each MLP
    resid_post: torch.Tensor  # [B, L, d]   output of each layer
    logits: torch.Tensor  # [B, V]   the model's logits
    S_v: torch.Tensor  # [B, L, H]   attention on the visual tokens
    S_a: torch.Tensor  # [B, L, H]   attention on the audio tokens


def _first_tensor(value):
    return value[0] if isinstance(value, tuple) else value


@torch.no_grad()
def capture(model: ModelAdapter, step: EmotionStep, parts: DecoderParts | None = None) -> Capture:
    """One clean forward recording what the emotion-step query writes and reads.

    Args:
        model: the adapter (instrumented for the probe here if it was not).
        step: the batch at its emotion step.
        parts: the decoder's parts (found from ``model`` if not given).
    Returns:
        :class:`Capture` (shapes in its fields), float32 on the CPU except ``logits``.
    """
    parts = parts or DecoderParts.of(model)
    instrument(model.backbone)
    saved: dict[str, list] = {"z": [], "mlp": [], "resid_post": [], "rows": []}
    query = step.query
    hooks = [parts.layers[0].register_forward_pre_hook(
        lambda m, args, kwargs: saved.__setitem__("resid_pre", at_query(
            args[0] if args else kwargs["hidden_states"], query)), with_kwargs=True)]
    for layer, attention in zip(parts.layers, parts.attentions):
        hooks.append(attention.o_proj.register_forward_pre_hook(
            lambda m, args: saved["z"].append(at_query(args[0], query))))
        hooks.append(layer.mlp.register_forward_hook(lambda m, args, out: saved["mlp"].append(at_query(out, query))))
        hooks.append(layer.register_forward_hook(
            lambda m, args, out: saved["resid_post"].append(at_query(_first_tensor(out), query))))
        hooks.append(attention.row_tap.register_forward_hook(lambda m, args, rows: saved["rows"].append(rows[:, :, 0])))
    try:
        with probing(ProbeRequest(query[:, None].to(model.device), step.masks)):
            normed = parts.decoder(**forward_kwargs(step)).last_hidden_state
    finally:
        for hook in hooks:
            hook.remove()
    rows = torch.stack(saved["rows"], dim=1).float().cpu()  # [B, L, H, T]
    sums = {k: modality_sums(rows, step.masks[m][:, None, :].float()) for k, m in (("S_v", "visual"),
                                                                                          ("S_a", "audio"))}
    return Capture(saved["resid_pre"].float(), torch.stack(saved["z"], 1).float(), torch.stack(saved["mlp"], 1).float(),
                   torch.stack(saved["resid_post"], 1).float(), parts.logits(at_query(normed, query)), **sums)


def step_logit_diff(step: EmotionStep, logits: torch.Tensor) -> torch.Tensor:
    """LD = log p(audio-cue emotion) − log p(visual-cue emotion) on the step's emotion pair.

    Args:
        step: the batch at its emotion step (its emotion pair and ``valid``).
        logits: ``[B, V]`` or ``[B, L, V]`` (per-layer logits of the lens).
    Returns:
        ``[B]`` or ``[B, L]`` float32 on the CPU, NaN where the sample is not ``valid``.
    """
    ld = logit_difference(logits, step.audio_ids.to(logits.device), step.visual_ids.to(logits.device)).cpu()
    return _nan_where_invalid(ld, step.valid)


def _nan_where_invalid(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    values = values.float().clone()
    values[~valid] = float("nan")
    return values


# -- the kinds ----------------------------------------------------------------------------------------

def knockout_windows(n_layers: int, window: int) -> list[list[int]]:
    """Layers ℓ..ℓ+w−1 of each window start ℓ = 0..L−1, clipped at the top.

    Args:
        n_layers: L.
        window: w (``0``: every window is empty).
    Returns:
        ``L`` lists of layer indices.
    """
    return [list(range(start, min(start + window, n_layers))) for start in range(n_layers)]


@torch.no_grad()
def knocked_logit_diff(model: ModelAdapter, step: EmotionStep, modality: str, layers: list[int],
                       parts: DecoderParts | None = None) -> torch.Tensor:
    """LD with the query's attention to ``modality`` knocked out on ``layers`` (probe row editing).

    Args:
        model, step: the adapter and the batch at its emotion step.
        modality: ``visual`` or ``audio``.
        layers: layer indices (empty: no edit).
        parts: the decoder's parts (found from ``model`` if not given).
    Returns:
        ``[B]`` float32, NaN where LD is undefined.
    """
    parts = parts or DecoderParts.of(model)
    instrument(model.backbone)
    knockout = AttentionKnockout(modality, layers)
    knockout.attach(model)
    with probing(ProbeRequest(step.query[:, None].to(model.device), step.masks, [knockout])):
        normed = parts.decoder(**forward_kwargs(step)).last_hidden_state
    return step_logit_diff(step, parts.logits(at_query(normed, step.query)))


def knockout_batch(model: ModelAdapter, samples: list[Sample], config: CausalConfig) -> xr.Dataset:
    """Knockout of each modality in each window of ``config.window`` layers.

    Args:
        model, samples, config: the adapter, one batch, the run's settings.
    Returns:
        Dataset: ``knockout_logit_diff``, ``knockout_delta`` (minus the clean LD) and ``knockout_flipped``
        (1 where LD changed sign, 0 where not, NaN where LD is undefined), dims (sample, modality,
        layer = window start); plus ``logit_diff``, ``S_v``, ``S_a``.
    """
    step = emotion_step(model, samples, config)
    parts = DecoderParts.of(model)
    clean = capture(model, step, parts)
    ld = step_logit_diff(step, clean.logits)
    knocked = torch.stack([torch.stack([knocked_logit_diff(model, step, modality, layers, parts)
                                        for layers in knockout_windows(model.n_layers, config.window)], -1)
                           for modality in config.modalities], 1)  # [B, M, L]
    dims = ("sample", "modality", "layer")
    data = {"knockout_logit_diff": (dims, knocked.numpy()),
            "knockout_delta": (dims, (knocked - ld[:, None, None]).numpy()),
            "knockout_flipped": (dims, _nan_where_invalid(torch.sign(knocked) != torch.sign(ld[:, None, None]),
                                                          step.valid).numpy())}
    return _dataset(samples, step, clean, ld, data, {"modality": list(config.modalities)})


def dla_components(model: ModelAdapter, clean: Capture, parts: DecoderParts | None = None) -> dict[str, torch.Tensor]:
    """Every write to the final residual stream ``h_L`` at the query (the components ``x_c`` of DLA).

    Args:
        model: the adapter.
        clean: the clean run's capture (``resid_pre``, ``z``, ``mlp``).
        parts: the decoder's parts (found from ``model`` if not given).
    Returns:
        ``embed`` ``[B, 1, d]``, ``heads`` ``[B, L·H, d]`` (``z_h W_O^h``, layer-major), ``attn_bias``
        ``[B, L, d]`` (o_proj biases, zero for LLaMA), ``mlp`` ``[B, L, d]``; float32, summing to ``h_L``.
    """
    parts = parts or DecoderParts.of(model)
    heads, biases = [], []
    for layer, attention in enumerate(parts.attentions):
        heads.append(head_outputs(clean.z[:, layer], attention.o_proj.weight.detach().cpu(), parts.n_heads))
        bias = attention.o_proj.bias
        biases.append(torch.zeros_like(clean.mlp[:, layer]) if bias is None
                      else bias.detach().float().cpu().expand_as(clean.mlp[:, layer]))
    return {"embed": clean.resid_pre[:, None], "heads": torch.cat(heads, 1), "attn_bias": torch.stack(biases, 1),
            "mlp": clean.mlp}


def logit_direction(parts: DecoderParts, step: EmotionStep) -> torch.Tensor:
    """The unembedding direction of LD, ``W_U[a] − W_U[v]``, per sample.

    Args:
        parts: the decoder's parts (its unembedding ``W_U``).
        step: the batch at its emotion step (its emotion pair).
    Returns:
        ``[B, d]`` float32 on the CPU.
    """
    weight = parts.unembed.weight.detach().float().cpu()
    return weight[step.audio_ids] - weight[step.visual_ids]


def dla_batch(model: ModelAdapter, samples: list[Sample], config: CausalConfig) -> xr.Dataset:
    """Direct logit attribution at the emotion step, final-norm scale frozen (:mod:`modbias.core.causal`).

    Args:
        model, samples, config: the adapter, one batch, the run's settings.
    Returns:
        Dataset: ``dla_head`` (sample, layer, head), ``dla_mlp`` and ``dla_attn_bias`` (sample, layer),
        ``dla_embed`` (sample); together they sum to ``logit_diff``.
    """
    step = emotion_step(model, samples, config)
    parts = DecoderParts.of(model)
    clean = capture(model, step, parts)
    ld = step_logit_diff(step, clean.logits)
    scale = rms_scale(clean.resid_post[:, -1], parts.norm.variance_epsilon)
    direction = logit_direction(parts, step)
    parts_dla = {name: _nan_where_invalid(direct_logit_attribution(x, scale, parts.norm.weight.detach().cpu(),
                                                                   direction), step.valid)
                 for name, x in dla_components(model, clean, parts).items()}
    n_layers = model.n_layers
    data = {"dla_head": (("sample", "layer", "head"), parts_dla["heads"].reshape(-1, n_layers, parts.n_heads).numpy()),
            "dla_mlp": (("sample", "layer"), parts_dla["mlp"].numpy()),
            "dla_attn_bias": (("sample", "layer"), parts_dla["attn_bias"].numpy()),
            "dla_embed": ("sample", parts_dla["embed"][:, 0].numpy())}
    return _dataset(samples, step, clean, ld, data)


def lens_batch(model: ModelAdapter, samples: list[Sample], config: CausalConfig) -> xr.Dataset:
    """Logit lens at the emotion step: each layer's output through the final norm and the unembedding.

    Args:
        model, samples, config: the adapter, one batch, the run's settings.
    Returns:
        Dataset: ``lens_logit_diff`` (sample, layer) and ``lens_p`` (sample, layer, emotion: the nine
        classes' probabilities); the last layer gives the model's own logits.
    """
    step = emotion_step(model, samples, config)
    parts = DecoderParts.of(model)
    clean = capture(model, step, parts)
    ld = step_logit_diff(step, clean.logits)
    with torch.no_grad():
        logits = parts.logits(parts.norm(clean.resid_post.to(model.device, model.dtype))).cpu()  # [B, L, V]
    class_ids = torch.tensor([model.emotion_token_id(c) for c in CLASSES])
    p = logits.log_softmax(-1)[..., class_ids].exp()
    valid = step.found[:, None, None].expand_as(p)
    data = {"lens_logit_diff": (("sample", "layer"), step_logit_diff(step, logits).numpy()),
            "lens_p": (("sample", "layer", "emotion"), _nan_where_invalid(p, valid).numpy())}
    return _dataset(samples, step, clean, ld, data, {"emotion": list(CLASSES)})


def _dataset(samples: list[Sample], step: EmotionStep, clean: Capture, ld: torch.Tensor, data: dict,
             coords: dict | None = None) -> xr.Dataset:
    """A causal batch's Dataset: the kind's ``data`` plus LD, S_v/S_a at the query and per-sample coords."""
    heads = ("sample", "layer", "head")
    data = {**data, "logit_diff": ("sample", ld.numpy()),
            "S_v": (heads, _nan_where_invalid(clean.S_v, step.found).numpy()),
            "S_a": (heads, _nan_where_invalid(clean.S_a, step.found).numpy())}
    return xr.Dataset({k: (dims, np.asarray(v, dtype=np.float32) if np.asarray(v).dtype.kind == "f" else v)
                       for k, (dims, v) in data.items()},
                      coords={**sample_coords(samples, step), **(coords or {})})


def sample_coords(samples: list[Sample], step: EmotionStep) -> dict:
    """Per-sample coordinates of a causal run (as a trace stores them).

    Args:
        samples: one batch.
        step: its emotion step (decoded text, prediction, emotion-step index).
    Returns:
        ``{name: values}`` for ``xr.Dataset(coords=...)``: ``sample`` ids and, along it, ``subset``, ``label``,
        the cue emotions, ``prediction``, ``correct``, ``text``, ``emotion_step``, ``found``.
    """
    return {
        "sample": [s.id for s in samples],
        "subset": ("sample", [s.subset for s in samples]), "label": ("sample", [s.label for s in samples]),
        "visual_emotion": ("sample", [s.visual_emotion or "" for s in samples]),
        "audio_emotion": ("sample", [s.audio_emotion or "" for s in samples]),
        "prediction": ("sample", [d.prediction for d in step.decoded]),
        "correct": ("sample", [d.prediction == s.label for d, s in zip(step.decoded, samples)]),
        "text": ("sample", [d.text for d in step.decoded]),
        "emotion_step": ("sample", step.steps.numpy()), "found": ("sample", step.found.numpy()),
    }


BATCHES: dict[str, Callable[[ModelAdapter, list[Sample], CausalConfig], xr.Dataset]] = {
    "knockout": knockout_batch, "dla": dla_batch, "lens": lens_batch}


def causal(kind: str, model: ModelAdapter, data: Iterable[Sample], *, out: str | Path | None = None,
           cache_dir: str | Path | None = None, progress: bool = True, record_batch: Callable[[list[Sample]], xr.Dataset] | None = None,
           **settings) -> xr.Dataset:
    """Run a causal kind (``knockout``, ``dla``, ``lens``; ``patch`` via :func:`modbias.runs.patching.patch`)
    over ``data``; returns the run (also stored, resumable, at ``out``).

    Args:
        kind: the run kind.
        model: the adapter.
        data: samples (a Benchmark: its config enters the run identity).
        out: store path.
        cache_dir: without ``out``, store under this folder at the name of the run's identity
            (:func:`modbias.runs.identity.default_store`); with neither, the run stays in memory.
        progress: show a progress bar.
        record_batch: the batch function (default ``BATCHES[kind]``).
        settings: :class:`CausalConfig` fields (``at``, ``max_new_tokens``, ``batch_size``, ``window``, ...).
    Returns:
        Dataset with dims starting ``sample`` (see module doc).
    """
    if kind not in KIND_SETTINGS or (record_batch is None and kind not in BATCHES):
        raise ValueError(f"causal run kind {kind!r}; expected one of {sorted(BATCHES)} (patch: modbias.patch)")
    config = CausalConfig(**settings)
    samples = list(data)
    run_config = causal_run_config(kind, model, samples, getattr(data, "config", {}), config)
    if out is None and cache_dir is not None:
        out = default_store(run_config, cache_dir)
    batch = record_batch or (lambda chunk: BATCHES[kind](model, chunk, config))
    return run(model, samples, batch, config=run_config, out=out, batch_size=config.batch_size,
               progress=progress, label=kind)

