"""Options several commands share, defined once; a command uses one as its parameter's default.

>>> def trace(subset: str = SUBSET, device: str = DEVICE): ...     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

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


SHARD = typer.Option(None, help="I/N: run only shard I of N of the run's work units into its store (--out, or the one "
                                "named by the run's identity); run the other shards from other processes or machines "
                                "sharing the filesystem")
DASK = typer.Option(None, help="run the work units on Dask: local:N (N local workers) or a scheduler address "
                               "like tcp://host:8786 (needs the [dask] extra)")


def scale_out(shard: str | None, dask: str | None, out) -> dict:
    """The run loop's ``shard``/``dask`` keywords from ``--shard``/``--dask``, checked before a model loads
    (and, for an explicit ``out``, that no other process writes it or that shard of it; a store named by the
    run's identity is checked by the run loop when it takes the store's lock).

    Args:
        shard: ``--shard`` (``"I/N"``) or ``None``.
        dask: ``--dask`` (``local:N`` or a scheduler address) or ``None``.
        out: ``--out`` or ``None``.

    Returns:
        ``{"shard": (I, N) | None, "dask": str | None}``.
    """
    from modbias.runs.units import parse_shard

    if shard is not None and dask is not None:
        raise typer.BadParameter("give --shard or --dask, not both", param_hint="--shard")
    try:
        scale = {"shard": parse_shard(shard), "dask": dask}
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--shard") from None
    if out is not None and (Path(out) / "locks").is_dir():  # a store someone has written: is anyone now?
        from modbias.runs.store import RunStore

        RunStore(out).check_free(scale["shard"])
    return scale


def committed_note(ds) -> str | None:
    """For a store that other shards are still writing: ``committed X of N samples``; else ``None``.

    Args:
        ds: a run as the run loop returns it (``attrs["complete"]``, ``attrs["path"]``).

    Returns:
        The note to print, or ``None`` for a complete run.
    """
    if ds.attrs.get("complete", True):
        return None
    from modbias.runs.store import read_manifest

    manifest = read_manifest(ds.attrs["path"])
    return (f"{ds.attrs['path']}: {manifest['done']} of {manifest['samples']} samples committed; the summary "
            f"is written by the shard that commits the last unit")


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
