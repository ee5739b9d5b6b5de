"""Samples: the focus run's samples; choosing one drives the Heads and Tokens views.

When an MI run (``modbias mi``, :mod:`modbias.runs.importance`) in the
cache labels some of the run's samples, an ``MI`` column shows each sample's
emotion-dominant modality from the newest such run (blank where it lacks the sample).
"""

from __future__ import annotations

import dash_ag_grid as dag
from dash import Input, Output, html

from modbias_app.runs import RunInfo, mi_labels, mi_source, sample_table, scan
from modbias_app.views.common import FOCUS_RUN, column_defs, in_cache

TAB, ID = "Samples", "samples"
TABLE, NOTE = "samples-table", "samples-note"
COLUMNS = ("sample", "subset", "label", "visual_emotion", "audio_emotion", "prediction", "correct", "text")
MI_COLUMNS = COLUMNS[:-1] + ("MI",) + COLUMNS[-1:]  # MI before the wide text column
NO_MI = "No MI run in the cache labels these samples (`modbias mi` adds an MI column)."


def sample_rows(path: str | None) -> list[dict]:
    """One row per sample of the run (the sample id is the row id).

    Args:
        path: the focus run (``None``: no rows).

    Returns:
        Row dicts with the :data:`COLUMNS`.
    """
    if not path:
        return []
    t = sample_table(path)
    return [{"sample": i, "subset": s, "label": lab, "visual_emotion": v, "audio_emotion": a, "prediction": p,
             "correct": bool(c), "text": x}
            for i, s, lab, v, a, p, c, x in zip(t.id.tolist(), t.subset.tolist(), t.label.tolist(),
                                                t.visual_emotion.tolist(), t.audio_emotion.tolist(),
                                                t.prediction.tolist(), t.correct.tolist(), t.text.tolist())]


def samples_view(cache: str, path: str | None) -> tuple[list[dict], list[dict], str]:
    """(rows, column definitions, note): :func:`sample_rows`, with an ``MI`` column from the newest MI run
    that labels any of the samples (:func:`modbias_app.runs.mi_source`).

    Args:
        cache: the folder of run stores.
        path: the focus run.

    Returns:
        ``(rows, column definitions, note)``.
    """
    rows = sample_rows(path)
    if not rows:
        return rows, column_defs(COLUMNS), ""
    source = mi_source(scan(cache), (r["sample"] for r in rows))
    if source is None:
        return rows, column_defs(COLUMNS), NO_MI
    labels = mi_labels(source.path)
    for row in rows:
        row["MI"] = labels.get(row["sample"], "")
    n = sum(1 for row in rows if row["MI"])
    note = (f"MI (emotion-dominant modality: audio / visual / both / neither) from MI run {source.name} "
            f"({source.path}, created {source.created}), the newest MI run covering these samples; "
            f"{n} of {len(rows)} samples labelled, blank where that run lacks the sample.")
    return rows, column_defs(MI_COLUMNS), note


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    """Samples tab: a hint, a note and the samples table (filled by :func:`register`'s callback).

    Args:
        runs, cache: not read; the Samples tab follows the header's run menu.

    Returns:
        The Samples tab's ``html.Div``.
    """
    return html.Div([
        html.P("Tick a sample to show it in Heads and Tokens (the sample menu above clears it). "
               "Subtitles are not stored in runs."),
        html.P(id=NOTE, className="note"),
        dag.AgGrid(id=TABLE, rowData=[], columnDefs=column_defs(COLUMNS), getRowId="params.data.sample",
                   dashGridOptions={"rowSelection": {"mode": "singleRow"}, "animateRows": False, "pagination": True,
                                    "paginationPageSize": 20},
                   defaultColDef={"sortable": True, "filter": True, "resizable": True}, columnSize="autoSize",
                   style={"height": "700px"}),
    ])


def register(app, cache: str) -> None:
    """Samples callback: the table and its MI column follow the focus run.

    Args:
        app: the dashboard that gets the table callback.
        cache: the run stores' folder; callbacks refuse any path outside it.
    """
    app.callback(Output(TABLE, "rowData"), Output(TABLE, "columnDefs"), Output(NOTE, "children"),
                 Input(FOCUS_RUN, "value"))(in_cache(cache, lambda path: samples_view(cache, path)))
