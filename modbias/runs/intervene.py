"""``modbias.intervene``: run a benchmark under interventions and compare with the baseline.

The run is a trace under the interventions (same store schema, ``kind``
``intervene``), so every intervened run also carries its attention metrics.
The baseline — the same model and samples with no intervention — is
computed once into ``cache/baseline-<hash>`` and re-used by every later run.
The per-subset metrics (Table 1 style), the evaluation the benchmark calls for
(:mod:`modbias.runs.summaries`), and their deltas vs. the baseline are
written to the run manifest's ``summary`` and to ``ds.attrs["summary"]``.
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
from pathlib import Path
from typing import Iterable

import xarray as xr

from modbias.core.evaluation import Grouper
from modbias.data.sample import Sample
from modbias.interventions import REGISTRY, Intervention, make
from modbias.models.base import ModelAdapter
from modbias.runs.store import open_run
from modbias.runs.summaries import record_summary
from modbias.runs.trace import trace


def build_interventions(method: str, **params) -> list[Intervention]:
    """``method`` names one registered intervention or several joined by ``+`` (e.g. ``mose+ar``);
    each parameter goes to every intervention whose constructor takes it."""
    names = [n.strip() for n in method.split("+") if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        raise ValueError(f"unknown method {method!r}; available: {sorted(REGISTRY)} (join with '+')")
    accepted = {n: set(inspect.signature(REGISTRY[n]).parameters) for n in names}
    unused = [p for p in params if not any(p in a for a in accepted.values())]
    if unused:
        raise ValueError(f"parameters {unused} are not taken by {names}; they take {sorted(set().union(*accepted.values()))}")
    return [make(n, **{k: v for k, v in params.items() if k in accepted[n]}) for n in names if n != "none"]


def _digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def run_label(interventions: list[Intervention]) -> str:
    if not interventions:
        return "none"
    def value(k, v):  # a checkpoint is named by its directory, other values as they are
        return Path(v).name if k == "checkpoint" else v

    return "+".join(iv.name + "".join(f"-{k}{value(k, v)}" for k, v in iv.params().items() if v is not None)
                    for iv in interventions).replace("/", "_").replace(":", "_").replace(" ", "")


def intervene(model: ModelAdapter, data: Iterable[Sample], method: str = "ar", *,
              interventions: list[Intervention] | None = None, out: str | Path | None = None,
              cache_dir: str | Path = "cache", baseline: str | Path | None = None, batch_size: int = 64,
              max_new_tokens: int = 16, at: str = "first", progress: bool = True,
              scope: str = "conclusion", grouper: Grouper | None = None,
              shard: tuple[int, int] | str | None = None, dask: str | None = None, **params) -> xr.Dataset:
    """Run ``data`` under ``method`` (or an explicit ``interventions`` list) and compare with the baseline.

    Two progress bars (``progress=False``: none) count samples: ``baseline`` (skipped when the
    baseline is stored) and the run, named after its interventions.  ``scope`` and ``grouper``
    choose how Ŷ is read for the summary (:func:`modbias.core.evaluation.subset_metrics`: the final
    conclusion by default, ``"answer"`` for the whole answer; the built-in lexicon grouper).
    ``shard``/``dask`` scale out both the baseline and the run (:func:`modbias.runs.loop.run`); the
    summaries are recorded by the process that finds both stores complete.

    >>> import modbias                                                       # doctest: +SKIP
    >>> ds = modbias.intervene(modbias.load_model("organism"),
    ...                        modbias.load_benchmark("synth", subset="all", limit=100), method="ar", tau=1.0)
    >>> ds.attrs["summary"]["deltas"]["video_aligned"]["avg"]
    """
    interventions = build_interventions(method, **params) if interventions is None else interventions
    samples = list(data)
    data_config = getattr(data, "config", {})
    common = dict(at=at, max_new_tokens=max_new_tokens, batch_size=batch_size, data_config=data_config, shard=shard,
                  dask=dask)
    key = _digest(model.describe(), data_config, [s.id for s in samples], at, max_new_tokens)
    cache_dir = Path(cache_dir)
    baseline = Path(baseline) if baseline else cache_dir / f"baseline-{model.family}-{key}"
    base = trace(model, samples, out=baseline, kind="intervene", progress=progress, label="baseline", **common)
    scoring = {"scope": scope, "grouper": grouper}
    if not interventions:
        if base.attrs.get("complete", True):
            record_summary(baseline, base, **scoring)
        return base
    out = Path(out) if out else cache_dir / f"intervene-{model.family}-{run_label(interventions)}-{key}"
    run = trace(model, samples, out=out, kind="intervene", interventions=interventions,
                progress=progress, label=f"run {run_label(interventions)}", **common)
    base = base if base.attrs.get("complete", True) else open_run(baseline)  # other shards may have finished it since
    if run.attrs.get("complete", True) and base.attrs.get("complete", True):
        base_summary = record_summary(baseline, base, **scoring)
        record_summary(out, run, baseline_path=baseline, baseline_summary=base_summary, **scoring)
    return run


def sweep(values: dict[str, list]) -> list[dict]:
    """The cartesian product of parameter lists, e.g. ``{"tau": [0, 1], "k": [1]}`` → two dicts."""
    keys = list(values)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values[k] for k in keys))]
