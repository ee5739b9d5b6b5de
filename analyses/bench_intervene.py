"""Generation time under interventions vs. plain generation, measured in one run.

    python analyses/bench_intervene.py                   # organism, 500 samples, batches of 64
    python analyses/bench_intervene.py --n 500 --repeats 3 --mose cache/mose-organism

Cells (each a fresh process with one thread, a warm-up, median of ``--repeats`` interleaved runs;
the method of :mod:`analyses.measure`), all greedy with 16 new tokens on the organism's synthetic
benchmark:

- ``plain``     uninstrumented HF ``generate`` on the prepared batches (the reference);
- ``AR``        AR (τ = 1, every layer, every generated step) as ``modbias intervene`` generates;
- ``MoSE``      MoSE attached (its experts on every layer's FFN);
- ``MoSE+AR``   both.

``--mose`` names a checkpoint written by ``modbias mose train``; without one (the default path
missing) an untrained MoSE of the same shape is attached: it computes the same products, and its
zero B's leave the generations, hence their lengths, as plain generation's.  The paper (Table 14)
reports 14.99 ms per sample for Emotion-LLaMA, 17.86 ms for MoSE and 19.90 ms for MoSEAR: 1.11× for
AR over MoSE, 1.33× for MoSEAR over the base model.  Times are CPU milliseconds per sample of the
measured call (:func:`analyses.measure.time_key`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import modbias  # noqa: E402
from analyses.measure import failure, interleaved, machine, measure, median, run_cell, time_key  # noqa: E402
from modbias.interventions import applied, make  # noqa: E402
from modbias.runs.trace import generate_under  # noqa: E402

CONDITIONS = ("plain", "AR", "MoSE", "MoSE+AR")
TARGETS = {"AR": 1.15, "MoSE+AR": 1.30}
NEW_TOKENS = 16


def interventions(condition: str, mose: Path) -> list:
    checkpoint = {"checkpoint": str(mose)} if (mose / "mose.safetensors").exists() else {}
    return {"plain": [], "AR": [make("ar", tau=1.0)], "MoSE": [make("mose", **checkpoint)],
            "MoSE+AR": [make("mose", **checkpoint), make("ar", tau=1.0)]}[condition]


def measure_cell(condition: str, n: int, batch_size: int, mose: Path) -> dict:
    torch.set_num_threads(1)
    model = modbias.load_model("organism")
    data = list(modbias.load_benchmark("synth", subset="all", limit=-(-n // 3)))[:n]
    active = interventions(condition, mose)

    def work(samples):
        with applied(model, active):
            for i in range(0, len(samples), batch_size):
                if active:
                    generate_under(model, samples[i:i + batch_size], NEW_TOKENS, active)
                else:
                    model.generate(model.prepare(samples[i:i + batch_size]), NEW_TOKENS)

    cost, _ = measure(lambda: work(data), lambda: work(data[:8]))
    return {"condition": condition, "n": len(data), "trained_mose": (mose / "mose.safetensors").exists(), **cost}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="samples (equal per subset)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mose", type=Path, default=Path("cache/mose-organism"))
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="comma list (plain is always run)")
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="also write every measurement as JSON")
    args = parser.parse_args(argv)
    if args.cell:
        print(json.dumps(measure_cell(args.cell, args.n, args.batch_size, args.mose)))
        return {}
    print(f"machine before: {machine()}")
    cells = {c: (lambda c=c: run_cell(__file__, ["--cell", c, "--n", str(args.n), "--batch-size",
                                                   str(args.batch_size), "--mose", str(args.mose)]))
             for c in CONDITIONS if c == "plain" or c in args.conditions.split(",")}
    runs = interleaved(cells, args.repeats)
    print(f"machine after: {machine()}")
    plain = median(runs["plain"], time_key("cpu"))
    n, trained = runs["plain"][0].get("n"), (args.mose / "mose.safetensors").exists()
    print(f"organism, {n} samples, batches of {args.batch_size}, {NEW_TOKENS} new tokens, median of {args.repeats} "
          f"interleaved processes; MoSE {'from ' + str(args.mose) if trained else 'untrained (same shape)'}")
    out = {}
    for condition, results in runs.items():
        bad = failure(results)
        if bad:
            print(f"{condition:9} {bad}")
            continue
        seconds, peak = median(results, time_key("cpu")), median(results, "peak_mib")
        target = f"   target {TARGETS[condition]:.2f}x" if condition in TARGETS else ""
        print(f"{condition:9} {seconds / n * 1000:8.2f} ms/sample   {seconds / plain:5.2f}x of plain generation"
              f"{target}   peak +{peak:.0f} MiB")
        out[condition] = {"seconds": seconds, "ratio": seconds / plain, "peak_mib": peak}
    if {"MoSE", "MoSE+AR"} <= out.keys():
        print(f"AR over MoSE (Table 14's 1.11x): {out['MoSE+AR']['seconds'] / out['MoSE']['seconds']:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
