"""Runs: every run in the cache; the rows chosen here drive the other views."""

from __future__ import annotations

import dash_ag_grid as dag
from dash import Input, Output, html

from modbias_app.runs import RunInfo, newest_with_heads
from modbias_app.views.common import SELECTED_RUNS, column_defs

TAB, ID = "Runs", "runs"
TABLE = "runs-table"
COLUMNS = ("run", "kind", "model", "audio_repeat", "data", "interventions", "samples", "rows", "created", "error")


def run_rows(runs: list[RunInfo]) -> list[dict]:
    """One table row per run (``path`` is the row id).

    Args:
        runs: the runs.

    Returns:
        Row dicts with the :data:`COLUMNS` and ``path``.
    """
    return [{"path": r.path, "run": r.name, "kind": r.kind, "model": r.model, "audio_repeat": r.audio_repeat,
             "data": r.data, "interventions": r.label, "samples": r.samples, "rows": "yes" if r.has_rows else "no",
             "created": r.created, "error": r.error or ""} for r in runs]


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    """Runs tab: a note on the cache and the runs table (the newest run with heads ticked).

    Args:
        runs: the table's rows.
        cache: named in the note.

    Returns:
        The Runs tab's ``html.Div``.
    """
    broken = sum(1 for r in runs if r.error)
    intro = (f"{len(runs)} runs in {cache}. Tick runs to compare them in Interventions; "
             "the run menu above shows one of the ticked trace / intervene runs in the other views."
             + (f" {broken} cannot be read (see their error column) and are skipped." if broken else "")) if runs else \
        f"No runs in {cache}. Trace one with `modbias trace --out {cache}/<name>`, then reload."
    default = newest_with_heads(runs)
    return html.Div([
        html.P(intro, className="note" if runs else "message", role=None if runs else "alert"),
        dag.AgGrid(id=TABLE, rowData=run_rows(runs), columnDefs=column_defs(COLUMNS),
                   getRowId="params.data.path", selectedRows={"ids": [default.path] if default else []},
                   dashGridOptions={"rowSelection": {"mode": "multiRow"}, "animateRows": False,
                                    "domLayout": "autoHeight"},
                   defaultColDef={"sortable": True, "filter": True, "resizable": True}, columnSize="autoSize"),
    ])


def register(app, cache: str) -> None:
    """Runs callback: the ticked rows become the selection the other tabs read.

    Args:
        app: the dashboard that gets the selection callback.
        cache: the run stores' folder; callbacks refuse any path outside it.
    """
    @app.callback(Output(SELECTED_RUNS, "data"), Input(TABLE, "selectedRows"))
    def chosen(selected):
        return selected_paths(selected)


def selected_paths(selected) -> list[str]:
    """Paths of the ticked rows (the grid reports row dicts, or ``{"ids": [...]}`` before it renders).

    Args:
        selected: the grid's ``selectedRows``.

    Returns:
        Run paths.
    """
    if isinstance(selected, dict):
        return list(selected.get("ids", []))
    return [row["path"] for row in selected or []]
