"""``modbias.caption_chair``: caption MSCOCO images with LLaVA under an intervention and score CHAIR.

The protocol of the MoSEAR paper's Table 13 (that of PAI's CHAIR script):
LLaVA-1.5 describes each of 500 val2014 images, drawn with a fixed seed, from
the query "Please help me describe the image in detail." with greedy decoding;
CHAIR_s / CHAIR_i (:mod:`modbias.core.chair`) compare the objects each caption
mentions with the image's ground truth.  Interventions edit the decoded
query's attention rows as in the emotion runs; LLaVA has no audio, so AR's
competing set is the text (``competitor="text"``).

The run is a store of kind ``chair`` (one row per image: caption, the
ground-truth objects, the mentioned and hallucinated objects), resumable like
every run; its summary holds the evaluation (:mod:`modbias.runs.summaries`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import xarray as xr

from modbias.core.chair import score_caption
from modbias.data.coco import CocoImage, coco_benchmark
from modbias.interventions.base import Intervention
from modbias.models.base import ModelAdapter
from modbias.runs.identity import default_store, run_identity
from modbias.runs.loop import run
from modbias.runs.summaries import record_summary, run_summary
from modbias.runs.trace import generate_under

CAPTION_PROMPT = "Please help me describe the image in detail."
CAPTION_FAMILIES = ("llava",)


@contextmanager
def captioning_instruction(model: ModelAdapter, prompt: str = CAPTION_PROMPT):
    """The model's instruction replaced by the captioning query for the block (and its
    processed-input cache cleared on the way in and out).

    Args:
        model: an image-family adapter (:data:`CAPTION_FAMILIES`).
        prompt: the captioning query.
    Returns:
        A context manager yielding ``model``.
    Raises:
        ValueError: the model's family does not caption images.
    """
    if model.family not in CAPTION_FAMILIES:
        raise ValueError(f"CHAIR captions images with an image family {CAPTION_FAMILIES}, not {model.family!r}")
    before = model.instruction
    model.instruction, model._processed = prompt, {}
    try:
        yield model
    finally:
        model.instruction, model._processed = before, {}


def _join(values: Iterable[str]) -> str:
    return ";".join(values)


def _caption_batch(model: ModelAdapter, samples, truth: dict[str, frozenset], max_new_tokens: int,
                   interventions: list[Intervention]) -> xr.Dataset:
    decoded = generate_under(model, samples, max_new_tokens, interventions).decoded
    scores = [score_caption(d.text, truth[s.id]) for d, s in zip(decoded, samples)]
    return xr.Dataset(coords={
        "sample": [s.id for s in samples], "text": ("sample", [d.text for d in decoded]),
        "objects": ("sample", [_join(sorted(truth[s.id])) for s in samples]),
        "mentioned": ("sample", [_join(sc.mentioned) for sc in scores]),
        "hallucinated": ("sample", [_join(sc.hallucinated) for sc in scores]),
    })


def caption_chair(model: ModelAdapter, images: list[CocoImage], interventions: list[Intervention] = (), *,
                  out: str | Path | None = None, cache_dir: str | Path | None = None,
                  data_config: dict | None = None, max_new_tokens: int = 512, batch_size: int = 8,
                  progress: bool = True) -> xr.Dataset:
    """Caption ``images`` under ``interventions``; returns the run (stored at ``out``, or with ``cache_dir`` at
    the store its identity names, with its CHAIR summary).  The identity holds the images' and annotation
    files' fingerprints (:func:`modbias.data.coco.coco_benchmark`).

    Args:
        model: an image family adapter; images: from :func:`modbias.data.coco.read_coco`.
        interventions, max_new_tokens, data_config: identity; batch_size, progress: execution only.
    Returns:
        The run Dataset (one row per image), ``attrs["summary"]`` its CHAIR evaluation.
    """
    interventions = list(interventions)
    bench = coco_benchmark(images, data_config)
    truth = {str(im.id): im.objects for im in images}
    with captioning_instruction(model):
        config = run_identity("chair", model, list(bench), data_config=bench.config, interventions=interventions,
                              max_new_tokens=max_new_tokens)
        if out is None and cache_dir is not None:
            out = default_store(config, cache_dir)
        ds = run(model, list(bench), lambda chunk: _caption_batch(model, chunk, truth, max_new_tokens, interventions),
                 config=config, interventions=interventions, out=out, batch_size=batch_size, progress=progress,
                 label="captions")
    if out is not None and ds.sizes.get("sample"):
        record_summary(out, ds)
    elif ds.sizes.get("sample"):
        ds.attrs["summary"] = run_summary(ds)
    return ds
