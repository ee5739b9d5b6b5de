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
):
    """Report every problem of a benchmark (missing file, unknown label, wrong feature shape, duplicate id)."""
    from modbias.data.readers import check as check_benchmark

    report = check_benchmark(path, reader=reader, decode=decode)
    for line in report.lines():
        typer.echo(line)
    if report.ok:
        typer.echo("no problems found")
    raise typer.Exit(code=0 if report.ok else 1)
