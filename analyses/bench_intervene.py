"""Generation time under interventions vs. plain generation, measured in one run (issue: intervene, item 10).

    python analyses/bench_intervene.py [--n 300] [--repeats 3] [--mose cache/mose-organism]

Times greedy generation of the organism on the synthetic benchmark: plain
(uninstrumented SDPA, HF ``generate``), under AR (τ=1, every layer, every
step) and under MoSE+AR, interleaving the conditions ``--repeats`` times and
reporting the median per-sample time and its ratio to plain generation.
The paper (Table 14) reports 17.86 ms per sample for MoSE and 19.90 ms for MoSEAR: 1.11× for AR alone,
1.33× for MoSEAR over Emotion-LLaMA (14.99 ms).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import modbias
from modbias.interventions import applied, make
from modbias.runs.trace import generate_under


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300, help="samples (equal per subset)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mose", type=Path, default=Path("cache/mose-organism"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    plain_model, model = modbias.load_model("organism"), modbias.load_model("organism")
    data = list(modbias.load_benchmark("synth", subset="all", limit=args.n // 3))
    conditions = {"plain": (plain_model, [])}
    conditions["AR"] = (model, [make("ar", tau=1.0)])
    if (args.mose / "mose.safetensors").exists():
        conditions["MoSE+AR"] = (model, [make("mose", checkpoint=str(args.mose)), make("ar", tau=1.0)])
    times = {name: [] for name in conditions}
    for _ in range(args.repeats):
        for name, (adapter, interventions) in conditions.items():
            start = time.perf_counter()
            with applied(adapter, interventions), torch.no_grad():
                for i in range(0, len(data), args.batch_size):
                    if interventions:
                        generate_under(adapter, data[i:i + args.batch_size], 16, interventions)
                    else:
                        adapter.generate(adapter.prepare(data[i:i + args.batch_size]), 16)
            times[name].append((time.perf_counter() - start) / len(data) * 1000)
    base = statistics.median(times["plain"])
    print(f"{len(data)} samples, batch {args.batch_size}, 16 new tokens, median of {args.repeats} interleaved runs")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:10} {median:8.2f} ms/sample   ×{median / base:.2f} of plain generation")


if __name__ == "__main__":
    main()
