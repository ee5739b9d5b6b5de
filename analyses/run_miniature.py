"""Produce the runs behind the README's miniature Table 7, Table 8 and Fig. 3c.

    python analyses/run_miniature.py [--model organism|organism-attn] [--cache cache] [--limit N]
                                     [--mose DIR] [--no-duplication]

Runs, on a shipped organism and its synthetic benchmark (all three subsets):
- Table 7: base, +PAI, +AR, MoSE, MoSE+PAI, MoSE+AR.  PAI runs with the reference's
  defaults (α=0.2, layers 2:, γ=1.1).  MoSE is the checkpoint ``--mose`` (default
  ``cache/table6-<model>/mose``, trained by ``analyses/table6.py`` from ``<model>-base``;
  trained here with the same settings when missing) and runs on that base state, as
  it was trained; its rows' deltas are against the base state;
- Table 8: AR with tau in {0, 1, 2, 3};
- Fig. 3c (inference-time variant, skipped with ``--no-duplication``): audio duplication
  k in {1, 50, 100, 200, 256}.
Every run is an ordinary ``modbias.intervene`` store in ``--cache``; each baseline
is computed once.  Render with ``python analyses/table7.py`` etc.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from rich.console import Console  # noqa: E402

import modbias  # noqa: E402
from modbias.analysis.report import intervention_table  # noqa: E402

TABLE7 = [("none", {}), ("pai", {}), ("ar", {"tau": 1.0})]
TABLE7_MOSE = [("mose", {}), ("mose+pai", {}), ("mose+ar", {"tau": 1.0})]
TABLE8 = [("ar", {"tau": t}) for t in (0.0, 1.0, 2.0, 3.0)]
FIG3C = [("duplicate_audio", {"k": k}) for k in (1, 50, 100, 200, 256)]
DATA = {"organism": "synth", "organism-attn": "synth-attn"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="organism", choices=sorted(DATA))
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--limit", type=int, default=None, help="samples per subset (default: all 500)")
    parser.add_argument("--mose", type=Path, default=None, help="MoSE checkpoint (default cache/table6-<model>/mose)")
    parser.add_argument("--no-duplication", action="store_true", help="skip the Fig. 3c duplication runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console()
    model, base = modbias.load_model(args.model), modbias.load_model(f"{args.model}-base")
    data = modbias.load_benchmark(DATA[args.model], subset="all", limit=args.limit)
    mose = args.mose or args.cache / f"table6-{args.model}" / "mose"
    runs = [(model, m, p) for m, p in TABLE7 + TABLE8 + ([] if args.no_duplication else FIG3C)]
    runs += [(base, m, {**p, "checkpoint": str(mose)}) for m, p in TABLE7_MOSE]
    for adapter, method, params in runs:  # a repeated run re-opens its finished store
        if "checkpoint" in params and not (mose / "mose.safetensors").exists():
            from analyses.table6 import main as table6

            console.print(f"training MoSE into {mose}")
            table6(["--model", args.model, "--cache", str(args.cache), "--variants", "mose", "--train-only"])
        ds = modbias.intervene(adapter, data, method=method, cache_dir=args.cache, batch_size=100,
                               progress=True, **params)
        console.print(intervention_table(ds.attrs["summary"], title=f"{method} {params} → {ds.attrs['path']}"))


if __name__ == "__main__":
    main()
