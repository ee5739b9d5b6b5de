"""Comparisons across runs: metrics with deltas vs. a baseline (Table 7), explanation consistency
(MIGR Eqs. 6-8 and its Table 2), the AR threshold sweep (Table 8) and the audio-duplication sweep (Fig. 3c)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modbias_app.runs import RunInfo, StoreFieldError, baseline_of, consistency_of, deltas_of, metrics, subset_names

METRICS = {"avg": "Avg (Eq. 24)", "acc": "Acc (Eq. 23)", "rec": "Rec (Eq. 23)", "hit": "Correct (conclusion = label)"}


def md(text) -> str:
    """``text`` as literal markdown (run names and labels are user text): every character that could
    open a link, an image, HTML, code, a table cell or emphasis is backslash-escaped; an underscore
    inside a word (``duplicate_audio``) is left as it is, since it cannot.

    Args:
        text: any object (``str()`` is taken).

    Returns:
        The escaped text.
    """
    return re.sub(r"([\\`*\[\]<>|~])|(?<!\w)_|_(?!\w)", lambda m: "\\" + m.group(0), str(text))


@dataclass
class MetricRow:
    """One run's per-subset metrics, and its deltas vs. its baseline (None without a baseline)."""

    run: RunInfo
    metrics: dict
    deltas: dict | None
    baseline: RunInfo | None

    def delta(self, subset: str, metric: str) -> float | None:
        """The run's change vs. its baseline on one subset and metric.

        Args:
            subset: the subset.
            metric: ``avg``, ``acc``, ``rec`` or ``hit``.

        Returns:
            The difference, or ``None`` without a baseline value.
        """
        return (self.deltas or {}).get(subset, {}).get(metric)


def metric_rows(chosen: list[RunInfo], runs: list[RunInfo]) -> list[MetricRow]:
    """Metrics of the chosen runs, baselines first; deltas from the summary or vs. the matched baseline.

    Args:
        chosen: the runs to show.
        runs: runs oldest first, as :func:`modbias_app.runs.scan` lists them.

    Returns:
        One :class:`MetricRow` per chosen run.
    """
    out = []
    for info in sorted(chosen, key=lambda r: (not r.is_baseline, r.created)):
        d, base = deltas_of(info, runs)
        out.append(MetricRow(info, metrics(info), d, base))
    return out


def _cell(row: MetricRow, subset: str, metric: str) -> str:
    value = row.metrics.get(subset, {}).get(metric)
    if value is None:
        return "–"
    delta = row.delta(subset, metric)
    if delta is None or row.run.is_baseline:
        return f"{value:.2f}"
    return f"{value:.2f} ({delta:+.2f} {'↑' if delta > 0 else '↓' if delta < 0 else '='})"


def metrics_markdown(rows: list[MetricRow], metric: str = "avg") -> str:
    """Table 7: one row per run, one column per subset, ``value (Δ vs. baseline)``.

    Args:
        rows: :func:`metric_rows`' rows.
        metric: ``avg``, ``acc``, ``rec`` or ``hit``.

    Returns:
        A markdown table.
    """
    subsets = subset_names({s: 0 for r in rows for s in r.metrics})
    lines = ["| run | model | interventions | baseline | " + " | ".join(subsets) + " |",
             "|---|---|---|---|" + "---|" * len(subsets)]
    for row in rows:
        base = md(row.baseline.name) if row.baseline else "–"
        lines.append(f"| {md(row.run.name)} | {md(row.run.model)} | {md(row.run.label)} | {base} | "
                     + " | ".join(_cell(row, s, metric) for s in subsets) + " |")
    return "\n".join(lines)


# explanation consistency (modbias.analysis.consistency): key in its output -> column header
CONSISTENCY_COLUMNS = {"EEA": "EEA", "EPC": "EPC", "FCR": "FCR", "RxA_correct": "R✗/A✓ (correct)"}


def consistency_rows(runs: list[RunInfo]) -> list[dict]:
    """One row per run and subset (``overall`` last): run, interventions, subset, n, n_correct and the
    :data:`CONSISTENCY_COLUMNS` in [0, 1] (NaN where undefined), from :func:`modbias_app.runs.consistency_of`.
    A run lacking texts gives one row whose ``error`` says why.

    Args:
        runs: the runs to score.

    Returns:
        The rows as dicts.
    """
    out = []
    for info in runs:
        try:
            scores = consistency_of(info.path)
        except StoreFieldError as error:
            out.append({"run": info.name, "interventions": info.label, "subset": "–", "error": str(error)})
            continue
        for subset in subset_names(scores):
            s = scores[subset]
            out.append({"run": info.name, "interventions": info.label, "subset": subset, "n": s["n"],
                        "n_correct": s["n_correct"], **{k: s[k] for k in CONSISTENCY_COLUMNS}})
    return out


def _percent(value) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f}"


def consistency_markdown(rows: list[dict]) -> str:
    """The rows of :func:`consistency_rows` as a markdown table, values in %.

    Args:
        rows: :func:`consistency_rows`' rows.

    Returns:
        A markdown table.
    """
    lines = ["| run | interventions | subset | n | " + " | ".join(CONSISTENCY_COLUMNS.values()) + " |",
             "|---|---|---|---|" + "---|" * len(CONSISTENCY_COLUMNS)]
    for row in rows:
        if "error" in row:
            cells = ["–"] * (len(CONSISTENCY_COLUMNS) + 1)
        else:
            cells = [str(row["n"])] + [_percent(row[k]) for k in CONSISTENCY_COLUMNS]
        lines.append(f"| {md(row['run'])} | {md(row['interventions'])} | {md(row['subset'])} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


@dataclass(frozen=True)
class SweepPoint:
    """One run's metric on one subset at a sweep value ``x``; ``line`` names the sweep it belongs to."""

    line: str
    x: float
    subset: str
    value: float
    run: str


def _points(line: str, x: float, info: RunInfo, metric: str) -> list[SweepPoint]:
    table = metrics(info)
    return [SweepPoint(line, float(x), s, float(table[s][metric]), info.name)
            for s in subset_names(table) if metric in table[s]]


def _newest_per_x(points: list[SweepPoint]) -> list[SweepPoint]:
    """Keep, per (line, x, subset), the point of the last run listed (runs come oldest first)."""
    keep = {(p.line, p.x, p.subset): p for p in points}
    return sorted(keep.values(), key=lambda p: (p.line, p.subset, p.x))


def _lines_with_range(points: list[SweepPoint]) -> list[SweepPoint]:
    xs: dict[str, set] = {}
    for p in points:
        xs.setdefault(p.line, set()).add(p.x)
    return [p for p in points if len(xs[p.line]) > 1]


def tau_sweep(runs: list[RunInfo], metric: str = "avg") -> list[SweepPoint]:
    """Table 8: every run whose interventions include AR, at x = its τ; one line per model, data and
    companion interventions (e.g. MoSE + AR apart from AR alone).

    Args:
        runs: runs oldest first, as :func:`modbias_app.runs.scan` lists them.
        metric: ``avg``, ``acc``, ``rec`` or ``hit``.

    Returns:
        The newest point per (line, τ, subset).
    """
    points = []
    for info in runs:
        ar = info.intervention("ar")
        if ar is None or ar.get("tau") is None:
            continue
        others = [i for i in info.interventions if i.get("name") != "ar"]
        line = f"{info.model}/{info.data}" + "".join(f" + {i['name']}" for i in others) + " + ar"
        points += _points(line, ar["tau"], info, metric)
    return _newest_per_x(points)


def _model_name(info: RunInfo) -> str:
    """The model family, with its checkpoint path and audio_repeat when they set it apart."""
    model = info.config.get("model", {})
    extra = [str(model["path"])] if model.get("path") else []
    extra += [f"audio_repeat={info.audio_repeat}"] if info.audio_repeat != 1 else []
    return info.model + (f" ({', '.join(extra)})" if extra else "")


def duplication_sweep(runs: list[RunInfo], metric: str = "avg") -> list[SweepPoint]:
    """Fig. 3c: metrics against the number of copies of each audio token.

    Two kinds of line, drawn when they span at least two values:
    ``duplicate_audio`` runs at x = k, with their baseline (as in
    :func:`modbias_app.runs.baseline_of`) at x = 1; and baselines of models
    trained with ``audio_repeat`` copies (App. C.2) at x = audio_repeat.

    Args:
        runs: runs oldest first, as :func:`modbias_app.runs.scan` lists them.
        metric: ``avg``, ``acc``, ``rec`` or ``hit``.

    Returns:
        The newest point per (line, k, subset), lines with one value left out.
    """
    points = []
    for info in runs:
        dup = info.intervention("duplicate_audio")
        if dup is not None and len(info.interventions) == 1:
            line = f"{_model_name(info)}/{info.data} duplicate_audio"
            points += _points(line, dup.get("k", 1), info, metric)
            base = baseline_of(info, runs)
            if base is not None:
                points += _points(line, 1, base, metric)
        elif info.is_baseline:
            points += _points(f"{info.model}/{info.data} trained audio_repeat", info.audio_repeat, info, metric)
    return _lines_with_range(_newest_per_x(points))


def sweep_markdown(points: list[SweepPoint], x_name: str) -> str:
    """Table 8 layout: one row per (line, x), one column per subset.

    Args:
        points: sweep points.
        x_name: the x column's header (e.g. ``τ``).

    Returns:
        A markdown table.
    """
    subsets = subset_names({p.subset: 0 for p in points})
    cells = {(p.line, p.x, p.subset): p for p in points}
    keys = sorted({(p.line, p.x) for p in points})
    lines = [f"| sweep | {x_name} | " + " | ".join(subsets) + " | run |", "|---|---|" + "---|" * (len(subsets) + 1)]
    for line, x in keys:
        values = [cells.get((line, x, s)) for s in subsets]
        run = next(v.run for v in values if v is not None)
        lines.append(f"| {md(line)} | {x:g} | " + " | ".join(f"{v.value:.2f}" if v else "–" for v in values)
                     + f" | {md(run)} |")
    return "\n".join(lines)
