"""Options several commands share, defined once; a command uses one as its parameter's default.

>>> def trace(subset: str = SUBSET, device: str = DEVICE): ...     # doctest: +SKIP
"""

from __future__ import annotations

import typer

SUBSET = typer.Option("all", help="video_aligned | audio_aligned | consistent | all")
MODEL = typer.Option("organism", help="family[:path]; 'organism' (default), 'organism-attn' and their "
                                      "'-base' states are shipped")
DATA = typer.Option(None, help="benchmark name or path (reader:path); default: the model's own synthetic "
                              "benchmark (synth; synth-attn for organism-attn)")
LIMIT = typer.Option(None, help="at most N samples per subset")
DEVICE = typer.Option("cpu", help="torch device, e.g. cpu or cuda")
MAX_NEW_TOKENS = typer.Option(16, help="generation length")
OUT = typer.Option(None, help="store path; default: under --cache, named by the run's identity "
                              "(readable name + hash), so the same command reopens or resumes it")
CACHE = typer.Option("cache", help="where stores named by their run identity live (when no --out)")


def batch_size(default: int):
    """``--batch-size`` with the command's own default.

    Args:
        default: the command's default batch size.

    Returns:
        The typer option.
    """
    return typer.Option(default, help="samples per batch (the unit of resume)")


def benchmark_for(data: str | None, model: str) -> str:
    """``--data`` as given, else the synthetic benchmark the shipped organism ``model`` was trained for.

    Args:
        data: ``--data`` (or ``None``).
        model: ``--model``.

    Returns:
        The benchmark name or path (``synth-attn`` for ``organism-attn``, else ``synth``).
    """
    if data:
        return data
    return "synth-attn" if model.partition(":")[0].startswith("organism-attn") else "synth"
