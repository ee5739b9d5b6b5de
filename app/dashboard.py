"""The Dash app: a header choosing the run, probed token and sample, then one tab per view.

The app reads run stores under ``cache`` (see :mod:`modbias_app.runs`) and
never runs a model.  The page layout is rebuilt on each page load, so runs
added to the cache appear on reload.
"""

from __future__ import annotations

from pathlib import Path

import dash
from dash import Input, Output, State, ctx, dcc, html

from modbias_app.runs import at_values, open_dataset, sample_table, scan
from modbias_app.views import VIEWS
from modbias_app.views import samples as samples_view
from modbias_app.views import tokens as tokens_view
from modbias_app.views.common import AT, FOCUS_RUN, SAMPLE, SELECTED_RUNS, in_cache

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 1.5em; }
.header { display: flex; gap: 1.5em; align-items: center; flex-wrap: wrap; padding: .6em 0; }
.controls { display: flex; gap: 1em; align-items: center; flex-wrap: wrap; margin: .6em 0; }
.note { color: #444; font-size: 0.9em; }
.message { padding: 2em; font-size: 1.1em; }
.table table { border-collapse: collapse; font-size: 0.9em; }
.table td, .table th { border: 1px solid #ccc; padding: 0.2em 0.6em; }
"""


def _header(cache: str) -> html.Div:
    return html.Div([
        html.H3("modbias", style={"margin": 0}),
        html.Span(f"cache: {cache}"),
        html.Label("run"), dcc.Dropdown(id=FOCUS_RUN, clearable=False, style={"width": "420px"}),
        html.Label("emotion token"), dcc.RadioItems(id=AT, inline=True),
        html.Label("sample"), dcc.Dropdown(id=SAMPLE, placeholder="all samples of the subset",
                                           style={"width": "320px"}),
        dcc.Store(id=SELECTED_RUNS),
    ], className="header")


def _layout(cache: str) -> html.Div:
    runs = scan(cache)
    tabs = [dcc.Tab(label=v.TAB, value=v.ID, children=html.Div(v.layout(runs, cache))) for v in VIEWS]
    return html.Div([_header(cache), dcc.Tabs(id="tabs", value="runs", children=tabs)])


def focus_choices(cache: str, selected: list[str] | None, current: str | None):
    """Options of the run menu (the ticked trace / intervene runs) and its value (kept if still ticked,
    else the newest).

    Args:
        cache: the folder of run stores.
        selected: the paths ticked in the Runs table.
        current: the menu's current value.

    Returns:
        ``(options, value)``.
    """
    runs = [r for r in scan(cache) if r.path in set(selected or []) and r.traces_attention]
    options = [{"label": f"{r.name} — {r.label}", "value": r.path} for r in runs]
    paths = [r.path for r in runs]
    return options, current if current in paths else (paths[-1] if paths else None)


def run_controls(path: str | None):
    """For a new focus run: probed-token options and value, the layer slider's range and default.

    Args:
        path: the focus run (or ``None``).

    Returns:
        ``(at options, at value, slider max, slider marks, slider value)``.
    """
    if not path:
        return [], None, 1, {}, [0, 1]
    ats = at_values(path)
    top, marks, value = tokens_view.layer_range(open_dataset(path).sizes["layer"])
    return ats, ats[0], top, marks, value


def sample_choice(path: str | None, ticked: list[dict] | None, trigger: str | None):
    """The sample menu: the run's samples; its value follows a tick in the Samples table.

    Args:
        path: the focus run (or ``None``).
        ticked: the Samples table's selected rows.
        trigger: the id of the component that fired the callback.

    Returns:
        ``(options, value)``.
    """
    if not path:
        return [], None
    table = sample_table(path)
    options = [{"label": f"{i} ({s}, {lab})", "value": i}
               for i, s, lab in zip(table.id.tolist(), table.subset.tolist(), table.label.tolist())]
    chosen = (ticked or [{}])[0].get("sample") if trigger == samples_view.TABLE else None
    return options, chosen if chosen in set(table.id.tolist()) else None


def create_app(cache_dir: str | Path) -> dash.Dash:
    """The dashboard over the run stores in ``cache_dir``.

    Args:
        cache_dir: the folder of run stores.

    Returns:
        The ``dash.Dash`` app with every view's callbacks registered.
    """
    cache = str(cache_dir)
    app = dash.Dash(__name__, title="modbias", suppress_callback_exceptions=False)
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + STYLE + "</style>")
    app.layout = lambda: _layout(cache)

    @app.callback(Output(FOCUS_RUN, "options"), Output(FOCUS_RUN, "value"), Input(SELECTED_RUNS, "data"),
                  State(FOCUS_RUN, "value"))
    def _focus(selected, current):
        return focus_choices(cache, selected, current)

    app.callback(Output(AT, "options"), Output(AT, "value"), Output(tokens_view.LAYERS, "max"),
                 Output(tokens_view.LAYERS, "marks"), Output(tokens_view.LAYERS, "value"),
                 Input(FOCUS_RUN, "value"))(in_cache(cache, run_controls))

    @app.callback(Output(SAMPLE, "options"), Output(SAMPLE, "value"), Input(FOCUS_RUN, "value"),
                  Input(samples_view.TABLE, "selectedRows"))
    @in_cache(cache)
    def _sample(path, ticked):
        return sample_choice(path, ticked, ctx.triggered_id)

    for view in VIEWS:
        view.register(app, cache)
    return app


def serve(cache_dir: str | Path, port: int = 8050, host: str = "127.0.0.1") -> None:
    """Serve the dashboard on http://``host``:``port`` (only this machine by default), never with the
    Werkzeug debugger or Dash's dev tools: a page error must not open a console on the server.

    Args:
        cache_dir: the folder of run stores.
        port: the port.
        host: the address to bind.
    """
    create_app(cache_dir).run(host=host, port=port, debug=False, dev_tools_ui=False, dev_tools_props_check=False,
                              use_reloader=False)
