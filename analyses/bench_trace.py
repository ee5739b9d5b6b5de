"""Cost of tracing vs. plain generation, measured in one run.

    python analyses/bench_trace.py            # organism (500 samples) + random LLaMA at 1,000 and 3,000 tokens
    python analyses/bench_trace.py --n 500 --tokens 1000,3000 --repeats 3

Cells (each a fresh process with one thread, a warm-up, median of ``--repeats`` interleaved runs;
the method of :mod:`analyses.measure`):

- ``plain``        uninstrumented HF ``generate`` on the adapter's prepared batches (the reference);
- ``trace``        ``modbias.trace`` in memory (generation under the probe, the rows pass at the first
                   emotion step, decoding, the xarray batch, the per-head metrics);
- ``trace+store``  the same run written to a zarr store (organism only).

The organism runs its synthetic benchmark in batches of 64; the random LLaMA (8 layers, d=256,
8 heads, 4 KV heads) gets ``--random-samples`` prompts of T tokens (visual and audio feature tokens
between text), one at a time.  Prints the ratio to plain generation next to the targets, the extra
peak memory of each cell, and the sizes L·H·T (one row per head) and L·H·T² (full attention) in fp32.
Times are CPU seconds of the measured call (:func:`analyses.measure.time_key`).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import modbias  # noqa: E402
from analyses.measure import failure, interleaved, machine, measure, median, run_cell, time_key  # noqa: E402
from modbias.core.layout import TokenLayout  # noqa: E402
from modbias.data.sample import Sample  # noqa: E402
from modbias.models.base import ModelAdapter, PreparedBatch, left_pad  # noqa: E402

MODES = ("plain", "trace", "trace+store")
ORGANISM_BATCH, NEW_TOKENS = 64, 16
TARGETS = {"organism": 1.10, "random-llama": 1.05}  # T >= 1,000
RANDOM_LLAMA = dict(vocab_size=512, hidden_size=256, intermediate_size=688, num_hidden_layers=8,
                    num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=4096)


# -- one cell (runs in its own process) ------------------------------------------------------------
class RandomFeatureLlama(nn.Module, ModelAdapter):
    """A random LLaMA fed visual/audio feature tokens between text tokens (benchmark only)."""

    family = "random-llama"

    def __init__(self, feature_dim: int = 32):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = LlamaForCausalLM(LlamaConfig(**RANDOM_LLAMA)).eval()
        self.proj = nn.Linear(feature_dim, RANDOM_LLAMA["hidden_size"])
        self.eos_token_id, self.pad_token_id = 1, 0

    def prepare(self, samples):
        parts, layouts = [], []
        for s in samples:
            text = self.embed_tokens(torch.arange(2, 22))
            parts.append(torch.cat([text, self.proj(torch.as_tensor(s.visual)), self.proj(torch.as_tensor(s.audio)),
                                    text]))
            layouts.append(TokenLayout.from_segments([("text", 20), ("visual", len(s.visual)),
                                                      ("audio", len(s.audio)), ("text", 20)]))
        embeds, mask, offsets = left_pad(parts)
        return PreparedBatch(embeds, mask, layouts, offsets)

    def token_pieces(self, ids):
        return [f" t{i}" for i in ids]


def random_samples(n: int, tokens: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    n_audio = max(1, tokens // 30)
    n_visual = tokens - 40 - n_audio
    return [Sample(f"s{i}", "consistent", "happy", rng.standard_normal((n_visual, 32)).astype(np.float32),
                   rng.standard_normal((n_audio, 32)).astype(np.float32)) for i in range(n)]


def measure_cell(mode: str, model_name: str, tokens: int, n: int) -> dict:
    torch.set_num_threads(1)
    if model_name == "organism":
        model = modbias.load_model("organism")
        data = list(modbias.load_benchmark("synth", subset="all", limit=-(-n // 3)))[:n]
        batch_size = ORGANISM_BATCH
    else:
        model, data, batch_size = RandomFeatureLlama(), random_samples(n, tokens), 1
    store = Path(tempfile.mkdtemp(prefix="bench-trace-"))

    def work(samples, out=None):
        if mode == "plain":
            for i in range(0, len(samples), batch_size):
                model.generate(model.prepare(samples[i:i + batch_size]), NEW_TOKENS)
        else:
            modbias.trace(model, samples, batch_size=batch_size, max_new_tokens=NEW_TOKENS, progress=False,
                          out=out if mode == "trace+store" else None)

    cost, _ = measure(lambda: work(data, store / "run"), lambda: work(data[:min(8, n)], store / "warm-up"))
    return {"mode": mode, "model": model_name, "tokens": tokens or _organism_tokens(model, data), "n": len(data),
            "layers": model.n_layers, "heads": model.n_heads, **cost}


def _organism_tokens(model, data) -> int:
    return round(sum(model.prompt_length(s) for s in data[:32]) / min(32, len(data)))


# -- the driver ----------------------------------------------------------------------------------
def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="organism samples")
    parser.add_argument("--tokens", default="1000,3000", help="prompt lengths T of the random LLaMA ('' for none)")
    parser.add_argument("--random-samples", type=int, default=4, help="random LLaMA prompts per cell")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-store", action="store_true", help="leave out the trace+store cell")
    parser.add_argument("--cell", nargs=3, metavar=("MODE", "MODEL", "TOKENS"), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="also write every measurement as JSON")
    args = parser.parse_args(argv)
    if args.cell:
        mode, model_name, tokens = args.cell
        print(json.dumps(measure_cell(mode, model_name, int(tokens), args.n)))
        return []
    cases = [("organism", 0, args.n)] + [("random-llama", int(t), args.random_samples)
                                         for t in args.tokens.split(",") if t]
    print(f"machine before: {machine()}")
    print(f"times: CPU seconds of the measured call, median of {args.repeats} interleaved processes")
    print(f"{'model':13} {'T':>6} {'n':>4} {'plain s':>8} {'trace s':>8} {'ratio':>6} {'target':>6} "
          f"{'+store s':>8} {'ratio':>6}  {'extra peak MiB: plain / trace / +store':>38} {'L·H·T MiB':>9} {'L·H·T² MiB':>10}")
    results = []
    for model_name, tokens, n in cases:
        modes = MODES if model_name == "organism" and not args.no_store else MODES[:2]
        cells = {mode: (lambda mode=mode, model_name=model_name, tokens=tokens, n=n:
                        run_cell(__file__, ["--cell", mode, model_name, str(tokens), "--n", str(n)]))
                 for mode in modes}
        runs = interleaved(cells, args.repeats)
        results.append(report(model_name, runs))
    print(f"machine after: {machine()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


def report(model_name: str, runs: dict[str, list[dict]]) -> dict:
    """One table line: median seconds per cell, ratios to plain, extra peak memory, and row sizes."""
    bad = next((failure(r) for r in runs.values() if failure(r)), None)
    if bad:
        print(f"{model_name:13} {bad}")
        return {"model": model_name, "note": bad}
    seconds = {mode: median(r, time_key("cpu")) for mode, r in runs.items()}
    peaks = {mode: median(r, "peak_mib") for mode, r in runs.items()}
    first = runs["plain"][0]
    L, H, T = first["layers"], first["heads"], first["tokens"]
    ratio = {mode: s / seconds["plain"] for mode, s in seconds.items()}
    store = (f"{seconds['trace+store']:>8.2f} {ratio['trace+store']:>5.2f}x" if "trace+store" in seconds
             else f"{'-':>8} {'-':>6}")
    memory = " / ".join(f"{peaks[m]:.0f}" for m in runs)
    print(f"{model_name:13} {T:>6} {first['n']:>4} {seconds['plain']:>8.2f} {seconds['trace']:>8.2f} "
          f"{ratio['trace']:>5.2f}x {TARGETS[model_name]:>5.2f}x {store}  {memory:>38} "
          f"{L * H * T * 4 / 2**20:>9.2f} {L * H * T * T * 4 / 2**20:>10.0f}")
    return {"model": model_name, "tokens": T, "n": first["n"], "seconds": seconds, "ratio": ratio, "peak_mib": peaks}


if __name__ == "__main__":
    main()
