"""Samples: the focus run's samples; choosing one drives the Heads and Tokens views."""

from __future__ import annotations

import dash_ag_grid as dag
from dash import Input, Output, html

from modbias_app.runs import RunInfo, sample_table
from modbias_app.views.common import FOCUS_RUN, column_defs

TAB, ID = "Samples", "samples"
TABLE = "samples-table"
COLUMNS = ("sample", "subset", "label", "visual_emotion", "audio_emotion", "prediction", "correct", "text")


def sample_rows(path: str | None) -> list[dict]:
    """One row per sample of the run (the sample id is the row id)."""
    if not path:
        return []
    t = sample_table(path)
    return [{"sample": i, "subset": s, "label": lab, "visual_emotion": v, "audio_emotion": a, "prediction": p,
             "correct": bool(c), "text": x}
            for i, s, lab, v, a, p, c, x in zip(t.id.tolist(), t.subset.tolist(), t.label.tolist(),
                                                t.visual_emotion.tolist(), t.audio_emotion.tolist(),
                                                t.prediction.tolist(), t.correct.tolist(), t.text.tolist())]


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    return html.Div([
        html.P("Tick a sample to show it in Heads and Tokens (the sample menu above clears it). "
               "Subtitles are not stored in runs."),
        dag.AgGrid(id=TABLE, rowData=[], columnDefs=column_defs(COLUMNS), getRowId="params.data.sample",
                   dashGridOptions={"rowSelection": {"mode": "singleRow"}, "animateRows": False, "pagination": True,
                                    "paginationPageSize": 20},
                   defaultColDef={"sortable": True, "filter": True, "resizable": True}, columnSize="autoSize",
                   style={"height": "700px"}),
    ])


def register(app, cache: str) -> None:
    app.callback(Output(TABLE, "rowData"), Input(FOCUS_RUN, "value"))(sample_rows)
