"""Tokens: attention per input position, averaged over heads and chosen layers (Fig. 3b)."""

from __future__ import annotations

from dash import Input, Output, dcc, html

from modbias.core.metrics import middle_layers
from modbias_app.aggregates import token_profile
from modbias_app.figures import message_figure, token_figure
from modbias_app.runs import RunInfo, head_mean_rows, sample_table
from modbias_app.views.common import (AT, FOCUS_RUN, SAMPLE, check_run, graph, in_cache, selection_words,
                                      shows_errors, subset_controls)

TAB, ID = "Tokens", "tokens"
GRAPH, LAYERS = "tokens-graph", "tokens-layers"


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    """Tokens tab: subset/outcome controls, the layer range slider, a note and the graph.

    Args:
        runs, cache: not read; the Tokens tab follows the header's run menu.

    Returns:
        The Tokens tab's ``html.Div``.
    """
    return html.Div([
        html.Div([
            subset_controls("tokens"),
            html.Label("layers"),
            html.Div(dcc.RangeSlider(id=LAYERS, min=0, max=1, step=1, value=[0, 1], allowCross=False,
                                     tooltip={"placement": "bottom"}), style={"width": "360px"}),
        ], className="controls"),
        html.P(id="tokens-note", className="note"),
        graph(GRAPH),
    ])


def layer_range(n_layers: int) -> tuple[int, dict, list[int]]:
    """Slider max, marks and default value (the middle layers) for a run with ``n_layers``.

    Args:
        n_layers: L.

    Returns:
        ``(max, marks, [first, last] middle layer)``.
    """
    middle = middle_layers(n_layers)
    step = max(1, n_layers // 8)
    return n_layers - 1, {i: str(i) for i in range(0, n_layers, step)}, [middle.start, middle.stop - 1]


@shows_errors
def tokens_view(path: str | None, at: str, subset: str, outcome: str, sample: str | None, layers: list[int]):
    """Attention per input position over the chosen layers and samples (Fig. 3b), and a note.

    Args:
        path: the focus run (``None``: a message asks for one).
        at: the probed emotion token.
        subset: a subset or ``"all"``.
        outcome: ``"correct"``, ``"incorrect"`` or ``"all"``.
        sample: one sample id, or ``None`` for the subset.
        layers: ``[first, last]`` layer of the range.

    Returns:
        ``(figure, note)``.
    """
    check_run(path, at)
    hm = head_mean_rows(path, at)
    keep = sample_table(path).select(subset, outcome, sample)
    first, last = int(layers[0]), min(int(layers[1]), hm.rows.shape[1] - 1)
    profile, modality, n = token_profile(hm, keep, range(first, last + 1))
    who = selection_words(path, subset, outcome, sample, n)
    if n == 0:
        return message_figure(f"run {path}: none of the {who} has stored rows at {at!r}"), \
            f"{int(len(hm.index))} samples of this run have rows."
    title = f"{path}: attention per input token, layers {first}–{last}, heads averaged, at the {at} " \
            f"emotion token, {who}"
    by_kind = {k: profile[modality == k] for k in ("visual", "audio")}
    note = "; ".join(f"max on {k} tokens {v.max():.3g}, sum {v.sum():.3g}" for k, v in by_kind.items() if v.size)
    return token_figure(profile, modality, title), note


def register(app, cache: str) -> None:
    """Tokens callback: the graph follows the header, the subset/outcome controls and the layer range.

    Args:
        app: the dashboard that gets the token-profile callback.
        cache: the run stores' folder; callbacks refuse any path outside it.
    """
    app.callback(Output(GRAPH, "figure"), Output("tokens-note", "children"),
                 Input(FOCUS_RUN, "value"), Input(AT, "value"), Input("tokens-subset", "value"),
                 Input("tokens-outcome", "value"), Input(SAMPLE, "value"), Input(LAYERS, "value"))(
        in_cache(cache, tokens_view))
