"""Modality Importance (MI), MIGR paper Sec. 3.1.2: which modality carries the emotion.

For each sample the model answers three times — audio-visual (the sample as
is), audio-only (visual input ablated) and visual-only (audio input ablated)
— and the prediction (the conclusion's emotion, as everywhere in modbias) is
compared with the label.  The *emotion-dominant modality* follows the
paper's rule (Sec. 1: "if the model accurately predicts the emotion under
audio-only input but fails under visual-only ... the audio modality is
considered emotion-dominant"; Sec. 3.1.3: samples where "audio and video are
equally informative" get both orderings), made total:

=============  ==============  ==========
audio-only ok  visual-only ok  MI
=============  ==============  ==========
yes            no              ``audio``
no             yes             ``visual``
yes            yes             ``both``
no             no              ``neither``
=============  ==============  ==========

The audio-visual prediction does not change the label: the paper's "fails
under visual-only *or* audio-visual" clause, applied symmetrically, only
re-states the first two rows (with both unimodal predictions right and the
joint one wrong, both modalities would be "dominant" — ``both``).  It is
stored (``correct`` at ``audio_visual``) so a ``neither`` sample the joint
input gets right (complementary cues) can be told apart.

Ablating a modality (``ablation``):

- ``remove`` (default, the paper's "audio-only input"): the modality's tokens
  are absent from the prompt (``dataclasses.replace(sample, visual=zeros((0, d)))``).
  Right for models trained to accept a missing modality; out of distribution
  for a model that always saw both (the shipped organism then answers
  ``. . .`` without its 256 visual tokens).
- ``zeros``: same number of tokens, all-zero features (after the projector:
  its bias).  Keeps positions and token counts, but zero is rarely a value
  real features take.
- ``mean``: every token is the dataset-mean feature of that modality.  The
  classical "neutral baseline" of attribution methods: it carries the
  average cue, i.e. no particular emotion, but it also has almost no
  energy (on the synthetic data the visual mean has norm 0.04 against 5.6
  for a real token), so it may be just as unfamiliar as zeros.
- ``noise``: a fresh draw from a per-dimension Gaussian with the dataset's
  feature mean and standard deviation (seeded by sample id), i.e. a
  cue-free sample that *looks like* the modality's input.  The most
  in-distribution neutral input when the model never saw a missing
  modality; it is what makes the organism's audio-only answers meaningful.
  Caveat: where a modality's variance is mostly cue (the organism's single
  clean audio token), the draw is a random blend of cues, not silence.

Measured on the organism, synthetic benchmark, 100 samples per subset
(``modbias mi --limit 100 --ablation A``): agreement of MI with the MI
implied by the generator's cues is 0.25 (remove), 0.24 (zeros), 0.24
(mean) and 0.50 (noise); only ``noise`` lets audio-only answers name the
audio cue (64 % vs 9-16 %).

Media-reading families (Qwen2.5-Omni, LLaVA, Emotion-LLaMA, R1-Omni: :data:`PROCESSOR_FAMILIES`)
read media from ``sample.extra`` and treat the ``visual``/``audio`` rows as
media copies, so only ``remove`` applies (zero rows = left out, as in PAI's
visual-free branch).  ``mean``/``noise`` statistics are pooled over all
tokens of a modality: right for one homogeneous stream (the organism), a
blend for packed multi-stream features (the ``features`` family).

``mean`` and ``noise`` take their statistics from :class:`NeutralFeatures`,
by default computed over all tokens of the samples passed (pass
``neutral=NeutralFeatures.from_samples(reference)`` to use e.g. a training
split).  The statistics' digest is part of the run config.

On data with known cue emotions (the synthetic benchmark) the *expected* MI
follows from the same rule applied to "the cue emotion equals the label";
:func:`mi_summary` reports the agreement and the cross-tab against the
CA-MER subsets.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import xarray as xr

from modbias.data.sample import SUBSETS, Sample
from modbias.interventions.base import Intervention
from modbias.models.base import ModelAdapter
from modbias.runs.identity import default_store, run_identity
from modbias.runs.loop import run
from modbias.runs.store import update_manifest
from modbias.runs.trace import Decoded, generate_under

CONDITIONS = ("audio_visual", "audio_only", "visual_only")
MI_LABELS = ("audio", "visual", "both", "neither")
ABLATIONS = ("remove", "zeros", "mean", "noise")
PROCESSOR_FAMILIES = ("qwen2_5_omni", "llava", "emotion_llama", "r1_omni")  # fed raw media: rows count copies


# -- the rule -----------------------------------------------------------------
def dominant_modality(audio_correct, visual_correct):
    """The emotion-dominant modality from unimodal correctness (table in the module doc; MIGR Sec. 3.1.2).

    Args:
        audio_correct: whether the audio-only answer is right; a bool or an array.
        visual_correct: whether the visual-only answer is right; broadcastable with ``audio_correct``.
    Returns:
        ``audio``, ``visual``, ``both`` or ``neither``: a ``str`` for scalars, else an array of ``str``
        of the broadcast shape.
    """
    a, v = np.asarray(audio_correct, dtype=bool), np.asarray(visual_correct, dtype=bool)
    out = np.where(a & ~v, "audio", np.where(v & ~a, "visual", np.where(a & v, "both", "neither")))
    return str(out) if out.ndim == 0 else out.astype(object).astype(str)


def expected_modality(sample: Sample) -> str:
    """The MI that the generator's cue emotions imply: a cue is "right" when it equals the label.

    Args:
        sample: a sample with ``visual_emotion``, ``audio_emotion`` and ``label``.
    Returns:
        An MI label, or ``""`` when a cue emotion is unknown.
    """
    if sample.visual_emotion is None or sample.audio_emotion is None:
        return ""
    return dominant_modality(sample.audio_emotion == sample.label, sample.visual_emotion == sample.label)


# -- ablation -------------------------------------------------------------------
@dataclass(frozen=True)
class NeutralFeatures:
    """Per-dimension mean and standard deviation of each modality's feature tokens."""

    visual_mean: np.ndarray
    visual_std: np.ndarray
    audio_mean: np.ndarray
    audio_std: np.ndarray

    @classmethod
    def from_samples(cls, samples: Iterable[Sample]) -> "NeutralFeatures":
        """Statistics over every token of ``samples`` (streamed; float64 accumulation).

        Args:
            samples: samples with feature-token inputs ``visual`` ``[n_v, d_v]`` and ``audio`` ``[n_a, d_a]``.
        Returns:
            Per-dimension mean and std of each modality, ``[d_v]`` / ``[d_a]`` float32.
        Raises:
            ValueError: a modality has no tokens in any sample.
        """
        acc: dict[str, list] = {"visual": [0, 0.0, 0.0], "audio": [0, 0.0, 0.0]}
        for sample in samples:
            for name in acc:
                x = np.asarray(getattr(sample, name), dtype=np.float64)
                if len(x):
                    acc[name][0] += len(x)
                    acc[name][1] = acc[name][1] + x.sum(0)
                    acc[name][2] = acc[name][2] + (x ** 2).sum(0)
        stats = {}
        for name, (n, s, s2) in acc.items():
            if n == 0:
                raise ValueError(f"no {name} tokens to compute neutral features from")
            mean = s / n
            stats[f"{name}_mean"] = mean.astype(np.float32)
            stats[f"{name}_std"] = np.sqrt(np.maximum(s2 / n - mean ** 2, 0.0)).astype(np.float32)
        return cls(**stats)

    def digest(self) -> str:
        """A 12-hex-character digest of the four statistics (recorded in the run identity)."""
        h = hashlib.sha1()
        for field in dataclasses.fields(self):
            h.update(np.ascontiguousarray(getattr(self, field.name), dtype=np.float32).tobytes())
        return h.hexdigest()[:12]


def ablate(sample: Sample, modality: str, ablation: str = "remove", neutral: NeutralFeatures | None = None,
           seed: int = 0) -> Sample:
    """``sample`` with its ``visual`` or ``audio`` input ablated (see the module doc for the options).

    Args:
        sample: the sample.
        modality: ``visual`` or ``audio``.
        ablation: ``remove`` (no tokens), ``zeros``, ``mean`` or ``noise`` (Gaussian with the neutral
            mean and std) of the same shape ``[n, d]``.
        neutral: the statistics ``mean`` and ``noise`` need.
        seed: seeds ``noise``, together with the sample id and the modality.
    Returns:
        A copy of ``sample`` with that modality's features replaced.
    """
    if modality not in ("visual", "audio"):
        raise ValueError(f"modality {modality!r}; expected 'visual' or 'audio'")
    if ablation not in ABLATIONS:
        raise ValueError(f"ablation {ablation!r}; expected one of {ABLATIONS}")
    feats = getattr(sample, modality)
    if ablation == "remove":
        new = np.zeros((0, feats.shape[1]), dtype=feats.dtype)
    elif ablation == "zeros":
        new = np.zeros_like(feats)
    else:
        if neutral is None:
            raise ValueError(f"ablation {ablation!r} needs NeutralFeatures (neutral=...)")
        mean, std = getattr(neutral, f"{modality}_mean"), getattr(neutral, f"{modality}_std")
        if ablation == "mean":
            new = np.broadcast_to(mean, feats.shape).astype(feats.dtype)
        else:
            rng = np.random.default_rng([seed, zlib.crc32(sample.id.encode()), zlib.crc32(modality.encode())])
            new = (mean + std * rng.standard_normal(feats.shape)).astype(feats.dtype)
    return dataclasses.replace(sample, **{modality: np.ascontiguousarray(new)})


def condition_inputs(sample: Sample, ablation: str = "remove", neutral: NeutralFeatures | None = None,
                     seed: int = 0) -> dict[str, Sample]:
    """The three inputs of MI (MIGR Sec. 3.1.2).

    Args:
        sample: the audio-visual sample.
        ablation: how a modality is taken out (:func:`ablate`).
        neutral: statistics for ``mean`` / ``noise``.
        seed: seed of ``noise``.
    Returns:
        ``{"audio_visual": sample, "audio_only": visual ablated, "visual_only": audio ablated}``.
    """
    return {"audio_visual": sample,
            "audio_only": ablate(sample, "visual", ablation, neutral, seed),
            "visual_only": ablate(sample, "audio", ablation, neutral, seed)}


# -- the run --------------------------------------------------------------------------
@dataclass
class MIConfig:
    """Parameters of an MI run (the ``parameters`` of its identity)."""

    ablation: str = "remove"
    max_new_tokens: int = 16
    seed: int = 0
    neutral: str | None = None  # digest of the NeutralFeatures used by mean/noise

    def __post_init__(self):
        if self.ablation not in ABLATIONS:
            raise ValueError(f"ablation={self.ablation!r}; expected one of {ABLATIONS}")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be positive")


def mi_batch(model: ModelAdapter, samples: list[Sample], config: MIConfig, neutral: NeutralFeatures | None = None,
             interventions: list[Intervention] = (), audio_visual: list[Decoded] | None = None) -> xr.Dataset:
    """MI of one batch: one generation per input condition, then the rule of :func:`dominant_modality`.

    Args:
        model: the adapter.
        samples: the batch.
        config: the run's parameters.
        neutral: statistics for ``mean`` / ``noise`` ablation.
        interventions: applied to every generation.
        audio_visual: the already generated audio-visual answers (e.g. from a drift pass) to skip that
            generation, one per sample.
    Returns:
        A Dataset with ``prediction``, ``text``, ``correct`` ``(sample, condition)`` and ``mi``,
        ``expected_mi`` ``(sample,)``, with the samples' subset, label and cue emotions as coords.
    """
    inputs = [condition_inputs(s, config.ablation, neutral, config.seed) for s in samples]
    decoded = {}
    for condition in CONDITIONS:
        if condition == "audio_visual" and audio_visual is not None:
            decoded[condition] = audio_visual
            continue
        decoded[condition] = generate_under(model, [x[condition] for x in inputs], config.max_new_tokens,
                                            interventions).decoded
    labels = np.array([s.label for s in samples], dtype=object)
    prediction = np.array([[d.prediction for d in decoded[c]] for c in CONDITIONS], dtype=object).T
    text = np.array([[d.text for d in decoded[c]] for c in CONDITIONS], dtype=object).T
    correct = prediction == labels[:, None]
    dominant = dominant_modality(correct[:, CONDITIONS.index("audio_only")],
                                 correct[:, CONDITIONS.index("visual_only")])
    return xr.Dataset(
        {"prediction": (("sample", "condition"), prediction.astype(str)),
         "text": (("sample", "condition"), text.astype(str)),
         "correct": (("sample", "condition"), correct.astype(bool)),
         "mi": ("sample", np.asarray(dominant, dtype=str).reshape(-1)),
         "expected_mi": ("sample", np.array([expected_modality(s) for s in samples], dtype=str).reshape(-1))},
        coords={"sample": [s.id for s in samples], "condition": list(CONDITIONS),
                "subset": ("sample", [s.subset for s in samples]), "label": ("sample", [s.label for s in samples]),
                "visual_emotion": ("sample", [s.visual_emotion or "" for s in samples]),
                "audio_emotion": ("sample", [s.audio_emotion or "" for s in samples])})


def mi(model: ModelAdapter, data: Iterable[Sample], *, out: str | Path | None = None,
       cache_dir: str | Path | None = None, ablation: str = "remove",
       neutral: NeutralFeatures | None = None, max_new_tokens: int = 16, batch_size: int = 32, seed: int = 0,
       progress: bool = True, data_config: dict | None = None,
       interventions: list[Intervention] = (), shard: tuple[int, int] | str | None = None,
       dask: str | None = None) -> xr.Dataset:
    """Modality Importance of every sample; returns the run Dataset (also stored at ``out``).

    Variables: ``prediction``, ``text``, ``correct`` (sample, condition) for the
    conditions audio_visual / audio_only / visual_only; ``mi`` (audio, visual,
    both, neither) and ``expected_mi`` (from the cue emotions; "" if unknown)
    per sample.  ``ds.attrs["summary"]`` holds :func:`mi_summary`.  With
    ``out`` (or ``cache_dir``: the store its identity names, :func:`modbias.runs.identity.default_store`)
    the run is a resumable :class:`RunStore` of kind ``mi``; ``shard``/``dask`` scale it out
    (:func:`modbias.runs.loop.run`; the summary is recorded once every unit is committed).

    Args:
        model, data: the adapter and the samples (a benchmark carries its config into the identity).
        out, cache_dir: the store, or the folder of the store named by the identity; neither: in memory.
        ablation, neutral, seed: how a modality is taken out (identity); max_new_tokens: identity.
        batch_size, progress, shard, dask: execution only (not identity).
    Returns:
        The run Dataset (dims sample, condition), ``attrs["config"]`` its identity.

    >>> import modbias                                                  # doctest: +SKIP
    >>> ds = modbias.mi(modbias.load_model("organism"), modbias.load_benchmark("synth", limit=100),
    ...                 ablation="noise")
    >>> ds.attrs["summary"]["agreement"]
    """
    if ablation != "remove" and getattr(model, "family", "") in PROCESSOR_FAMILIES:
        raise ValueError(f"{model.family} reads raw media (sample rows count media copies): only ablation='remove' "
                         f"leaves a modality out; {ablation!r} needs feature-token inputs")
    samples = list(data)
    if ablation in ("mean", "noise") and neutral is None:
        neutral = NeutralFeatures.from_samples(samples)
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    config = MIConfig(ablation=ablation, max_new_tokens=max_new_tokens, seed=seed,
                      neutral=neutral.digest() if neutral is not None and ablation in ("mean", "noise") else None)
    run_config = run_identity("mi", model, samples, data_config=data_config or getattr(data, "config", {}),
                              interventions=interventions, **asdict(config))
    if out is None and cache_dir is not None:
        out = default_store(run_config, cache_dir)
    result = run(model, samples, lambda chunk: mi_batch(model, chunk, config, neutral, list(interventions)),
                 config=run_config, interventions=interventions, out=out, batch_size=batch_size, progress=progress,
                 shard=shard, dask=dask)
    if result.sizes.get("sample", 0) and result.attrs.get("complete", True):
        result.attrs["summary"] = mi_summary(result)
        if out is not None:
            update_manifest(out, summary=result.attrs["summary"])
    return result


# -- summaries ---------------------------------------------------------------------------
def _subsets_in(ds: xr.Dataset) -> list[str]:
    present = list(dict.fromkeys(np.asarray(ds.subset.values).astype(str).tolist()))
    return [s for s in SUBSETS if s in present] + [s for s in present if s not in SUBSETS]


def mi_crosstab(ds: xr.Dataset, normalize: bool = False) -> xr.DataArray:
    """MI labels per CA-MER subset.

    Args:
        ds: an MI run.
        normalize: give row shares instead of counts.
    Returns:
        DataArray ``(subset, mi)``: int64 counts (``mi_count``) or float64 shares (``mi_share``).
    """
    subsets, labels = np.asarray(ds.subset.values).astype(str), np.asarray(ds.mi.values).astype(str)
    names = _subsets_in(ds)
    table = np.array([[np.sum((subsets == s) & (labels == m)) for m in MI_LABELS] for s in names], dtype=np.float64)
    if normalize:
        table = table / np.maximum(table.sum(1, keepdims=True), 1)
    return xr.DataArray(table if normalize else table.astype(np.int64), dims=("subset", "mi"),
                        coords={"subset": names, "mi": list(MI_LABELS)}, name="mi_share" if normalize else "mi_count")


RECOVERY = {"video_aligned": "visual", "audio_aligned": "audio", "consistent": "both"}


def mi_summary(ds: xr.Dataset) -> dict:
    """JSON-able summary of an MI run.

    Args:
        ds: an MI run.
    Returns:
        ``{"n", "accuracy", "cue_read", "crosstab", "recovery", "agreement"}``, per subset and ``overall``:

        - ``accuracy[subset][condition]``: prediction == label, per input condition;
        - ``cue_read[subset]``: audio-only prediction == audio cue emotion, visual-only
          prediction == visual cue emotion (does each unimodal answer read its cue?);
        - ``crosstab[subset][mi]``: counts; ``recovery[subset]``: share of the subset whose
          MI is the subset's modality (video_aligned → visual, audio_aligned → audio,
          consistent → both);
        - ``agreement``: share of samples whose MI equals the MI implied by the cue
          emotions (samples with unknown cues skipped).
    """
    subsets = np.asarray(ds.subset.values).astype(str)
    labels, expected = np.asarray(ds.mi.values).astype(str), np.asarray(ds.expected_mi.values).astype(str)
    pred = {c: np.asarray(ds.prediction.sel(condition=c).values).astype(str) for c in CONDITIONS}
    correct = {c: np.asarray(ds.correct.sel(condition=c).values).astype(bool) for c in CONDITIONS}
    cues = {"audio_only": np.asarray(ds.audio_emotion.values).astype(str),
            "visual_only": np.asarray(ds.visual_emotion.values).astype(str)}
    out: dict = {"n": int(len(subsets)), "accuracy": {}, "cue_read": {}, "crosstab": {}, "recovery": {},
                 "agreement": {}}
    for name in _subsets_in(ds) + ["overall"]:
        pick = np.ones(len(subsets), bool) if name == "overall" else subsets == name
        out["accuracy"][name] = {c: float(correct[c][pick].mean()) for c in CONDITIONS}
        out["cue_read"][name] = {c: float((pred[c][pick] == cues[c][pick])[cues[c][pick] != ""].mean())
                                 if (cues[c][pick] != "").any() else None for c in cues}
        out["crosstab"][name] = {m: int(np.sum(labels[pick] == m)) for m in MI_LABELS}
        if name in RECOVERY:
            out["recovery"][name] = float(np.mean(labels[pick] == RECOVERY[name]))
        known = pick & (expected != "")
        out["agreement"][name] = float(np.mean(labels[known] == expected[known])) if known.any() else None
    return out


def mi_tables(summary: dict, title: str = "") -> list:
    """Two rich tables of :func:`mi_summary`.

    Args:
        summary: an :func:`mi_summary` result.
        title: prefix of the tables' titles.
    Returns:
        ``[correct, counts]``: the share of answers = label per input condition (and whether each unimodal
        answer names its cue's emotion), then the MI counts with recovery and agreement, one row per subset.
    """
    from rich.table import Table

    heading = "Correct per input (share of answers = label)"
    acc = Table(title=f"{title} — {heading}" if title else heading)
    for name in ("subset", "n", "AV", "A-only", "V-only", "A-only=cue", "V-only=cue"):
        acc.add_column(name, justify="left" if name == "subset" else "right")
    counts = Table(title=f"{title} — emotion-dominant modality" if title else "emotion-dominant modality")
    for name in ("subset", *MI_LABELS, "recovery", "agreement"):
        counts.add_column(name, justify="left" if name == "subset" else "right")
    fmt = lambda x: "" if x is None else f"{x:.2f}"  # noqa: E731
    for subset, row in summary["crosstab"].items():
        a, cue = summary["accuracy"][subset], summary["cue_read"][subset]
        acc.add_row(subset, str(sum(row.values())), *(fmt(a[c]) for c in CONDITIONS),
                    fmt(cue.get("audio_only")), fmt(cue.get("visual_only")))
        counts.add_row(subset, *(str(row[m]) for m in MI_LABELS), fmt(summary["recovery"].get(subset)),
                       fmt(summary["agreement"].get(subset)))
    return [acc, counts]
