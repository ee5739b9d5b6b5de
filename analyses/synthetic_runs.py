"""Random but schema-valid run stores, for the tests and the app benchmark.

The values are random: nothing written here is a measurement.  Each store
follows the layout of :mod:`modbias.runs.trace` (dims sample, at, layer, head
[, token]) and is written through :func:`modbias.runs.loop.run`, so the
app and the figure scripts read it exactly like a real run.

Attention is drawn per head as a Dirichlet over the input positions (rows
saved) or over the four token groups visual / audio / prompt text /
generated (no rows), so ``S_v + S_a + S_t + S_g = 1`` holds per head.  As in a
real store only the sums are written; the derived variables (Eqs. 1, 5-7) are
computed on read (:func:`modbias.runs.store.open_run`).  The configs have the
shape of a run identity (:func:`modbias.runs.identity.run_identity`).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable

import numpy as np
import xarray as xr

from modbias.core.emotions import CLASSES
from modbias.core.evaluation import deltas, subset_metrics
from modbias.core.metrics import modality_sums
from modbias.data.sample import SUBSETS
from modbias.runs.identity import FORMAT
from modbias.runs.loop import run
from modbias.runs.store import MANIFEST, open_run, read_manifest

N_PROMPT_TEXT = 6  # prompt-text tokens around the modality blocks
N_GENERATED = 4  # generated tokens before the probed emotion token


def _labels(rng, subsets: np.ndarray, accuracy: dict[str, float]):
    """Label, cue emotions and prediction per sample; conflicts disagree on the misleading modality."""
    n = len(subsets)
    label = rng.choice(CLASSES, n)
    other = np.array([rng.choice([c for c in CLASSES if c != lab]) for lab in label])
    visual = np.where(subsets == "audio_aligned", other, label)
    audio = np.where(subsets == "video_aligned", other, label)
    hit = rng.random(n) < np.array([accuracy.get(s, 0.5) for s in subsets])
    wrong = np.where(subsets == "video_aligned", audio, np.where(subsets == "audio_aligned", visual, other))
    prediction = np.where(hit, label, wrong)
    return label, visual, audio, prediction


def _layout(n_visual: int, n_audio: int) -> dict[str, np.ndarray]:
    """Positions of a prompt laid out as text, visual, text, audio, text, then generated tokens."""
    kinds = (["text"] * 2 + ["visual"] * n_visual + ["text"] * 2 + ["audio"] * n_audio
             + ["text"] * (N_PROMPT_TEXT - 4) + ["generated"] * N_GENERATED)
    kinds = np.array(kinds)
    return {k: kinds == k for k in ("visual", "audio", "text", "generated")}


def random_run(n_samples: int = 30, n_layers: int = 4, n_heads: int = 4, *, at=("first", "answer"),
               n_visual: int = 16, n_audio: int = 1, rows: int | None = None, audio_bias: float = 3.0,
               accuracy: dict[str, float] | None = None, seed: int = 0, start: int = 0) -> xr.Dataset:
    """One run's (or one batch's) Dataset with random valid values.

    ``rows``: None stores no attention rows; k stores the rows variables with
    the first k samples filled (the others zero, ``length = 0``).
    ``audio_bias`` multiplies the Dirichlet weight of the audio tokens;
    ``start`` numbers the samples of a later batch.
    """
    rng = np.random.default_rng([seed, start])
    accuracy = accuracy or {"video_aligned": 0.4, "audio_aligned": 0.7, "consistent": 0.9}
    index = np.arange(start, start + n_samples)
    subsets = np.array([SUBSETS[i % len(SUBSETS)] for i in index])
    label, visual_emotion, audio_emotion, prediction = _labels(rng, subsets, accuracy)
    n_at = len(at)
    masks = _layout(n_visual, n_audio)
    n_tokens = len(masks["visual"])
    shape = (n_samples, n_at, n_layers, n_heads)
    group_weight = np.array([1.0, audio_bias * n_audio, 1.0, 1.0])  # visual, audio, text, generated
    sums = rng.dirichlet(group_weight, size=shape).astype(np.float32)  # [..., 4]
    data = {}
    if rows is not None:
        k = min(rows, n_samples)
        position_weight = np.where(masks["audio"], audio_bias, 0.2)
        weights = np.zeros((*shape, n_tokens), np.float32)
        weights[:k] = rng.dirichlet(position_weight, size=(k, n_at, n_layers, n_heads))
        for g, kind in enumerate(("visual", "audio", "text", "generated")):
            sums[:k, ..., g] = modality_sums(weights[:k], masks[kind].astype(np.float32))
        length = np.where(np.arange(n_samples)[:, None] < k, n_tokens, 0).repeat(n_at, 1)
        data["rows"] = (("sample", "at", "layer", "head", "token"), weights)
        data["length"] = (("sample", "at"), length.astype(np.int64))
        for kind in ("visual", "audio", "text"):
            data[f"{kind}_mask"] = (("sample", "token"), np.broadcast_to(masks[kind], (n_samples, n_tokens)).copy())
    dims = ("sample", "at", "layer", "head")
    for g, name in enumerate(("S_v", "S_a", "S_t", "S_g")):
        data[name] = (dims, sums[..., g])
    coords = {
        "sample": [f"{s}-{i:05d}" for i, s in zip(index, subsets)], "at": list(at),
        "subset": ("sample", subsets), "label": ("sample", label),
        "visual_emotion": ("sample", visual_emotion), "audio_emotion": ("sample", audio_emotion),
        "prediction": ("sample", prediction), "correct": ("sample", prediction == label),
        "text": ("sample", np.array([f"the voice sounds {a}, so the answer is {p}"
                                     for a, p in zip(audio_emotion, prediction)])),
        "emotion_step": (("sample", "at"), np.tile(np.arange(n_at) + 1, (n_samples, 1))),
        "found": (("sample", "at"), np.ones((n_samples, n_at), bool)),
        "n_visual": ("sample", np.full(n_samples, n_visual)), "n_audio": ("sample", np.full(n_samples, n_audio)),
    }
    return xr.Dataset(data, coords=coords)


def run_config(kind: str = "intervene", interventions: list[dict] | None = None, *, family: str = "random",
               audio_repeat: int = 1, data: str = "random", at: str = "both",
               n_layers: int = 4, n_heads: int = 4) -> dict:
    """A run identity in the shape the trace / intervene commands write (τ is no part of it: an AR run
    names its τ among ``interventions``)."""
    return {"kind": kind, "format": FORMAT,
            "model": {"family": family, "audio_repeat": audio_repeat, "num_hidden_layers": n_layers,
                      "num_attention_heads": n_heads},
            "data": {"name": data}, "parameters": {"at": at, "max_new_tokens": 16, "save_rows": False},
            "interventions": interventions or []}


def write_run(path: str | Path, batches: xr.Dataset | Iterable[xr.Dataset], config: dict, *, batch: int = 64,
              created: str | None = None, baseline: str | Path | None = None, summary: bool = True) -> Path:
    """Write ``batches`` (or one Dataset, in units of ``batch`` samples) through the run loop
    (:func:`modbias.runs.loop.run`, no model), then add ``created`` and, if asked, the summary the
    intervene command writes: subset metrics, the baseline's path and the deltas against the baseline's metrics."""
    path = Path(path)
    whole = batches if isinstance(batches, xr.Dataset) else xr.concat(list(batches), dim="sample")
    ids = [str(i) for i in whole.sample.values.tolist()]
    run(None, [SimpleNamespace(id=i) for i in ids], lambda chunk: whole.sel(sample=[s.id for s in chunk]),
        config=config, out=path, batch_size=batch, unit_size=batch, progress=False)
    manifest = read_manifest(path)
    manifest["created"] = created or _dt.datetime.now().isoformat(timespec="seconds")
    if summary:
        metrics = subset_metrics(open_run(path))
        manifest["summary"] = {"metrics": metrics}
        if baseline is not None:
            base = read_manifest(baseline).get("summary", {}).get("metrics") or subset_metrics(open_run(baseline))
            manifest["summary"].update(baseline=str(baseline), deltas=deltas(metrics, base))
    (path / MANIFEST).write_text(json.dumps(manifest))
    return path


def random_mi_run(samples: xr.Dataset, accuracy: float = 0.6, seed: int = 0) -> xr.Dataset:
    """An MI run's Dataset (schema of :func:`modbias.runs.importance.mi_batch`: dims sample, condition)
    over the samples of ``samples`` (a run Dataset, e.g. from :func:`random_run` or a slice of it).

    Each condition's prediction is the label with probability ``accuracy``, else another class; ``mi``
    follows from the unimodal answers and ``expected_mi`` from the cue emotions, by the module's rule.
    """
    from modbias.runs.importance import CONDITIONS, dominant_modality

    rng = np.random.default_rng(seed)
    label = np.asarray(samples.label.values).astype(str)
    n = len(label)
    other = np.array([[rng.choice([c for c in CLASSES if c != lab]) for lab in label] for _ in CONDITIONS]).T
    correct = rng.random((n, len(CONDITIONS))) < accuracy
    prediction = np.where(correct, label[:, None], other)
    visual, audio = (np.asarray(samples[k].values).astype(str) for k in ("visual_emotion", "audio_emotion"))
    return xr.Dataset(
        {"prediction": (("sample", "condition"), prediction),
         "text": (("sample", "condition"), np.char.add("so the answer is ", prediction)),
         "correct": (("sample", "condition"), correct),
         "mi": ("sample", dominant_modality(correct[:, CONDITIONS.index("audio_only")],
                                            correct[:, CONDITIONS.index("visual_only")]).reshape(-1)),
         "expected_mi": ("sample", dominant_modality(audio == label, visual == label).reshape(-1))},
        coords={"sample": np.asarray(samples.sample.values).astype(str), "condition": list(CONDITIONS),
                "subset": ("sample", np.asarray(samples.subset.values).astype(str)), "label": ("sample", label),
                "visual_emotion": ("sample", visual), "audio_emotion": ("sample", audio)})


def mi_config(ablation: str = "remove", *, family: str = "random", data: str = "random") -> dict:
    """A run configuration in the shape :func:`modbias.runs.importance.mi` writes (``write_run`` it with
    ``summary=False``)."""
    return {"kind": "mi", "format": FORMAT, "model": {"family": family}, "data": {"name": data},
            "parameters": {"ablation": ablation, "max_new_tokens": 16, "seed": 0, "neutral": None},
            "interventions": []}
