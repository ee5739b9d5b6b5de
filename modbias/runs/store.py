"""Run stores: one xarray Dataset per run, on disk as a zarr v3 group.

Batches are appended along ``sample``.  After each append the manifest
``modbias.json`` (replaced atomically, outside zarr's own metadata) advances
its ``done`` count: that is the commit point.  A run killed mid-append
leaves arrays longer than ``done``; readers ignore the excess and a resumed
run cuts it back, so every finished sample is stored exactly once.

Two readers: :func:`open_run` (committed samples only, the manifest's
config, kind and summary in ``attrs``; use it, or :func:`modbias.open_run`,
to analyse a run) and plain ``xarray.open_zarr(path)``, which opens any
store without warnings from its consolidated metadata (rewritten after
every append) and shows the run's ``config`` and ``kind`` in ``attrs``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from modbias.runs.identity import check_format, identity_changes, read_at

MANIFEST = "modbias.json"  # {"kind", "config", "done"}: the commit record, outside zarr's attrs

warnings.filterwarnings("ignore", message=".*StringDType.*")  # vlen strings in zarr v3 are fine for xarray
warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
warnings.filterwarnings("ignore", message=".*modbias.json is not recognized.*")


class RunConfigMismatch(ValueError):
    """An existing store was written with another configuration."""


def _strings_as_objects(ds: xr.Dataset) -> xr.Dataset:
    """Variable-length strings, so batches with longer ids/texts can be appended."""
    fixed = {k: (v.dims, np.asarray(v.values, dtype=object)) for k, v in ds.variables.items() if v.dtype.kind == "U"}
    return ds.assign_coords({k: v for k, v in fixed.items() if k in ds.coords}).assign(
        {k: v for k, v in fixed.items() if k not in ds.coords})


def _plain_strings(ds: xr.Dataset) -> xr.Dataset:
    """numpy ``str`` arrays instead of zarr v3's StringDType (small coords: loaded eagerly)."""
    fixed = {k: (v.dims, np.asarray(v.values.tolist(), dtype=str)) for k, v in ds.variables.items()
             if v.dtype.kind == "T"}
    return ds.assign_coords({k: v for k, v in fixed.items() if k in ds.coords}).assign(
        {k: v for k, v in fixed.items() if k not in ds.coords})


def read_manifest(path: str | Path) -> dict:
    path = Path(path) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _write_manifest(path: Path, manifest: dict) -> None:
    tmp = path / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, path / MANIFEST)  # atomic: a kill leaves the old or the new record


def update_manifest(path: str | Path, **fields) -> None:
    """Add JSON-able fields (e.g. a run summary) to a store's manifest."""
    path = Path(path)
    _write_manifest(path, {**read_manifest(path), **_jsonable(fields)})


def _jsonable(config: dict) -> dict:
    return json.loads(json.dumps(config))


class RunStore:
    """A resumable, append-only zarr store of one run.

    >>> store = RunStore("cache/my-run")                          # doctest: +SKIP
    >>> done = store.begin({"model": "organism"}, kind="trace")   # ids already stored
    >>> store.append(batch_dataset)
    >>> ds = store.open()
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def exists(self) -> bool:
        return (self.path / MANIFEST).exists() and (self.path / "zarr.json").exists()

    def begin(self, config: dict, kind: str) -> set[str]:
        """Check the run identity against an existing store, cut back uncommitted rows, return the ids done.

        Args:
            config: the run identity (:func:`modbias.runs.identity.run_identity`).
            kind: the kind of run.
        Returns:
            The ids of the samples already committed.
        Raises:
            RunConfigMismatch: the store holds another run; the message names every field that differs
            (:func:`modbias.runs.identity.identity_changes`).  OldStoreFormat: a store from before run identities.
        """
        self._config, self._kind = _jsonable(config), kind
        if not self.exists:
            return set()
        manifest = read_manifest(self.path)
        check_format(manifest, self.path)
        stored = manifest.get("config", {})
        if stored != self._config or manifest.get("kind") != kind:
            changed = identity_changes(stored, self._config) or [f"kind ({manifest.get('kind')} → {kind})"]
            raise RunConfigMismatch(f"{self.path} holds another {manifest.get('kind')} run; it differs in "
                                    f"{', '.join(changed)}; choose another --out or delete the store")
        done = int(manifest["done"])
        group = zarr.open_group(self.path, mode="r+", use_consolidated=False)  # the arrays as they are
        for name in group.array_keys():
            array = group[name]
            if (array.metadata.dimension_names or (None,))[0] == "sample" and array.shape[0] > done:
                array.resize((done, *array.shape[1:]))
        _consolidate(self.path)
        return set(open_run(self.path)["sample"].values.tolist()) if done else set()

    def append(self, batch: xr.Dataset) -> None:
        """Append a batch along ``sample``, then commit it in the manifest."""
        batch = _strings_as_objects(batch)
        batch.attrs = {"config": self._config, "kind": self._kind}  # for plain xarray.open_zarr readers
        if self.exists:
            done = int(read_manifest(self.path)["done"])
            batch.to_zarr(self.path, append_dim="sample", zarr_format=3, consolidated=False)
        else:
            done = 0
            batch.to_zarr(self.path, mode="w", zarr_format=3, consolidated=False)
        _consolidate(self.path)
        manifest = read_manifest(self.path) if done else {"created": _dt.datetime.now().isoformat(timespec="seconds")}
        _write_manifest(self.path, {**manifest, "kind": self._kind, "config": self._config,
                                    "done": done + batch.sizes["sample"]})

    def open(self) -> xr.Dataset:
        return open_run(self.path)


def _consolidate(path: Path) -> None:
    """Rewrite the store's consolidated metadata, so ``xarray.open_zarr(path)`` opens it directly
    (zarr lists no directory then, and so never meets the manifest)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
        warnings.filterwarnings("ignore", message=".*Consolidated metadata is currently not part.*")
        zarr.consolidate_metadata(path, zarr_format=3)


def run_in_batches(samples: list, process, *, out: str | Path | None, config: dict, kind: str, batch_size: int,
                   progress: bool = True, label: str | None = None) -> xr.Dataset:
    """Apply ``process(batch) -> Dataset`` to ``samples`` batch by batch.

    With ``out`` every batch is committed to a :class:`RunStore` as it finishes,
    and samples already stored there are skipped (resume); returns the stored
    run.  Without ``out`` the batches are concatenated in memory.  ``progress``
    shows a bar counting samples, described by ``label`` (default: ``kind``).
    """
    from modbias.core.progress import progress_bar

    store = RunStore(out) if out is not None else None
    done = store.begin(config, kind=kind) if store else set()
    todo = [s for s in samples if s.id not in done]
    parts = []
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{label or kind}: samples", total=len(samples), completed=len(samples) - len(todo))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            ds = process(chunk)
            if store:
                store.append(ds)
            else:
                parts.append(ds)
            bar.update(task, advance=len(chunk))
    if store:
        return store.open() if store.exists else xr.Dataset()
    result = xr.concat(parts, dim="sample") if parts else xr.Dataset()
    result.attrs["config"] = config
    return result


def open_run(path: str | Path, tau: float | None = None) -> xr.Dataset:
    """Open a stored run lazily, committed samples only: the reader to analyse a run with.

    It verifies the store (a manifest, zarr metadata, arrays holding every committed sample)
    and puts the run's ``config``, ``kind``, ``path``, ``created``, ``summary`` and ``tau`` in ``ds.attrs``.
    A store keeps the raw sums only; UAP, c_h, c and the biased heads are derived from them on read
    (:func:`modbias.core.metrics.with_metrics`, Eqs. 1, 5-7) at ``tau``, by default the run's own
    (:func:`modbias.runs.identity.read_tau`: AR's τ for a run under AR, else 1).

    Args:
        path: the store.
        tau: the threshold of Eq. 7 to read the biased heads at.
    Returns:
        The Dataset (dask-backed).
    Raises:
        FileNotFoundError: no store at ``path``; :class:`~modbias.runs.identity.OldStoreFormat`: a store of
        the format before run identities.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if not manifest or not (path / "zarr.json").exists():
        raise FileNotFoundError(f"no modbias run store at {path}")
    check_format(manifest, path)
    done = int(manifest["done"])
    ds = xr.open_zarr(path, consolidated=False)
    if ds.sizes.get("sample", 0) < done:
        raise ValueError(f"{path}: the manifest commits {done} samples but the arrays hold "
                         f"{ds.sizes.get('sample', 0)}; the store is damaged")
    ds = _plain_strings(ds.isel(sample=slice(0, done)))
    ds.attrs = {"config": manifest["config"], "kind": manifest["kind"], "path": str(path),
                "created": manifest.get("created"), "summary": manifest.get("summary")}
    return read_at(ds, tau)


def list_runs(cache: str | Path = "cache") -> list[Path]:
    """Every run store directly under ``cache``."""
    cache = Path(cache)
    return sorted(p for p in cache.iterdir() if (p / MANIFEST).exists()) if cache.exists() else []


def pad_tokens(array: np.ndarray, capacity: int, fill=0) -> np.ndarray:
    """Pad (or check) the last axis to ``capacity``."""
    if array.shape[-1] > capacity:
        raise ValueError(f"token axis {array.shape[-1]} exceeds the store's capacity {capacity}")
    pad = [(0, 0)] * (array.ndim - 1) + [(0, capacity - array.shape[-1])]
    return np.pad(array, pad, constant_values=fill)
