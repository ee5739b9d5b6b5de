"""The CA-MER paper's Fig. 3a/3b/3c and Tables 7/8, computed from run stores.

Each ``fig*``/``table*`` function takes run paths (or RunInfos) and returns
a plotly figure (and, for tables, markdown); :func:`save` writes HTML and a
static PNG (kaleido, which drives the system Chromium) into ``cache/figures/``
(``--out DIR`` elsewhere; ``--docs`` regenerates the tracked ``docs/figures/``).
Titles name the run(s), the model and the data.  The reductions are the
dashboard's (:mod:`modbias_app.aggregates`, :mod:`modbias_app.compare`), so
the app and the figures always agree.

Run as scripts, e.g. ``python analyses/fig3a.py --run cache/<run>``; without
``--run`` the newest suitable run in ``--cache`` is used.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
from plotly.subplots import make_subplots

from analyses.outputs import OUT, output_options
from modbias.core.metrics import middle_layers
from modbias_app.aggregates import layer_profile, middle_mean, token_profile
from modbias_app.compare import (METRICS, duplication_sweep, metric_rows, metrics_markdown, sweep_markdown,
                                 tau_sweep)
from modbias_app.figures import (MODALITY_COLORS, intervention_bars, layers_figure, run_names, set_title,
                                 sweep_figure, token_figure)
from modbias_app.runs import RunInfo, StoreFieldError, head_mean_rows, head_sums, run_info, sample_table, scan

FAILURES = ("video_aligned", "incorrect")  # the paper's Fig. 3a/3b case: video-aligned samples the model gets wrong


def describe(info: RunInfo) -> str:
    """A run as figure titles name it: path, model, data, interventions."""
    return f"{info.path} (model {info.model}, data {info.data}, {info.label})"


# ----------------------------------------------------------------------------- Fig. 3a


def fig3a_data(path: str, at: str = "first") -> dict:
    """Middle-layer means of UAP_v / UAP_a (Eq. 1) per subset and outcome, the per-layer profile of
    the video-aligned failures, and the middle layers used.

    ``groups[(subset, outcome)] = {"UAP_v", "UAP_a", "n"}``.
    """
    sums, table = head_sums(path, at), sample_table(path)
    middle = middle_layers(sums.UAP_v.shape[1])
    groups = {}
    for subset in dict.fromkeys(table.subset.tolist()):
        for outcome in ("incorrect", "correct"):
            keep = table.pick(subset, outcome)
            if keep.any():
                groups[(subset, outcome)] = {**middle_mean(layer_profile(sums, keep), middle), "n": int(keep.sum())}
    keep = table.pick(*FAILURES)
    if not keep.any():
        raise StoreFieldError(f"run {path} has no video_aligned sample the model got wrong (field 'correct'): "
                              "Fig. 3a studies those failures")
    return {"groups": groups, "failures": layer_profile(sums, keep), "middle": middle}


def fig3a(path: str, at: str = "first") -> go.Figure:
    """Left: middle-layer UAP_v vs. UAP_a per subset and outcome, the video-aligned failures first
    (the paper's Fig. 3a). Right: UAP per layer of those failures, middle layers shaded."""
    data, info = fig3a_data(path, at), run_info(path)
    middle = data["middle"]
    fig = make_subplots(rows=1, cols=2, column_widths=[0.45, 0.55], subplot_titles=(
        f"mean over middle layers {middle.start}–{middle.stop - 1}", "video_aligned failures, per layer"))
    names = [f"{s} {o}<br>(n={g['n']})" for (s, o), g in data["groups"].items()]
    for name, color in (("UAP_v", MODALITY_COLORS["visual"]), ("UAP_a", MODALITY_COLORS["audio"])):
        fig.add_trace(go.Bar(x=names, y=[g[name] for g in data["groups"].values()], name=name, marker_color=color,
                             legendgroup=name), row=1, col=1)
        values = data["failures"][name]
        fig.add_trace(go.Scatter(x=np.arange(len(values)), y=values, mode="lines+markers", name=name,
                                 line=dict(color=color), legendgroup=name, showlegend=False), row=1, col=2)
    fig.add_vrect(x0=middle.start - .5, x1=middle.stop - .5, fillcolor="#999", opacity=0.15, line_width=0,
                  row=1, col=2)
    fig.update_xaxes(title_text="layer", row=1, col=2)
    fig.update_yaxes(title_text="UAP (Eq. 1)", row=1, col=1)
    fig.update_layout(barmode="group", height=480, width=1100)
    return set_title(fig, f"Fig. 3a — UAP at the {at} emotion token<br>{describe(info)}", subplot_titles=True)


def fig3a_layers(path: str, at: str = "first") -> go.Figure:
    """UAP_v / UAP_a per layer for every subset, correct vs. incorrect (the Layers view of the app)."""
    sums, table = head_sums(path, at), sample_table(path)
    profiles = {s: {o: layer_profile(sums, table.pick(s, o)) for o in ("correct", "incorrect")
                    if table.pick(s, o).any()} for s in dict.fromkeys(table.subset.tolist())}
    fig = layers_figure(profiles, middle_layers(sums.UAP_v.shape[1]),
                        f"UAP per layer at the {at} emotion token (solid correct, dashed incorrect)"
                        f"<br>{describe(run_info(path))}")
    return fig.update_layout(width=1200)


# ----------------------------------------------------------------------------- Fig. 3b


def fig3b_data(path: str, at: str = "first", sample: str | None = None, subset: str = FAILURES[0],
               outcome: str = FAILURES[1], layers=None) -> dict:
    """Per-position attention averaged over heads, ``layers`` (default: middle layers) and the
    chosen samples with rows (:func:`modbias.core.metrics.token_attention`)."""
    hm, table = head_mean_rows(path, at), sample_table(path)
    layers = layers if layers is not None else middle_layers(hm.rows.shape[1])
    profile, modality, n = token_profile(hm, table.select(subset, outcome, sample), layers)
    if n == 0:
        who = f"sample {sample}" if sample else f"{subset} sample ({outcome})"
        raise StoreFieldError(f"run {path}: no {who} has stored rows at {at!r} (field 'length' > 0)")
    return {"profile": profile, "modality": modality, "n": n, "layers": layers}


def fig3b(path: str, at: str = "first", sample: str | None = None, subset: str = FAILURES[0],
          outcome: str = FAILURES[1], layers=None) -> go.Figure:
    """Fig. 3b: attention per input token, log y axis, coloured by modality."""
    data = fig3b_data(path, at, sample, subset, outcome, layers)
    who = f"sample {sample}" if sample else f"{subset} {outcome} samples with rows (n={data['n']})"
    layers = data["layers"]
    fig = token_figure(data["profile"], data["modality"],
                       f"Fig. 3b — attention per input token, layers {layers[0]}–{layers[-1]}, heads averaged, "
                       f"at the {at} emotion token<br>{who}; {describe(run_info(path))}")
    return fig.update_layout(width=1100)


# ----------------------------------------------------------------------------- Fig. 3c, Tables 7 and 8


def fig3c(runs: list[RunInfo], metric: str = "avg") -> go.Figure:
    """Fig. 3c: metric per subset against the copies of each audio token."""
    points = duplication_sweep(runs, metric)
    if not points:
        raise StoreFieldError("no duplicate_audio runs (with their baseline) and no baselines of models trained "
                              "with different audio_repeat among: " + ", ".join(r.name for r in runs))
    return sweep_figure(points, "copies of each audio token", metric,
                        f"Fig. 3c — audio duplication sweep<br>runs {run_names(p.run for p in points)}",
                        log_x=True).update_layout(width=1000)


def table7(runs: list[RunInfo], all_runs: list[RunInfo], metric: str = "avg") -> tuple[str, go.Figure]:
    """Table 7 as markdown (value and Δ vs. each run's baseline per subset) and as bars."""
    rows = metric_rows(runs, all_runs)
    if not rows:
        raise StoreFieldError("no runs for Table 7")
    bars = intervention_bars(rows, metric, f"Table 7 — {METRICS[metric]} per subset, labels Δ vs. baseline"
                                           f"<br>runs {run_names(r.run.name for r in rows)}")
    return metrics_markdown(rows, metric), bars.update_layout(width=1100)


def table8(runs: list[RunInfo], metric: str = "avg") -> tuple[str, go.Figure]:
    """Table 8 as markdown (one row per τ) and as lines."""
    points = tau_sweep(runs, metric)
    if not points:
        raise StoreFieldError("no run applies AR (an 'ar' intervention with tau) among: "
                              + ", ".join(r.name for r in runs))
    fig = sweep_figure(points, "τ of AR (Eq. 7)", metric,
                       f"Table 8 — AR threshold sweep<br>runs {run_names(p.run for p in points)}")
    return sweep_markdown(points, "τ"), fig.update_layout(width=1000)


# ----------------------------------------------------------------------------- output and command lines


def save(figures: dict[str, go.Figure], out: Path = OUT) -> list[Path]:
    """Write ``name.html`` (plotly.js from its CDN) and ``name.png`` for each figure into ``out``.

    The PNGs are rendered by kaleido in one browser session; kaleido finds
    the system Chromium (``/usr/bin/chromium``) by itself.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in figures.items():
        fig.write_html(out / f"{name}.html", include_plotlyjs="cdn")
        written.append(out / f"{name}.html")
    pngs = [out / f"{name}.png" for name in figures]
    sizes = [fig.layout.width or 1000 for fig in figures.values()], [fig.layout.height or 500 for fig in figures.values()]
    pio.write_images(list(figures.values()), pngs, width=sizes[0], height=sizes[1])  # batches ignore layout sizes
    return written + pngs


def newest(cache: Path, suitable: Callable[[RunInfo], bool], what: str) -> RunInfo:
    """The newest run in ``cache`` for which ``suitable`` holds."""
    runs = [r for r in scan(cache) if suitable(r)]
    if not runs:
        raise SystemExit(f"no run in {cache} has {what}; pass --run")
    return runs[-1]


def single_run_parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--run", type=Path, help="run store; default: the newest suitable run in --cache")
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--at", default="first", help="probed emotion token: first | answer")
    return output_options(parser)


def many_runs_parser(doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--runs", type=Path, nargs="*", help="run stores; default: every suitable run in --cache")
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--metric", default="avg", choices=sorted(METRICS))
    return output_options(parser)


def chosen_runs(args) -> tuple[list[RunInfo], list[RunInfo]]:
    """(the runs named by --runs or the trace / intervene runs of --cache, every run known: those of the
    cache plus the named ones)."""
    cached = [r for r in scan(args.cache) if r.traces_attention]
    if not args.runs:
        return cached, cached
    named = [run_info(p) for p in args.runs]
    known = {r.path for r in named}
    return named, named + [r for r in cached if r.path not in known]
