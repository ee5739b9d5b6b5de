"""Cost of tracing vs. plain generation, measured in one run (issue: trace, item 9).

Each measurement runs in a fresh subprocess, so its peak resident memory is its own:

    python analyses/bench_trace.py                 # organism + random LLaMA at ~3,000 tokens
    python analyses/bench_trace.py --tokens 1000,2000,3000

Prints time and peak memory of plain greedy generation (uninstrumented HF
``generate``) and of ``modbias.trace`` (generation + the probe's rows pass),
their ratio, and the extra memory of tracing next to the sizes L·H·T (one
row per head) and L·H·T² (full attention matrices) for float32.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

import modbias
from modbias.core.layout import TokenLayout
from modbias.data.sample import Sample
from modbias.models.base import ModelAdapter, PreparedBatch, left_pad

RANDOM_LLAMA = dict(vocab_size=512, hidden_size=256, intermediate_size=688, num_hidden_layers=8,
                    num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=4096)


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
            parts.append(torch.cat([text, self.proj(torch.as_tensor(s.visual)), self.proj(torch.as_tensor(s.audio)), text]))
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


def worker(mode: str, model_name: str, tokens: int, n: int, new_tokens: int) -> dict:
    torch.set_num_threads(2)
    if model_name == "organism":
        model = modbias.load_model("organism")
        data = list(modbias.load_benchmark("synth", subset="all", limit=n // 3))
        batch_size = 64
    else:
        model, data, batch_size = RandomFeatureLlama(), random_samples(n, tokens), 1
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with torch.no_grad():
        if mode == "generate":
            for i in range(0, len(data), batch_size):
                model.generate(model.prepare(data[i:i + batch_size]), new_tokens)
        else:
            modbias.trace(model, data, batch_size=batch_size, max_new_tokens=new_tokens)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mib": peak / 1024, "loaded_mib": rss_loaded / 1024,
            "layers": model.n_layers, "heads": model.n_heads}


def measure(mode, model_name, tokens, n, new_tokens) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--model", model_name, "--tokens", str(tokens),
           "--n", str(n), "--new-tokens", str(new_tokens)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=["generate", "trace"])
    parser.add_argument("--model", default="organism")
    parser.add_argument("--tokens", default="3000")
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--new-tokens", type=int, default=16)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.model, int(args.tokens), args.n, args.new_tokens)))
        return
    cases = [("organism", 0, args.n)] + [("random-llama", int(t), 2) for t in args.tokens.split(",")]
    print(f"{'model':14} {'T':>6} {'gen s':>8} {'trace s':>8} {'ratio':>6} {'gen MiB':>8} {'trace MiB':>9} "
          f"{'extra MiB':>9} {'L·H·T MiB':>9} {'L·H·T² MiB':>10}")
    for model_name, tokens, n in cases:
        gen = measure("generate", model_name, tokens, n, args.new_tokens)
        tr = measure("trace", model_name, tokens, n, args.new_tokens)
        L, H, T = gen["layers"], gen["heads"], tokens or 290
        print(f"{model_name:14} {T:>6} {gen['seconds']:>8.2f} {tr['seconds']:>8.2f} "
              f"{tr['seconds'] / gen['seconds']:>6.2f} {gen['peak_mib']:>8.0f} {tr['peak_mib']:>9.0f} "
              f"{tr['peak_mib'] - gen['peak_mib']:>9.0f} {L * H * T * 4 / 2**20:>9.2f} {L * H * T * T * 4 / 2**20:>10.0f}")


if __name__ == "__main__":
    main()
