"""The one run loop every kind of run goes through: trace, intervene, drift, mi, chair.

A kind of run is a function ``record_batch(samples) -> xarray.Dataset`` (dims start with
``sample``) plus its run config (the identity written to the manifest); :func:`run` applies
the interventions, runs the batches and commits each one to the store (:mod:`modbias.runs.store`),
so a killed run resumes where it stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import xarray as xr

from modbias.interventions.base import Intervention, applied
from modbias.runs.store import run_in_batches


def run(model, samples: list, record_batch: Callable[[list], xr.Dataset], *, config: dict,
        interventions: Sequence[Intervention] = (), out: str | Path | None = None, batch_size: int = 32,
        progress: bool = True, label: str | None = None) -> xr.Dataset:
    """Run ``record_batch`` over ``samples`` with ``interventions`` applied to ``model``.

    Args:
        model: the :class:`~modbias.models.base.ModelAdapter` the interventions attach to.
        samples: the samples, in run order.
        record_batch: ``list[Sample] -> xr.Dataset`` of one batch (dims start with ``sample``).
        config: the run identity; ``config["kind"]`` names the kind of run.
        interventions: active for the whole run (:func:`~modbias.interventions.base.applied`).
        out: a store path: batches are committed as they finish and stored samples are skipped.
        batch_size, progress, label: batching and the progress bar (not part of the identity).
    Returns:
        The run: the opened store with ``out``, else the batches concatenated along ``sample``.
    """
    with applied(model, list(interventions)):
        return run_in_batches(samples, record_batch, out=out, config=config, kind=config["kind"],
                              batch_size=batch_size, progress=progress, label=label)
