"""Plotly figures shared by the dashboard and ``analyses/``; every title names its run(s)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from modbias_app.compare import METRICS, MetricRow, SweepPoint
from modbias_app.runs import MODALITY_ORDER, subset_names

MODALITY_COLORS = {"visual": "#1f77b4", "audio": "#d62728", "text": "#7f7f7f", "generated": "#2ca02c",
                   "mixed": "#bcbd22"}
SUBSET_COLORS = {"video_aligned": "#1f77b4", "audio_aligned": "#ff7f0e", "consistent": "#2ca02c",
                 "overall": "#444444"}
LINE_DASHES = ("solid", "dash", "dot", "dashdot")
OUTCOME_DASH = {"all": "solid", "correct": "solid", "incorrect": "dash"}


def run_names(names) -> str:
    """Run names for a title, wrapped onto lines of about 110 characters.

    Args:
        names: run names (duplicates dropped, sorted).

    Returns:
        The names joined by ``, `` and ``<br>``.
    """
    lines, line = [], ""
    for name in sorted(set(names)):
        if line and len(line) + len(name) > 110:
            lines.append(line)
            line = ""
        line += (", " if line else "") + name
    return "<br>".join(lines + [line])


def set_title(fig: go.Figure, title: str, subplot_titles: bool = False) -> go.Figure:
    """Title the figure, with room above the plot for every line of the title (and subplot titles).

    Args:
        fig: the figure (changed in place).
        title: the title (``<br>`` separates lines).
        subplot_titles: the figure has subplot titles to make room for.

    Returns:
        ``fig``.
    """
    extra = 20 * (title.count("<br>") + 1) + 30 * subplot_titles
    fig.update_layout(title=dict(text=title, font=dict(size=14)), margin=dict(t=40 + extra),
                      height=(fig.layout.height or 450) + extra)  # the plot keeps its height
    return fig


def message_figure(text: str) -> go.Figure:
    """An empty figure that says why it is empty.

    Args:
        text: the message.

    Returns:
        The figure.
    """
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper", font=dict(size=14))
    fig.update_layout(xaxis_visible=False, yaxis_visible=False, height=300)
    return fig


def cell_path(cells: np.ndarray) -> str:
    """One SVG path outlining every (layer, head) cell that is set, for a heatmap's ``shapes``.

    Args:
        cells: boolean ``[L, H]`` (rows layers, columns heads), e.g. H_bias of Eq. (7).

    Returns:
        An SVG path string (one closed unit square per set cell, in data coordinates; empty if none).
    """
    return " ".join(f"M {h - .5},{l - .5} H {h + .5} V {l + .5} H {h - .5} Z" for l, h in np.argwhere(cells).tolist())


def _value_text(value: float, quantity: str) -> str:
    if np.isnan(value):
        return "undefined: S_a = S_v = 0" if quantity == "log10_c_h" else "no sample"
    if np.isinf(value):
        return "+inf: S_v = 0 < S_a" if value > 0 else "−inf: S_a = 0 < S_v"
    return f"{value:.3g}"


def heads_figure(values: np.ndarray, quantity: str, head_share: np.ndarray, layer_share: np.ndarray,
                 tau: float, title: str) -> go.Figure:
    """Layer × head heatmap (trace 0), heads in H_bias (Eq. 7) for a majority of samples outlined,
    and layers with c > τ (Eq. 6) for a majority marked left of the map.

    ±inf cells (see :mod:`modbias.core.metrics`) are drawn at the ends of the
    colour scale and named in the hover text; NaN cells stay blank.

    Args:
        values: ``[layer, head]`` from :func:`~modbias_app.aggregates.head_map`.
        quantity: ``"log10_c_h"`` or ``"diff"`` (the colour bar's title).
        head_share: ``[layer, head]`` share of samples in which the head is biased.
        layer_share: ``[layer]`` share of samples in which c > τ.
        tau: τ, for the legend.
        title: the figure's title.

    Returns:
        The figure.
    """
    n_layers, n_heads = values.shape
    finite = values[np.isfinite(values)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    shown = np.clip(np.where(np.isinf(values), np.sign(values) * bound, values), -bound, bound)
    text = [[f"{_value_text(values[l, h], quantity)}<br>biased in {head_share[l, h]:.0%} of samples"
             for h in range(n_heads)] for l in range(n_layers)]
    fig = go.Figure(go.Heatmap(
        z=shown, x=np.arange(n_heads), y=np.arange(n_layers), text=text, colorscale="RdBu_r", zmid=0,
        hovertemplate="layer %{y}, head %{x}<br>%{text}<extra></extra>",
        colorbar=dict(title=dict(text="log10 c_h" if quantity == "log10_c_h" else "S_a − S_v", side="right"))))
    biased = head_share > 0.5
    if biased.any():
        fig.add_shape(type="path", path=cell_path(biased), line=dict(color="black", width=2),
                      name=f"H_bias (Eq. 7, τ={tau:g})", showlegend=True)
    layers = np.flatnonzero(layer_share > 0.5)
    fig.add_trace(go.Scatter(x=np.full(len(layers), -0.9), y=layers, mode="markers",
                             marker=dict(symbol="triangle-right", size=10, color="black"),
                             name=f"layer c > τ={tau:g} (Eq. 6)", hovertemplate="layer %{y}: c > τ<extra></extra>"))
    fig.update_layout(xaxis=dict(title="head", range=[-1.2, n_heads - 0.5], tickvals=list(range(n_heads))),
                      yaxis=dict(title="layer", range=[-0.5, n_layers - 0.5], tickvals=list(range(n_layers))),
                      legend=dict(orientation="h", y=-0.15), height=max(420, 14 * n_layers + 200))
    return set_title(fig, title)


def token_figure(profile: np.ndarray, modality: np.ndarray, title: str) -> go.Figure:
    """Attention per input position, one bar trace per modality, log y axis (Fig. 3b).

    Args:
        profile: ``[T]`` attention per position.
        modality: ``[T]`` each position's modality.
        title: the figure's title.

    Returns:
        The figure.
    """
    fig = go.Figure()
    positions = np.arange(len(profile))
    for kind in (*MODALITY_ORDER, "mixed"):
        pick = modality == kind
        if pick.any():
            fig.add_trace(go.Bar(x=positions[pick], y=profile[pick], name=kind, marker_color=MODALITY_COLORS[kind],
                                 hovertemplate="position %{x}: %{y:.3g}<extra>" + kind + "</extra>"))
    fig.update_layout(barmode="overlay", bargap=0, yaxis=dict(type="log", title="attention weight"),
                      xaxis_title="input position", height=380, legend=dict(orientation="h", y=-0.2))
    return set_title(fig, title)


def layers_figure(profiles: dict[str, dict[str, dict[str, np.ndarray]]], middle: range, title: str,
                  log_y: bool = False) -> go.Figure:
    """UAP_v and UAP_a (Eq. 1) per layer; one panel per subset, one line per modality and outcome
    (``profiles[subset][outcome] = {"UAP_v": [L], "UAP_a": [L]}``); middle layers shaded.

    Args:
        profiles: ``{subset: {outcome: {"UAP_v": [L], "UAP_a": [L]}}}``.
        middle: the middle layers.
        title: the figure's title.
        log_y: log y axis.

    Returns:
        The figure.
    """
    subsets = list(profiles)
    fig = make_subplots(rows=1, cols=len(subsets), shared_yaxes=True, subplot_titles=subsets)
    for col, subset in enumerate(subsets, start=1):
        for outcome, profile in profiles[subset].items():
            for name, color in (("UAP_v", MODALITY_COLORS["visual"]), ("UAP_a", MODALITY_COLORS["audio"])):
                fig.add_trace(go.Scatter(
                    x=np.arange(len(profile[name])), y=profile[name], mode="lines+markers",
                    name=f"{name} {outcome}", legendgroup=f"{name} {outcome}", showlegend=col == 1,
                    line=dict(color=color, dash=OUTCOME_DASH[outcome]),
                    hovertemplate=f"{subset} {outcome}<br>layer %{{x}}: {name} %{{y:.3g}}<extra></extra>"),
                    row=1, col=col)
        fig.add_vrect(x0=middle.start - .5, x1=middle.stop - .5, fillcolor="#999", opacity=0.15, line_width=0,
                      row=1, col=col)
    fig.update_xaxes(title_text="layer (shaded: middle layers)")
    fig.update_yaxes(title_text="UAP", type="log" if log_y else "linear", row=1, col=1)
    fig.update_layout(height=440, legend=dict(orientation="h", y=-0.25))
    return set_title(fig, title, subplot_titles=True)


def intervention_bars(rows: list[MetricRow], metric: str, title: str) -> go.Figure:
    """Per-subset bars of one metric per run, labelled with the delta vs. the run's baseline (Table 7).

    Args:
        rows: :func:`~modbias_app.compare.metric_rows`' rows.
        metric: ``avg``, ``acc``, ``rec`` or ``hit``.
        title: the figure's title.

    Returns:
        The figure.
    """
    subsets = subset_names({s: 0 for r in rows for s in r.metrics})
    fig = go.Figure()
    for row in rows:
        values = [row.metrics.get(s, {}).get(metric, np.nan) for s in subsets]
        labels = ["" if row.run.is_baseline or row.delta(s, metric) is None else f"{row.delta(s, metric):+.2f}"
                  for s in subsets]
        fig.add_trace(go.Bar(x=subsets, y=values, text=labels, textposition="outside",
                             name=f"{row.run.name}: {row.run.label}",
                             hovertemplate="%{x}: %{y:.2f} (Δ %{text})<extra>" + row.run.name + "</extra>"))
    fig.update_layout(barmode="group", yaxis_title=METRICS[metric] + " (%)", height=340 + 22 * len(rows),
                      legend=dict(orientation="h", y=-0.15))  # room for one legend line per run
    return set_title(fig, title)


def sweep_figure(points: list[SweepPoint], x_title: str, metric: str, title: str, log_x: bool = False) -> go.Figure:
    """Metric against a sweep value, one line per (sweep, subset).

    Args:
        points: sweep points (:func:`~modbias_app.compare.tau_sweep` or ``duplication_sweep``).
        x_title: the x axis's title.
        metric: the metric the points hold.
        title: the figure's title.
        log_x: log x axis.

    Returns:
        The figure.
    """
    fig = go.Figure()
    for number, line in enumerate(dict.fromkeys(p.line for p in points)):
        for subset in subset_names({p.subset: 0 for p in points if p.line == line}):
            pts = [p for p in points if p.line == line and p.subset == subset]
            fig.add_trace(go.Scatter(
                x=[p.x for p in pts], y=[p.value for p in pts], mode="lines+markers", name=f"{subset} · {line}",
                line=dict(color=SUBSET_COLORS.get(subset), dash=LINE_DASHES[number % len(LINE_DASHES)]),
                customdata=[p.run for p in pts],
                hovertemplate=f"{subset}<br>{x_title} %{{x}}: %{{y:.2f}}<br>run %{{customdata}}<extra></extra>"))
    fig.update_layout(xaxis=dict(title=x_title, type="log" if log_x else "linear"),
                      yaxis_title=METRICS[metric] + " (%)", height=400, legend=dict(orientation="h", y=-0.25))
    return set_title(fig, title)
