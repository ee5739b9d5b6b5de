"""Samples and benchmarks: the model-independent input of every run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from modbias.core.emotions import CLASSES

SUBSETS = ("video_aligned", "audio_aligned", "consistent")


class DatasetError(ValueError):
    """A dataset file that cannot be read as its layout (not UTF-8, not a table, a bad options file)."""


class SampleError(ValueError):
    """Bad input, naming the sample and the field."""

    def __init__(self, sample_id: str, field_name: str, problem: str):
        super().__init__(f"sample {sample_id!r}, field {field_name!r}: {problem}")
        self.sample_id, self.field_name = sample_id, field_name


@dataclass
class Sample:
    """One conflict-benchmark item (CA-MER shape, paper Sec. 3).

    ``visual`` is ``[m, d_v]`` and ``audio`` is ``[n, d_a]`` feature tokens;
    ``visual_emotion`` / ``audio_emotion`` are the emotions each cue carries
    (``None`` when unknown, as for real data without unimodal labels).
    """

    id: str
    subset: str
    label: str
    visual: np.ndarray
    audio: np.ndarray
    subtitle: str = ""
    visual_emotion: str | None = None
    audio_emotion: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.subset not in SUBSETS + ("train",):
            raise SampleError(self.id, "subset", f"{self.subset!r} is not one of {SUBSETS + ('train',)}")
        for name in ("label", "visual_emotion", "audio_emotion"):
            value = getattr(self, name)
            if (value is not None or name == "label") and value not in CLASSES:
                raise SampleError(self.id, name, f"unknown emotion {value!r}; expected one of {CLASSES}")
        for name in ("visual", "audio"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.ndim != 2:
                raise SampleError(self.id, name, f"expected a 2-D [tokens, dim] array, got {getattr(value, 'shape', type(value))}")
            if not np.isfinite(value).all():
                raise SampleError(self.id, name, "features contain NaN or inf")


class Benchmark(Sequence[Sample]):
    """An ordered, indexable collection of samples with a name and its generating config."""

    def __init__(self, name: str, samples: list[Sample], config: dict | None = None):
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            dup = next(i for i in ids if ids.count(i) > 1)
            raise SampleError(dup, "id", "duplicate id in benchmark")
        self.name, self.samples, self.config = name, samples, dict(config or {})

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return Benchmark(self.name, self.samples[index], self.config)
        return self.samples[index]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def subset(self, name: str) -> "Benchmark":
        """The samples of one subset, as a benchmark with the same name and config.

        Args:
            name: a subset, ``"train"``, or ``"all"`` (the benchmark itself).

        Returns:
            The filtered :class:`Benchmark`.
        """
        if name == "all":
            return self
        if name not in SUBSETS + ("train",):
            raise ValueError(f"unknown subset {name!r}; expected one of {SUBSETS + ('train', 'all')}")
        return Benchmark(self.name, [s for s in self.samples if s.subset == name], self.config)

    def __repr__(self) -> str:
        counts = {s: sum(x.subset == s for x in self.samples) for s in dict.fromkeys(x.subset for x in self.samples)}
        return f"Benchmark({self.name!r}, {len(self)} samples, {counts})"
