"""``modbias.trace``: attention at the first emotion token, per layer and head.

For each batch: generate greedily (under any interventions), find the
decoding step k of the first generated emotion word y_k (and/or of the
conclusion's emotion word), then re-run the generated tokens against the
generation's KV cache with the probe capturing the rows of the queries that
produce those tokens.  (The row "of y_k" is the
attention of the query at the position just before y_k: the one whose
output is decoded into y_k, paper Sec. 4.)  The per-head sums S_h of each
modality (Sec. 5.2) are written per batch to a :class:`RunStore`; UAP, c_h, c
and the biased heads (Eqs. 1, 5-7) are derived from them on read, at any τ
(:func:`modbias.runs.identity.read_at`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import xarray as xr

from modbias.core.emotions import FAMILY_CONCLUSION, answer_mention, find_emotions, parse_prediction
from modbias.core.hf_compat import crop_cache, with_cache
from modbias.core.layout import batch_masks
from modbias.core.probe import AttentionProbe, ProbeRequest, instrument, probe_for, probing
from modbias.data.sample import Sample, SampleError
from modbias.interventions.base import Intervention
from modbias.models.base import ModelAdapter, generated_mask
from modbias.runs.identity import default_store, read_at, run_identity
from modbias.runs.loop import run
from modbias.runs.store import pad_tokens
from modbias.runs.summaries import record_summary, run_summary

AT_CHOICES = {"first": ("first",), "answer": ("answer",), "both": ("first", "answer")}


@dataclass
class TraceConfig:
    """Parameters of a trace run that determine its numbers (the ``parameters`` of its identity)."""

    at: str = "first"
    max_new_tokens: int = 16
    save_rows: bool = False

    def __post_init__(self):
        if self.at not in AT_CHOICES:
            raise ValueError(f"at={self.at!r}; expected one of {sorted(AT_CHOICES)}")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be positive")


@dataclass
class Decoded:
    """One sample's generation: text, prediction, and the emotion steps (-1 if absent)."""

    ids: list[int]
    text: str
    prediction: str
    steps: dict[str, int]


def decode_generation(model: ModelAdapter, generated: torch.Tensor) -> list[Decoded]:
    """Text, emotion steps and prediction of each generated row.

    ``first`` is the first emotion word (y_k of Eq. 1); ``answer`` is the conclusion's emotion word: the
    last one, or for a family whose conclusion is its answer block (R1-Omni) the first one inside it
    (:func:`modbias.core.emotions.answer_mention`).  The prediction is the emotion of the final conclusion
    under the family's rule (:func:`modbias.core.emotions.parse_prediction`).

    Args:
        model: the adapter (its family, EOS id and tokenizer pieces).
        generated: generated ids ``[B, G]`` (EOS and what follows it are dropped).
    Returns:
        One :class:`Decoded` per row; ``steps`` maps ``first`` / ``answer`` to a step index, -1 if absent.
    """
    rule = FAMILY_CONCLUSION.get(model.family, "auto")
    out, seen = [], {}
    lengths = generated_mask(generated, model.eos_token_id).sum(-1)
    for row, n in zip(generated.tolist(), lengths.tolist()):
        ids = tuple(t for t in row[:n] if t != model.eos_token_id)
        if ids not in seen:  # identical generations in a batch are decoded and parsed once
            pieces = model.token_pieces(list(ids))
            mentions = find_emotions(pieces)
            answer = answer_mention(pieces, mentions, rule)
            text = "".join(pieces).strip()
            seen[ids] = (text, parse_prediction(text, rule) or "",
                         {"first": mentions[0].token_index if mentions else -1,
                          "answer": answer.token_index if answer else -1})
        text, prediction, steps = seen[ids]
        out.append(Decoded(list(ids), text, prediction, dict(steps)))
    return out


def model_input(sample: Sample, interventions) -> Sample:
    """The sample as the model sees it, after input-level interventions.

    Args:
        sample: the sample.
        interventions: applied in order through their ``transform_sample``.
    Returns:
        The transformed sample.
    """
    for intervention in interventions:
        sample = intervention.transform_sample(sample)
    return sample


@dataclass
class Generation:
    """One batch's greedy generation under interventions, with what a probe pass needs."""

    batch: object
    masks: dict
    editors: list
    generated: torch.Tensor
    cache: object
    decoded: list[Decoded]
    counts: dict[str, np.ndarray]  # per-sample counters of the interventions, ``edits_<name>_<counter>``


def position_limit(model: ModelAdapter) -> int | None:
    """The backbone's maximum positions (``max_position_embeddings`` of its text config).

    Args:
        model: the adapter.
    Returns:
        The limit, or ``None`` when the config does not say.
    """
    config = model.backbone.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    return getattr(config, "max_position_embeddings", None)


def position_problems(model: ModelAdapter, samples: list[Sample], prompt_lengths: list[int],
                      max_new_tokens: int) -> list[SampleError]:
    """The samples whose prompt plus ``max_new_tokens`` exceeds the model's positions.

    Args:
        model: the adapter (:func:`position_limit`).
        samples: the batch.
        prompt_lengths: each sample's prompt length in tokens.
        max_new_tokens: tokens generation may add.
    Returns:
        One :class:`SampleError` (field ``prompt``) per such sample; empty when all fit.
    """
    limit = position_limit(model)
    return [SampleError(s.id, "prompt", f"{n} prompt tokens + {max_new_tokens} new tokens exceed the model's "
                                        f"{limit} positions (max_position_embeddings)")
            for s, n in zip(samples, prompt_lengths) if limit is not None and n + max_new_tokens > limit]


def generate_under(model: ModelAdapter, samples: list[Sample], max_new_tokens: int,
                   interventions: list[Intervention] = ()) -> Generation:
    """Generate for ``samples`` exactly as :func:`modbias.trace` does (input-level, row and module
    interventions, logits processors); the caller holds :func:`applied`.

    Args:
        model: the adapter.
        samples: the batch.
        max_new_tokens: G, the most tokens generated per sample.
        interventions: the interventions, attached already.
    Returns:
        The :class:`Generation`: prepared batch, masks ``[B, T]``, row editors, generated ids ``[B, G]``,
        KV cache, decoded answers and the interventions' per-sample counts.
    Raises:
        SampleError: a sample's prompt plus ``max_new_tokens`` exceeds the model's positions.
    """
    interventions = list(interventions)
    model_inputs = [model_input(s, interventions) for s in samples]
    editors = [iv for iv in interventions if iv.edits_rows]
    if editors:
        instrument(model.backbone)  # row edits need the probe attention even without a trace
    with torch.no_grad():
        batch = model.prepare(model_inputs)
        for problem in position_problems(model, samples, [lay.prompt_len for lay in batch.layouts], max_new_tokens):
            raise problem
        for intervention in interventions:
            intervention.begin_batch(model, batch, model_inputs)
        masks = batch_masks(batch.layouts, batch.offsets, batch.inputs_embeds.shape[1])
        processors = [p for iv in interventions for p in iv.logits_processors(model, batch, model_inputs)]
        with probing(ProbeRequest(None, masks, editors) if editors else None):
            generated, cache = model.generate(batch, max_new_tokens, return_cache=True, logits_processor=processors)
    counts = {f"edits_{iv.name}_{key}": value for iv in interventions for key, value in iv.batch_counts().items()}
    return Generation(batch, masks, editors, generated, cache, decode_generation(model, generated), counts)


def rows_at_steps(model: ModelAdapter, probe: AttentionProbe, batch, generated: torch.Tensor, cache,
                  steps: torch.Tensor, masks: dict, editors: list) -> torch.Tensor:
    """Attention rows of the queries that produced the generated tokens ``steps``.

    Re-uses generation's KV cache: only the last prompt token and the generated tokens up to the latest
    step asked for are run again (cost O(k·T) for step k, not another prefill; later tokens cannot
    change these rows).  The query producing generated token j is the token at prompt end - 1 + j, so
    T = prompt + max(steps) keys.  With row editors active, every query of that block is edited, as it
    was during generation, so later layers see the states generation saw.

    Args:
        model: the adapter.
        probe: the attention probe of ``model.backbone``.
        batch: the prepared batch generation ran on.
        generated: generated ids ``[B, G]``.
        cache: generation's KV cache (cropped to the prompt minus one here).
        steps: generated-token indices ``[B, Q]`` (non-negative).
        masks: token masks ``[B, T_prompt]`` for the row editors.
        editors: row-editing interventions active during generation.
    Returns:
        ``[B, L, H, Q, T]``.
    """
    n_prompt = batch.inputs_embeds.shape[1]
    n_queries = int(steps.max()) + 1 if steps.numel() else 1
    full = model.extend(batch, generated[:, :n_queries - 1])
    crop_cache(cache, n_prompt - 1)
    query_index = steps
    if editors:
        query_index = torch.arange(n_queries).expand(steps.shape[0], -1)
    rows = probe.rows(query_index, masks=masks, editors=editors, inputs_embeds=full.inputs_embeds[:, n_prompt - 1:],
                      attention_mask=full.attention_mask, position_ids=full.position_ids[:, n_prompt - 1:],
                      use_cache=True, logits_to_keep=1, **with_cache(cache))
    if editors:
        rows = rows.gather(3, steps.to(rows.device)[:, None, None, :, None].expand(
            -1, rows.shape[1], rows.shape[2], -1, rows.shape[-1]))
    return rows


SUM_NAMES = ("S_v", "S_a", "S_t", "S_g")
"""The per-head sums S_h(ω, X) a trace stores, for X = visual, audio, text, generated tokens (Sec. 5.2)."""


def token_set_sums(rows: torch.Tensor, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """S_h(ω, X) of every row for the four token sets of :data:`SUM_NAMES`, as one product.

    Args:
        rows: ``[B, Q, L, H, T]``; masks: :func:`~modbias.core.layout.batch_masks` over the same T.
    Returns:
        ``[B, Q, L, H, 4]`` (float32), X in the order of :data:`SUM_NAMES`.
    """
    rows = rows.float()  # half-precision rows are summed in float32
    columns = torch.stack([masks[kind] for kind in ("visual", "audio", "text", "generated")], -1).to(rows)
    return (rows.flatten(1, 3) @ columns).unflatten(1, rows.shape[1:4])


def trace_batch(model: ModelAdapter, probe: AttentionProbe, samples: list[Sample], config: TraceConfig,
                capacity: int | None = None, interventions: list[Intervention] = ()) -> xr.Dataset:
    """Trace one batch under ``interventions``: generate, then read the rows at the emotion steps.

    Args:
        model: the adapter.
        probe: the attention probe of ``model.backbone``.
        samples: the batch.
        config: the run's parameters (``at``, ``max_new_tokens``, ``save_rows``).
        capacity: the store's token capacity for ``rows`` (with ``save_rows``).
        interventions: the interventions, attached already.
    Returns:
        Dataset of raw sums ``S_v, S_a, S_t, S_g`` ``(sample, at, layer, head)`` (Sec. 5.2; NaN where the step
        was not found), no derived metric; the interventions' counts ``edits_*`` ``(sample,)``; per-sample
        fields as coords; with ``save_rows``, ``rows`` ``(sample, at, layer, head, token)`` and the masks.
    """
    at = AT_CHOICES[config.at]
    gen = generate_under(model, samples, config.max_new_tokens, interventions)
    batch, decoded = gen.batch, gen.decoded
    steps = torch.tensor([[d.steps[a] for a in at] for d in decoded])  # [B, Q]
    with torch.no_grad():
        rows = rows_at_steps(model, probe, batch, gen.generated, gen.cache, steps.clamp(min=0), gen.masks,
                             gen.editors)
    rows = rows.permute(0, 3, 1, 2, 4).cpu()  # [B, Q, L, H, T]
    masks = batch_masks(batch.layouts, batch.offsets, rows.shape[-1])
    found = steps >= 0
    sums = token_set_sums(rows, masks)  # [B, Q, L, H, 4]: S_v, S_a, S_t, S_g of every head at once
    sums[~found] = float("nan")
    dims = ("sample", "at", "layer", "head")
    data = {name: (dims, sums[..., i].numpy().astype(np.float32)) for i, name in enumerate(SUM_NAMES)}
    data.update({name: ("sample", np.asarray(value, dtype=np.int64)) for name, value in gen.counts.items()})
    coords = {
        "sample": [s.id for s in samples], "at": list(at),
        "subset": ("sample", [s.subset for s in samples]), "label": ("sample", [s.label for s in samples]),
        "visual_emotion": ("sample", [s.visual_emotion or "" for s in samples]),
        "audio_emotion": ("sample", [s.audio_emotion or "" for s in samples]),
        "prediction": ("sample", [d.prediction for d in decoded]),
        "correct": ("sample", [d.prediction == s.label for d, s in zip(decoded, samples)]),
        "text": ("sample", [d.text for d in decoded]),
        "emotion_step": (("sample", "at"), steps.numpy()),
        "found": (("sample", "at"), found.numpy()),
        "n_visual": ("sample", [lay.n_visual for lay in batch.layouts]),
        "n_audio": ("sample", [lay.n_audio for lay in batch.layouts]),
    }
    if any("reference_reasoning" in s.extra for s in samples):  # EMER: the reference reasoning (Table 2's Y)
        coords["reference"] = ("sample", [str(s.extra.get("reference_reasoning", "")) for s in samples])
    if config.save_rows:
        data.update(_unpadded_rows(rows, batch, masks, steps.clamp(min=0), found, capacity))
    return xr.Dataset(data, coords=coords)


def _unpadded_rows(rows, batch, masks, query_steps, found, capacity) -> dict:
    """Rows and modality masks in each sample's own coordinates (left padding removed)."""
    out_rows, out_masks, lengths = [], {k: [] for k in ("visual", "audio", "text")}, []
    n_prompt = batch.inputs_embeds.shape[1]
    for b, off in enumerate(batch.offsets.tolist()):
        r = rows[b, ..., off:].numpy()
        r[~found[b].numpy()] = np.nan
        out_rows.append(pad_tokens(r, capacity))
        for kind in out_masks:
            out_masks[kind].append(pad_tokens(masks[kind][b, off:].numpy(), capacity, fill=False))
        lengths.append((n_prompt + query_steps[b] - off).numpy())
    token_dims = ("sample", "token")
    return {
        "rows": (("sample", "at", "layer", "head", "token"), np.stack(out_rows).astype(np.float32)),
        "length": (("sample", "at"), np.stack(lengths)),
        **{f"{kind}_mask": (token_dims, np.stack(m)) for kind, m in out_masks.items()},
    }


def trace_identity(model: ModelAdapter, samples: list[Sample], *, data_config: dict | None = None,
                   at: str = "first", max_new_tokens: int = 16, save_rows: bool = False,
                   interventions: list[Intervention] = (), kind: str = "trace") -> dict:
    """The identity of a trace (or intervene) run (:func:`modbias.runs.identity.run_identity`).

    Args:
        model, samples, data_config, interventions, kind: as :func:`trace`.
        at, max_new_tokens, save_rows: the :class:`TraceConfig` (validated here).
    Returns:
        The JSON-able identity; ``parameters`` holds ``at``, ``max_new_tokens``, ``save_rows``.
    """
    config = TraceConfig(at=at, max_new_tokens=max_new_tokens, save_rows=save_rows)
    return run_identity(kind, model, samples, data_config=data_config, interventions=interventions, **asdict(config))


def trace(model: ModelAdapter, data: Iterable[Sample], *, out: str | Path | None = None,
          cache_dir: str | Path | None = None, at: str = "first", max_new_tokens: int = 16, batch_size: int = 32,
          save_rows: bool = False, tau: float | None = None, progress: bool = True, data_config: dict | None = None,
          interventions: list[Intervention] = (), kind: str = "trace", label: str | None = None,
          shard: tuple[int, int] | str | None = None, dask: str | None = None) -> xr.Dataset:
    """Trace ``model`` on ``data``; returns the run Dataset (also stored at ``out`` if given).

    With ``out``, finished batches are committed as they complete; calling again with the same
    identity (:mod:`modbias.runs.identity`) resumes (or, when complete, just opens) it, and another
    identity is refused naming what differs.  Without ``out`` but with ``cache_dir``, the store is
    ``cache_dir/<name>-<identity hash>`` (:func:`modbias.runs.identity.default_store`); with neither, the
    run stays in memory.  ``batch_size`` and ``tau`` are not identity: the stored sums are read at
    ``tau`` (default: the run's own, :func:`modbias.runs.identity.read_tau`).  ``progress`` shows a bar of
    samples done, named ``label`` (default: the kind of run).  ``shard`` (``"i/n"``) and ``dask``
    (``"local:N"`` or a scheduler address) scale the run out (:func:`modbias.runs.loop.run`); a shard
    returns the units committed so far, and the summary is recorded once all are.

    Args:
        model: the adapter; data: the samples (a :class:`~modbias.data.sample.Benchmark` carries its config).
        at: ``first`` | ``answer`` | ``both`` (:data:`AT_CHOICES`); max_new_tokens: generation length.
        save_rows: also store the attention rows ``[sample, at, layer, head, token]`` and modality masks.
        interventions: applied during the run; kind: ``trace`` or ``intervene``.
        shard, dask: scale-out (:func:`modbias.runs.loop.run`; both need a store).
    Returns:
        Dims (sample, at, layer, head): ``S_v, S_a, S_t, S_g`` and, derived at ``tau``, ``UAP_v, UAP_a, c_h, c,
        biased``; per-sample fields; ``attrs`` with ``config`` (the identity), ``tau``, ``path``, ``summary``.

    >>> import modbias                                                  # doctest: +SKIP
    >>> ds = modbias.trace(modbias.load_model("organism"),
    ...                    modbias.load_benchmark("synth", subset="video_aligned"), batch_size=64)
    >>> ds.UAP_a.sel(at="first").mean("sample")
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    samples = list(data)
    identity = trace_identity(model, samples, data_config=data_config or getattr(data, "config", {}), at=at,
                              max_new_tokens=max_new_tokens, save_rows=save_rows, interventions=interventions,
                              kind=kind)
    if out is None and cache_dir is not None:
        out = default_store(identity, cache_dir)
    config = TraceConfig(at=at, max_new_tokens=max_new_tokens, save_rows=save_rows)
    capacity = None
    if save_rows and samples:
        capacity = max(model.prompt_length(model_input(s, interventions)) for s in samples) + max_new_tokens
    ds = run(model, samples,
             lambda chunk: trace_batch(model, probe_for(model.backbone), chunk, config, capacity, list(interventions)),
             config=identity, interventions=interventions, out=out, batch_size=batch_size, progress=progress,
             label=label, shard=shard, dask=dask)
    ds = read_at(ds, tau)
    complete = ds.attrs.get("complete", True)
    if kind == "trace" and ds.sizes.get("sample") and complete:  # the evaluation its benchmark calls for
        if out is not None:
            record_summary(out, ds)
        else:
            ds.attrs["summary"] = run_summary(ds)
    return ds
