"""Scale of the unit store, measured in one run: one process against ``--dask local:N`` on the organism.

    python analyses/bench_store.py --samples 3000 --workers 2
    python analyses/bench_store.py --samples 300 --save-rows        # bytes/sample with attention rows
    python analyses/bench_store.py --samples 100002 --modes single  # one mode only (long runs)

Traces the same synthetic samples (``n`` per subset, ids ``synth-<subset>-<i>``) twice into fresh stores:
in this process, then on a local Dask cluster of ``--workers`` single-threaded processes (its start-up
included in the time).  Prints samples/s of each and their ratio, checks that both stores hold equal
values (when both modes run), and reports each store's bytes per sample and file count.  Last, the CPU headroom of the machine:
the throughput of two plain processes doing the same torch work against one (2.0 on two free cores).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import modbias
from modbias.data.synth import SynthConfig, synth_benchmark
from modbias.runs.store import open_run, read_manifest


def store_size(path: Path) -> tuple[int, int]:
    """(bytes, files) of everything under ``path``."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def _torch_work(_=None) -> float:
    torch.set_num_threads(1)
    x = torch.randn(256, 256)
    start = time.perf_counter()
    for _ in range(1000):
        x @ x
    return time.perf_counter() - start


def headroom() -> float:
    """Throughput of two concurrent processes over one, on the same fixed torch work."""
    from multiprocessing import Pool

    with Pool(1) as pool:
        one = pool.map(_torch_work, [0])[0]
    with Pool(2) as pool:
        two = max(pool.map(_torch_work, [0, 1]))
    return 2 * one / two


def timed_trace(model, bench, out: Path, **kwargs) -> float:
    start = time.perf_counter()
    modbias.trace(model, bench, out=out, progress=False, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=3000, help="total samples (split over the three subsets)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--save-rows", action="store_true")
    parser.add_argument("--root", type=Path, default=None, help="where the two stores go (default: a temp dir)")
    parser.add_argument("--modes", default="single,dask", help="single, dask or both (comma-separated)")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"single", "dask"}:
        parser.error(f"--modes {args.modes!r}: expected single, dask or single,dask")
    torch.set_num_threads(1)
    bench = synth_benchmark("all", SynthConfig(n_per_subset=args.samples // 3))
    model = modbias.load_model("organism")
    root = args.root or Path(tempfile.mkdtemp(prefix="bench-store-"))
    options = dict(batch_size=args.batch_size, save_rows=args.save_rows)
    seconds = {}
    if "single" in modes:
        seconds["single"] = timed_trace(model, bench, root / "single", **options)
    if "dask" in modes:
        seconds["dask"] = timed_trace(model, bench, root / "dask", dask=f"local:{args.workers}", **options)
    if len(seconds) == 2:
        a, b = open_run(root / "single", verify=True), open_run(root / "dask", verify=True)
        assert a.sample.values.tolist() == b.sample.values.tolist()
        np.testing.assert_allclose(a.S_a.values, b.S_a.values, rtol=1e-5, atol=1e-6)
    n = len(bench)
    print(f"{n} samples, batch {args.batch_size}, rows {'saved' if args.save_rows else 'not saved'}, "
          f"{os.cpu_count()} cores, unit size {read_manifest(root / modes[0])['unit_size']}")
    for name, label in (("single", "one process      "), ("dask", f"dask local:{args.workers}     ")):
        if name in seconds:
            note = ", cluster start included" if name == "dask" else ""
            print(f"{label} {n / seconds[name]:8.1f} samples/s  ({seconds[name]:.0f} s{note})")
    if len(seconds) == 2:
        print(f"ratio dask / one process: {seconds['single'] / seconds['dask']:.2f}")
    for name in seconds:
        size, files = store_size(root / name)
        print(f"store {name:6s}: {size / n:,.0f} bytes/sample, {files} files, {size / 2**20:,.1f} MiB")
    print(f"headroom: two plain processes give {headroom():.2f}x the throughput of one")


if __name__ == "__main__":
    main()
