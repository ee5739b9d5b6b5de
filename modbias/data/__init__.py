"""Benchmarks: the embedded synthetic one, and (later) readers of real data."""

from __future__ import annotations

import dataclasses

from modbias.data.sample import SUBSETS, Benchmark, Sample, SampleError
from modbias.data.synth import PRESETS, SynthConfig, synth_benchmark


def load_benchmark(name: str = "synth", subset: str = "all", limit: int | None = None, **params) -> Benchmark:
    """Load a benchmark by name.  ``synth`` (and the ``synth-attn`` preset of ``organism-attn``)
    takes :class:`SynthConfig` fields as ``params``;
    ``limit`` caps the samples *per subset*.

    Args:
        name: a synthetic preset (``synth``, ``synth-attn``), a dataset path, or ``reader:path``.
        subset: a subset name or ``"all"``.
        limit: the most samples per subset (``None``: all).
        **params: :class:`SynthConfig` fields for a preset, the reader's options for a dataset.

    Returns:
        The :class:`Benchmark`.
    """
    if name in PRESETS:
        return synth_benchmark(subset, dataclasses.replace(PRESETS[name], **params), limit=limit)
    from pathlib import Path

    from modbias.data.readers import READERS, load

    reader, sep, path = name.partition(":")
    if sep and reader in READERS:
        return load(path, reader=reader, subset=subset, limit=limit, **params)
    if sep and reader not in READERS and not Path(name).exists():
        raise ValueError(f"unknown reader {reader!r} in {name!r}; available: {sorted(READERS)}")
    if Path(name).exists():
        return load(name, subset=subset, limit=limit, **params)
    if "/" in name or "\\" in name or name.startswith("."):
        raise FileNotFoundError(f"benchmark path {name} does not exist")
    raise ValueError(f"unknown benchmark {name!r}; available: 'synth', a dataset path, or reader:path "
                     f"with reader in {sorted(READERS)}")


__all__ = ["Benchmark", "Sample", "SampleError", "SUBSETS", "SynthConfig", "load_benchmark", "synth_benchmark"]
