"""``modbias data ...``: dataset commands that never run a model.

Register with ``app.add_typer(data_app, name="data")`` in :mod:`modbias.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

data_app = typer.Typer(help="Benchmarks on disk: check them before running a model.", no_args_is_help=True)


@data_app.callback()
def data() -> None:
    """Benchmarks on disk: check them before running a model."""


@data_app.command("check")
def check(
    path: Path = typer.Argument(..., help="annotation file or dataset folder"),
    reader: Optional[str] = typer.Option(None, help="camer | mer2023 | emer | dfew (default: detected)"),
    decode: bool = typer.Option(False, "--decode", help="also decode every video/audio/image file"),
    model: Optional[str] = typer.Option(None, help="family[:path]: also check each prompt fits the model's positions"),
    max_new_tokens: int = typer.Option(16, help="generation length the prompt must leave room for (with --model)"),
):
    """Report every problem of a benchmark (malformed line, missing file or path outside the dataset, unknown
    label, empty / wrong-shape / non-finite features, duplicate id; with --model, over-long prompts).
    \f
    Args:
        path: the annotation file or dataset folder; reader: its reader (default: detected).
        decode: also decode every media file.
        model, max_new_tokens: check each prompt plus the generation fits the model's positions.
        (Each parameter is the command-line option of the same name; ``modbias data check --help`` gives its help.)
    """
    from modbias.data.readers import Problem, check as check_benchmark
    from modbias.models import check_model_spec

    if model is not None:
        check_model_spec(model)
    report = check_benchmark(path, reader=reader, decode=decode)
    if model is not None and report.samples:
        from modbias.models import load_model
        from modbias.runs.trace import position_problems

        adapter = load_model(model)
        lengths = [adapter.prompt_length(s) for s in report.samples]
        long = position_problems(adapter, report.samples, lengths, max_new_tokens)
        report.problems += [Problem(e.sample_id, e.field_name, str(e).split(": ", 1)[-1]) for e in long]
        report.n_ok -= len(long)
    for line in report.lines():
        typer.echo(line)
    if report.ok:
        typer.echo("no problems found")
    raise typer.Exit(code=0 if report.ok else 1)


@data_app.command("camer-subsets")
def camer_subsets(
    labels: Path = typer.Argument(..., help="per-sample visual / audio / multimodal labels (.jsonl/.json/.csv/.tsv)"),
    out: Optional[Path] = typer.Option(None, help="annotation file to write (default: annotations.jsonl beside LABELS)"),
):
    """CA-MER subsets by App. A's Stage 2 majority voting; fully inconsistent samples are discarded.
    \f
    Args:
        labels: the per-sample label table.
        out: the annotation file to write.
        (Each parameter is the command-line option of the same name; ``modbias data camer-subsets --help`` gives its help.)
    """
    from modbias.data.camer import DISCARDED, camer_subsets as construct
    from modbias.data.sample import SUBSETS, SampleError

    out = out or labels.parent / "annotations.jsonl"
    try:
        built = construct(labels, out)
    except (SampleError, ValueError, FileNotFoundError) as err:
        raise typer.BadParameter(str(err)) from err
    counts = ", ".join(f"{name} {built.counts[name]}" for name in SUBSETS)
    reasons = ", ".join(f"{name} {built.counts[name]}" for name in DISCARDED)
    typer.echo(f"wrote {len(built.rows)} samples to {out}: {counts}; discarded {built.discarded} ({reasons})")
