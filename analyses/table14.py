"""Table 14: FLOPs and inference time per sample of base, + AR, MoSE and MoSE + AR (MoSEAR).

    python analyses/table14.py [--model organism] [--device cpu|cuda] [--samples 8] [--mose CHECKPOINT]
    python analyses/table14.py --real-size --device cuda     # Emotion-LLaMA size, random weights
    python analyses/table14.py --real-size --scale 0.03      # the same shrunk, a CPU smoke test

Each configuration generates the same samples of --data one at a time (greedy,
--max-new-tokens); FLOPs come from torch's flop counter (:mod:`modbias.runs.cost`),
time from a second pass after one warm-up sample.  Without --mose the MoSE is
a fresh one of the default shape (its FLOPs and time do not depend on its
weights).  ``--real-size`` replaces --model/--data by a randomly initialised
Emotion-LLaMA-sized model (LLaMA-2-7B backbone, its 260 feature tokens;
:mod:`analyses.bench_real_size`) and MoSE of the paper's rank r = 64.
Prints the table and writes table14.md and table14.json (numbers
with the command that made them) into --out (default cache/figures; --docs: the
tracked docs/figures).
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import modbias  # noqa: E402
from analyses.outputs import output_options  # noqa: E402
from modbias.runs.cost import measure_cost  # noqa: E402
from modbias.runs.intervene import build_interventions  # noqa: E402

CONFIGURATIONS = (("base", "none"), ("+ AR", "ar"), ("MoSE", "mose"), ("MoSE + AR (MoSEAR)", "mose+ar"))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="organism", help="family[:path]")
    p.add_argument("--data", default="synth", help="benchmark (samples are taken from all subsets)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--samples", type=int, default=8, help="samples per configuration")
    p.add_argument("--max-new-tokens", type=int, default=16)
    p.add_argument("--tau", type=float, default=1.0, help="AR threshold of Eq. 7")
    p.add_argument("--competitor", default=None, help="AR's competing set: audio (default) or text (LLaVA)")
    p.add_argument("--mose", type=Path, default=None, help="MoSE checkpoint (default: a fresh MoSE)")
    p.add_argument("--real-size", action="store_true", help="a random Emotion-LLaMA-sized model instead of --model")
    p.add_argument("--scale", type=float, default=1.0, help="with --real-size: shrink the model (CPU smoke test)")
    p.add_argument("--dtype", default="bfloat16", help="with --real-size: parameter dtype")
    return output_options(p)


def real_size(args):
    """(model, samples, MoSE shape) of an Emotion-LLaMA-sized random model (analyses/bench_real_size.py)."""
    import tempfile

    from analyses.bench_real_size import features_model, features_samples

    dtype = getattr(torch, args.dtype) if args.device != "cpu" else torch.float32
    model, _ = features_model(args.scale, args.device, dtype, Path(tempfile.mkdtemp()))
    return model, features_samples(model, args.samples), {"r": 64 if args.scale >= 1 else 8}


def scaled(flops: float) -> str:
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if flops >= size:
            return f"{flops / size:.3f} {unit}"
    return f"{flops:.0f}"


def table14(args) -> tuple[str, list[dict]]:
    """Markdown and rows (configuration, method, flops, ms, samples) of the four configurations."""
    if args.device == "cpu":
        torch.set_num_threads(1)
    if args.real_size:
        model, samples, mose = real_size(args)
    else:
        model = modbias.load_model(args.model, device=args.device)
        bench = modbias.load_benchmark(args.data, subset="all")
        samples = [bench[i] for i in range(0, len(bench), max(len(bench) // args.samples, 1))][:args.samples]
        mose = {}
    ar = {"tau": args.tau, **({"competitor": args.competitor} if args.competitor else {})}
    mose = {"checkpoint": str(args.mose)} if args.mose else mose
    rows = []
    for name, method in CONFIGURATIONS:
        params = {**(ar if "ar" in method else {}), **(mose if "mose" in method else {})}
        interventions = build_interventions(method, **params)
        for iv in interventions:
            if hasattr(iv, "build"):  # MoSE: built once, on the model's device and dtype
                iv.build(model).to(device=model.device, dtype=model.dtype)
        cost = measure_cost(model, samples, interventions, args.max_new_tokens)
        rows.append({"configuration": name, "method": method, "params": params, "flops": cost.flops,
                     "ms": cost.ms, "samples": cost.samples})
    base = rows[0]
    lines = ["| Model | FLOPs / sample | × base | Inference time (ms / sample) | × base |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['configuration']} | {scaled(r['flops'])} | {r['flops'] / base['flops']:.4f} | {r['ms']:.2f} | "
              f"{r['ms'] / base['ms']:.2f} |" for r in rows]
    return "\n".join(lines), rows


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    text, rows = table14(args)
    command = " ".join(["python", "analyses/table14.py", *(sys.argv[1:] if argv is None else argv)])
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU (1 thread)"
    dtype = args.dtype if args.device != "cpu" else "float32"
    what = (f"a random Emotion-LLaMA-sized model (scale {args.scale:g}, {dtype})"
            if args.real_size else f"{args.model} on {args.data}")
    title = (f"Table 14 layout: cost per sample of {what}, {rows[0]['samples']} samples, "
             f"{args.max_new_tokens} new tokens, {device} (`{command}`)")
    print(title, text, sep="\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table14.md").write_text(f"{title}\n\n{text}\n")
    record = {"command": command, "model": "emotion-llama-size" if args.real_size else args.model,
              "data": "random features" if args.real_size else args.data, "device": device,
              "max_new_tokens": args.max_new_tokens, "rows": rows}
    (args.out / "table14.json").write_text(json.dumps(record, indent=1))
    print("wrote", args.out / "table14.md", args.out / "table14.json")


if __name__ == "__main__":
    main()
