"""The store schema: how a run's batches become zarr arrays, in one place.

A kind of run (trace, intervene, drift, mi, captioning) is only a function
``batch -> xarray.Dataset`` whose per-sample variables and coordinates have
``sample`` as their first dim.  Everything about how that lands on disk is
decided here, from the first unit a run writes:

- **variables and dims**: those of the batch; every array spans all the run's
  samples (pre-allocated), the other dims keep the batch's sizes, so every
  later batch must have them too (:func:`check_batch` names the field that
  does not);
- **dtypes**: the batch's, except :data:`COMPACT` variables (attention rows are
  stored as float16 and read back, lazily, as float64 through a unit
  ``scale_factor``) and strings, stored as zarr's variable-length strings so
  ids and generated texts of any length survive region writes;
- **fill values** (:func:`fill_value`): what an uncommitted sample reads as —
  NaN, 0, False or "";
- **chunks and shards** (:func:`chunking`): one shard file per work unit and
  variable; a variable whose one sample is large (rows) has one chunk per
  sample inside the shard, so reading one sample's rows touches one shard and
  one chunk, and the store's file count is (variables × units), not
  (variables × batches).

Each committed unit is recorded with the digests :func:`write_region` returns;
:func:`unit_checksums` recomputes them from disk, so a missing or corrupt
shard is found (:mod:`modbias.runs.store`).
"""

from __future__ import annotations

import hashlib

import numpy as np
import xarray as xr
import zarr

SAMPLE = "sample"
COMPACT = {"rows": np.dtype("float16")}  # attention probabilities: 3 significant digits are plenty
LARGE_SAMPLE_BYTES = 4 * 1024  # from this size, one chunk per sample inside the unit's shard


class SchemaMismatch(ValueError):
    """A batch does not fit the store's arrays."""


def is_string(dtype: np.dtype) -> bool:
    """Whether a dtype holds strings (numpy unicode, object or StringDType).

    Args:
        dtype: the dtype.
    Returns:
        ``True`` for kinds ``U``, ``O`` and ``T``.
    """
    return np.dtype(dtype).kind in "UOT"


def store_dtype(name: str, dtype: np.dtype) -> np.dtype | type:
    """The dtype variable ``name`` is stored in.

    Args:
        name: the variable's name.
        dtype: its dtype in the batch.
    Returns:
        ``str`` (zarr's variable-length strings) for strings, the :data:`COMPACT` dtype for those, else ``dtype``.
    """
    if is_string(dtype):
        return str
    return COMPACT.get(name, np.dtype(dtype))


def fill_value(dtype) -> object:
    """What an unwritten (uncommitted) element reads as.

    Args:
        dtype: a stored dtype (:func:`store_dtype`).
    Returns:
        NaN for floats, ``""`` for strings, ``False`` for booleans, 0 otherwise.
    """
    if dtype is str:
        return ""
    dtype = np.dtype(dtype)
    return np.nan if dtype.kind in "fc" else (False if dtype.kind == "b" else 0)


def encoded(name: str, values) -> np.ndarray:
    """``values`` of variable ``name`` as written.

    Args:
        name: the variable's name.
        values: its values, any shape.
    Returns:
        The same shape: strings as an object array of ``str``, numbers cast to :func:`store_dtype`.
    """
    values = np.asarray(values)
    if is_string(values.dtype):
        return np.asarray([str(v) for v in values.reshape(-1).tolist()], dtype=object).reshape(values.shape)
    return np.ascontiguousarray(values.astype(store_dtype(name, values.dtype)))


def chunking(name: str, shape: tuple[int, ...], dtype, unit_size: int) -> dict:
    """``chunks`` (and ``shards``) of a per-sample array.

    Args:
        name: the variable's name.
        shape: its shape in the store, ``(samples, ...)``.
        dtype: its stored dtype.
        unit_size: samples per work unit.
    Returns:
        ``{"chunks": (unit_size, ...)}`` (one chunk file per unit), or for a variable whose one sample holds
        :data:`LARGE_SAMPLE_BYTES` or more ``{"chunks": (1, ...), "shards": (unit_size, ...)}`` (one shard file
        per unit, one chunk per sample inside it).
    """
    rest = tuple(shape[1:])
    itemsize = 16 if dtype is str else np.dtype(dtype).itemsize
    per_sample = itemsize * int(np.prod(rest, dtype=np.int64))
    if per_sample >= LARGE_SAMPLE_BYTES and dtype is not str:
        return {"chunks": (1, *rest), "shards": (unit_size, *rest)}
    return {"chunks": (unit_size, *rest)}


def per_sample_names(ds: xr.Dataset) -> list[str]:
    """The names of a batch's variables and coordinates along ``sample``.

    Args:
        ds: a batch (dims of per-sample variables start with ``sample``).
    Returns:
        Their names, sorted; the index ``sample`` itself excluded.
    """
    return sorted(n for n, v in ds.variables.items() if n != SAMPLE and v.dims[:1] == (SAMPLE,))


def create_arrays(path, template: xr.Dataset, sample_ids: list[str], unit_size: int, attrs: dict) -> None:
    """Allocate the whole store at ``path`` from one batch: every per-sample variable spans
    ``len(sample_ids)`` samples (filled with :func:`fill_value`), the ``sample`` index holds all ids,
    and variables without a sample dim (coords such as ``at`` or ``condition``) are written whole.

    Args:
        path: the store directory (a zarr v3 group is created there; other files are kept).
        template: a batch of the run (dims of per-sample variables start with ``sample``).
        sample_ids: every sample of the run, in run order.
        unit_size: samples per work unit (= per shard).
        attrs: the group attributes (the run's ``config`` and ``kind``, for plain ``xarray.open_zarr``).
    """
    group = zarr.open_group(path, mode="a", zarr_format=3)
    coords = sorted(c for c in template.coords if c not in template.dims)
    group.attrs.update({**attrs, "coordinates": " ".join(coords)})  # read back as coords by xarray
    n = len(sample_ids)
    ids = group.create_array(SAMPLE, shape=(n,), dtype=str, chunks=(max(n, 1),), dimension_names=[SAMPLE],
                             fill_value="", overwrite=True)
    ids[:] = np.asarray(sample_ids, dtype=object)
    for name, var in template.variables.items():
        if name == SAMPLE:
            continue
        dtype = store_dtype(name, var.dtype)
        along = var.dims[:1] == (SAMPLE,)
        shape = (n, *var.shape[1:]) if along else var.shape
        layout = chunking(name, shape, dtype, unit_size) if along else {"chunks": shape or None}
        attributes = {**var.attrs, **({"scale_factor": 1.0} if name in COMPACT else {})}  # read back as float64
        array = group.create_array(name, shape=shape, dtype=dtype, fill_value=fill_value(dtype),
                                   dimension_names=list(var.dims), attributes=attributes, overwrite=True, **layout)
        if not along:
            array[...] = encoded(name, var.values)


def check_batch(path, batch: xr.Dataset, start: int, stop: int) -> None:
    """Check that ``batch`` fits the store's arrays.

    Args:
        path: the store (allocated).
        batch: the samples ``start:stop``.
        start, stop: the region along ``sample``.
    Raises:
        SchemaMismatch: naming the samples and the field (a variable missing or extra, or other dims).
    """
    group = zarr.open_group(path, mode="r", zarr_format=3)
    stored = {n for n in group.array_keys() if n != SAMPLE
              and (group[n].metadata.dimension_names or (None,))[0] == SAMPLE}
    names = set(per_sample_names(batch))
    if names != stored:
        raise SchemaMismatch(f"samples {start}:{stop}: the batch has variables {sorted(names ^ stored)} "
                             f"{'not in' if names - stored else 'missing from'} the store")
    for name in sorted(names):
        array, var = group[name], batch[name]
        if tuple(array.metadata.dimension_names) != var.dims or tuple(array.shape[1:]) != var.shape[1:]:
            raise SchemaMismatch(f"samples {start}:{stop}: field {name!r} has dims {dict(zip(var.dims, var.shape))}; "
                                 f"the store holds {dict(zip(array.metadata.dimension_names, array.shape))}")
    if batch.sizes[SAMPLE] != stop - start:
        raise SchemaMismatch(f"samples {start}:{stop}: the batch holds {batch.sizes[SAMPLE]} samples")


def digest(values: np.ndarray) -> str:
    """A short content hash of one encoded array.

    Args:
        values: an array as :func:`encoded` returns it or zarr reads it back.
    Returns:
        16 hex digits (BLAKE2b) of its shape and content: strings by their UTF-8 text, numbers by dtype and bytes.
    """
    h = hashlib.blake2b(digest_size=8)
    values = np.asarray(values)
    if is_string(values.dtype):
        h.update("\x1f".join(str(v) for v in values.reshape(-1).tolist()).encode())
        h.update(str(values.shape).encode())
    else:
        h.update(str(values.dtype).encode() + str(values.shape).encode())
        h.update(np.ascontiguousarray(values).tobytes())
    return h.hexdigest()


def write_region(path, batch: xr.Dataset, start: int, stop: int) -> dict[str, str]:
    """Write ``batch`` into samples ``start:stop`` of every per-sample array.

    Args:
        path: the store (allocated by :func:`create_arrays`).
        batch: the samples ``start:stop``, in order.
        start, stop: the region along ``sample``.
    Returns:
        ``{variable: digest}`` of what was written (the encoded values): the unit's checksums.
    """
    check_batch(path, batch, start, stop)
    group = zarr.open_group(path, mode="r+", zarr_format=3)
    sums = {}
    for name in per_sample_names(batch):
        values = encoded(name, batch[name].values)
        group[name][start:stop] = values
        sums[name] = digest(values)
    return sums


def unit_checksums(path, names: list[str], start: int, stop: int) -> dict[str, str | None]:
    """The digests of a unit's region as read back from disk.

    Args:
        path: the store.
        names: the per-sample variables to read.
        start, stop: the region along ``sample``.
    Returns:
        ``{name: digest}`` (:func:`digest`); ``None`` for a variable that cannot be read.
    """
    group = zarr.open_group(path, mode="r", zarr_format=3, use_consolidated=False)
    out = {}
    for name in names:
        try:
            values = group[name][start:stop]
        except Exception:  # noqa: BLE001 - a missing array or an undecodable shard is damage to report
            out[name] = None
            continue
        out[name] = digest(encoded(name, values) if is_string(values.dtype) else values)
    return out
