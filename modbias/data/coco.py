"""MSCOCO in its own format, for CHAIR (:mod:`modbias.core.chair`): instance annotations, reference captions,
images from a local folder.

Layout of ``root`` (as the COCO 2014 download unpacks)::

    annotations/instances_<split>.json   # images, categories, annotations (category_id per instance)
    annotations/captions_<split>.json    # optional: reference captions (more ground-truth objects)
    <split>/<file_name>                  # images (also found in images/ or in root itself)

``split`` defaults to the one split with an instances file (e.g. ``val2014``).
An image's ground-truth objects are its instance categories together with the
objects its reference captions mention, as CHAIR defines them.  ``limit``
images are drawn with a fixed seed (default 927, the seed of PAI's CHAIR
script) from the images of the instances file, in a numpy permutation of
their sorted ids.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modbias.core.chair import objects_in
from modbias.core.fingerprint import digest
from modbias.data.provenance import fingerprints
from modbias.data.readers import media_sample
from modbias.data.sample import Benchmark, SampleError

DEFAULT_LIMIT, DEFAULT_SEED = 500, 927


@dataclass(frozen=True)
class CocoImage:
    """One image: id, file, ground-truth objects (COCO category names) and reference captions."""

    id: int
    path: Path
    objects: frozenset[str]
    captions: tuple[str, ...]


def _annotation_file(root: Path, kind: str, split: str | None) -> Path | None:
    folders = [root / "annotations", root]
    if split:
        found = [f / f"{kind}_{split}.json" for f in folders if (f / f"{kind}_{split}.json").exists()]
    else:
        found = sorted({p for f in folders if f.is_dir() for p in f.glob(f"{kind}_*.json")})
    if len(found) > 1:
        raise FileNotFoundError(f"{root}: several {kind}_*.json files ({', '.join(p.name for p in found)}); "
                                "choose one with --split")
    return found[0] if found else None


def _image_path(root: Path, split: str, file_name: str) -> Path:
    for folder in (root / split, root / "images", root):
        if (folder / file_name).exists():
            return folder / file_name
    return root / split / file_name  # reported missing by the caller


def read_coco(root, split: str | None = None, limit: int | None = DEFAULT_LIMIT,
              seed: int = DEFAULT_SEED) -> list[CocoImage]:
    """``limit`` images of a COCO-format folder (all with ``limit=None``), each with its ground truth.

    Args:
        root: the folder holding ``annotations/instances_<split>.json`` (and optionally captions).
        split: e.g. ``val2014`` (default: the one instances file found).
        limit: how many images, drawn in a seeded random order (``None``: all).
        seed: the seed of that order.

    Returns:
        :class:`CocoImage` per image: id, path, the ground-truth categories (instances plus objects
        named in the reference captions) and the captions.
    """
    root = Path(root)
    instances_file = _annotation_file(root, "instances", split)
    if instances_file is None:
        raise FileNotFoundError(f"{root}: no annotations/instances_{split or '<split>'}.json")
    split = split or instances_file.stem.removeprefix("instances_")
    instances = json.loads(instances_file.read_text())
    names = {c["id"]: c["name"] for c in instances.get("categories", [])}
    objects: dict[int, set[str]] = {im["id"]: set() for im in instances["images"]}
    for ann in instances.get("annotations", []):
        if ann["category_id"] not in names:
            raise SampleError(str(ann.get("image_id")), "category_id",
                              f"{instances_file.name}: unknown category id {ann['category_id']}")
        objects.setdefault(ann["image_id"], set()).add(names[ann["category_id"]])
    captions: dict[int, list[str]] = {}
    captions_file = _annotation_file(root, "captions", split)
    if captions_file is not None:
        for ann in json.loads(captions_file.read_text()).get("annotations", []):
            captions.setdefault(ann["image_id"], []).append(ann["caption"])
    files = {im["id"]: im["file_name"] for im in instances["images"]}
    ids = sorted(files)
    order = np.random.default_rng(seed).permutation(len(ids))
    chosen = [ids[i] for i in order[:limit]] if limit is not None else [ids[i] for i in order]
    out = []
    for image_id in chosen:
        path = _image_path(root, split, files[image_id])
        if not path.exists():
            raise SampleError(str(image_id), "image", f"file {path} does not exist")
        refs = tuple(captions.get(image_id, ()))
        out.append(CocoImage(image_id, path, frozenset(objects[image_id] | objects_in(refs)), refs))
    return out


def coco_benchmark(images: list[CocoImage], config: dict | None = None) -> Benchmark:
    """The images as samples an image family (LLaVA) reads: ``extra["image_path"]``, no audio.

    Sample fields that belong to emotion benchmarks carry neutral placeholders
    (subset ``consistent``, label ``neutral``); CHAIR never reads them.

    Args:
        images: from :func:`read_coco`.
        config: how they were read (``path``, ``split``, ``limit``, ``seed``).

    Returns:
        The benchmark; its config adds ``name``/``reader`` ``coco``, the images' content ``files``
        fingerprints (relative to ``config["path"]``) and ``objects``, a hash of every image's ground truth.
    """
    samples = [media_sample(str(im.id), "consistent", "neutral", "", {}, {"image": im.path},
                            {"coco_image_id": im.id}) for im in images]
    config = dict(config or {})
    root = config.get("path") or (images[0].path.parent if images else ".")
    config = {"name": "coco", "reader": "coco", **config, "files": fingerprints(root, [im.path for im in images]),
              "objects": digest([[im.id, sorted(im.objects)] for im in images], 16)}
    return Benchmark("coco", samples, config)
