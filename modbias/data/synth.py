"""The embedded synthetic conflict benchmark (CA-MER-shaped, paper Sec. 3).

Every sample carries an emotion cue in its visual tokens and one in its audio
tokens.  Following the paper's hypothesis (Sec. 4: "video information tends
to be sparse and noisy ... MLLMs favor compact audio cues"), the *visual*
cue is spread over a few of many noisy tokens while the *audio* cue is one
compact, clean token.  Nothing else differs between the modalities: in
particular the training split has equally many video-aligned and
audio-aligned conflicts, so a model's audio bias comes from the
representation, not from label frequencies.

Which modality is right in a conflict.  CA-MER labels a conflict by majority
vote of the unimodal and multimodal labels (Sec. 3, Stage 2), i.e. by the
modality that expresses the emotion more convincingly.  Here each cue has an
*intensity* drawn uniformly from ``intensity_range``; in a conflict the
aligned modality is the one with the larger intensity.  Judging a conflict
therefore needs both modalities: the audio cue alone decides only ~75 % of
conflicts, equally often for both subsets.

Samples are generated lazily and deterministically: sample ``i`` of a split
depends only on ``(seed, split, i)``, so ``--limit`` and resumed runs see the
same data.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass

import numpy as np

from modbias.core.emotions import CLASSES
from modbias.data.sample import SUBSETS, Benchmark, Sample

SUBTITLE_WORDS = ("i", "you", "we", "it", "was", "is", "that", "this", "what", "really", "now",
                  "there", "here", "did", "not", "know", "think", "said", "go", "come", "home",
                  "today", "again", "just", "right", "okay", "him", "her", "they", "tell")


@dataclass(frozen=True)
class SynthConfig:
    """Generator parameters; each default is chosen for the reason given.

    - ``n_visual`` (m=256) and ``n_audio`` (n=1): Emotion-LLaMA's token counts (Sec. 5).
    - ``visual_dim`` / ``audio_dim``: feature width before the projectors; small so
      the organism trains on a CPU.
    - ``visual_cue_tokens`` (16): the visual emotion shows on few of the m tokens
      (sparse evidence; positions random per sample).
    - ``visual_cue_scale`` / ``visual_noise``: per-token signal vs. noise of the visual cue,
      weak enough that reading the face takes pooling over the cue tokens.
    - ``audio_cue_scale`` / ``audio_noise``: the audio token is a clean prototype (compact evidence).
    - ``intensity_range``: cue intensities; the stronger cue wins a conflict (see module doc).
    - ``subtitle_words``: subtitles are emotion-free filler, so text carries no label.
    - ``n_per_subset`` (500): CA-MER's test subsets hold 500 samples each.
    - ``n_train`` (6000): training split, one third per subset.
    - ``train_mix``: shares of (video_aligned, audio_aligned, consistent) in the training
      split; ``None`` (default) cycles the three subsets, one third each.  Only the
      ``organism-attn`` preset (:data:`ATTN_CONFIG`) changes it.
    """

    seed: int = 0
    n_visual: int = 256
    n_audio: int = 1
    visual_dim: int = 32
    audio_dim: int = 32
    visual_cue_tokens: int = 16
    visual_cue_scale: float = 2.0
    visual_noise: float = 1.0
    audio_cue_scale: float = 2.0
    audio_noise: float = 0.3
    intensity_range: tuple[float, float] = (0.4, 1.0)
    subtitle_words: tuple[int, int] = (3, 7)
    n_per_subset: int = 500
    n_train: int = 6000
    train_mix: tuple[float, float, float] | None = None

    def prototypes(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit-norm cue directions per emotion: ``[9, visual_dim]`` and ``[9, audio_dim]``."""
        rng = np.random.default_rng([self.seed, 0x5EED])
        out = []
        for dim in (self.visual_dim, self.audio_dim):
            p = rng.standard_normal((len(CLASSES), dim))
            out.append((p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32))
        return out[0], out[1]


def _split_code(split: str) -> int:
    return zlib.crc32(split.encode())


def _train_subset(config: SynthConfig, index: int) -> str:
    """The subset of training sample ``index``: cycling, or drawn with ``train_mix`` (its own stream)."""
    if config.train_mix is None:
        return SUBSETS[index % 3]
    mix = np.asarray(config.train_mix, dtype=np.float64)
    pick = np.random.default_rng([config.seed, _split_code("train-mix"), index]).random()
    return SUBSETS[int(np.searchsorted(np.cumsum(mix / mix.sum()), pick, side="right").clip(max=2))]


def make_sample(config: SynthConfig, split: str, index: int, subset: str | None = None,
                consistent_with: str | None = None) -> Sample:
    """Sample ``index`` of ``split`` (a test subset, or ``train`` which cycles the three subsets).

    Deterministic in ``(config.seed, split, index)``.

    Args:
        config: the synthetic benchmark's settings.
        split: a subset name or ``"train"``.
        index: the sample's number in the split.
        subset: force the subset (default: ``split``, or drawn by ``train_mix`` for ``train``).
        consistent_with: ``visual`` or ``audio`` regenerates the same sample (same noise, cue positions,
            intensities and subtitle) with the other modality's cue turned to that modality's emotion: the
            counterfactual of :mod:`modbias.data.counterfactual`, subset ``consistent``, id suffixed
            ``~cf-<swapped>``.

    Returns:
        A :class:`Sample` with ``visual [n_visual, visual_dim]`` and ``audio [n_audio, audio_dim]`` float32
        features carrying each modality's emotion cue.
    """
    rng = np.random.default_rng([config.seed, _split_code(split), index])
    subset = subset or (split if split in SUBSETS else _train_subset(config, index))
    label = CLASSES[rng.integers(len(CLASSES))]
    other = CLASSES[(CLASSES.index(label) + 1 + rng.integers(len(CLASSES) - 1)) % len(CLASSES)]
    lo, hi = config.intensity_range
    strong, weak = np.sort(rng.uniform(lo, hi, size=2))[::-1]
    if subset == "consistent":
        vis_emo, aud_emo, vis_int, aud_int = label, label, rng.uniform(lo, hi), rng.uniform(lo, hi)
    elif subset == "video_aligned":
        vis_emo, aud_emo, vis_int, aud_int = label, other, strong, weak
    else:
        vis_emo, aud_emo, vis_int, aud_int = other, label, weak, strong
    if consistent_with is not None:
        if consistent_with not in ("visual", "audio"):
            raise ValueError(f"consistent_with must be visual or audio, got {consistent_with!r}")
        label = vis_emo if consistent_with == "visual" else aud_emo
        vis_emo = aud_emo = label
    proto_v, proto_a = config.prototypes()

    visual = rng.normal(0.0, config.visual_noise, (config.n_visual, config.visual_dim))
    cue_at = rng.choice(config.n_visual, size=min(config.visual_cue_tokens, config.n_visual), replace=False)
    visual[cue_at] += vis_int * config.visual_cue_scale * proto_v[CLASSES.index(vis_emo)]
    audio = rng.normal(0.0, config.audio_noise, (config.n_audio, config.audio_dim))
    audio += aud_int * config.audio_cue_scale * proto_a[CLASSES.index(aud_emo)]

    n_words = rng.integers(config.subtitle_words[0], config.subtitle_words[1] + 1)
    subtitle = " ".join(SUBTITLE_WORDS[i] for i in rng.integers(len(SUBTITLE_WORDS), size=n_words))
    swapped = {"visual": "~cf-audio", "audio": "~cf-visual"}.get(consistent_with, "")
    if consistent_with is not None and split in SUBSETS:
        subset = "consistent"
    return Sample(
        id=f"{split}-{index:05d}{swapped}", subset=subset if split in SUBSETS else "train", label=label,
        visual=visual.astype(np.float32), audio=audio.astype(np.float32), subtitle=subtitle,
        visual_emotion=vis_emo, audio_emotion=aud_emo,
        extra={"train_subset": subset, "visual_intensity": float(vis_int), "audio_intensity": float(aud_int),
               "synth_split": split, "synth_index": index},
    )


ATTN_CONFIG = SynthConfig(n_visual=64, visual_cue_tokens=64, visual_cue_scale=1.0, visual_noise=1.0,
                          train_mix=(0.15, 0.5, 0.35))
"""The ``synth-attn`` preset, data of ``organism-attn``: every one of 64 visual tokens carries the
visual cue (easy to read once attended: pooling 64 tokens of SNR 0.4-1.0 each), while audio decides
85 % of the training samples (``train_mix``), so the model learns to under-attend the face."""

PRESETS = {"synth": SynthConfig(), "synth-attn": ATTN_CONFIG}


def synth_benchmark(subset: str = "all", config: SynthConfig | None = None, limit: int | None = None) -> Benchmark:
    """The synthetic test benchmark: ``subset`` in video_aligned / audio_aligned / consistent / all / train.

    Args:
        subset: which samples.
        config: the settings (default :class:`SynthConfig`).
        limit: the most samples per subset.

    Returns:
        A :class:`Benchmark` named ``synth``, its config the settings.
    """
    config = config or SynthConfig()
    if subset == "train":
        splits, n = [("train", None)], config.n_train
    elif subset == "all":
        splits, n = [(s, s) for s in SUBSETS], config.n_per_subset
    elif subset in SUBSETS:
        splits, n = [(subset, subset)], config.n_per_subset
    else:
        raise ValueError(f"unknown subset {subset!r}; expected one of {SUBSETS + ('all', 'train')}")
    n = min(n, limit) if limit is not None else n
    samples = [make_sample(config, split, i, sub) for split, sub in splits for i in range(n)]
    meta = {"name": "synth", "subset": subset, "limit": limit,
            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}}
    return Benchmark("synth", samples, meta)
