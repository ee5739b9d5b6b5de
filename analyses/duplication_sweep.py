"""Fig. 3c in miniature (App. C.2): organisms *trained* with k copies of each audio token.

    python analyses/duplication_sweep.py [--repeats 1,50,100,200,256] [--epochs 2] [--cache cache]

For each k: train an organism with ``modbias organism train --audio-repeat k``
(same seed, data and schedule for every k, including the k=1 control; skipped
when ``cache/organism-repeat-<k>`` exists), then evaluate it on the three test
subsets with ``modbias.intervene(..., method="none")``, which stores the
per-subset metrics.  ``python analyses/fig3c.py`` draws the curves.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from rich.console import Console

import modbias
from modbias.analysis.report import intervention_table
from modbias.training.organism import TrainConfig, train_organism


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", default="1,50,100,200,256")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--limit", type=int, default=None, help="test samples per subset (default all 500)")
    args = parser.parse_args()
    console = Console()
    data = modbias.load_benchmark("synth", subset="all", limit=args.limit)
    for k in (int(x) for x in args.repeats.split(",")):
        weights = args.cache / f"organism-repeat-{k}"
        if not (weights / "model.safetensors").exists():
            console.print(f"training organism with {k} audio copies → {weights}")
            train_organism(TrainConfig(epochs=args.epochs, audio_repeat=k)).save(weights)
        torch.set_num_threads(2)
        model = modbias.load_model(f"organism:{weights}")
        ds = modbias.intervene(model, data, method="none", cache_dir=args.cache, batch_size=50, progress=True)
        console.print(intervention_table(ds.attrs["summary"], title=f"audio_repeat={k} ({weights})"))


if __name__ == "__main__":
    main()
