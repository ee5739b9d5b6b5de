"""A run's identity: everything that determines its numbers, and nothing else.

Every kind of run (trace, intervene, mi, drift, chair) builds its store config with
:func:`run_identity`; a store accepts a resume only with an equal identity
(:func:`identity_changes` names what differs) and the default store path is named
after it (:func:`default_store`), so the same command twice opens the same store.

========================  =====================================================================
identity                  ``model``: ``describe()`` of the adapter, its ``dtype`` and the content
                          fingerprint of its weight files (the folder it was loaded from, or a
                          hash of its parameters for a model built in memory);
                          ``data``: the benchmark's config (reader, path, subset, limit, options,
                          the fingerprint of every annotation / feature / media file read) and
                          ``sample_ids`` (count and hash of the ordered ids);
                          the kind's ``parameters`` (``at``, ``max_new_tokens``, ``save_rows``, ...);
                          ``interventions`` with their parameters (a checkpoint by content);
                          ``modbias_version`` and the store ``format``.
not identity              ``batch_size``, device, progress, workers, and τ (Eq. 7): every metric
                          derived from the stored sums is computed on read
                          (:func:`modbias.core.metrics.with_metrics`, :func:`read_tau`).
========================  =====================================================================

``save_rows`` is identity because it decides what is stored: a store begun without rows
cannot be completed with them.  ``modbias_version`` is identity because a store must not
hold samples computed by two versions of the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

from modbias import __version__
from modbias.core.fingerprint import digest, folder_fingerprint

FORMAT = 2
"""Store format: 2 keeps the raw sums only and a config made by :func:`run_identity`; stores without it
(format 1: derived metrics stored, ``batch_size`` and ``tau`` in the config) are refused."""

NOT_IDENTITY = ("batch_size", "tau", "device", "progress", "workers", "step_chunk", "label")


class OldStoreFormat(ValueError):
    """A store written before run identities (derived metrics stored, ``batch_size``/``tau`` in its config)."""


def model_identity(model) -> dict:
    """What of a model determines its numbers: ``describe()``, ``dtype`` and ``weights`` fingerprints.

    Args:
        model: a :class:`~modbias.models.base.ModelAdapter`; ``weights_path`` (set by
            :func:`modbias.models.load_model`) names the folder whose files are fingerprinted.
    Returns:
        ``{**model.describe(), "dtype": "torch.float32", "weights": {file: "<bytes>:<sha1>"} | "params:<sha1>"}``.
    """
    source = getattr(model, "weights_path", None) or getattr(model, "path", None)
    if source and Path(source).exists():
        weights = folder_fingerprint(source)
    else:  # built in memory: the parameters themselves
        import hashlib

        import torch

        sha = hashlib.sha1()
        module = model if isinstance(model, torch.nn.Module) else model.backbone
        for name, tensor in sorted(module.state_dict().items()):
            sha.update(name.encode())
            sha.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
        weights = f"params:{sha.hexdigest()[:16]}"
    return {**model.describe(), "dtype": str(model.dtype), "weights": weights}


def data_identity(samples: Sequence, data_config: dict | None) -> dict:
    """The benchmark's config (see :func:`modbias.data.readers.load`) with the ordered sample ids.

    Args:
        samples: the samples in run order (``.id`` each).
        data_config: the benchmark's ``config``; ``{}`` for a plain list of samples, which is then identified
            by its content (:func:`samples_digest`).
    Returns:
        ``{**data_config, "sample_ids": {"count": n, "sha1": hash of the ordered ids}[, "content": hash]}``.
    """
    ids = [s.id for s in samples]
    out = {**(data_config or {}), "sample_ids": {"count": len(ids), "sha1": digest(ids)}}
    if not data_config:
        out["content"] = samples_digest(samples)
    return out


def samples_digest(samples: Sequence) -> str:
    """SHA-1 (16 hex) of what a model reads of each sample.

    Args:
        samples: the run's samples, in order.
    Returns:
        The digest over each sample's id, subset, labels, subtitle, cue emotions, media paths and the
        shapes and bytes of its ``visual`` / ``audio`` features.
    """
    import hashlib

    import numpy as np

    sha = hashlib.sha1()
    for s in samples:
        sha.update(digest([s.id, s.subset, s.label, s.subtitle, s.visual_emotion, s.audio_emotion,
                           {k: v for k, v in s.extra.items() if k.endswith("_path")}]).encode())
        for array in (s.visual, s.audio):
            sha.update(str(array.shape).encode())
            sha.update(np.ascontiguousarray(array).tobytes())
    return sha.hexdigest()[:16]


def intervention_identity(intervention) -> dict:
    """An intervention as its run's identity records it.

    Args:
        intervention: an :class:`~modbias.interventions.base.Intervention`.
    Returns:
        Its ``describe()``; with a ``checkpoint`` that exists, also ``checkpoint_files`` (the content of its files).
    """
    described = intervention.describe()
    checkpoint = described.get("checkpoint")
    if checkpoint and Path(checkpoint).exists():
        described["checkpoint_files"] = folder_fingerprint(checkpoint)
    return described


def run_identity(kind: str, model, samples: Sequence, *, data_config: dict | None = None,
                 interventions: Iterable = (), **parameters) -> dict:
    """The identity of a run: the config its store is written with and compared against on resume.

    Args:
        kind: ``trace``, ``intervene``, ``mi``, ``drift`` or ``chair``.
        model: the adapter (:func:`model_identity`).
        samples: the samples in run order (:func:`data_identity`).
        data_config: the benchmark's config.
        interventions: the interventions applied (:func:`intervention_identity`).
        **parameters: the kind's parameters that determine the numbers (never those of :data:`NOT_IDENTITY`).
    Returns:
        ``{"kind", "format", "model", "data", "parameters", "interventions", "modbias_version"}`` (JSON-able).
    """
    leaked = sorted(set(parameters) & set(NOT_IDENTITY))
    if leaked:
        raise ValueError(f"{leaked} do not determine a run's numbers and are not part of its identity")
    return {"kind": kind, "format": FORMAT, "model": model_identity(model),
            "data": data_identity(samples, data_config), "parameters": parameters,
            "interventions": [intervention_identity(iv) for iv in interventions], "modbias_version": __version__}


# -- comparing identities ------------------------------------------------------------------------
def _short(value) -> str:
    text = repr(value) if not isinstance(value, dict) else "{…}"
    return text if len(text) <= 40 else text[:37] + "…"


def identity_changes(stored: dict, wanted: dict, prefix: str = "") -> list[str]:
    """Every leaf where two identities differ, as ``"path (stored → wanted)"``.

    Args:
        stored, wanted: identities (nested dicts and lists).
        prefix: the dotted path of this level.
    Returns:
        E.g. ``["data.limit (None → 100)", "data.sample_ids (500 samples → 200)",
        "data.files.annotations.csv (changed)"]``; empty when equal.
    """
    if stored == wanted:
        return []
    if prefix.endswith("sample_ids") and isinstance(stored, dict) and isinstance(wanted, dict):
        n_old, n_new = stored.get("count"), wanted.get("count")
        return [f"{prefix} ({n_old} samples → {n_new})" if n_old != n_new
                else f"{prefix} ({n_new} samples, other ids or order)"]
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(stored) | set(wanted), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored:
                out.append(f"{path} (not in the store → {_short(wanted[key])})")
            elif key not in wanted:
                out.append(f"{path} ({_short(stored[key])} → not given)")
            else:
                out += identity_changes(stored[key], wanted[key], path)
        return out
    if isinstance(stored, list) and isinstance(wanted, list) and len(stored) == len(wanted):
        return [c for i, (a, b) in enumerate(zip(stored, wanted)) for c in identity_changes(a, b, f"{prefix}[{i}]")]
    if re.search(r"(^|\.)(files|weights|checkpoint_files)\.", prefix):  # a file's fingerprint: say which file
        return [f"{prefix} (changed)"]
    return [f"{prefix} ({_short(stored)} → {_short(wanted)})"]


def check_format(manifest: dict, path) -> None:
    """Refuse a store of the format before run identities, with how to proceed.

    Args:
        manifest: the store's manifest (``{"kind", "config", ...}``).
        path: the store, for the message.
    Raises:
        OldStoreFormat: the config is not a format-:data:`FORMAT` identity.
    """
    if (manifest.get("config") or {}).get("format") != FORMAT:
        raise OldStoreFormat(f"{path} was written by an earlier modbias (derived metrics stored, batch_size and tau "
                             f"in its config); run the same command again to write a new store (the default --out "
                             f"is now named by the run identity), or read its arrays with xarray.open_zarr")


# -- reading -------------------------------------------------------------------------------------
DEFAULT_TAU = 1.0


def read_tau(identity: dict | None, tau: float | None = None) -> float:
    """τ to read a run at (Eq. 7): ``tau`` when given, else the τ of the run's AR intervention
    (the threshold it chose its heads with), else :data:`DEFAULT_TAU`.

    Args:
        identity: the run's identity (``ds.attrs["config"]``), or None.
        tau: an explicit threshold.
    Returns:
        The threshold.
    """
    if tau is not None:
        return float(tau)
    for intervention in (identity or {}).get("interventions", []):
        if intervention.get("name") == "ar" and intervention.get("tau") is not None:
            return float(intervention["tau"])
    return DEFAULT_TAU


def read_at(ds, tau: float | None = None):
    """A run with its derived metrics at ``tau``: the one reader of Eqs. 1, 5-7 for the CLI, the API
    (:func:`modbias.runs.store.open_run`, :func:`modbias.trace`) and everything built on them.

    Args:
        ds: a run Dataset holding the raw sums ``S_v``, ``S_a`` (dims ..., layer, head) and its identity in
            ``attrs["config"]``; a run without sums (MI, drift, chair) comes back unchanged but for ``attrs["tau"]``.
        tau: threshold of Eq. 7 (default :func:`read_tau`).
    Returns:
        ``ds`` with ``UAP_v, UAP_a, c_h, c, biased`` (:func:`modbias.core.metrics.with_metrics`) and
        ``attrs["tau"]``.
    """
    from modbias.core.metrics import with_metrics

    tau = read_tau(ds.attrs.get("config"), tau)
    out = with_metrics(ds, tau=tau) if "S_a" in ds and "S_v" in ds else ds.copy()
    out.attrs = {**ds.attrs, "tau": tau}
    return out


# -- naming --------------------------------------------------------------------------------------
def intervention_label(interventions: list[dict]) -> str:
    """A readable label of a run's interventions, e.g. ``ar-tau1.0`` or ``mose-checkpointX+ar-tau1.0``.

    Args:
        interventions: intervention descriptions (``{"name": ..., **params}``); ``None`` values are left out,
            a checkpoint is named by its directory.
    Returns:
        The label, with ``/``, ``:`` and spaces replaced by ``_``; ``none`` when empty.
    """
    def value(k, v):  # a checkpoint is named by its directory, other values as they are
        return Path(v).name if k == "checkpoint" else v

    label = "+".join(d["name"] + "".join(f"-{k}{value(k, v)}" for k, v in d.items()
                                         if k not in ("name", "checkpoint_files") and v is not None)
                     for d in interventions)
    return re.sub(r"[/: ]", "_", label) or "none"


def store_name(identity: dict) -> str:
    """A readable store name and the identity's short hash, e.g. ``trace-organism-synth-video_aligned-3f9a2c1b``.

    Args:
        identity: from :func:`run_identity`.
    Returns:
        ``<kind>-<model family>-<data name>-<subset>[-<interventions>]-<8 hex>``; an intervene run without
        interventions (the baseline) is named ``baseline-...``.
    """
    data, interventions = identity.get("data", {}), identity.get("interventions", [])
    kind = "baseline" if identity["kind"] == "intervene" and not interventions else identity["kind"]
    parts = [kind, identity.get("model", {}).get("family", "model"), data.get("name"), data.get("subset")]
    if interventions:
        parts.append(intervention_label(interventions))
    name = "-".join(str(p) for p in parts if p not in (None, "", "all"))
    return f"{re.sub(r'[^A-Za-z0-9_.+=-]', '_', name)}-{digest(identity, 8)}"


def default_store(identity: dict, cache_dir: str | Path = "cache") -> Path:
    """Where a run is stored when no ``out`` is given.

    Args:
        identity: from :func:`run_identity`.
        cache_dir: the folder of run stores.
    Returns:
        ``cache_dir / store_name(identity)``.
    """
    return Path(cache_dir) / store_name(identity)
