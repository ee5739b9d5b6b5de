"""Layers: UAP_v and UAP_a (Eq. 1) per layer for each subset, correct vs. incorrect (Fig. 3a)."""

from __future__ import annotations

from dash import Input, Output, dcc, html

from modbias.core.metrics import middle_layers
from modbias_app.aggregates import layer_profile
from modbias_app.figures import layers_figure
from modbias_app.runs import RunInfo, head_sums, sample_table
from modbias_app.views.common import AT, FOCUS_RUN, check_run, graph, in_cache, shows_errors

TAB, ID = "Layers", "layers"
GRAPH, LOG_Y = "layers-graph", "layers-log-y"


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    """Layers tab: the log-axis choice, a note and the UAP graph.

    Args:
        runs, cache: not read; the Layers tab follows the header's run menu.

    Returns:
        The Layers tab's ``html.Div``.
    """
    return html.Div([
        html.Div([dcc.Checklist(id=LOG_Y, options={"log": "log y axis"}, value=[], inline=True)],
                 className="controls"),
        html.P(id="layers-note", className="note"),
        graph(GRAPH),
    ])


def layer_profiles(path: str, at: str) -> tuple[dict, dict]:
    """``profiles[subset][outcome]`` (mean UAP per layer, Eq. 1) and the sample counts behind them.

    Args:
        path: a trace or intervene run.
        at: the probed emotion token.

    Returns:
        ``({subset: {outcome: {"UAP_v": [L], "UAP_a": [L]}}}, {subset: {outcome: n}})``.
    """
    sums, table = head_sums(path, at), sample_table(path)
    profiles, counts = {}, {}
    for subset in dict.fromkeys(table.subset.tolist()):
        profiles[subset], counts[subset] = {}, {}
        for outcome in ("correct", "incorrect"):
            keep = table.pick(subset, outcome)
            if keep.any():
                profiles[subset][outcome] = layer_profile(sums, keep)
                counts[subset][outcome] = int(keep.sum())
    return profiles, counts


@shows_errors
def layers_view(path: str | None, at: str, log_y: list[str]):
    """UAP per layer for each subset, correct vs. incorrect (Fig. 3a), and a note with the counts.

    Args:
        path: the focus run (``None``: a message asks for one).
        at: the probed emotion token.
        log_y: ``["log"]`` for a log y axis.

    Returns:
        ``(figure, note)``.
    """
    check_run(path, at)
    profiles, counts = layer_profiles(path, at)
    middle = middle_layers(head_sums(path, at).UAP_v.shape[1])
    title = f"{path}: UAP per layer at the {at} emotion token (Eq. 1; solid correct, dashed incorrect)"
    note = "Samples: " + "; ".join(f"{s}: " + ", ".join(f"{n} {o}" for o, n in c.items()) for s, c in counts.items()) \
        + f". Shaded: middle layers {middle.start}–{middle.stop - 1} (modbias.core.metrics.middle_layers)."
    return layers_figure(profiles, middle, title, log_y="log" in (log_y or [])), note


def register(app, cache: str) -> None:
    """Layers callback: the graph follows the focus run, the token and the log-axis choice.

    Args:
        app: the dashboard that gets the UAP callback.
        cache: the run stores' folder; callbacks refuse any path outside it.
    """
    app.callback(Output(GRAPH, "figure"), Output("layers-note", "children"),
                 Input(FOCUS_RUN, "value"), Input(AT, "value"), Input(LOG_Y, "value"))(
        in_cache(cache, layers_view))
