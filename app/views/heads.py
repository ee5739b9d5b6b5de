"""Heads: a layer × head map of c_h (Eq. 5) or S_a − S_v, with H_bias (Eq. 7) at an adjustable τ.

For a subset, each cell summarises the samples (see
:func:`modbias_app.aggregates.head_map`) and a head is outlined when it is
biased in the majority of samples; for one sample, exactly Eq. (7).
Clicking a cell shows that head's attention over the input positions of
the chosen sample (or of the first sample of the subset with stored rows).
"""

from __future__ import annotations

import numpy as np
from dash import Input, Output, dcc, html

from modbias_app.aggregates import HEAD_QUANTITIES, biased_share, head_map
from modbias_app.figures import heads_figure, message_figure, token_figure
from modbias_app.runs import RunInfo, StoreFieldError, head_row, head_sums, row_lengths, sample_table
from modbias_app.views.common import (AT, FOCUS_RUN, SAMPLE, check_run, graph, in_cache, selection_words,
                                      shows_errors, subset_controls)

TAB, ID = "Heads", "heads"
GRAPH, DETAIL = "heads-graph", "head-detail"
QUANTITY, TAU = "heads-quantity", "heads-tau"


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    """Heads tab: subset/outcome, colour and τ controls, the heatmap and the head-detail graph.

    Args:
        runs, cache: not read; the Heads tab follows the header's run menu.

    Returns:
        The Heads tab's ``html.Div``.
    """
    return html.Div([
        html.Div([
            subset_controls("heads"),
            html.Label("colour"),
            dcc.RadioItems(id=QUANTITY, value="log10_c_h", options=HEAD_QUANTITIES),
            html.Label("τ (Eq. 7)"),
            html.Div(dcc.Slider(id=TAU, min=0, max=5, step=0.1, value=1.0, marks={i: str(i) for i in range(6)},
                                tooltip={"placement": "bottom"}), style={"width": "320px"}),
        ], className="controls"),
        html.P(id="heads-note", className="note"),
        graph(GRAPH),
        html.P(id="head-detail-note", className="note"),
        graph(DETAIL),
    ])


@shows_errors
def heads_view(path: str | None, at: str, subset: str, outcome: str, sample: str | None, quantity: str,
               tau: float):
    """The heatmap figure and a note on what it shows.

    Args:
        path, at: the focus run (``None``: a message asks for one) and probed emotion token.
        subset, outcome, sample: the samples summarised (:meth:`~modbias_app.runs.SampleTable.select`).
        quantity: ``"log10_c_h"`` (Eq. 5) or ``"diff"`` (S_a − S_v).
        tau: τ of Eq. (7).

    Returns:
        ``(figure, note)``.
    """
    check_run(path, at)
    sums = head_sums(path, at)
    keep = sample_table(path).select(subset, outcome, sample)
    values = head_map(sums, keep, quantity)
    heads, layers, n = biased_share(sums, keep, tau)
    who = selection_words(path, subset, outcome, sample, n)
    if n == 0:
        raise StoreFieldError(f"run {path}: no {who} with an emotion token at {at!r}")
    summary = "" if sample else ("median" if quantity == "log10_c_h" else "mean") + " over samples of "
    title = f"{path}: {summary}{HEAD_QUANTITIES[quantity]}, at the {at} emotion token, {who}"
    note = (f"Outlined: heads in H_bias (Eq. 7, τ={tau:g}) "
            + ("for this sample" if sample else "in more than half of the samples")
            + f" — {int((heads > 0.5).sum())} heads; ▶ marks {int((layers > 0.5).sum())} layers with c > τ. "
              "Click a cell for that head's attention over the input tokens.")
    return heads_figure(values, quantity, heads, layers, tau, title), note


@shows_errors
def head_detail(path: str | None, at: str, subset: str, outcome: str, sample: str | None, click: dict | None):
    """Attention of the clicked head over one sample's input positions (needs stored rows).

    Args:
        path, at: the focus run and probed emotion token, as for :func:`heads_view`.
        subset, outcome, sample: whose row is shown: ``sample``, else the first of subset and outcome with rows.
        click: the heatmap's ``clickData``.

    Returns:
        ``(figure, note)``.
    """
    check_run(path, at)
    point = (click or {}).get("points", [{}])[0]
    if point.get("curveNumber", 0) != 0 or "x" not in point:
        return message_figure("Click a cell of the map above to see that head's attention over the input tokens."), ""
    layer, head = int(point["y"]), int(point["x"])
    with_rows = row_lengths(path, at, view="head detail (clicking a cell)") > 0
    if sample:
        chosen, how = sample, "the chosen sample"
    else:
        candidates = np.flatnonzero(sample_table(path).pick(subset, outcome) & with_rows)
        if not len(candidates):
            raise StoreFieldError(f"run {path}: no {subset} sample ({outcome}) has stored rows at {at!r}")
        chosen = str(sample_table(path).id[candidates[0]])
        how = "the first " + ("" if subset == "all" else f"{subset} ") + "sample with rows"
    row, modality = head_row(path, at, chosen, layer, head)
    title = f"{path}: layer {layer}, head {head}, at the {at} emotion token, sample {chosen}"
    return token_figure(row, modality, title), f"Attention row of {how} ({chosen}); pick a sample above to change it."


def register(app, cache: str) -> None:
    """Heads callbacks: the heatmap and the head detail follow the header and the tab's controls.

    Args:
        app: the dashboard that gets the heatmap and head-detail callbacks.
        cache: the run stores' folder; callbacks refuse any path outside it.
    """
    inputs = [Input(FOCUS_RUN, "value"), Input(AT, "value"), Input("heads-subset", "value"),
              Input("heads-outcome", "value"), Input(SAMPLE, "value")]
    app.callback(Output(GRAPH, "figure"), Output("heads-note", "children"),
                 *inputs, Input(QUANTITY, "value"), Input(TAU, "value"))(
        in_cache(cache, heads_view))
    app.callback(Output(DETAIL, "figure"), Output("head-detail-note", "children"),
                 *inputs, Input(GRAPH, "clickData"))(
        in_cache(cache, head_detail))
