"""Pieces shared by the views: the global controls' ids, error display, control builders."""

from __future__ import annotations

import functools

from dash import dcc, html
from dash.exceptions import PreventUpdate

from modbias_app.figures import message_figure
from modbias_app.runs import StoreFieldError, run_in_cache, sample_table

# ids of the controls in the page header, read by several views
FOCUS_RUN = "focus-run"  # the run the single-run views show
AT = "at"  # which probed emotion token: first / answer
SAMPLE = "sample"  # one sample, or None for the selected subset
SELECTED_RUNS = "selected-runs"  # dcc.Store: paths chosen in the Runs table

NO_RUN = "Choose a run in the Runs tab."


class NoRun(StoreFieldError):
    """No run is chosen."""


def check_run(path: str | None, at: str | None) -> None:
    """Raise :class:`NoRun` without a run; stop the update while the run's token menu is still empty.

    Args:
        path: the focus run.
        at: the probed emotion token.
    """
    if not path:
        raise NoRun(NO_RUN)
    if not at:
        raise PreventUpdate


def in_cache(cache: str, function=None):
    """The callback ``function(path, ...)``, refusing (no update) a ``path`` that is not a run store
    directly under ``cache``: a client can send any value, the app reads only its cache.
    Without ``function``, a decorator.

    Args:
        cache: the folder of run stores.
        function: a callback whose first argument is a run path.

    Returns:
        The wrapped callback (or the decorator).
    """
    if function is None:
        return functools.partial(in_cache, cache)

    @functools.wraps(function)
    def wrapper(path, *args):
        if path and run_in_cache(cache, path) is None:
            raise PreventUpdate
        return function(path, *args)

    return wrapper


def shows_errors(function):
    """Turn a :class:`StoreFieldError` (a run lacks what the view needs) into (message figure, message).

    Args:
        function: a view function returning ``(figure, note)``.

    Returns:
        The wrapped function.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except StoreFieldError as error:
            return message_figure(str(error)), str(error)

    return wrapper


def subset_controls(prefix: str) -> html.Div:
    """Subset and outcome selectors (ids ``{prefix}-subset``, ``{prefix}-outcome``).

    Args:
        prefix: the tab's id prefix.

    Returns:
        The controls' ``html.Div``.
    """
    return html.Div([
        html.Label("subset"),
        dcc.Dropdown(id=f"{prefix}-subset", value="all", clearable=False, style={"width": "200px"},
                     options=["all", "video_aligned", "audio_aligned", "consistent"]),
        html.Label("outcome"),
        dcc.RadioItems(id=f"{prefix}-outcome", value="all", inline=True, options=["all", "correct", "incorrect"]),
    ], className="controls")


def selection_words(path: str, subset: str, outcome: str, sample: str | None, n: int) -> str:
    """How a figure's title names the samples it summarises.

    Args:
        path: the run.
        subset: a subset or ``"all"``.
        outcome: ``"correct"``, ``"incorrect"`` or ``"all"``.
        sample: one sample id, or ``None``.
        n: the number of samples summarised.

    Returns:
        E.g. ``"video_aligned samples, correct only (n=12)"``.
    """
    if sample:
        row = sample_table(path)
        i = row.index(sample)
        return f"sample {sample} ({row.subset[i]}, label {row.label[i]}, predicted {row.prediction[i]})"
    return f"{subset} samples" + ("" if outcome == "all" else f", {outcome} only") + f" (n={n})"


def column_defs(fields, wrap: tuple[str, ...] = ("text", "interventions", "error")) -> list[dict]:
    """AG Grid columns with readable headers; long text columns wrap.

    Args:
        fields: the column fields.
        wrap: the fields whose text wraps.

    Returns:
        AG Grid column definitions.
    """
    return [{"field": f, "headerName": f.replace("_", " "),
             **({"wrapText": True, "autoHeight": True, "minWidth": 300} if f in wrap else {})} for f in fields]


def graph(id_: str) -> dcc.Loading:
    """A plotly graph with a loading spinner.

    Args:
        id_: the graph's component id.

    Returns:
        The ``dcc.Loading`` wrapping the ``dcc.Graph``.
    """
    return dcc.Loading(dcc.Graph(id=id_, config={"displaylogo": False}))
