"""modbias against the tools a user would pick to get "the attention row of generated step k".

One random 8-layer LLaMA (d=512, 8 heads), one prompt of T tokens, 16 greedy new tokens; the
row wanted is every head's attention of the query that decodes generated step 8.  Each tool
is measured in a fresh subprocess (one thread on CPU), after a warm-up inside that process:

- ``plain``             ``model.generate`` (SDPA), no rows: the reference cost;
- ``modbias``           ``modbias.attention_rows`` (generation + the probe's rows pass);
- ``hf_eager``          eager attention, ``generate(output_attentions=True)``;
- ``transformer_lens``  ``generate`` + a TransformerBridge ``run_with_cache`` of ``hook_pattern``;
- ``nnsight``           ``generate`` + an nnsight trace saving the eager attention weights.

Time (CPU time on CPU, wall time on CUDA) is the median of ``--repeats`` interleaved
processes; memory is the peak above the state before the measured call (the method of
:mod:`analyses.measure`, shared with bench_trace.py and bench_intervene.py).  Every peer's
rows are compared with modbias's.  A peer whose full attention matrices would not fit in the
memory available is skipped, with a note.

    python analyses/bench_peers.py --tokens 300,1000,3000
    python analyses/bench_peers.py --tokens 1000,3000,8000 --device cuda
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.measure import failure, interleaved, machine, measure, median, run_cell, time_key  # noqa: E402

TOOLS = ("plain", "modbias", "hf_eager", "transformer_lens", "nnsight")
FULL_MATRIX_TOOLS = ("hf_eager", "transformer_lens", "nnsight")
LAYERS, WIDTH, HEADS, VOCAB, NEW_TOKENS, STEP = 8, 512, 8, 1000, 16, 8


# -- one measurement (runs in its own process) ---------------------------------------------------
def build(device: str, attention: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=WIDTH * 11 // 4,
                         num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=HEADS,
                         max_position_embeddings=16384)
    model = LlamaForCausalLM(config).to(device).eval()
    model.set_attn_implementation(attention)
    model.generation_config.eos_token_id = None  # every tool decodes all 16 tokens
    model.generation_config.pad_token_id = 0
    return model


def tool_call(tool: str, device: str):
    """(setup objects, a call returning the rows ``[L, H, K]`` of generated step STEP)."""
    import torch

    def generate(model, ids, **kwargs):
        return model.generate(input_ids=ids, max_new_tokens=NEW_TOKENS, do_sample=False, **kwargs)

    if tool == "plain":
        model = build(device, "sdpa")
        return lambda ids: (generate(model, ids), None)[1]
    if tool == "modbias":
        import modbias

        model = build(device, "sdpa")
        return lambda ids: torch.as_tensor(modbias.attention_rows(model, ids, steps=[STEP],
                                                                  max_new_tokens=NEW_TOKENS).values[0, 0])
    if tool == "hf_eager":
        model = build(device, "eager")

        def call(ids):
            out = generate(model, ids, output_attentions=True, return_dict_in_generate=True)
            return torch.stack([layer[0, :, -1] for layer in out.attentions[STEP]])
        return call
    if tool == "transformer_lens":
        from modbias.reference.transformer_lens_hooks import bridge_from_hf, pattern_hook_name

        model = build(device, "sdpa")
        bridge = bridge_from_hf(model)
        names = [pattern_hook_name(layer) for layer in range(LAYERS)]

        def call(ids):
            sequence = generate(model, ids)[:, :ids.shape[1] + STEP]
            _, cache = bridge.run_with_cache(sequence, names_filter=lambda name: name in names)
            return torch.stack([cache[name][0, :, -1] for name in names])
        return call
    if tool == "nnsight":
        import nnsight

        model = build(device, "eager")
        traced = nnsight.NNsight(model)

        def call(ids):
            sequence = generate(model, ids)[:, :ids.shape[1] + STEP]
            saved = []  # filled inside the trace (nnsight runs its body with the model)
            with traced.trace(input_ids=sequence, output_attentions=True):
                for layer in range(LAYERS):
                    saved.append(traced.model.layers[layer].self_attn.output[1].save())
            return torch.stack([torch.as_tensor(s)[0, :, -1] for s in saved])
        return call
    raise ValueError(f"unknown tool {tool!r}; expected one of {TOOLS}")


def measure_cell(tool: str, tokens: int, device: str, rows_out: Path | None) -> dict:
    import torch

    torch.set_num_threads(1)
    call = tool_call(tool, device)
    ids = torch.randint(3, VOCAB, (1, tokens), generator=torch.Generator().manual_seed(1)).to(device)
    cost, rows = measure(lambda: call(ids), lambda: call(ids[:, :32]), device)  # warm-up: a 32-token prompt
    if rows_out is not None and rows is not None:
        torch.save(rows.float().cpu(), rows_out)
    return {"tool": tool, "tokens": tokens, **cost}


# -- the driver ----------------------------------------------------------------------------------
def full_matrices_gib(tokens: int) -> float:
    """What eager attention of the prompt holds at once: every layer's ``[H, T, T]`` in fp32."""
    return LAYERS * HEADS * tokens ** 2 * 4 / 2 ** 30


def available_gib(device: str) -> float:
    if device == "cuda":
        import torch

        return torch.cuda.mem_get_info()[0] / 2 ** 30
    line = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemAvailable"))
    return int(line.split()[1]) / 2 ** 20


def peer_cell(tool: str, tokens: int, device: str, rows_out: Path | None) -> dict:
    args = ["--cell", tool, "--tokens", str(tokens), "--device", device]
    return run_cell(__file__, args + (["--rows-out", str(rows_out)] if rows_out is not None else []))


def compare_rows(tool_rows: Path, reference: Path) -> float:
    import torch

    return float((torch.load(tool_rows) - torch.load(reference)).abs().max())


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", default="300,1000,3000", help="comma list of prompt lengths T")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--cell", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--rows-out", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, default=None, help="also write every measurement as JSON")
    args = parser.parse_args(argv)
    if args.cell:
        print(json.dumps(measure_cell(args.cell, int(args.tokens), args.device, args.rows_out)))
        return []
    tools = [t for t in args.tools.split(",") if t]
    results = []
    print(f"machine before: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        for tokens in (int(t) for t in args.tokens.split(",")):
            cells = {tool: cell(tool, tokens, args.device, Path(tmp)) for tool in tools}
            results += report(tokens, interleaved(cells, args.repeats), Path(tmp), time_key(args.device))
    print(f"machine after: {machine()}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


def cell(tool: str, tokens: int, device: str, tmp: Path):
    """One measurement of ``tool`` at ``tokens`` (the first one also saves its rows for the comparison),
    or a skip note when its full attention matrices would not fit."""
    if tool in FULL_MATRIX_TOOLS and full_matrices_gib(tokens) > 0.5 * available_gib(device):
        return lambda: {"skipped": f"full matrices need {full_matrices_gib(tokens):.1f} GiB"}
    rows = tmp / f"{tool}-{tokens}.pt"
    return lambda: peer_cell(tool, tokens, device, rows if tool != "plain" and not rows.exists() else None)


def report(tokens: int, cells: dict, tmp: Path, key: str = "seconds") -> list[dict]:
    """Print one line per tool: median time (``key``) as a ratio to plain generation, extra peak memory,
    row agreement."""
    plain = median(cells.get("plain", []), key)
    plain_peak = median(cells.get("plain", []), "peak_mib") or 0.0
    print(f"\nT = {tokens} prompt tokens, {NEW_TOKENS} new tokens, rows of step {STEP}")
    out = []
    for tool, runs in cells.items():
        bad = failure(runs)
        if bad:
            print(f"  {tool:<17} {bad}")
            out.append({"tool": tool, "tokens": tokens, "note": bad})
            continue
        seconds, peak = median(runs, key), median(runs, "peak_mib")
        ratio = f"{seconds / plain:5.2f}x" if plain else "   - "
        rows, reference = tmp / f"{tool}-{tokens}.pt", tmp / f"modbias-{tokens}.pt"
        agree = (f"   max |rows - modbias| {compare_rows(rows, reference):.1e}"
                 if tool not in ("plain", "modbias") and rows.exists() and reference.exists() else "")
        print(f"  {tool:<17} {seconds:7.2f} s  {ratio}   peak +{peak:7.0f} MiB (plain +{plain_peak:.0f}){agree}")
        out.append({"tool": tool, "tokens": tokens, "seconds": seconds, "ratio": seconds / plain if plain else None,
                    "peak_mib": peak})
    return out


if __name__ == "__main__":
    main()
