"""``modbias causal knockout|patch|dla|lens|compare``: causal evidence for modality bias at the emotion step.

Each run command writes a store (resumable, like a trace) and prints its per-layer or per-head means;
``compare`` reads a patch or dla store and ranks its heads' causal effect against c_h and H_bias.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from modbias.cli import options
from modbias.cli.errors import choice, use_device, validate

causal_app = typer.Typer(help="Causal tools at the emotion step: knockout, head patching, DLA, logit lens.",
                         no_args_is_help=True)
console = Console()

STEPS = ("first", "answer")
AT = typer.Option("answer", help="emotion step: answer (the conclusion's emotion word) | first (y_k of Eq. 1)")


def _run(kind: str, *, model, data, subset, limit, batch_size, max_new_tokens, out, cache, at, device, **settings):
    """Validate the options, load the benchmark and the model, run causal ``kind`` into its store and print
    its LD summary; returns (run Dataset, store path: ``--out`` or the one named by the run's identity)."""
    bench = validate(model=model, data=options.benchmark_for(data, model), subset=subset, limit=limit,
                     batch_size=batch_size, max_new_tokens=max_new_tokens, out=out)
    choice("--at", at, STEPS)
    from functools import partial

    import modbias
    from modbias.runs.causal import causal
    from modbias.runs.patching import patch as run_patch

    use_device(device)
    adapter = modbias.load_model(model, device=device)
    console.print(f"{kind} on {len(bench)} samples of {bench.name}/{subset} with {model} at the {at} emotion step "
                  f"→ {out or cache}")
    run = run_patch if kind == "patch" else partial(causal, kind)
    ds = run(adapter, bench, out=out, cache_dir=cache, at=at, max_new_tokens=max_new_tokens, batch_size=batch_size,
             **settings)
    out = Path(ds.attrs.get("path", out))
    console.print(f"store: {out}")
    _show_logit_difference(ds, out)
    return ds, out


def _show(frame, title: str) -> None:
    console.print(f"[bold]{title}[/bold]")
    console.print(frame.round(3).to_string(), soft_wrap=True)


def _show_logit_difference(ds, out: Path) -> None:
    from modbias.analysis.causal import logit_summary

    _show(logit_summary(ds), f"{out} — LD = log p(audio cue) − log p(visual cue) at the emotion step, conflicts")


@causal_app.command()
def knockout(
    subset: str = options.SUBSET, model: str = options.MODEL, data: Optional[str] = options.DATA,
    limit: Optional[int] = options.LIMIT, batch_size: int = options.batch_size(32), device: str = options.DEVICE,
    out: Optional[Path] = options.OUT, cache: Path = options.CACHE, at: str = AT,
    max_new_tokens: int = options.MAX_NEW_TOKENS,
    window: int = typer.Option(3, help="layers per knockout window (ℓ..ℓ+w−1, clipped at the top)"),
    modality: str = typer.Option("visual,audio", help="modalities whose tokens are blocked, comma-separated"),
):
    """Block the emotion query's attention to a modality in each layer window; store the change of LD.
    \f
    Args:
        subset, model, data, limit, batch_size, device, max_new_tokens: the shared options of :mod:`modbias.cli.options`.
        out, cache: the store (default: named by the run's identity under ``cache``).
        at: the emotion step (``answer`` | ``first``).
        window: layers per knockout window; modality: the blocked modalities, comma-separated.
        (Each parameter is the command-line option of the same name; ``modbias causal knockout --help`` gives its help.)
    """
    modalities = tuple(m.strip() for m in modality.split(",") if m.strip())
    for m in modalities:
        choice("--modality", m, ("visual", "audio"))
    if window < 1:
        raise typer.BadParameter(f"{window} is below 1", param_hint="--window")
    ds, out = _run("knockout", model=model, data=data, subset=subset, limit=limit, batch_size=batch_size,
                   max_new_tokens=max_new_tokens, out=out, cache=cache, at=at, device=device, window=window,
                   modalities=modalities)
    from modbias.analysis.causal import layer_profile

    _show(layer_profile(ds, "knockout_delta"), f"{out} — mean change of LD = log p(audio cue) − log p(visual cue), "
                                              f"by window start")
    _show(layer_profile(ds, "knockout_flipped"), f"{out} — share of conflicts whose LD changes sign")


@causal_app.command()
def patch(
    subset: str = options.SUBSET, model: str = options.MODEL, data: Optional[str] = options.DATA,
    limit: Optional[int] = options.LIMIT, batch_size: int = options.batch_size(32), device: str = options.DEVICE,
    out: Optional[Path] = options.OUT, cache: Path = options.CACHE, at: str = AT,
    max_new_tokens: int = options.MAX_NEW_TOKENS,
    swap: str = typer.Option("audio", help="the modality replaced in the counterfactual: audio | visual"),
    method: str = typer.Option("both", help="exact (nnsight, one forward per head) | attribution | both"),
):
    """Patch each head's output at the emotion step from the modality-swapped counterfactual; store the effect.
    \f
    Args:
        subset, model, data, limit, batch_size, device, max_new_tokens: the shared options of :mod:`modbias.cli.options`.
        out, cache: the store (default: named by the run's identity under ``cache``).
        at: the emotion step (``answer`` | ``first``).
        swap: the modality replaced in the counterfactual; method: exact, attribution or both.
        (Each parameter is the command-line option of the same name; ``modbias causal patch --help`` gives its help.)
    """
    choice("--swap", swap, ("audio", "visual"))
    choice("--method", method, ("exact", "attribution", "both"))
    ds, out = _run("patch", model=model, data=data, subset=subset, limit=limit, batch_size=batch_size,
                   max_new_tokens=max_new_tokens, out=out, cache=cache, at=at, device=device, swap=swap, method=method)
    from modbias.analysis.causal import attribution_agreement, head_map

    for name in ("patch_effect", "attribution_effect"):
        if name in ds:
            _show(head_map(ds, name).to_pandas(), f"{out} — mean {name} (1: the head carries the whole LD change)")
    if "patch_effect" in ds and "attribution_effect" in ds:
        agreement = attribution_agreement(ds)
        console.print(f"attribution vs exact patching over {agreement['n']} (sample, head) pairs: "
                      f"Spearman {agreement['spearman']:.3f}, Pearson {agreement['pearson']:.3f}")


@causal_app.command()
def dla(
    subset: str = options.SUBSET, model: str = options.MODEL, data: Optional[str] = options.DATA,
    limit: Optional[int] = options.LIMIT, batch_size: int = options.batch_size(32), device: str = options.DEVICE,
    out: Optional[Path] = options.OUT, cache: Path = options.CACHE, at: str = AT,
    max_new_tokens: int = options.MAX_NEW_TOKENS,
):
    """Direct logit attribution of each head and MLP to LD at the emotion step (final-norm scale frozen).
    \f
    Args:
        subset, model, data, limit, batch_size, device, max_new_tokens: the shared options of :mod:`modbias.cli.options`.
        out, cache: the store (default: named by the run's identity under ``cache``).
        at: the emotion step (``answer`` | ``first``).
        (Each parameter is the command-line option of the same name; ``modbias causal dla --help`` gives its help.)
    """
    ds, out = _run("dla", model=model, data=data, subset=subset, limit=limit, batch_size=batch_size,
                   max_new_tokens=max_new_tokens, out=out, cache=cache, at=at, device=device)
    from modbias.analysis.causal import head_map, layer_profile

    _show(head_map(ds, "dla_head").to_pandas(), f"{out} — mean direct contribution of each head to LD")
    _show(layer_profile(ds, "dla_mlp"), f"{out} — mean direct contribution of each MLP to LD")


@causal_app.command()
def lens(
    subset: str = options.SUBSET, model: str = options.MODEL, data: Optional[str] = options.DATA,
    limit: Optional[int] = options.LIMIT, batch_size: int = options.batch_size(32), device: str = options.DEVICE,
    out: Optional[Path] = options.OUT, cache: Path = options.CACHE, at: str = AT,
    max_new_tokens: int = options.MAX_NEW_TOKENS,
):
    """Logit lens at the emotion step: LD read from each layer's residual stream.
    \f
    Args:
        subset, model, data, limit, batch_size, device, max_new_tokens: the shared options of :mod:`modbias.cli.options`.
        out, cache: the store (default: named by the run's identity under ``cache``).
        at: the emotion step (``answer`` | ``first``).
        (Each parameter is the command-line option of the same name; ``modbias causal lens --help`` gives its help.)
    """
    ds, out = _run("lens", model=model, data=data, subset=subset, limit=limit, batch_size=batch_size,
                   max_new_tokens=max_new_tokens, out=out, cache=cache, at=at, device=device)
    from modbias.analysis.causal import layer_profile

    _show(layer_profile(ds, "lens_logit_diff"), f"{out} — mean LD through the logit lens, by layer")


@causal_app.command()
def compare(
    run: Path = typer.Argument(..., help="a patch or dla run store"),
    tau: float = typer.Option(1.0, help="threshold of Eq. 7 for the biased set"),
    effect: Optional[str] = typer.Option(None, help="patch_effect | attribution_effect | dla_head "
                                                    "(default: the first the run has)"),
):
    """Rank correlation between c_h (and the biased set at tau) and each head's causal effect, per subset.
    \f
    Args:
        run: a patch or dla run store.
        tau: the threshold τ of Eq. 7; effect: the per-head variable (default: the first the run has).
        (Each parameter is the command-line option of the same name; ``modbias causal compare --help`` gives its help.)
    """
    if not run.exists():
        raise FileNotFoundError(f"run {run} does not exist")
    from modbias.analysis.causal import compare as compare_heads
    from modbias.runs.store import open_run

    ds = open_run(run)
    _show(compare_heads(ds, tau=tau, effect=effect), f"{run} — causal effect vs c_h and H_bias")
