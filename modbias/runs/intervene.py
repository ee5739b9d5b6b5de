"""``modbias.intervene``: run a benchmark under interventions and compare with the baseline.

The run is a trace under the interventions (same store schema, ``kind``
``intervene``), so every intervened run also carries its attention metrics.
The baseline — the same model and samples with no intervention — is
computed once into the store its identity names (``cache/intervene-<model>-<data>-baseline-<hash>``,
:func:`modbias.runs.identity.default_store`) and re-used by every later run with that identity.
The per-subset metrics (Table 1 style), the evaluation the benchmark calls for
(:mod:`modbias.runs.summaries`), and their deltas vs. the baseline are
written to the run manifest's ``summary`` and to ``ds.attrs["summary"]``.
"""

from __future__ import annotations

import inspect
import itertools
from pathlib import Path
from typing import Iterable

import xarray as xr

from modbias.core.evaluation import Grouper
from modbias.data.sample import Sample
from modbias.interventions import REGISTRY, Intervention, make
from modbias.models.base import ModelAdapter
from modbias.runs.identity import default_store, intervention_label
from modbias.runs.store import open_run
from modbias.runs.summaries import record_summary
from modbias.runs.trace import trace, trace_identity


def build_interventions(method: str, **params) -> list[Intervention]:
    """The interventions a method name asks for.

    Args:
        method: one registered intervention or several joined by ``+`` (e.g. ``mose+ar``); ``none`` builds none.
        params: each goes to every intervention whose constructor takes it.
    Returns:
        The interventions, in the order named.
    Raises:
        ValueError: an unknown method, or a parameter no named intervention takes.
    """
    names = [n.strip() for n in method.split("+") if n.strip()]
    unknown = [n for n in names if n not in REGISTRY]
    if unknown or not names:
        raise ValueError(f"unknown method {method!r}; available: {sorted(REGISTRY)} (join with '+')")
    accepted = {n: set(inspect.signature(REGISTRY[n]).parameters) for n in names}
    unused = [p for p in params if not any(p in a for a in accepted.values())]
    if unused:
        raise ValueError(f"parameters {unused} are not taken by {names}; they take {sorted(set().union(*accepted.values()))}")
    return [make(n, **{k: v for k, v in params.items() if k in accepted[n]}) for n in names if n != "none"]


def run_label(interventions: list[Intervention]) -> str:
    """The label of a run's interventions (:func:`modbias.runs.identity.intervention_label`).

    Args:
        interventions: the run's interventions.
    Returns:
        e.g. ``ar-tau1.0``, ``mose-checkpointX+ar-tau1.0``, or ``none``.
    """
    return intervention_label([iv.describe() for iv in interventions])


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

    Args:
        model, data: the adapter and the samples.
        method, params: the interventions (e.g. ``method="ar", tau=1.0``: AR's τ is identity of the run and the
            τ it is read at by default), or ``interventions`` built already.
        out, baseline: the stores; by default those their identities name under ``cache_dir``
            (:func:`modbias.runs.identity.default_store`), so ``batch_size`` never changes which store is used.
        at, max_new_tokens: identity; batch_size, progress: execution only.
    Returns:
        The intervened run (read at its own τ), ``attrs["summary"]`` with deltas against the baseline.

    >>> import modbias                                                       # doctest: +SKIP
    >>> ds = modbias.intervene(modbias.load_model("organism"),
    ...                        modbias.load_benchmark("synth", subset="all", limit=100), method="ar", tau=1.0)
    >>> ds.attrs["summary"]["deltas"]["video_aligned"]["avg"]
    """
    interventions = build_interventions(method, **params) if interventions is None else interventions
    samples = list(data)
    data_config = getattr(data, "config", {})
    common = dict(at=at, max_new_tokens=max_new_tokens, data_config=data_config)
    scale = dict(batch_size=batch_size, shard=shard, dask=dask)  # execution only, never identity
    if baseline is None:
        baseline = default_store(trace_identity(model, samples, kind="intervene", **common), cache_dir)
    base = trace(model, samples, out=baseline, kind="intervene", progress=progress, label="baseline", **common,
                 **scale)
    scoring = {"scope": scope, "grouper": grouper}
    if not interventions:
        if base.attrs.get("complete", True):
            record_summary(baseline, base, **scoring)
        return base
    out = Path(out) if out else None
    run = trace(model, samples, out=out, cache_dir=cache_dir, kind="intervene", interventions=interventions,
                progress=progress, label=f"run {run_label(interventions)}", **common, **scale)
    out = Path(run.attrs["path"])
    base = base if base.attrs.get("complete", True) else open_run(baseline)  # other shards may have finished it since
    if run.attrs.get("complete", True) and base.attrs.get("complete", True):
        base_summary = record_summary(baseline, base, **scoring)
        record_summary(out, run, baseline_path=baseline, baseline_summary=base_summary, **scoring)
    return run


def sweep(values: dict[str, list]) -> list[dict]:
    """The cartesian product of parameter lists, e.g. ``{"tau": [0, 1], "k": [1]}`` → two dicts.

    Args:
        values: parameter name → the values to try.
    Returns:
        One ``{name: value}`` per combination, the last parameter varying fastest.
    """
    keys = list(values)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values[k] for k in keys))]
