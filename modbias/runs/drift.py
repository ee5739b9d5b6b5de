"""Attention drift over the decoding steps of the explanation (MIGR Sec. 8.1, Fig. 5).

At every decoding step j of the generated answer (the query whose output is
decoded into generated token j), the share of attention on four token
groups, averaged over heads, per layer:

- ``visual`` and ``audio``: the input modality tokens (TokenLayout V, A);
- ``text``: the prompt's text tokens (TokenLayout T: instruction, subtitle, specials);
- ``generated``: the tokens generated before step j (none at step 0).

Every key position a query may see is in exactly one group, so the four
shares sum to 1 at every step and layer (each head's row is a softmax).

Cost: one generation plus one forward over the last prompt token and the
generated tokens, re-using generation's KV cache, with the probe capturing
the row of every query of that block (:func:`modbias.runs.trace.rows_at_steps`
with all decoding steps as the query index): memory ``B·L·H·G·T`` for G
generated tokens and T keys; ``step_chunk`` bounds it to ``B·L·H·step_chunk·T``
at the price of one block forward per chunk.

The store (kind ``drift``) holds ``share`` with dims (sample, step, layer,
group), NaN after a sample's last step; ``n_steps`` per sample; the token
generated at each step.  :func:`drift_curves` normalises each sample's steps
to a fixed length of 100 (the paper's normalisation for averaging over
explanations of different lengths; here: step j of n maps to 100·j/(n−1) and
the curve is linearly interpolated at 0, 1, ..., 100, which keeps the sum to
1) and averages over samples, optionally split by subset or MI label.  The
paper plots layer 21 of 28 with the prompt excluded (``exclude_prompt``
renormalises over visual, audio and generated); :func:`paper_layer` gives the
same relative depth for other models.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import xarray as xr

from modbias.core.fingerprint import digest
from modbias.core.layout import batch_masks
from modbias.core.probe import AttentionProbe, probe_for
from modbias.data.sample import SUBSETS, Sample
from modbias.interventions.base import Intervention
from modbias.models.base import ModelAdapter
from modbias.runs.identity import default_store, run_identity
from modbias.runs.importance import MI_LABELS, generate_under
from modbias.runs.loop import run
from modbias.runs.store import open_run
from modbias.runs.trace import rows_at_steps

GROUPS = ("visual", "audio", "text", "generated")
NORM_STEPS = 101  # normalised steps 0, 1, ..., 100


@dataclass
class DriftConfig:
    """Parameters of a drift run: ``max_new_tokens`` is identity; ``step_chunk`` only bounds memory."""

    max_new_tokens: int = 16
    step_chunk: int | None = None

    def __post_init__(self):
        if self.max_new_tokens < 1 or (self.step_chunk is not None and self.step_chunk < 1):
            raise ValueError("max_new_tokens and step_chunk must be positive")


def group_shares(rows: torch.Tensor, masks: dict[str, torch.Tensor]) -> torch.Tensor:
    """Head-averaged attention share per token group (MIGR Sec. 8.1).

    Args:
        rows: attention rows ``[B, L, H, Q, T]``.
        masks: ``{group: [B, T]}`` for every group of ``GROUPS``.
    Returns:
        ``[B, Q, L, len(GROUPS)]``: per query, layer and group, the rows' mass on the group averaged over heads.
    """
    out = [(rows * masks[g].to(rows.device, rows.dtype)[:, None, None, None, :]).sum(-1).mean(2) for g in GROUPS]
    return torch.stack(out, dim=-1).permute(0, 2, 1, 3)


def step_shares(model: ModelAdapter, probe: AttentionProbe, generation, step_chunk: int | None = None) -> torch.Tensor:
    """Group shares at every decoding step of a generation (see the module doc for the cost).

    Args:
        model: the adapter.
        probe: the attention probe of ``model.backbone``.
        generation: a :func:`~modbias.runs.trace.generate_under` result (batch, generated ids ``[B, G]``,
            KV cache, masks, editors).
        step_chunk: steps per block forward (``None``: all G at once); bounds memory to ``B·L·H·chunk·T``.
    Returns:
        ``[B, G, L, 4]`` float32 on the CPU; each ``[..., :]`` sums to 1.
    """
    batch, generated = generation.batch, generation.generated
    n_gen = generated.shape[1]
    chunk = step_chunk or n_gen
    parts = []
    with torch.no_grad():
        for start in range(0, n_gen, chunk):
            steps = torch.arange(start, min(start + chunk, n_gen)).expand(generated.shape[0], -1)
            rows = rows_at_steps(model, probe, batch, generated, generation.cache, steps, generation.masks,
                                 generation.editors)
            masks = batch_masks(batch.layouts, batch.offsets, rows.shape[-1])
            parts.append(group_shares(rows.float(), masks).cpu())
    return torch.cat(parts, dim=1)


def drift_batch(model: ModelAdapter, probe: AttentionProbe, samples: list[Sample], config: DriftConfig,
                interventions: list[Intervention] = (), mi_labels: dict[str, str] | None = None) -> xr.Dataset:
    """Drift of one batch: generate, then the group shares of every generated step.

    Args:
        model: the adapter.
        probe: the attention probe of ``model.backbone``.
        samples: the batch.
        config: the run's parameters (``max_new_tokens`` is the step capacity).
        interventions: applied to generation and to the re-run that reads the rows.
        mi_labels: ``{sample id: MI label}`` added as coordinate ``mi`` (``"unknown"`` where missing).
    Returns:
        Dataset with ``share`` ``(sample, step, layer, group)``, NaN after each sample's ``n_steps``; per-sample
        coords (subset, label, cue emotions, prediction, correct, text, n_steps, n_visual, n_audio, mi?) and
        ``token`` ``(sample, step)``.
    """
    generation = generate_under(model, samples, config.max_new_tokens, interventions)
    shares = step_shares(model, probe, generation, config.step_chunk).numpy().astype(np.float32)
    n_steps = np.array([len(d.ids) for d in generation.decoded], dtype=np.int64)
    capacity = config.max_new_tokens
    share = np.full((len(samples), capacity, shares.shape[2], len(GROUPS)), np.nan, dtype=np.float32)
    tokens = np.full((len(samples), capacity), "", dtype=object)
    for b, d in enumerate(generation.decoded):
        share[b, :n_steps[b]] = shares[b, :n_steps[b]]
        tokens[b, :n_steps[b]] = [p.strip() for p in model.token_pieces(d.ids)]
    coords = {
        "sample": [s.id for s in samples], "step": np.arange(capacity), "layer": np.arange(share.shape[2]),
        "group": list(GROUPS),
        "subset": ("sample", [s.subset for s in samples]), "label": ("sample", [s.label for s in samples]),
        "visual_emotion": ("sample", [s.visual_emotion or "" for s in samples]),
        "audio_emotion": ("sample", [s.audio_emotion or "" for s in samples]),
        "prediction": ("sample", [d.prediction for d in generation.decoded]),
        "correct": ("sample", [d.prediction == s.label for d, s in zip(generation.decoded, samples)]),
        "text": ("sample", [d.text for d in generation.decoded]),
        "n_steps": ("sample", n_steps),
        "token": (("sample", "step"), tokens.astype(str)),
        "n_visual": ("sample", [lay.n_visual for lay in generation.batch.layouts]),
        "n_audio": ("sample", [lay.n_audio for lay in generation.batch.layouts]),
    }
    if mi_labels is not None:
        coords["mi"] = ("sample", [mi_labels.get(s.id, "unknown") for s in samples])
    return xr.Dataset({"share": (("sample", "step", "layer", "group"), share)}, coords=coords)


def mi_labels_of(source) -> dict[str, str]:
    """The MI label of every sample of an MI run.

    Args:
        source: an MI run, as a Dataset or a store path.
    Returns:
        ``{sample id: MI label}``.
    """
    ds = open_run(source) if isinstance(source, (str, Path)) else source
    return dict(zip(np.asarray(ds.sample.values).astype(str).tolist(), np.asarray(ds.mi.values).astype(str).tolist()))


def trace_drift(model: ModelAdapter, data: Iterable[Sample], *, out: str | Path | None = None,
                cache_dir: str | Path | None = None, max_new_tokens: int = 16, batch_size: int = 32,
                step_chunk: int | None = None, mi=None, progress: bool = True, data_config: dict | None = None,
                interventions: list[Intervention] = (), shard: tuple[int, int] | str | None = None,
                dask: str | None = None) -> xr.Dataset:
    """Attention drift of every sample's generated answer; returns the run Dataset (stored at ``out``).

    ``mi`` (an MI run, as a Dataset or store path) adds each sample's MI label as
    coordinate ``mi`` ("unknown" for samples the MI run lacks), so curves can be split by it; the labels
    (by their hash) are part of the run's identity.  With ``out`` (or ``cache_dir``: the store its identity
    names, :func:`modbias.runs.identity.default_store`) the run is a resumable :class:`RunStore` of kind ``drift``;
    ``shard``/``dask`` scale it out (:func:`modbias.runs.loop.run`).

    Args:
        model, data: the adapter and the samples; max_new_tokens, interventions: identity.
        batch_size, step_chunk, progress, shard, dask: execution only (not identity).
    Returns:
        The run Dataset: ``share`` (sample, step, layer, group), ``attrs["config"]`` its identity.

    >>> import modbias                                                  # doctest: +SKIP
    >>> ds = modbias.trace_drift(modbias.load_model("organism"), modbias.load_benchmark("synth", limit=30))
    >>> modbias.drift_curves(ds, by="subset", layer=2).share.sel(norm_step=[0, 50, 100])
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    config = DriftConfig(max_new_tokens=max_new_tokens, step_chunk=step_chunk)
    samples = list(data)
    labels = mi_labels_of(mi) if mi is not None else None
    run_config = run_identity("drift", model, samples, data_config=data_config or getattr(data, "config", {}),
                              interventions=interventions, max_new_tokens=max_new_tokens,
                              mi_labels=digest(sorted(labels.items()), 16) if labels is not None else None)
    if out is None and cache_dir is not None:
        out = default_store(run_config, cache_dir)
    return run(model, samples,
               lambda chunk: drift_batch(model, probe_for(model.backbone), chunk, config, list(interventions), labels),
               config=run_config, interventions=interventions, out=out, batch_size=batch_size, progress=progress,
               shard=shard, dask=dask)


# -- normalised curves ------------------------------------------------------------------
def normalise_steps(values, n_steps, n_points: int = NORM_STEPS) -> np.ndarray:
    """Resample each sample's first ``n_steps[i]`` steps to ``n_points`` evenly spaced points.

    Step j of n sits at j/(n−1) of the way, linear interpolation in between (a convex combination
    of neighbouring steps, so shares that sum to 1 still do).  One step gives a constant curve; zero
    steps give NaN.

    Args:
        values: ``[S, step, ...]``.
        n_steps: ``[S]``, each sample's number of valid steps.
        n_points: points of the normalised axis.
    Returns:
        ``[S, n_points, ...]`` float64.
    """
    values = np.asarray(values, dtype=np.float64)
    out = np.full((values.shape[0], n_points) + values.shape[2:], np.nan)
    target = np.linspace(0.0, 1.0, n_points)
    for i, n in enumerate(np.asarray(n_steps).astype(int).tolist()):
        if n <= 0:
            continue
        if n == 1:
            out[i] = values[i, 0]
            continue
        pos = target * (n - 1)
        lo = np.minimum(np.floor(pos).astype(int), n - 2)
        w = (pos - lo).reshape((-1,) + (1,) * (values.ndim - 2))
        out[i] = (1 - w) * values[i, lo] + w * values[i, lo + 1]
    return out


def paper_layer(n_layers: int) -> int:
    """The layer at the relative depth MIGR plots (the 21st of 28): ``round(0.75·L) − 1``.

    Args:
        n_layers: L.
    Returns:
        The 0-based layer index (at least 0).
    """
    return max(0, round(0.75 * n_layers) - 1)


def drift_curves(source, by: str | None = None, layer=None, exclude_prompt: bool = False,
                 n_points: int = NORM_STEPS, mi=None) -> xr.Dataset:
    """Averaged, step-normalised drift curves from a drift run (Fig. 5): the mean over samples of
    each sample's normalised curve (:func:`normalise_steps`).

    Args:
        source: a drift run (Dataset or store path).
        by: a per-sample coordinate to split on (``"subset"``, ``"mi"``, ...); the split dim also holds ``"all"``.
        layer: ``None`` keeps the layer dim, an int or list selects, ``"mean"`` averages over layers,
            ``"paper"`` picks :func:`paper_layer`.
        exclude_prompt: drop the prompt-text group and renormalise over visual, audio and generated (Fig. 5).
        n_points: points of the normalised axis (``norm_step`` runs 0..100).
        mi: an MI run that supplies ``mi`` labels for drift runs stored without them.
    Returns:
        Dataset with ``share`` ``([by,] group, norm_step[, layer])`` and ``n_samples`` ``([by])``.
    """
    ds = open_run(source) if isinstance(source, (str, Path)) else source
    share = ds.share.transpose("sample", "step", "layer", "group")
    groups = list(np.asarray(share.group.values).astype(str))
    values = share.values.astype(np.float64)
    if exclude_prompt:
        keep = [g for g in groups if g != "text"]
        values = values[..., [groups.index(g) for g in keep]]
        with np.errstate(invalid="ignore", divide="ignore"):
            values = values / values.sum(-1, keepdims=True)
        groups = keep
    layers = np.asarray(share.layer.values)
    if isinstance(layer, str) and layer == "paper":
        layer = paper_layer(len(layers))
    if isinstance(layer, str) and layer == "mean":
        values, layers = values.mean(2, keepdims=True), None
    elif layer is not None:
        pick = [layer] if np.ndim(layer) == 0 else list(layer)
        values, layers = values[:, :, pick], (np.asarray(pick) if np.ndim(layer) else None)
    curves = normalise_steps(values, ds.n_steps.values, n_points)  # [S, P, L, G]
    norm_step = np.linspace(0, 100, n_points)
    if n_points == NORM_STEPS:
        norm_step = norm_step.round().astype(int)
    if by is None:
        splits = {None: np.ones(curves.shape[0], bool)}
    else:
        keys = _split_keys(ds, by, mi)
        order = _split_order(by, keys)
        splits = {"all": np.ones(len(keys), bool), **{k: keys == k for k in order}}
    means, counts = [], []
    for pick in splits.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means.append(np.nanmean(curves[pick], axis=0) if pick.any() else np.full(curves.shape[1:], np.nan))
        counts.append(int((np.asarray(ds.n_steps.values)[pick] > 0).sum()))
    data = np.stack(means).transpose(0, 3, 1, 2)  # [split, group, P, L]
    dims, coords = ["group", "norm_step", "layer"], {"group": groups, "norm_step": norm_step}
    if layers is None:
        data, dims = data[..., 0], dims[:2]
    else:
        coords["layer"] = layers
    if by is None:
        out = xr.Dataset({"share": (dims, data[0]), "n_samples": ((), counts[0])}, coords=coords)
    else:
        coords[by] = list(splits)
        out = xr.Dataset({"share": ([by, *dims], data), "n_samples": (by, counts)}, coords=coords)
    out.attrs = {"n_points": n_points, "exclude_prompt": bool(exclude_prompt),
                 "layer": "all" if layer is None else str(layer),
                 "normalisation": "step j of n at 100*j/(n-1), linear interpolation; mean over samples",
                 "source": str(ds.attrs.get("path", ""))}
    return out


def _split_keys(ds: xr.Dataset, by: str, mi) -> np.ndarray:
    if by == "mi" and mi is not None:
        labels = mi_labels_of(mi)
        return np.array([labels.get(s, "unknown") for s in np.asarray(ds.sample.values).astype(str)])
    if by not in ds.coords and by not in ds:
        raise ValueError(f"the drift run has no per-sample {by!r}" +
                         (" (pass mi=<an MI run> or run trace_drift with mi=...)" if by == "mi" else ""))
    return np.asarray(ds[by].values).astype(str)


def _split_order(by: str, keys: np.ndarray) -> list[str]:
    present = list(dict.fromkeys(keys.tolist()))
    known = {"subset": SUBSETS, "mi": MI_LABELS}.get(by, ())
    return [k for k in known if k in present] + sorted(k for k in present if k not in known)


def drift_summary(curves: xr.Dataset, at=(0, 50, 100)) -> list[dict]:
    """Single-layer curves read at a few normalised steps, as table rows.

    Args:
        curves: a :func:`drift_curves` result with one layer selected.
        at: the ``norm_step`` values to read.
    Returns:
        One dict per (split, step): the split (column named after the split dim, ``subset`` or ``mi``,
        else ``split``), ``norm_step``, one share per group, and ``n``.
    """
    if "layer" in curves.share.dims:
        raise ValueError("select one layer (layer=int, 'paper' or 'mean') before summarising")
    split = next((d for d in curves.share.dims if d not in ("group", "norm_step")), None)
    names = curves[split].values.tolist() if split else [None]
    rows = []
    for name in names:
        part = curves.share.sel({split: name}) if split else curves.share
        for step in at:
            row = {split or "split": name or "all", "norm_step": step}
            row.update({str(g): float(part.sel(group=g, norm_step=step)) for g in part.group.values})
            row["n"] = int(curves.n_samples.sel({split: name}) if split else curves.n_samples)
            rows.append(row)
    return rows
