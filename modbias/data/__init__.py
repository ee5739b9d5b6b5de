"""Benchmarks: the embedded synthetic one, and (later) readers of real data."""

from __future__ import annotations

from modbias.data.sample import SUBSETS, Benchmark, Sample, SampleError
from modbias.data.synth import SynthConfig, synth_benchmark


def load_benchmark(name: str = "synth", subset: str = "all", limit: int | None = None, **params) -> Benchmark:
    """Load a benchmark by name.  ``synth`` takes :class:`SynthConfig` fields as ``params``;
    ``limit`` caps the samples *per subset*."""
    if name == "synth":
        return synth_benchmark(subset, SynthConfig(**params), limit=limit)
    raise ValueError(f"unknown benchmark {name!r}; available: 'synth'")


__all__ = ["Benchmark", "Sample", "SampleError", "SUBSETS", "SynthConfig", "load_benchmark", "synth_benchmark"]
