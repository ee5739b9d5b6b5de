"""Produce the runs behind the README's miniature Table 7, Table 8 and Fig. 3c.

    python analyses/run_miniature.py [--cache cache] [--limit N] [--mose cache/mose-organism]

Runs, on the shipped organism and the synthetic benchmark (all three subsets):
- Table 7: base, +PAI, +AR, MoSE, MoSE+PAI, MoSE+AR (MoSE from ``--mose``,
  trained first with ``modbias mose train`` when the checkpoint is missing);
- Table 8: AR with tau in {0, 1, 2, 3};
- Fig. 3c (inference-time variant): audio duplication k in {1, 50, 100, 200, 256}.
Every run is an ordinary ``modbias.intervene`` store in ``--cache``; the
baseline is computed once.  Render with ``python analyses/table7.py`` etc.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import modbias
from modbias.report import intervention_table
from rich.console import Console

TABLE7 = [("none", {}), ("pai", {}), ("ar", {"tau": 1.0}), ("mose", {}), ("mose+pai", {}), ("mose+ar", {"tau": 1.0})]
TABLE8 = [("ar", {"tau": t}) for t in (0.0, 1.0, 2.0, 3.0)]
FIG3C = [("duplicate_audio", {"k": k}) for k in (1, 50, 100, 200, 256)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--limit", type=int, default=None, help="samples per subset (default: all 500)")
    parser.add_argument("--mose", type=Path, default=Path("cache/mose-organism"))
    args = parser.parse_args()
    torch.set_num_threads(2)
    console = Console()
    model = modbias.load_model("organism")
    if not (args.mose / "mose.safetensors").exists():
        from modbias.models.mose_training import train_mose

        console.print(f"training MoSE into {args.mose}")
        train_mose(model, out=args.mose)
    data = modbias.load_benchmark("synth", subset="all", limit=args.limit)
    for method, params in TABLE7 + TABLE8 + FIG3C:  # a repeated run re-opens its finished store
        if "mose" in method:
            params = {**params, "checkpoint": str(args.mose)}
        ds = modbias.intervene(model, data, method=method, cache_dir=args.cache, batch_size=100,
                               progress=True, **params)
        console.print(intervention_table(ds.attrs["summary"], title=f"{method} {params} → {ds.attrs['path']}"))


if __name__ == "__main__":
    main()
