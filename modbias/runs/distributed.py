"""Work units on a Dask cluster (the optional ``[dask]`` extra: dask.distributed).

``--dask local:N`` starts a ``LocalCluster`` of N single-threaded worker processes
(``LocalCUDACluster`` from dask-cuda, one GPU per worker, when GPUs are present and
dask-cuda is installed); any other value is the address of a running scheduler
(``tcp://host:8786``, e.g. started by dask-jobqueue on SLURM).

The run's ``record_batch``, the model and its interventions travel with each task, pickled with
the model as its ``load_model`` spec (:func:`modbias.models.base.pickled_by_spec`), so a task
is a few kilobytes; each worker unpickles that job once (cached by its digest), loading the
model once from its files and attaching the interventions once.  Each task
is one unit: it takes the unit's lock, records the unit's batches, writes the unit's region and
commits it, like a shard does.  The driver holds the store's writer lock and advances one
progress bar as units finish; a worker that dies has its task rerun by the scheduler on
another worker (its unit lock dies with it).
"""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from modbias.interventions.base import applied
from modbias.runs.store import RunStore, Unit
from modbias.runs.units import record_unit


_JOBS: dict[str, "Job"] = {}


@dataclass
class Job:
    """What a worker needs to record units: the model, its interventions and ``record_batch``."""

    model: object
    interventions: list
    record_batch: object
    threads: int = 1
    _entered: ExitStack | None = field(default=None, repr=False, compare=False)

    def ready(self) -> "Job":
        """Attach the interventions and set torch's threads, once per worker process."""
        if self._entered is None:
            import torch

            torch.set_num_threads(self.threads)
            self._entered = ExitStack()
            self._entered.enter_context(applied(self.model, self.interventions))
        return self

    def __getstate__(self):
        return {**self.__dict__, "_entered": None}

    def dumps(self) -> bytes:
        """The job pickled for the workers (models by their spec)."""
        import cloudpickle

        from modbias.models.base import pickled_by_spec

        with pickled_by_spec():
            return cloudpickle.dumps(self)

    @staticmethod
    def loads(payload: bytes) -> "Job":
        """The job of ``payload``, unpickled (its model loaded) once per worker process.

        Args:
            payload: bytes from :meth:`dumps`.
        Returns:
            The job, ready (cached by the payload's SHA-1).
        """
        import hashlib
        import pickle

        key = hashlib.sha1(payload).hexdigest()
        if key not in _JOBS:
            _JOBS[key] = pickle.loads(payload)
        return _JOBS[key].ready()


@contextmanager
def cluster_client(address: str):
    """A ``distributed.Client`` for the block.

    Args:
        address: ``local:N`` (a new local cluster of N single-threaded workers, CUDA workers when
            ``dask_cuda`` and a GPU are there; closed after the block) or a scheduler address.
    Returns:
        A context manager yielding the client.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise RuntimeError("--dask needs dask.distributed: pip install 'modbias[dask]'") from None
    if not address.startswith("local:"):
        with Client(address) as client:
            yield client
        return
    try:
        workers = int(address.removeprefix("local:"))
    except ValueError:
        raise ValueError(f"--dask {address!r}: expected local:N or a scheduler address like tcp://host:8786") from None
    import torch

    cluster = None
    if torch.cuda.is_available():
        try:
            from dask_cuda import LocalCUDACluster

            cluster = LocalCUDACluster(n_workers=workers, threads_per_worker=1, dashboard_address=None)
        except ImportError:
            pass
    cluster = cluster or LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        yield client


def unit_task(payload: bytes, path: str, unit: Unit, samples: list, batch_size: int, plan: dict) -> int:
    """Record and commit one unit in a worker.

    Args:
        payload: the pickled :class:`Job`.
        path: the store.
        unit: the unit to write.
        samples: the unit's samples, in order.
        batch_size: samples per ``record_batch`` call.
        plan: the store's :attr:`RunStore.plan` (config, kind, unit size).
    Returns:
        The unit's sample count, or 0 when another process holds or has committed it.
    """
    job = Job.loads(payload)
    store = RunStore(path)
    store.attach(**plan)
    with store.claim(unit) as free:
        if not free:
            return 0
        store.write_unit(unit, record_unit(job.record_batch, samples, batch_size))
    return unit.stop - unit.start


def run_units_on_dask(address: str, store: RunStore, units: list[Unit], samples: list, model, interventions: list,
                      record_batch, batch_size: int, *, progress: bool = True, label: str = "run") -> None:
    """Run ``units`` of ``store`` (begun) on the cluster at ``address``; returns when all are committed.

    Args:
        address: ``local:N`` or a scheduler address.
        store: the store, begun by this process (which holds its writer lock).
        units: the units to run.
        samples: every sample of the run (each task gets its unit's).
        model, interventions, record_batch: the :class:`Job` scattered to the workers.
        batch_size: samples per ``record_batch`` call.
        progress, label: one progress bar over all workers, counting samples as units commit.
    """
    import dask
    from distributed import as_completed

    from modbias.core.progress import progress_bar

    if not units:
        return
    settings = {"distributed.comm.timeouts.connect": "120s", "distributed.comm.timeouts.tcp": "600s",
                # the nanny's default MALLOC_TRIM_THRESHOLD_ fixes glibc's mmap threshold: torch's tensor
                # allocations then map and unmap pages on every call (measured: matmul loops ~15% slower)
                "distributed.nanny.pre-spawn-environ": {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
                                                        "OPENBLAS_NUM_THREADS": 1}}
    with dask.config.set(settings), cluster_client(address) as client:
        workers = max(1, len(client.scheduler_info()["workers"]))
        threads = max(1, (os.cpu_count() or 1) // workers) if address.startswith("local:") else 1
        job = Job(model, interventions, record_batch, threads).dumps()  # small: the model travels as its spec
        futures = {client.submit(unit_task, job, str(store.path), unit, samples[unit.start:unit.stop], batch_size,
                                 store.plan, pure=False, retries=2): unit for unit in units}
        with progress_bar(progress) as bar:
            task = bar.add_task(f"{label}: samples ({workers} workers)", total=sum(u.stop - u.start for u in units))
            for future in as_completed(futures):
                future.result()
                unit = futures[future]
                bar.update(task, advance=unit.stop - unit.start)
