"""``modbias chair``: object hallucination (CHAIR) of LLaVA captions on MSCOCO under an intervention.

A plain function with typer options; :mod:`modbias.cli` registers it with
``app.command("chair")(chair)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from modbias.cli import options

console = Console()


def chair(
    model: str = typer.Option(..., help="an image family checkpoint, e.g. llava:/path/to/llava-1.5-7b-hf"),
    coco: Path = typer.Option(..., help="COCO folder: annotations/instances_<split>.json (+ captions), images"),
    method: str = typer.Option("none", help="none | ar | pai (or a stack like pai+ar)"),
    limit: int = typer.Option(500, help="images, drawn with --seed (the paper: 500)"),
    seed: int = typer.Option(927, help="seed of the image draw (PAI's CHAIR script uses 927)"),
    split: Optional[str] = typer.Option(None, help="annotation split, e.g. val2014 (default: the only one)"),
    tau: Optional[float] = typer.Option(None, help="AR threshold of Eq. 7"),
    alpha: Optional[float] = typer.Option(None, help="PAI amplification"),
    gamma: Optional[float] = typer.Option(None, help="PAI guidance scale (off by default)"),
    layers: Optional[str] = typer.Option(None, help="layers to edit: all, start:end, or 1,3,5"),
    max_new_tokens: int = typer.Option(512, help="caption length (PAI's script: 512)"),
    batch_size: int = typer.Option(8, help="images per batch (the unit of resume)"),
    device: str = options.DEVICE,
    out: Optional[Path] = options.OUT,
    cache: Path = options.CACHE,
):
    """Caption COCO images ("Please help me describe the image in detail.") and print CHAIR_s / CHAIR_i.
    \f
    Args:
        model: an image family checkpoint; coco: the COCO folder; split: its annotation split.
        method: ``none``, ``ar``, ``pai`` or a stack.
        limit, seed: how many images, drawn with which seed.
        tau, alpha, gamma, layers: intervention parameters.
        max_new_tokens, batch_size, device: generation settings.
        out: the store.
        (Each parameter is the command-line option of the same name; ``modbias chair --help`` gives its help.)
    """
    import modbias
    from modbias.data.coco import read_coco
    from modbias.data.sample import SampleError
    from modbias.runs.captioning import caption_chair
    from modbias.runs.intervene import build_interventions
    from modbias.runs.summaries import evaluation_table

    if device == "cpu":
        import torch

        torch.set_num_threads(min(torch.get_num_threads(), 2) or 1)
    params = {k: v for k, v in {"tau": tau, "alpha": alpha, "gamma": gamma, "layers": layers}.items() if v is not None}
    if "ar" in method.split("+"):
        params["competitor"] = "text"  # LLaVA has no audio: AR moves attention from the text to the image
    try:
        interventions = build_interventions(method, **params)
        images = read_coco(coco, split=split, limit=limit, seed=seed)
    except (ValueError, FileNotFoundError) as err:  # SampleError is a ValueError
        raise typer.BadParameter(str(err)) from err
    adapter = modbias.load_model(model, device=device)
    console.print(f"captioning {len(images)} COCO images with {model} under {method} → {out or cache}")
    data = {"path": str(coco.resolve()), "split": split, "limit": limit, "seed": seed}
    try:
        ds = caption_chair(adapter, images, interventions, out=out, cache_dir=cache, data_config=data,
                           max_new_tokens=max_new_tokens, batch_size=batch_size)
    except SampleError as err:
        raise typer.BadParameter(str(err)) from err
    console.print(evaluation_table(ds.attrs["summary"]["evaluation"], title=str(ds.attrs.get("path", out))))
