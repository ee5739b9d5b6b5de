"""Run stores: one xarray Dataset per run, on disk as a zarr v3 group, written in work units.

Layout of a store directory::

    modbias.json   the manifest: kind, config, the plan (samples, ids digest, unit size) and,
                   per committed unit, its sample range and the checksums of what it wrote
    modbias.ids.json   the sample ids in run order
    zarr.json, <variable>/...   the arrays, pre-allocated for every sample (:mod:`modbias.runs.schema`)
    locks/         writer, shard, unit, manifest and creation locks, each with its holder's pid

The samples are split into units of contiguous ranges.  A unit writes only its
own region of every array (one shard file per variable), then commits itself
in the manifest (replaced atomically under the manifest lock): that is the
commit point.  No writer ever appends, so a killed writer leaves at worst an
uncommitted region, which readers never show and a resumed run rewrites.

Readers: :func:`open_run` (committed units only, verified on request; the
manifest's config, kind and summary in ``attrs``) and plain
``xarray.open_zarr(path)`` (every sample, uncommitted ones as fill values).
:func:`verify_store` re-reads every committed unit and compares its checksums.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from modbias.core.fingerprint import digest
from modbias.runs import schema
from modbias.runs.identity import check_format, identity_changes, read_at
from modbias.runs.locks import StoreBusy, exclusive, held, holder

MANIFEST = "modbias.json"
IDS = "modbias.ids.json"  # the run's sample ids in order, written with the plan
LOCKS = "locks"
FORMAT = 2  # 1: appended batches with a ``done`` count (read, never resumed)
MAX_UNITS = 64  # the default unit size keeps a store at about this many units

warnings.filterwarnings("ignore", message=".*StringDType.*")  # vlen strings in zarr v3 are fine for xarray
warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
warnings.filterwarnings("ignore", message=".*(modbias.json|modbias.ids.json|locks) is not recognized.*")
warnings.filterwarnings("ignore", message=".*Consolidated metadata is currently not part.*")

__all__ = ["RunStore", "Unit", "open_run", "verify_store", "read_manifest", "update_manifest", "list_runs", "pad_tokens",
           "RunConfigMismatch", "StoreBusy", "StoreDamaged", "default_unit_size", "plan_units"]


class RunConfigMismatch(ValueError):
    """An existing store was written with another configuration."""


class StoreDamaged(ValueError):
    """Committed samples are missing or do not match their checksums."""


@dataclass(frozen=True)
class Unit:
    """A work unit: samples ``start:stop`` of the run, written as one region."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class Damage:
    """A committed unit whose stored values do not match its checksums."""

    unit: Unit
    variables: list[str]
    sample_ids: list[str]

    def __str__(self) -> str:
        ids = ", ".join(self.sample_ids[:8]) + (f", … ({len(self.sample_ids)} samples)" if len(self.sample_ids) > 8
                                                  else "")
        return f"unit {self.unit.index} (samples {ids}): {', '.join(self.variables)} missing or corrupt"


def default_unit_size(n_samples: int, batch_size: int) -> int:
    """Samples per unit for a new store.

    Args:
        n_samples: the run's samples.
        batch_size: samples per batch.
    Returns:
        The smallest multiple of ``batch_size`` that splits ``n_samples`` into at most :data:`MAX_UNITS` units.
    """
    per_unit = -(-max(n_samples, 1) // MAX_UNITS)
    return batch_size * -(-per_unit // batch_size)


def plan_units(n_samples: int, unit_size: int) -> list[Unit]:
    """The run's work units.

    Args:
        n_samples: the run's samples.
        unit_size: samples per unit.
    Returns:
        Contiguous units of ``unit_size`` samples in order (the last may be shorter).
    """
    return [Unit(i, start, min(start + unit_size, n_samples))
            for i, start in enumerate(range(0, n_samples, unit_size))]


# -- the manifest ------------------------------------------------------------------------------
def read_manifest(path: str | Path) -> dict:
    """The store's manifest.

    Args:
        path: the store.
    Returns:
        The manifest's JSON (``{}`` when there is none).
    """
    path = Path(path) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else {}


def _write_json(path: Path, value) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)  # atomic: a kill leaves the old or the new file


def _write_manifest(path: Path, manifest: dict) -> None:
    _write_json(path / MANIFEST, manifest)


@contextmanager
def _manifest_lock(path: Path):
    with exclusive(path / LOCKS / "manifest.lock", path, wait=120):
        yield


def update_manifest(path: str | Path, **fields) -> None:
    """Add JSON-able fields (e.g. a run summary) to a store's manifest, under the manifest lock.

    Args:
        path: the store.
        **fields: the fields to set.
    """
    path = Path(path)
    with _manifest_lock(path):
        _write_manifest(path, {**read_manifest(path), **_jsonable(fields)})


def _jsonable(config: dict) -> dict:
    return json.loads(json.dumps(config))


def _committed(manifest: dict) -> dict[int, dict]:
    return {int(k): v for k, v in manifest.get("units", {}).items()}


def _check_identity(path: Path, manifest: dict, config: dict, kind: str) -> None:
    """Refuse a store holding another run, naming every field of the identity that differs
    (:func:`modbias.runs.identity.identity_changes`), or a store from before run identities."""
    check_format(manifest, path)
    stored = manifest.get("config", {})
    if stored != config or manifest.get("kind") != kind:
        changed = identity_changes(stored, config) or [f"kind ({manifest.get('kind')} → {kind})"]
        raise RunConfigMismatch(f"{path} holds another {manifest.get('kind')} run; it differs in "
                                f"{', '.join(changed)}; choose another --out or delete the store")


class RunStore:
    """A run's store, written in units by one or many processes.

    >>> store = RunStore("cache/my-run")                                       # doctest: +SKIP
    >>> with store.writing():                                                  # the writer lock
    ...     todo = store.begin({"kind": "trace"}, "trace", ids, unit_size=64)  # units to (re)compute
    ...     for unit in todo:
    ...         with store.claim(unit) as mine:
    ...             if mine:
    ...                 store.write_unit(unit, dataset_of(unit))
    >>> ds = store.open()
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._ids = None

    @property
    def exists(self) -> bool:
        """Whether the store holds allocated arrays (at least one unit was written)."""
        return (self.path / MANIFEST).exists() and (self.path / "zarr.json").exists()

    @property
    def manifest(self) -> dict:
        """The store's manifest as it is on disk now (``{}`` when there is none); see :func:`read_manifest`."""
        return read_manifest(self.path)

    # -- locks ------------------------------------------------------------------------------------
    @contextmanager
    def writing(self, shard: tuple[int, int] | None = None):
        """Hold the store for one writer (``shard=None``) or for shard ``(i, n)`` of n.

        A second plain writer, a plain writer while shards run, a shard while a plain writer
        runs, and the same shard twice, all raise :class:`StoreBusy` at once, naming the pid.

        Args:
            shard: ``(index, count)`` of a sharded run, or ``None`` for a single writer.
        """
        locks = self.path / LOCKS
        if shard is None:
            with exclusive(locks / "writer.lock", self.path):
                running = [p for p in sorted(locks.glob("shard-*.lock")) if held(p)]
                if running:
                    raise StoreBusy(f"store {self.path} is being written by another process ({holder(running[0])})")
                yield
            return
        index, count = shard
        with exclusive(locks / f"shard-{index}-of-{count}.lock", self.path):
            with exclusive(locks / "writer.lock", self.path):
                pass  # no plain writer holds the store
            yield

    def check_free(self, shard: tuple[int, int] | None = None) -> None:
        """Raise :class:`StoreBusy` now if :meth:`writing` would (a check before a model loads).

        Args:
            shard: as for :meth:`writing`.
        """
        if (self.path / LOCKS).is_dir():
            with self.writing(shard):
                pass

    @contextmanager
    def claim(self, unit: Unit):
        """Hold ``unit``'s lock while it is written.

        Args:
            unit: the work unit.
        Returns:
            A context manager yielding whether the unit still needs writing (``False``: another process
            holds it or has committed it).
        """
        with ExitStack() as stack:
            try:
                stack.enter_context(exclusive(self.path / LOCKS / f"unit-{unit.index}.lock", self.path))
            except StoreBusy:
                yield False
                return
            yield unit.index not in _committed(self.manifest)

    # -- writing ----------------------------------------------------------------------------------
    def begin(self, config: dict, kind: str, sample_ids: list[str], unit_size: int) -> list[Unit]:
        """Plan the run, or check it against the stored plan; return the units still to write.

        Args:
            config: the run identity (JSON-able); a store holding another is refused.
            kind: the kind of run.
            sample_ids: every sample of the run, in order (part of the plan: another list is refused).
            unit_size: samples per unit for a new store (a stored plan keeps its own).
        Returns:
            The units not committed, and the committed ones whose checksums fail (recomputed).
        """
        self._config, self._kind = _jsonable(config), kind
        if len(set(sample_ids)) != len(sample_ids):
            raise ValueError(f"duplicate sample ids in the run (e.g. {_first_duplicate(sample_ids)!r})")
        self.path.mkdir(parents=True, exist_ok=True)
        plan = {"format": FORMAT, "samples": len(sample_ids), "ids": digest(list(sample_ids), 16)}
        with _manifest_lock(self.path):
            manifest = read_manifest(self.path)
            if not manifest:
                manifest = {"kind": kind, "config": self._config, **plan, "unit_size": unit_size, "units": {},
                            "done": 0, "created": _dt.datetime.now().isoformat(timespec="seconds")}
                _write_json(self.path / IDS, list(sample_ids))
                _write_manifest(self.path, manifest)
        _check_identity(self.path, manifest, self._config, kind)
        if manifest.get("format") != FORMAT:
            raise RunConfigMismatch(f"{self.path} was written by an older modbias (appended batches); "
                                    f"choose another --out or delete the store to rerun it")
        if (manifest["samples"], manifest["ids"]) != (plan["samples"], plan["ids"]):
            raise RunConfigMismatch(f"{self.path} holds a run of other samples (differs in sample ids: "
                                    f"{manifest['samples']} stored, {len(sample_ids)} now); choose another --out")
        self.attach(self._config, kind, int(manifest["unit_size"]))
        self._ids = list(sample_ids)
        damaged = {d.unit.index for d in verify_store(self.path)} if self.exists else set()
        if damaged:
            self._uncommit(damaged)
        committed = set(_committed(read_manifest(self.path)))
        return [u for u in plan_units(len(sample_ids), self.unit_size) if u.index not in committed]

    def attach(self, config: dict, kind: str, unit_size: int) -> None:
        """Take a begun run's :attr:`plan` (in another process that writes units of it).

        Args:
            config: the run identity, as :meth:`begin` stored it.
            kind: the kind of run.
            unit_size: samples per unit of the stored plan.
        """
        self._config, self._kind, self.unit_size, self._ids = config, kind, unit_size, None

    @property
    def plan(self) -> dict:
        """What :meth:`attach` takes: the run's config, kind and unit size."""
        return {"config": self._config, "kind": self._kind, "unit_size": self.unit_size}

    @property
    def sample_ids(self) -> list[str]:
        """The run's sample ids, in order (read from the store in a process that attached)."""
        if self._ids is None:
            self._ids = json.loads((self.path / IDS).read_text())
        return self._ids

    def _uncommit(self, indices: set[int]) -> None:
        with _manifest_lock(self.path):
            manifest = read_manifest(self.path)
            units = {k: v for k, v in manifest["units"].items() if int(k) not in indices}
            _write_manifest(self.path, {**manifest, "units": units, "done": _done(units)})

    def allocate(self, template: xr.Dataset) -> None:
        """Create every array for all samples from one batch (once, whichever writer comes first).

        Args:
            template: a batch of the run; its variables, dtypes and non-sample dims shape the arrays.
        """
        with exclusive(self.path / LOCKS / "create.lock", self.path, wait=600):
            if read_manifest(self.path).get("allocated"):
                return
            schema.create_arrays(self.path, template, self.sample_ids, self.unit_size,
                                 {"config": self._config, "kind": self._kind})
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*not recognized as a component.*")
                zarr.consolidate_metadata(self.path, zarr_format=3)  # arrays never change shape after this
            update_manifest(self.path, allocated=True)

    def write_unit(self, unit: Unit, batch: xr.Dataset) -> None:
        """Write a unit's samples into its region of every array, then commit it.

        Args:
            unit: the work unit.
            batch: the unit's samples, in run order (a ``ValueError`` otherwise).
        """
        ids = [str(i) for i in np.asarray(batch[schema.SAMPLE].values).tolist()]
        if ids != self.sample_ids[unit.start:unit.stop]:
            raise ValueError(f"unit {unit.index}: the batch holds samples {ids[:3]}…, not the unit's "
                             f"{self.sample_ids[unit.start:unit.stop][:3]}…")
        self.allocate(batch)
        self.commit(unit, schema.write_region(self.path, batch, unit.start, unit.stop))

    def commit(self, unit: Unit, checksums: dict[str, str]) -> bool:
        """Record ``unit`` as written in the manifest (the commit point).

        Args:
            unit: the work unit.
            checksums: the checksum of each variable's region, as :func:`schema.write_region` returned them.
        Returns:
            Whether every unit is now committed.
        """
        with _manifest_lock(self.path):
            manifest = read_manifest(self.path)
            units = {**manifest["units"], str(unit.index): {"start": unit.start, "stop": unit.stop,
                                                             "checksums": checksums}}
            _write_manifest(self.path, {**manifest, "units": units, "done": _done(units)})
        return _done(units) == manifest["samples"]

    def open(self, verify: bool = False) -> xr.Dataset:
        """The committed samples of the store (:func:`open_run` at the run's own τ).

        Args:
            verify: re-read every committed unit against its checksums first.
        Returns:
            The run's Dataset.
        """
        return open_run(self.path, verify=verify)


def _done(units: dict) -> int:
    return sum(u["stop"] - u["start"] for u in units.values())


def _first_duplicate(ids: list[str]) -> str:
    seen = set()
    return next(i for i in ids if i in seen or seen.add(i))


# -- reading -------------------------------------------------------------------------------------
def verify_store(path: str | Path) -> list[Damage]:
    """Re-read every committed unit of a store and compare it with its checksums.

    Args:
        path: the store.
    Returns:
        One :class:`Damage` per unit whose variables are missing or differ, naming its sample ids
        (empty: the committed part is intact, or the store predates units).
    """
    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("format") != FORMAT:
        return []
    ids = None
    damage = []
    for index, record in sorted(_committed(manifest).items()):
        expected = record["checksums"]
        found = schema.unit_checksums(path, sorted(expected), record["start"], record["stop"])
        bad = [name for name in sorted(expected) if found[name] != expected[name]]
        if bad:
            if ids is None:
                ids = _sample_ids(path, manifest)
            unit = Unit(index, record["start"], record["stop"])
            damage.append(Damage(unit, bad, ids[unit.start:unit.stop]))
    return damage


def _sample_ids(path: Path, manifest: dict) -> list[str]:
    ids = zarr.open_group(path, mode="r", zarr_format=3, use_consolidated=False)[schema.SAMPLE][:].tolist()
    if len(ids) != manifest["samples"] or digest(list(ids), 16) != manifest["ids"]:
        raise StoreDamaged(f"{path}: the sample ids on disk do not match the manifest; the store is damaged")
    return ids


def _plain_strings(ds: xr.Dataset) -> xr.Dataset:
    """numpy ``str`` arrays instead of zarr v3's StringDType (small coords: loaded eagerly)."""
    fixed = {k: (v.dims, np.asarray(v.values.tolist(), dtype=str)) for k, v in ds.variables.items()
             if v.dtype.kind == "T"}
    return ds.assign_coords({k: v for k, v in fixed.items() if k in ds.coords}).assign(
        {k: v for k, v in fixed.items() if k not in ds.coords})


def committed_indices(manifest: dict) -> np.ndarray:
    """The positions of the committed samples.

    Args:
        manifest: a store's manifest (:func:`read_manifest`).
    Returns:
        ``int`` positions in run order (units in order; the first ``done`` of a format-1 store).
    """
    if manifest.get("format") != FORMAT:
        return np.arange(int(manifest.get("done", 0)))
    ranges = [np.arange(u["start"], u["stop"]) for _, u in sorted(_committed(manifest).items())]
    return np.concatenate(ranges) if ranges else np.arange(0)


def open_run(path: str | Path, tau: float | None = None, verify: bool = False) -> xr.Dataset:
    """Open a stored run lazily, committed samples only: the reader to analyse a run with.

    A run still being written, or killed, opens with the units committed so far (``attrs["complete"]``
    says whether that is all of it).  The run's ``config``, ``kind``, ``path``, ``created`` and ``summary``
    are in ``ds.attrs``.  A store keeps the raw sums only; UAP, c_h, c and the biased heads are derived from
    them on read (:func:`modbias.core.metrics.with_metrics`, Eqs. 1, 5-7) at ``tau``, by default the run's own
    (:func:`modbias.runs.identity.read_tau`: AR's τ for a run under AR, else 1), recorded in ``attrs["tau"]``.

    Args:
        path: the store.
        tau: the threshold τ of Eq. 7 to derive the metrics at (``None``: the run's own).
        verify: re-read every committed unit against its checksums first (:func:`verify_store`).
    Returns:
        The Dataset of the committed samples, in run order.
    Raises:
        FileNotFoundError: no store at ``path``.  StoreDamaged: committed samples missing or corrupt.
        :class:`~modbias.runs.identity.OldStoreFormat`: a store from before run identities.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if not manifest or not (path / "zarr.json").exists():
        raise FileNotFoundError(f"no modbias run store at {path}" +
                                (" (no unit committed yet)" if manifest else ""))
    check_format(manifest, path)
    if verify:
        damage = verify_store(path)
        if damage:
            raise StoreDamaged(f"{path}: " + "; ".join(map(str, damage)) +
                               " — rerun the command that wrote it to recompute them")
    ds = xr.open_zarr(path, consolidated=False, chunks=None)  # every array's own metadata; lazy, no dask
    index = committed_indices(manifest)
    expected = manifest.get("samples", int(manifest.get("done", 0)))
    if ds.sizes.get("sample", 0) < max(expected, len(index)):
        raise StoreDamaged(f"{path}: the manifest commits {max(expected, len(index))} samples but the arrays hold "
                           f"{ds.sizes.get('sample', 0)}; the store is damaged")
    if len(index) != ds.sizes["sample"]:
        ds = ds.isel(sample=index)
    ds = _plain_strings(ds)
    ds.attrs = {"config": manifest["config"], "kind": manifest["kind"], "path": str(path),
                "created": manifest.get("created"), "summary": manifest.get("summary"),
                "complete": len(index) == expected}
    return read_at(ds, tau)


def list_runs(cache: str | Path = "cache") -> list[Path]:
    """Every run store directly under ``cache``.

    Args:
        cache: a directory.
    Returns:
        The store paths (those holding a manifest), sorted.
    """
    cache = Path(cache)
    return sorted(p for p in cache.iterdir() if (p / MANIFEST).exists()) if cache.exists() else []


def pad_tokens(array: np.ndarray, capacity: int, fill=0) -> np.ndarray:
    """Pad the last (token) axis to ``capacity``.

    Args:
        array: ``[..., T]``.
        capacity: the store's token capacity; ``T > capacity`` raises ``ValueError``.
        fill: value of the padded positions.
    Returns:
        ``[..., capacity]``.
    """
    if array.shape[-1] > capacity:
        raise ValueError(f"token axis {array.shape[-1]} exceeds the store's capacity {capacity}")
    pad = [(0, 0)] * (array.ndim - 1) + [(0, capacity - array.shape[-1])]
    return np.pad(array, pad, constant_values=fill)
