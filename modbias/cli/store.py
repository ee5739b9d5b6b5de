"""``modbias store``: look after run stores (``modbias store verify PATH``)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

store_app = typer.Typer(help="Run stores: check their integrity.", no_args_is_help=True)
console = Console()


@store_app.command("verify")
def verify(path: Path = typer.Argument(..., help="a run store directory")):
    """Re-read every committed unit and compare it with its checksum; name the samples of any damaged one.

    Exits 1 when a unit is missing or corrupt (rerunning the command that wrote the store recomputes exactly
    those units), 0 when the committed part is intact.
    \f
    Args:
        path: the store directory.
    """
    from modbias.runs.store import FORMAT, read_manifest, verify_store

    manifest = read_manifest(path)
    if not manifest:
        raise FileNotFoundError(f"no modbias run store at {path}")
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path} was written by an older modbias (no checksums to verify)")
    damage = verify_store(path)
    units = manifest.get("units", {})
    for record in damage:
        console.print(f"[red]damaged[/red] {record}")
    state = "complete" if manifest["done"] == manifest["samples"] else "incomplete"
    console.print(f"{path}: {len(units) - len(damage)} of {len(units)} committed units intact, "
                  f"{manifest['done']} of {manifest['samples']} samples committed ({state})")
    if damage:
        raise typer.Exit(1)
