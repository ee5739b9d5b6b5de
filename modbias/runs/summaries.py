"""The evaluation each benchmark calls for, read from a stored run (MoSEAR paper, Tables 1-4, 12).

=========  ==========  ===============================================================
benchmark  table       metrics (stored in the run summary under ``evaluation``)
=========  ==========  ===============================================================
camer      Table 1     per subset and overall: set-level Acc / Rec / Avg (Eqs. 22-24, %)
synth      Table 1     the same, on the synthetic conflict benchmark
emer       Table 2     Acc / Rec / Avg (%) with Y = the emotions of the reference reasoning
mer2023    Table 3     weighted F1 over MER2023's six classes (a fraction, as the paper)
dfew       Tables 4/12 per-class recall, UAR and WAR over DFEW's seven classes (%)
coco       Table 13    CHAIR_s and CHAIR_i of image captions (fractions, :mod:`modbias.core.chair`)
=========  ==========  ===============================================================

Scoring reads only what a run stores (generated text, conclusion prediction,
label and, for EMER, the reference reasoning), so :func:`evaluate_run`
re-scores a run with another grouper G (Eq. 22) or scope without a model;
``options`` such as ``grouper`` and ``scope`` go through to
:mod:`modbias.core.evaluation` unchanged.  Single-label recognition (MER2023,
DFEW) scores the conclusion's emotion (``prediction``); an answer naming no
emotion counts as wrong.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

import numpy as np
import xarray as xr
from rich.table import Table

from modbias.core.chair import chair
from modbias.core.emotions import find_emotions
from modbias.data.readers import DFEW_CLASSES, DFEW_TO_CAMER
from modbias.core.evaluation import (conclusion_rule, deltas, grouper_name, lexicon_grouper, recognition_metrics,
                                sample_scores, subset_metrics)

MER2023_CLASSES = ("neutral", "angry", "happy", "sad", "worry", "surprise")  # MER2023's six, in CA-MER names
DFEW_AS_CAMER = tuple(DFEW_TO_CAMER.get(c, c) for c in DFEW_CLASSES)  # the labels DFEW samples are stored with


class EvaluationError(ValueError):
    """A run cannot be scored as asked; the message names the run and the missing field or option."""


# -- the four evaluations ---------------------------------------------------------------------------
def _conflict_subsets(ds: xr.Dataset, **options) -> dict:
    """Table 1: per-subset Acc / Rec / Avg / hit (:func:`modbias.core.evaluation.subset_metrics`)."""
    return subset_metrics(ds, **options)


def reference_emotions(text: str) -> list[str]:
    """The emotion words of a reference reasoning (EMER's ground-truth label set Y, before G).

    Args:
        text: the reference reasoning.
    Returns:
        The emotion words found in it, in order of appearance.
    """
    return [m.word for m in find_emotions([str(text)])]


def _emer(ds: xr.Dataset, **options) -> dict:
    """Table 2: set-level Acc / Rec / Avg (Eqs. 23-24, %) against each sample's reference emotions."""
    if "reference" not in ds.variables:
        raise EvaluationError(f"run {ds.attrs.get('path', '')} stores no 'reference' (the EMER reference "
                              "reasoning); trace it again with this version of modbias")
    truth = [reference_emotions(t) for t in np.asarray(ds.reference.values).astype(str)]
    scores = sample_scores(np.asarray(ds.text.values).astype(str), truth, rule=conclusion_rule(ds), **options)
    acc, rec = (float(x) for x in scores.mean(0) * 100) if len(scores) else (0.0, 0.0)
    return {"acc": acc, "rec": rec, "avg": (acc + rec) / 2, "n": int(len(scores)),
            "no_reference_emotion": int(sum(not t for t in truth))}


def _truth_and_prediction(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(ds.label.values).astype(str), np.asarray(ds.prediction.values).astype(str)


def _mer2023(ds: xr.Dataset, **_) -> dict:
    """Table 3: weighted F1 over MER2023's classes (each class's F1 weighted by its support)."""
    truth, predicted = _truth_and_prediction(ds)
    return {"weighted_f1": recognition_metrics(truth, predicted, MER2023_CLASSES)["weighted_f1"], "n": len(truth)}


def _dfew(ds: xr.Dataset, **_) -> dict:
    """Tables 4 / 12: recall of each DFEW class (its "accuracy"), UAR (their mean over present classes)
    and WAR (overall accuracy), in %."""
    truth, predicted = _truth_and_prediction(ds)
    scores = recognition_metrics(truth, predicted, DFEW_AS_CAMER)
    recall = {name: float(np.mean(predicted[truth == c] == c) * 100) if (truth == c).any() else None
              for name, c in zip(DFEW_CLASSES, DFEW_AS_CAMER)}
    return {"recall": recall, "uar": scores["uar"] * 100, "war": scores["war"] * 100, "n": len(truth)}


def _coco(ds: xr.Dataset, **_) -> dict:
    """Table 13: CHAIR_s / CHAIR_i of the stored captions against the stored ground-truth objects."""
    truths = [set(filter(None, objects.split(";"))) for objects in np.asarray(ds.objects.values).astype(str)]
    return chair(np.asarray(ds.text.values).astype(str), truths)


@dataclass(frozen=True)
class Evaluation:
    """How one benchmark is scored: the paper's table, its headline metrics, and the scorer."""

    table: str
    headline: tuple[str, ...]
    score: Callable[..., dict]
    takes_options: bool  # whether grouper / scope matter (set-level scores)


EVALUATIONS: dict[str, Evaluation] = {
    "camer": Evaluation("Table 1", ("acc", "rec", "avg"), _conflict_subsets, True),
    "synth": Evaluation("Table 1", ("acc", "rec", "avg"), _conflict_subsets, True),
    "emer": Evaluation("Table 2", ("acc", "rec", "avg"), _emer, True),
    "mer2023": Evaluation("Table 3", ("weighted_f1",), _mer2023, False),
    "dfew": Evaluation("Table 4", ("uar", "war"), _dfew, False),
    "coco": Evaluation("Table 13", ("chair_s", "chair_i"), _coco, False),
}


def benchmark_of(ds_or_config) -> str:
    """The benchmark a run was traced on.

    Args:
        ds_or_config: a run Dataset (its ``attrs["config"]``) or a run config.
    Returns:
        Its data reader (``camer``, ``emer``, ...) or data name (``synth``); ``"?"`` when neither is stored.
    """
    config = ds_or_config.attrs.get("config", {}) if isinstance(ds_or_config, xr.Dataset) else ds_or_config
    data = (config or {}).get("data", {}) or {}
    return str(data.get("reader") or data.get("name") or "?")


# -- options ----------------------------------------------------------------------------------------
def check_options(options: dict) -> dict:
    """Keep the scoring options :func:`modbias.core.evaluation.subset_metrics` takes.

    Args:
        options: e.g. ``grouper``, ``scope``; ``None`` values are dropped (the evaluation's defaults apply).
    Returns:
        The options without ``None`` values.
    Raises:
        EvaluationError: an option ``subset_metrics`` does not take.
    """
    options = {k: v for k, v in options.items() if v is not None}
    accepted = set(inspect.signature(subset_metrics).parameters) - {"ds"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise EvaluationError(f"scoring option(s) {unknown} are not taken by modbias.core.evaluation "
                              f"(it takes {sorted(accepted)})")
    return options


def _described(options: dict) -> dict:
    return {k: v if isinstance(v, (str, int, float, bool)) else
            f"{getattr(v, '__module__', '?')}:{getattr(v, '__qualname__', type(v).__name__)}"
            for k, v in options.items()}


# -- scoring a run -----------------------------------------------------------------------------------
def metric_deltas(run: dict, baseline: dict) -> dict:
    """run − baseline for every number both hold (nested dicts recurse; counts ``n`` are skipped).

    Args:
        run: metrics of the run.
        baseline: metrics of the baseline, same nesting.
    Returns:
        The differences, same nesting, only where both sides hold a number.
    """
    out = {}
    for key, value in run.items():
        base = baseline.get(key) if isinstance(baseline, dict) else None
        if key == "n" or base is None or value is None:
            continue
        if isinstance(value, dict):
            inner = metric_deltas(value, base)
            if inner:
                out[key] = inner
        elif isinstance(value, (int, float)) and isinstance(base, (int, float)):
            out[key] = float(value - base)
    return out


def evaluate_run(ds: xr.Dataset, benchmark: str | None = None, baseline: dict | None = None,
                 **options) -> dict:
    """The evaluation a run's benchmark calls for (see the module table).

    Args:
        ds: a stored run.
        benchmark: overrides the benchmark the run was traced on.
        baseline: another evaluation of the same benchmark to take deltas against.
        options: ``grouper``, ``scope``: passed to the set-level scores (Eqs. 22-24).
    Returns:
        ``{"benchmark", "table", "metrics", "deltas", "options"}``.
    Raises:
        EvaluationError: no evaluation for the benchmark, or options it does not take.
    """
    name = benchmark or benchmark_of(ds)
    if name not in EVALUATIONS:
        raise EvaluationError(f"run {ds.attrs.get('path', '')}: no evaluation for benchmark {name!r}; "
                              f"known: {sorted(EVALUATIONS)}")
    spec, options = EVALUATIONS[name], check_options(options)
    if options and not spec.takes_options:
        raise EvaluationError(f"{name} is scored on the conclusion's label alone; {sorted(options)} do not apply")
    metrics = spec.score(ds, **options)
    return {"benchmark": name, "table": spec.table, "metrics": metrics,
            "deltas": metric_deltas(metrics, baseline["metrics"]) if baseline else None,
            "options": _described(options)}


def edit_counts(ds: xr.Dataset) -> dict:
    """Run totals of the interventions' per-sample counters (``edits_*`` variables, e.g. AR's
    edited and floored head rows).

    Args:
        ds: a stored run.
    Returns:
        ``{"edits": {name: total}}``, or ``{}`` when the run has no counters.
    """
    totals = {str(name)[len("edits_"):]: int(ds[name].sum()) for name in ds.data_vars if str(name).startswith("edits_")}
    return {"edits": totals} if totals else {}


def run_summary(ds: xr.Dataset, baseline_path=None, baseline_summary: dict | None = None,
                benchmark: str | None = None, **options) -> dict:
    """The summary a trace / intervene run stores.

    Args:
        ds: the run.
        baseline_path: the baseline run's store, recorded in the summary.
        baseline_summary: the baseline's summary, to take deltas against.
        benchmark: overrides the benchmark the run was traced on.
        options: scoring options (``scope``, ``grouper``) that read Ŷ.
    Returns:
        ``{"metrics", "baseline", "deltas", "scope", "grouper", "edits"?, "evaluation"}``: per-subset metrics
        (Table 1 style, ``None`` for runs without emotion labels), the interventions' edit counts, the
        evaluation the benchmark calls for, and deltas against the baseline when one is given.
    """
    options = check_options(options)
    metrics = subset_metrics(ds, **options) if "correct" in ds.variables else None  # emotion runs
    base_eval = (baseline_summary or {}).get("evaluation")
    name = benchmark or benchmark_of(ds)
    spec = EVALUATIONS.get(name)
    scoring = options if spec is None or spec.takes_options else {}  # Ŷ options mean nothing to F1, UAR, CHAIR
    # samples passed as a plain list name no benchmark: no evaluation (``modbias evaluate --as`` gives one)
    evaluation = evaluate_run(ds, benchmark, baseline=base_eval, **scoring) if spec or benchmark else None
    return {"metrics": metrics, "baseline": str(baseline_path) if baseline_path else None,
            "deltas": deltas(metrics, baseline_summary["metrics"]) if metrics and baseline_summary else None,
            "scope": options.get("scope", "conclusion"),
            "grouper": grouper_name(options.get("grouper", lexicon_grouper)), **edit_counts(ds),
            "evaluation": evaluation}


def record_summary(path, ds: xr.Dataset, **kwargs) -> dict:
    """Compute :func:`run_summary`, write it to the store's manifest and ``ds.attrs["summary"]``.

    Args:
        path: the run's store.
        ds: the run.
        kwargs: passed to :func:`run_summary`.
    Returns:
        The summary.
    """
    from modbias.runs.store import update_manifest

    summary = run_summary(ds, **kwargs)
    update_manifest(path, summary=summary)
    ds.attrs["summary"] = summary
    return summary


# -- display -----------------------------------------------------------------------------------------
def _cell(value, delta=None, fraction: bool = False) -> str:
    if value is None:
        return "–"
    text = f"{value:.4f}" if fraction else f"{value:.2f}"
    if delta is not None:
        text += f" ({delta:+.4f})" if fraction else f" ({delta:+.2f})"
    return text


def evaluation_rows(evaluation: dict) -> tuple[list[str], list[list[str]]]:
    """Header and rows of an evaluation in its table's layout (deltas in parentheses).

    Args:
        evaluation: an :func:`evaluate_run` result.
    Returns:
        ``(header, rows)``, cells as text.
    """
    name, metrics, changes = evaluation["benchmark"], evaluation["metrics"], evaluation.get("deltas") or {}
    if EVALUATIONS[name].table == "Table 1":
        head = ["subset", "Acc", "Rec", "Avg", "Correct", "n"]
        rows = [[subset] + [_cell(values[m], changes.get(subset, {}).get(m)) for m in ("acc", "rec", "avg", "hit")]
                + [str(values["n"])] for subset, values in metrics.items()]
        return head, rows
    if name == "emer":
        return ["Acc", "Rec", "Avg", "n"], [
            [_cell(metrics[m], changes.get(m)) for m in ("acc", "rec", "avg")] + [str(metrics["n"])]]
    if name == "coco":
        return ["CHAIR_s", "CHAIR_i", "captions", "mentions"], [
            [_cell(metrics[m], changes.get(m), True) for m in ("chair_s", "chair_i")]
            + [str(metrics["captions"]), str(metrics["mentions"])]]
    if name == "mer2023":
        return ["F1 Score", "n"], [[_cell(metrics["weighted_f1"], changes.get("weighted_f1"), True),
                                    str(metrics["n"])]]
    recall, recall_changes = metrics["recall"], changes.get("recall", {})
    head = [c[:3].capitalize() + "." for c in DFEW_CLASSES] + ["UAR", "WAR", "n"]
    return head, [[_cell(recall[c], recall_changes.get(c)) for c in DFEW_CLASSES]
                  + [_cell(metrics[m], changes.get(m)) for m in ("uar", "war")] + [str(metrics["n"])]]


def evaluation_table(evaluation: dict, title: str = "") -> Table:
    """A rich table of :func:`evaluation_rows`, titled with the benchmark and the paper's table.

    Args:
        evaluation: an :func:`evaluate_run` result.
        title: prefix of the table's title.
    Returns:
        The ``rich.table.Table``.
    """
    head, rows = evaluation_rows(evaluation)
    options = ", ".join(f"{k}={v}" for k, v in evaluation.get("options", {}).items())
    table = Table(title=f"{title} — {evaluation['benchmark']} ({evaluation['table']} layout)"
                        + (f", {options}" if options else ""))
    for i, name in enumerate(head):
        table.add_column(name, justify="left" if i == 0 and name == "subset" else "right")
    for row in rows:
        table.add_row(*row)
    return table
