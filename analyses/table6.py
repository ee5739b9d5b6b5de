"""Table 6 in miniature: MoSE and its variants against a plain-LoRA baseline, all trained from the base state.

    python analyses/table6.py [--model organism-attn] [--limit 200] [--variants a,b] [--out DIR | --docs]

As in the paper (Sec. 6.2, Table 6), every row fine-tunes the same frozen base
(``<model>-base``: the organism trained on consistent samples only) on the same
data with the same schedule (``modbias mose train`` defaults: 2,400 training
samples, 4 epochs = 300 steps of batch 32, AdamW lr 1e-2 with 20 warm-up steps and
cosine decay, weight decay 0.05), then is scored
on the synthetic test subsets (conclusion-only Ŷ).  Rows:

- LoRA baseline: one LoRA on the FFN of every token, its rank matched to MoSE's parameter count;
- MoSE (N=2, r=8, router), MoSE w/o router (λ = 1/2), fewer / more B's (N=1, N=3);
- MoSE without each expert (visual, non-visual, omni).

Checkpoints go to ``--cache/table6-<model>/<row>`` and are re-used when present,
so ``--variants`` can split the training over processes.  The model defaults to
``organism-attn`` (64 visual tokens: a training step costs a third of the
256-token organism's on a CPU).  The base state itself and the shipped, fully
fine-tuned organism are listed for reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import modbias  # noqa: E402
from analyses.outputs import output_options, save_markdown  # noqa: E402
from modbias.interventions.mose import count_parameters  # noqa: E402
from modbias.training.mose import lora_baseline_rank, load_mose, train_mose  # noqa: E402

MOSE = dict(r=8, n_experts=2, experts=("visual", "nonvisual", "omni"), router=True)
VARIANTS = {
    "lora": "LoRA baseline (matched parameters)",
    "mose": "MoSE (N=2)",
    "no-router": "MoSE w/o router",
    "n1": "MoSE, fewer B's (N=1)",
    "n3": "MoSE, more B's (N=3)",
    "no-visual": "MoSE w/o visual expert",
    "no-nonvisual": "MoSE w/o non-visual expert",
    "no-omni": "MoSE w/o omni expert",
}
SUBSETS = ("video_aligned", "audio_aligned", "consistent", "overall")


def design(name: str, d: int, n_layers: int) -> dict:
    """Training arguments of one row."""
    if name == "lora":
        matched = count_parameters(d, n_layers, MOSE["r"], MOSE["n_experts"])
        return dict(r=lora_baseline_rank(d, n_layers, matched), n_experts=1, experts=("omni",), router=False)
    if name == "no-router":
        return {**MOSE, "router": False}
    if name in ("n1", "n3"):
        return {**MOSE, "n_experts": int(name[1])}
    if name.startswith("no-"):
        return {**MOSE, "experts": tuple(e for e in MOSE["experts"] if e != name[3:])}
    return dict(MOSE)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="organism-attn", help="organism or organism-attn (its base state trains)")
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--limit", type=int, default=200, help="test samples per subset")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="rows to train/score (comma list)")
    parser.add_argument("--train-only", action="store_true", help="train missing checkpoints, print no table")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--n-train", type=int, default=2400)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--threads", type=int, default=1)
    output_options(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [v for v in args.variants.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    base = modbias.load_model(f"{args.model}-base")
    d, n_layers = base.backbone.config.hidden_size, base.backbone.config.num_hidden_layers
    root = args.cache / f"table6-{args.model}"
    for name in names:
        if not (root / name / "mose.safetensors").exists():
            start = time.time()
            train_mose(base, epochs=args.epochs, n_train=args.n_train, lr=args.lr, out=root / name, threads=args.threads,
                       progress=False, **design(name, d, n_layers))
            print(f"trained {name} in {time.time() - start:.0f} s", flush=True)
    if args.train_only:
        return
    data_name = "synth-attn" if args.model == "organism-attn" else "synth"
    data = modbias.load_benchmark(data_name, subset="all", limit=args.limit)
    rows = [("base state, no fine-tuning", 0, "", modbias.intervene(base, data, method="none", cache_dir=args.cache,
                                                                        batch_size=100))]
    tuned = modbias.load_model(args.model)
    rows.append((f"full fine-tuning (shipped {args.model})", sum(p.numel() for p in tuned.parameters()), "",
                 modbias.intervene(tuned, data, method="none", cache_dir=args.cache, batch_size=100)))
    for name in names:
        mose = load_mose(root / name)
        ds = modbias.intervene(base, data, method="mose", checkpoint=str(root / name), cache_dir=args.cache,
                               batch_size=100)
        training = mose.metadata.get("training", {})
        note = f"r={mose.config.r}, N={mose.config.n_experts}, loss {training.get('last_loss_mean20', float('nan')):.3f}"
        rows.append((VARIANTS[name], mose.trainable_parameters(), note, ds))
    lines = ["| row | #trainable | " + " | ".join(f"{s} Avg" for s in SUBSETS) + " | design |",
             "|---|---:|" + "---:|" * len(SUBSETS) + "---|"]
    for label, params, note, ds in rows:
        metrics = ds.attrs.get("summary", {}).get("metrics") or modbias.core.evaluation.subset_metrics(ds)
        cells = " | ".join(f"{metrics[s]['avg']:.1f}" for s in SUBSETS)
        lines.append(f"| {label} | {params:,} | {cells} | {note} |")
    text = "\n".join(lines)
    command = " ".join(["python", "analyses/table6.py", *(argv if argv is not None else sys.argv[1:])])
    title = (f"Table 6 layout on {args.model} (trained from `{args.model}-base`, {args.epochs} epochs of "
             f"{args.n_train} samples, lr {args.lr:g}), Avg % (conclusion-only Ŷ) on {args.limit} test samples per subset (`{command}`)")
    print(title, text, sep="\n\n")
    print("wrote", save_markdown(text, title, "table6", args.out))


if __name__ == "__main__":
    main()
