"""Time every dashboard callback function on a CA-MER-sized store.

Builds (once; ``--rebuild`` to redo) a cache of random but valid runs of
1,500 samples × 32 layers × 32 heads, both probed tokens, 256 visual tokens,
attention rows for the first few samples only (all-zero chunks are not
written, so the store stays small on disk), plus AR and PAI runs for the
Interventions view.  Then calls the plain functions behind each callback,
cold (caches cleared) and warm (median of three), including the JSON encoding Dash does, and
prints every latency and the slowest.

    python analyses/bench_app.py [--cache /tmp/modbias-bench] [--rebuild]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plotly.io.json import to_json_plotly  # noqa: E402

from analyses.synthetic_runs import random_run, run_config, write_run  # noqa: E402
from modbias_app import dashboard  # noqa: E402
from modbias_app.runs import clear_caches, scan  # noqa: E402
from modbias_app.views import heads, interventions, layers, samples, tokens  # noqa: E402

SHAPE = dict(n_layers=32, n_heads=32)
N_SAMPLES, BATCH, WITH_ROWS = 1500, 50, 8


def build(cache: Path) -> None:
    """The baseline run with rows for the first samples, and two intervention runs without rows."""
    def batches(seed: int, rows: int | None):
        for start in range(0, N_SAMPLES, BATCH):
            yield random_run(BATCH, **SHAPE, n_visual=256, start=start, seed=seed,
                             rows=None if rows is None else max(0, rows - start))

    base = write_run(cache / "bench-baseline", batches(0, WITH_ROWS), run_config(**SHAPE),
                     created="2025-01-01T00:00:00")
    for i, intervention in enumerate(({"name": "ar", "tau": 1.0, "layers": None},
                                      {"name": "pai", "alpha": 0.5, "layers": None}), start=1):
        write_run(cache / f"bench-{intervention['name']}", batches(i, None),
                  run_config(interventions=[intervention], **SHAPE), created=f"2025-01-0{i + 1}T00:00:00",
                  baseline=base)


def timed(name: str, function, *args) -> tuple[str, float]:
    start = time.perf_counter()
    to_json_plotly(function(*args))  # Dash encodes every output the same way
    return name, time.perf_counter() - start


def calls(cache: str) -> list[tuple]:
    """(name, function, *args) for every callback function, with representative control values."""
    runs = scan(cache)
    base = next(r.path for r in runs if r.name == "bench-baseline")
    sample = "video_aligned-00003"
    click = {"points": [{"curveNumber": 0, "x": 5, "y": 12}]}
    return [
        ("page layout (runs table)", dashboard._layout, cache),
        ("run menu", dashboard.focus_choices, cache, [r.path for r in runs], None),
        ("run controls", dashboard.run_controls, base),
        ("sample menu", dashboard.sample_choice, base, [{"sample": sample}], samples.TABLE),
        ("samples table", samples.sample_rows, base),
        ("heads: all samples, log10 c_h, τ=1", heads.heads_view, base, "first", "all", "all", None, "log10_c_h", 1.0),
        ("heads: τ=2", heads.heads_view, base, "first", "all", "all", None, "log10_c_h", 2.0),
        ("heads: video_aligned incorrect, S_a−S_v", heads.heads_view, base, "first", "video_aligned", "incorrect",
         None, "diff", 1.0),
        ("heads: one sample", heads.heads_view, base, "answer", "all", "all", sample, "log10_c_h", 1.0),
        ("head detail: subset", heads.head_detail, base, "first", "all", "all", None, click),
        ("head detail: one sample", heads.head_detail, base, "first", "all", "all", sample, click),
        ("layers", layers.layers_view, base, "first", []),
        ("tokens: all samples, middle layers", tokens.tokens_view, base, "first", "all", "all", None, [8, 23]),
        ("tokens: video_aligned, layers 0-31", tokens.tokens_view, base, "first", "video_aligned", "all", None,
         [0, 31]),
        ("tokens: one sample", tokens.tokens_view, base, "first", "all", "all", sample, [8, 23]),
        ("interventions", interventions.interventions_view, cache, [r.path for r in runs], "avg"),
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/modbias-bench"))
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    if args.rebuild and args.cache.exists():
        shutil.rmtree(args.cache)
    if not scan(args.cache):
        start = time.perf_counter()
        build(args.cache)
        print(f"built {args.cache} in {time.perf_counter() - start:.0f} s")
    size = subprocess.run(["du", "-sh", str(args.cache)], capture_output=True, text=True).stdout.split()[0]
    print(f"cache {args.cache}: {len(scan(args.cache))} runs of {N_SAMPLES} samples × 32 layers × 32 heads, "
          f"{size} on disk")
    clear_caches()
    cold = [timed(c[0], *c[1:]) for c in calls(str(args.cache))]
    repeats = [[timed(c[0], *c[1:]) for c in calls(str(args.cache))] for _ in range(3)]
    warm = [(t[0][0], statistics.median(x for _, x in t)) for t in zip(*repeats)]
    results = {"cold": cold, "warm (median of 3)": warm}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'callback':45s} {'cold ms':>9s} {'warm ms':>9s}")
    for (name, first), (_, again) in zip(cold, warm):
        print(f"{name:45s} {first * 1e3:9.1f} {again * 1e3:9.1f}")
    for kind, timings in results.items():
        name, worst = max(timings, key=lambda t: t[1])
        print(f"slowest {kind}: {worst * 1e3:.0f} ms ({name})")


if __name__ == "__main__":
    main()
