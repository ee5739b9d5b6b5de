"""``modbias evaluate``: re-score stored runs with the evaluation their benchmark calls for.

A plain function with typer options; :mod:`modbias.cli` registers it with
``app.command("evaluate")(evaluate)``.  No model is loaded: scores come from
the stored texts, predictions, labels and references
(:mod:`modbias.runs.summaries`).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

console = Console()


def baseline_path(run: Path, named: str | None) -> Path | None:
    """The baseline a run's summary names: as written (relative to where the run was made), else beside the run.

    Args:
        run: the run store.
        named: the baseline path in its summary (or ``None``).

    Returns:
        The existing baseline store, or ``None``.
    """
    if not named:
        return None
    for candidate in (Path(named), run.parent / Path(named).name):
        if candidate.exists():
            return candidate
    return None


def evaluate(
    runs: List[Path] = typer.Argument(..., help="trace / intervene run stores"),
    benchmark: Optional[str] = typer.Option(None, "--as", help="score as camer | emer | mer2023 | dfew | synth "
                                                                "(default: the benchmark the run was traced on)"),
    grouper: Optional[str] = typer.Option(None, help="grouper G of Eq. 22 as module:function (set-level scores)"),
    scope: Optional[str] = typer.Option(None, help="where the predicted set is read: conclusion | answer"),
    write: bool = typer.Option(False, "--write", help="store the re-scored summary in each run's manifest"),
):
    """Score stored runs (Tables 1-4 layout), with deltas vs. each run's baseline re-scored the same way.
    \f
    Args:
        runs: the run stores.
        benchmark: ``--as``: the evaluation to score with (default: the run's benchmark).
        grouper: G of Eq. 22 as ``module:function``; scope: where Ŷ is read.
        write: store the re-scored summary in each run's manifest.
        (Each parameter is the command-line option of the same name; ``modbias evaluate --help`` gives its help.)
    """
    from modbias.core.evaluation import load_grouper
    from modbias.runs.store import open_run, update_manifest
    from modbias.runs.summaries import evaluation_table, run_summary

    try:
        options = {"grouper": load_grouper(grouper) if grouper else None, "scope": scope}
        for path in runs:
            ds = open_run(path)
            base_path = baseline_path(path, (ds.attrs.get("summary") or {}).get("baseline"))
            base = run_summary(open_run(base_path), benchmark=benchmark, **options) if base_path else None
            summary = run_summary(ds, base_path, base, benchmark=benchmark, **options)
            if summary["evaluation"] is None:
                raise ValueError(f"run {path} names no benchmark it was traced on; score it with --as BENCHMARK")
            console.print(evaluation_table(summary["evaluation"], title=str(path)))
            if write:
                update_manifest(path, summary=summary)
    except (ValueError, FileNotFoundError) as err:  # EvaluationError and a grouper that does not load
        raise typer.BadParameter(str(err)) from err
