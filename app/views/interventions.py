"""Interventions: per-subset metrics of the chosen runs with deltas vs. their baselines (Table 7),
their explanation consistency (EEA, EPC, FCR, R✗/A✓; MIGR Eqs. 6-8), the AR threshold sweep
(Table 8) and the audio-duplication sweep (Fig. 3c)."""

from __future__ import annotations

from dash import Input, Output, dcc, html

from modbias_app.compare import (METRICS, consistency_markdown, consistency_rows, duplication_sweep, md, metric_rows,
                                 metrics_markdown, tau_sweep)
from modbias_app.figures import intervention_bars, message_figure, run_names, sweep_figure
from modbias_app.runs import RunInfo, StoreFieldError, scan
from modbias_app.views.common import SELECTED_RUNS, graph

TAB, ID = "Interventions", "interventions"
METRIC = "interventions-metric"
BARS, TABLE, TAU, DUPLICATION = "interventions-bars", "interventions-table", "tau-sweep", "duplication-sweep"
CONSISTENCY = "interventions-consistency"
CONSISTENCY_NOTE = ("**Explanation consistency** (MIGR Eqs. 6-8, in %): EEA = explanation emotion = label, "
                    "EPC = explanation emotion = prediction, FCR = both right, R✗/A✓ (correct) = right answer with "
                    "another explanation emotion, among the correct answers.  Explanation emotions: the run's stored "
                    "`explanation_emotion` when it has one, else the lexicon classifier of `modbias.analysis.consistency` "
                    "(a tie counts as no single emotion).")


def layout(runs: list[RunInfo], cache: str) -> html.Div:
    """Interventions tab: the metric choice, the bars, the Table 7 and consistency tables, the two sweeps.

    Args:
        runs, cache: not read; the Interventions tab follows the Runs tab's ticks.

    Returns:
        The Interventions tab's ``html.Div``.
    """
    return html.Div([
        html.Div([html.Label("metric"), dcc.RadioItems(id=METRIC, value="avg", options=METRICS, inline=True)],
                 className="controls"),
        graph(BARS),
        dcc.Markdown(id=TABLE, className="table"),
        dcc.Markdown(id=CONSISTENCY, className="table"),
        graph(TAU),
        graph(DUPLICATION),
    ])


def interventions_view(cache: str, selected: list[str] | None, metric: str):
    """(bars of the chosen runs, their Table 7 as markdown, τ sweep, duplication sweep, their explanation
    consistency per subset as markdown).

    Only trace and intervene runs take part.  The sweeps use every such run
    in the cache: a sweep is defined by its runs' parameters, not by the selection.

    Args:
        cache: the folder of run stores.
        selected: the paths ticked in the Runs table.
        metric: ``avg``, ``acc``, ``rec`` or ``hit``.

    Returns:
        ``(bars, table markdown, τ sweep figure, duplication sweep figure, consistency markdown)``.
    """
    runs = [r for r in scan(cache) if r.traces_attention]
    chosen = [r for r in runs if r.path in set(selected or [])]
    rows = metric_rows(chosen, runs)
    if rows:
        names = ", ".join(sorted({r.baseline.name for r in rows if r.baseline})) or "none found"
        bars = intervention_bars(rows, metric, f"{METRICS[metric]} per subset; bar labels: Δ vs. baseline ({names})"
                                               f"<br>runs {run_names(r.run.name for r in rows)}")
        table = f"**Table 7 layout** ({METRICS[metric]}, Δ vs. each run's baseline)\n\n" + metrics_markdown(rows, metric)
        consistency_md = CONSISTENCY_NOTE + "\n\n" + consistency_markdown(consistency_rows([r.run for r in rows]))
    else:
        bars, table = message_figure("Tick trace or intervene runs in the Runs tab to compare them."), ""
        consistency_md = ""
    tau_points = tau_sweep(runs, metric)
    tau = sweep_figure(tau_points, "τ of AR (Eq. 7)", metric,
                       f"AR τ sweep (Table 8): runs {run_names(p.run for p in tau_points)}") if tau_points else \
        message_figure(f"No run in {cache} applies AR (interventions containing 'ar'): no τ sweep.")
    dup_points = duplication_sweep(runs, metric)
    dup = sweep_figure(dup_points, "copies of each audio token", metric,
                       f"Audio duplication sweep (Fig. 3c): runs {run_names(p.run for p in dup_points)}",
                       log_x=True) if dup_points else \
        message_figure(f"No duplicate_audio runs or models with different audio_repeat in {cache}: "
                       "no duplication sweep.")
    return bars, table, tau, dup, consistency_md


def register(app, cache: str) -> None:
    """Interventions callback: every output follows the ticked runs and the metric.

    Args:
        app: the dashboard that gets the comparison callback.
        cache: the run stores' folder; callbacks refuse any path outside it.
    """
    @app.callback(Output(BARS, "figure"), Output(TABLE, "children"), Output(TAU, "figure"),
                  Output(DUPLICATION, "figure"), Output(CONSISTENCY, "children"), Input(SELECTED_RUNS, "data"),
                  Input(METRIC, "value"))
    def update(selected, metric):
        try:
            return interventions_view(cache, selected, metric)
        except StoreFieldError as error:  # a run whose arrays cannot be read: say so instead of failing
            message = message_figure(str(error))
            return message, md(str(error)), message, message, ""
