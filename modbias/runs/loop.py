"""The one run loop every kind of run goes through: trace, intervene, drift, mi, chair.

A kind of run is a function ``record_batch(samples) -> xarray.Dataset`` (dims start with
``sample``) plus its run config (the identity written to the manifest).  :func:`run` applies
the interventions and, with a store, splits the samples into work units
(:class:`~modbias.runs.store.Unit`): each unit's batches are recorded, written into the unit's
region of the pre-allocated store and committed, so a killed run resumes where it stopped.
The units run in this process, in shard ``i`` of ``n`` of them (other processes run the other
shards into the same store), or on a Dask cluster (:mod:`modbias.runs.distributed`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import xarray as xr

from modbias.core.progress import progress_bar
from modbias.interventions.base import Intervention, applied
from modbias.runs.store import RunStore, Unit, default_unit_size
from modbias.runs.units import RecordBatch, in_shard, parse_shard, record_unit

def run(model, samples: list, record_batch: RecordBatch, *, config: dict,
        interventions: Sequence[Intervention] = (), out: str | Path | None = None, batch_size: int = 32,
        progress: bool = True, label: str | None = None, shard: tuple[int, int] | str | None = None,
        dask: str | None = None, unit_size: int | None = None) -> xr.Dataset:
    """Run ``record_batch`` over ``samples`` with ``interventions`` applied to ``model``.

    Args:
        model: the :class:`~modbias.models.base.ModelAdapter` the interventions attach to.
        samples: the samples, in run order.
        record_batch: ``list[Sample] -> xr.Dataset`` of one batch (dims start with ``sample``).
        config: the run identity; ``config["kind"]`` names the kind of run.
        interventions: active for the whole run (:func:`~modbias.interventions.base.applied`).
        out: a store path: units are committed as they finish and committed units are skipped.
        batch_size, progress, label: batching and the progress bar (not part of the identity).
        shard: ``(i, n)`` or ``"i/n"``: run only the units ``u`` with ``u % n == i`` (needs ``out``).
        dask: ``"local:N"`` or a scheduler address: run the units on a Dask cluster (needs ``out``).
        unit_size: samples per unit of a new store (default :func:`~modbias.runs.store.default_unit_size`).
    Returns:
        The run: the opened store's committed samples with ``out``, else the batches concatenated.
    """
    samples, kind = list(samples), config["kind"]
    shard = parse_shard(shard) if isinstance(shard, str) else shard
    if out is None:
        if shard is not None or dask is not None:
            raise ValueError("--shard and --dask write into a store: give --out")
        with applied(model, list(interventions)), progress_bar(progress) as bar:
            task = bar.add_task(f"{label or kind}: samples", total=len(samples))
            result = record_unit(record_batch, samples, batch_size, lambda n: bar.update(task, advance=n)) \
                if samples else xr.Dataset()
        result.attrs["config"] = config
        return result
    if not samples:
        return xr.Dataset()
    store = RunStore(out)
    with store.writing(shard):
        todo = store.begin(config, kind, [s.id for s in samples],
                           unit_size or default_unit_size(len(samples), batch_size))
        mine = [u for u in todo if in_shard(u.index, shard)]
        if dask is not None:
            from modbias.runs.distributed import run_units_on_dask

            run_units_on_dask(dask, store, mine, samples, model, list(interventions), record_batch, batch_size,
                              progress=progress, label=label or kind)
        else:
            with applied(model, list(interventions)):
                _run_units(store, mine, samples, record_batch, batch_size, progress, label or kind)
    if store.exists:
        return store.open()
    return xr.Dataset(attrs={"path": str(out), "complete": False})  # no unit committed yet (another shard's)


def _run_units(store: RunStore, units: list[Unit], samples: list, record_batch: RecordBatch, batch_size: int,
               progress: bool, label: str) -> None:
    with progress_bar(progress) as bar:
        task = bar.add_task(f"{label}: samples", total=sum(u.stop - u.start for u in units))
        for unit in units:
            with store.claim(unit) as free:
                if free:
                    batch = record_unit(record_batch, samples[unit.start:unit.stop], batch_size,
                                        lambda n: bar.update(task, advance=n))
                    store.write_unit(unit, batch)
                else:
                    bar.update(task, advance=unit.stop - unit.start)
