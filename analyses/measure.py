"""How the benchmarks measure (bench_peers.py, bench_trace.py, bench_intervene.py).

- **A cell is a fresh process** (:func:`run_cell`): the script re-runs itself with ``--cell``
  and ``OMP_NUM_THREADS=1``; the cell sets one torch thread, builds what it needs, and calls
  :func:`measure`, which runs a warm-up (lazy imports, kernels, the allocator), resets the peak
  memory to the current state and times the measured call.  It prints one JSON line.
- **Time** is the wall time of the call (``seconds``) and, on CPU, also the CPU time the process
  spent in it (``cpu_seconds``, all its threads; with one thread about the wall time of an idle
  machine).  On a shared, loaded CPU the wall time of a cell depends on what the other users do
  in that minute; the CPU time much less, so the CPU tables compare CPU times (:func:`time_key`).
- **Peak memory** is what the measured call adds: on CPU ``VmHWM`` after resetting it through
  ``/proc/self/clear_refs``, minus ``VmRSS`` before the call; on CUDA ``max_memory_allocated``
  above ``memory_allocated`` before it.
- **Repeats are interleaved** (:func:`interleaved`: every cell once, then again), so drift of a
  shared machine hits every cell alike; a table shows medians (:func:`median`), and ratios are
  taken between cells of the same run, never against a number from another run.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable


def rss_mib(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MiB (``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(call: Callable[[], object], warm_up: Callable[[], object], device: str = "cpu") -> tuple[dict, object]:
    """Time ``call()`` after ``warm_up()``, with its peak memory above the state just before it.

    Args:
        call: the measured work; warm_up: a small version of it, run first and not measured.
        device: ``cpu`` (VmHWM) or ``cuda`` (the allocator's peak; the GPU is synchronised around the call).
    Returns:
        ``({"seconds", "cpu_seconds", "peak_mib"}, what call returned)``.
    """
    import torch

    torch.set_num_threads(1)
    with torch.no_grad():
        warm_up()
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        else:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := the current RSS
            before = rss_mib("VmRSS")
        start, cpu_start = time.perf_counter(), time.process_time()
        result = call()
        if device == "cuda":
            torch.cuda.synchronize()
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = ((torch.cuda.max_memory_allocated() - before) / 2 ** 20 if device == "cuda"
            else rss_mib("VmHWM") - before)
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "peak_mib": peak}, result


def time_key(device: str = "cpu") -> str:
    """What a table compares: CPU time on CPU (robust to a shared machine's load), wall time on a GPU."""
    return "cpu_seconds" if device == "cpu" else "seconds"


def run_cell(script: str | Path, args: list[str]) -> dict:
    """Run ``script --cell ...`` in a fresh process with one OpenMP thread; its last stdout line (JSON),
    or ``{"error": <its last stderr line>}``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return {"error": lines[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def interleaved(cells: dict[str, Callable[[], dict]], repeats: int) -> dict[str, list[dict]]:
    """Every cell once per repeat, in order, ``repeats`` times: ``{name: [result of each repeat]}``."""
    results: dict[str, list[dict]] = {name: [] for name in cells}
    for _ in range(repeats):
        for name, cell in cells.items():
            results[name].append(cell())
    return results


def median(runs: list[dict], key: str) -> float | None:
    """Median of ``key`` over the runs, ``None`` if any run failed."""
    if not runs or any(key not in run for run in runs):
        return None
    return statistics.median(run[key] for run in runs)


def failure(runs: list[dict]) -> str | None:
    """The first error or skip note among the runs of a cell."""
    bad = next((run for run in runs if "error" in run or "skipped" in run), None)
    return None if bad is None else bad.get("skipped") or "failed: " + bad["error"]


def machine() -> str:
    """Cores and load average now: printed before and after a benchmark (a shared machine is noisy)."""
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"
