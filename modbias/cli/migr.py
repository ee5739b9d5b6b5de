"""``modbias mi``, ``modbias drift`` and ``modbias consistency``: the MIGR diagnostics on the command line.

Plain functions with typer options; :mod:`modbias.cli` registers them, e.g.
``app.command("mi")(mi)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from modbias.cli import options
from modbias.cli.errors import choice, use_device, validate

console = Console()


def mi(
    subset: str = options.SUBSET,
    model: str = options.MODEL,
    data: Optional[str] = options.DATA,
    limit: Optional[int] = options.LIMIT,
    batch_size: int = options.batch_size(64),
    device: str = options.DEVICE,
    out: Optional[Path] = options.OUT,
    cache: Path = options.CACHE,
    ablation: str = typer.Option("remove", help="how a modality is taken out: remove | zeros | mean | noise "
                                                "(mean/noise use the benchmark's feature statistics)"),
    max_new_tokens: int = options.MAX_NEW_TOKENS,
    seed: int = typer.Option(0, help="seed of the noise ablation"),
    shard: Optional[str] = options.SHARD,
    dask: Optional[str] = options.DASK,
):
    """Modality Importance: audio-only / visual-only / audio-visual predictions → emotion-dominant modality.
    \f
    Args:
        subset, model, data, limit, batch_size, device, max_new_tokens: the shared options of :mod:`modbias.cli.options`.
        out: the store; shard, dask: scale-out (:func:`modbias.runs.loop.run`).
        ablation: how a modality is taken out (``remove``, ``zeros``, ``mean``, ``noise``); seed: the noise seed.
        (Each parameter is the command-line option of the same name; ``modbias mi --help`` gives its help.)
    """
    data = options.benchmark_for(data, model)
    scale = options.scale_out(shard, dask, out)
    bench = validate(model=model, data=data, subset=subset, limit=limit, batch_size=batch_size,
                     max_new_tokens=max_new_tokens, out=out)
    import modbias
    from modbias.runs.importance import ABLATIONS, NeutralFeatures, mi as run_mi, mi_crosstab, mi_tables

    choice("--ablation", ablation, ABLATIONS)
    use_device(device)
    adapter = modbias.load_model(model, device=device)
    neutral = None
    if ablation in ("mean", "noise"):  # statistics of the whole benchmark, so subset runs agree
        neutral = NeutralFeatures.from_samples(modbias.load_benchmark(data, subset="all", limit=limit))
    console.print(f"MI ({ablation}) of {len(bench)} samples of {bench.name}/{subset} with {model} → {out or cache}")
    ds = run_mi(adapter, bench, out=out, cache_dir=cache, ablation=ablation, neutral=neutral,
                max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, progress=True, **scale)
    out = ds.attrs.get("path", out)
    console.print(f"store: {out}")
    if options.committed_note(ds):
        console.print(options.committed_note(ds))
        return
    for table in mi_tables(ds.attrs["summary"], title=f"{out} — MI ({ablation})"):
        console.print(table)
    console.print("MI share per subset:")
    console.print(mi_crosstab(ds, normalize=True).to_pandas().round(3).to_string())


def drift(
    subset: str = options.SUBSET,
    model: str = options.MODEL,
    data: Optional[str] = options.DATA,
    limit: Optional[int] = options.LIMIT,
    batch_size: int = options.batch_size(32),
    device: str = options.DEVICE,
    out: Optional[Path] = options.OUT,
    cache: Path = options.CACHE,
    mi: Optional[Path] = typer.Option(None, help="an MI run store: split the curves by its MI labels"),
    max_new_tokens: int = options.MAX_NEW_TOKENS,
    step_chunk: Optional[int] = typer.Option(None, help="decoding steps per probe forward (bounds memory)"),
    layer: str = typer.Option("paper", help="layer of the printed table: paper (3/4 depth) | mean | an index"),
    exclude_prompt: bool = typer.Option(False, "--exclude-prompt",
                                        help="renormalise over visual/audio/generated (the paper's Fig. 5)"),
    shard: Optional[str] = options.SHARD,
    dask: Optional[str] = options.DASK,
):
    """Attention drift: per decoding step, attention shares on visual / audio / prompt / generated tokens.
    \f
    Args:
        subset, model, data, limit, batch_size, device, max_new_tokens: the shared options of :mod:`modbias.cli.options`.
        out: the store; mi: an MI run whose labels split the curves; shard, dask: scale-out.
        step_chunk: decoding steps per probe forward.
        layer: the printed table's layer; exclude_prompt: renormalise without the prompt text.
        (Each parameter is the command-line option of the same name; ``modbias drift --help`` gives its help.)
    """
    data = options.benchmark_for(data, model)
    scale = options.scale_out(shard, dask, out)
    bench = validate(model=model, data=data, subset=subset, limit=limit, batch_size=batch_size,
                     max_new_tokens=max_new_tokens, out=out)
    if mi is not None and not mi.exists():
        raise FileNotFoundError(f"--mi {mi} does not exist")
    if layer not in ("paper", "mean") and not layer.lstrip("-").isdigit():
        raise typer.BadParameter(f"{layer!r} is not paper, mean or a layer index", param_hint="--layer")
    import modbias
    from modbias.analysis.report import summary_table
    from modbias.runs.drift import drift_curves, drift_summary, paper_layer, trace_drift

    use_device(device)
    adapter = modbias.load_model(model, device=device)
    console.print(f"drift of {len(bench)} samples of {bench.name}/{subset} with {model} → {out or cache}")
    ds = trace_drift(adapter, bench, out=out, cache_dir=cache, max_new_tokens=max_new_tokens, batch_size=batch_size,
                     step_chunk=step_chunk, mi=mi, progress=True, **scale)
    out = ds.attrs.get("path", out)
    console.print(f"store: {out}")
    if options.committed_note(ds):
        console.print(options.committed_note(ds))
        return
    chosen = int(layer) if layer.lstrip("-").isdigit() else layer
    shown = paper_layer(ds.sizes["layer"]) if chosen == "paper" else chosen
    for by in ["subset"] + (["mi"] if "mi" in ds.coords else []):
        curves = drift_curves(ds, by=by, layer=chosen, exclude_prompt=exclude_prompt)
        console.print(summary_table(drift_summary(curves), f"{out} — attention shares by {by}, layer {shown}, "
                                                         f"normalised steps 0/50/100"))


def consistency(
    runs: List[Path] = typer.Argument(..., help="run stores (trace, intervene, drift) to score"),
    by: str = typer.Option("subset", help="per-sample coordinate to group by (subset, mi, ...)"),
    tie: str = typer.Option("none", help="lexicon classifier's tie rule: none | first | last"),
):
    """Explanation consistency of stored runs: EEA, EPC, FCR and R✗/A✓ (%), per group and overall.
    \f
    Args:
        runs: the run stores.
        by: the per-sample coordinate to group by; tie: the lexicon classifier's tie rule.
        (Each parameter is the command-line option of the same name; ``modbias consistency --help`` gives its help.)
    """
    from modbias.analysis.consistency import LexiconClassifier, consistency as score, consistency_table, run_name_of
    from modbias.runs.store import open_run

    classifier = LexiconClassifier(tie=tie)
    for path in runs:
        ds = open_run(path)
        console.print(consistency_table(score(ds, classifier, by=by), title=f"{path} — {run_name_of(ds)}"))
