"""Counterfactual inputs for activation patching: one place that builds them for every benchmark.

The counterfactual of a sample swaps one modality (``swap``) for an input whose emotion agrees
with the other modality, so the conflict disappears while everything else stays:

- synthetic benchmark: the same sample regenerated with consistent cues
  (:func:`modbias.data.synth.make_sample` with ``consistent_with``: same noise, cue positions,
  intensities and subtitle; only the swapped cue's direction changes);
- real data: the swapped modality (features, streams and media) of another sample of the benchmark
  whose own emotion in that modality is the wanted one (its ``audio_emotion`` / ``visual_emotion``
  when known, else the label of a ``consistent`` sample).
"""

from __future__ import annotations

import dataclasses

from modbias.data.sample import Benchmark, Sample, SampleError
from modbias.data.synth import SynthConfig, make_sample

SWAPS = ("audio", "visual")
MEDIA_KEYS = {"visual": ("video", "video_path", "image", "image_path"), "audio": ("audio", "audio_path")}


def _other(swap: str) -> str:
    return "visual" if swap == "audio" else "audio"


def _synth_config(meta: dict) -> SynthConfig:
    fields = {f.name for f in dataclasses.fields(SynthConfig)}
    return SynthConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta.items() if k in fields})


class Counterfactuals:
    """``counterfactuals(sample)``: the sample with ``swap`` replaced to agree with the other modality.

    Args:
        benchmark: the benchmark the samples come from (its config rebuilds synthetic samples; its
            samples are the donors for real data).
        swap: ``audio`` (default: the audio is made to agree with the face) or ``visual``.
    """

    def __init__(self, benchmark: Benchmark, swap: str = "audio"):
        if swap not in SWAPS:
            raise ValueError(f"swap must be one of {SWAPS}, got {swap!r}")
        self.swap, self.keep = swap, _other(swap)
        self.synth = _synth_config(benchmark.config) if benchmark.name == "synth" else None
        self.donors = list(benchmark)

    def wanted(self, sample: Sample) -> str:
        """The emotion the swapped modality must carry: the kept modality's.

        Args:
            sample: the original sample.
        Returns:
            Its ``<kept>_emotion``; :class:`SampleError` (naming the sample and field) if that is unknown.
        """
        emotion = getattr(sample, f"{self.keep}_emotion")
        if emotion is None:
            raise SampleError(sample.id, f"{self.keep}_emotion", "unknown, so no counterfactual can be chosen")
        return emotion

    def __call__(self, sample: Sample) -> Sample:
        """The counterfactual of ``sample`` (see module doc).  Raises :class:`SampleError` if none exists."""
        wanted = self.wanted(sample)
        if self.synth is not None and "synth_index" in sample.extra:
            return make_sample(self.synth, sample.extra["synth_split"], sample.extra["synth_index"],
                               sample.subset, consistent_with=self.keep)
        donor = next((d for d in self.donors if d.id != sample.id and self._carries(d, wanted)), None)
        if donor is None:
            raise SampleError(sample.id, self.swap, f"no other sample of the benchmark has {self.swap} "
                                                    f"emotion {wanted!r} to swap in")
        return self._swapped(sample, donor)

    def _carries(self, donor: Sample, emotion: str) -> bool:
        own = getattr(donor, f"{self.swap}_emotion")
        return own == emotion if own is not None else donor.subset == "consistent" and donor.label == emotion

    def _swapped(self, sample: Sample, donor: Sample) -> Sample:
        extra = {k: v for k, v in sample.extra.items() if k not in MEDIA_KEYS[self.swap]}
        if self.swap == "visual" and "audio" not in extra and "audio_path" not in extra and "video_path" in extra:
            extra["audio_path"] = extra["video_path"]  # the sample's own audio keeps coming from its video
        extra.update({k: donor.extra[k] for k in MEDIA_KEYS[self.swap] if k in donor.extra})
        if self.swap == "audio" and not any(k in donor.extra for k in MEDIA_KEYS["audio"]) and "video_path" in donor.extra:
            extra["audio_path"] = donor.extra["video_path"]
        for key in ("streams", "rows"):
            if key in sample.extra or key in donor.extra:
                extra[key] = {**sample.extra.get(key, {}), self.swap: donor.extra.get(key, {}).get(self.swap)}
        wanted = self.wanted(sample)
        return dataclasses.replace(sample, id=f"{sample.id}~cf-{self.swap}", subset="consistent", label=wanted,
                                   extra=extra, **{self.swap: getattr(donor, self.swap),
                                                   f"{self.swap}_emotion": wanted})
