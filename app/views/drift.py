"""Drift: attention shares on visual / audio / prompt / generated tokens over normalised decoding steps
(MIGR Fig. 5), averaged over samples of a drift run, optionally split by subset or MI label."""

from __future__ import annotations

import plotly.graph_objects as go
from dash import Input, Output, dcc, html

from modbias.runs.drift import drift_curves
from modbias_app.runs import RunInfo, StoreFieldError, open_dataset
from modbias_app.views.common import in_cache, shows_errors

TAB, ID = "Drift", "drift"
RUN, SPLIT, LAYER, GRAPH = "drift-run", "drift-split", "drift-layer", "drift-graph"
COLOURS = {"visual": "#1f77b4", "audio": "#d62728", "text": "#7f7f7f", "generated": "#2ca02c"}
DASHES = ("solid", "dash", "dot", "dashdot", "longdash")


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    """Drift tab: the drift-run menu, split and layer choices, a note and the graph.

    Args:
        runs: the drift runs among them fill the menu (the newest chosen).
        cache: not read.

    Returns:
        The Drift tab's ``html.Div``.
    """
    drift_runs = [r.path for r in runs if r.kind == "drift"]
    return html.Div([
        html.Div([
            dcc.Dropdown(id=RUN, options=drift_runs, value=drift_runs[-1] if drift_runs else None,
                         placeholder="a drift run (modbias drift)", style={"minWidth": "420px"}),
            dcc.RadioItems(id=SPLIT, options={"": "all samples", "subset": "by subset", "mi": "by MI"},
                           value="", inline=True),
            dcc.RadioItems(id=LAYER, options={"mean": "mean over layers", "paper": "layer at 3/4 depth"},
                           value="mean", inline=True),
        ], className="controls"),
        html.P(id="drift-note", className="note"),
        dcc.Graph(id=GRAPH),
    ])


def drift_figure(path: str, split: str, layer: str) -> tuple[go.Figure, str]:
    """Attention share per token group over normalised decoding steps (MIGR Fig. 5).

    Args:
        path: a drift run.
        split: ``""`` (all samples), ``"subset"`` or ``"mi"``.
        layer: ``"mean"`` or ``"paper"`` (the layer at 3/4 depth).

    Returns:
        ``(figure, note)``; a split the run lacks raises :class:`StoreFieldError`.
    """
    ds = open_dataset(path)
    by = split or None
    if by and by not in ds.coords:
        raise StoreFieldError(f"{path} has no per-sample {by!r}; run `modbias drift --mi <mi run>` to split by MI")
    curves = drift_curves(ds, by=by, layer=layer)
    share = curves.share.squeeze(drop=True)
    fig = go.Figure()
    splits = [str(v) for v in share[by].values] if by else [None]
    for dash, name in zip(DASHES * 4, splits):
        part = share.sel({by: name}) if by else share
        for group in part.group.values:
            fig.add_scatter(x=part.norm_step.values, y=part.sel(group=group).values, mode="lines",
                            name=f"{group}" + (f" · {name}" if name else ""),
                            line={"color": COLOURS.get(str(group)), "dash": dash})
    fig.update_layout(title=f"{path}: attention share per token group over normalised decoding steps ({layer})",
                      xaxis_title="normalised decoding step (0-100)", yaxis_title="attention share",
                      yaxis_range=[0, 1], template="plotly_white")
    counts = curves.n_samples.values.ravel().tolist()
    return fig, f"{sum(counts) if not by else counts[0]} samples; shares sum to 1 over the four groups at every step."


@shows_errors
def drift_view(path: str | None, split: str, layer: str):
    """:func:`drift_figure`, or a message figure when there is no drift run or it lacks a field.

    Args:
        path: a drift run, or ``None``.
        split: ``""``, ``"subset"`` or ``"mi"``.
        layer: ``"mean"`` or ``"paper"``.

    Returns:
        ``(figure, note)``.
    """
    if not path:
        raise StoreFieldError("No drift run in the cache: run `modbias drift --limit 30` first.")
    return drift_figure(path, split, layer)


def register(app, cache: str) -> None:
    """Drift callback: the graph and note follow the drift run, split and layer.

    Args:
        app: the dashboard that gets the Drift callback.
        cache: the run stores' folder; callbacks refuse any path outside it.
    """
    app.callback(Output(GRAPH, "figure"), Output("drift-note", "children"),
                 Input(RUN, "value"), Input(SPLIT, "value"), Input(LAYER, "value"))(
        in_cache(cache, drift_view))
