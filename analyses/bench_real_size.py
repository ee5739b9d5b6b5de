"""Cost of trace and AR at real model sizes and token counts, against plain generation (issue 4, item 5).

Builds randomly initialised models with the dimensions of

- ``features``: LLaMA-2-7B (32 layers, 32 heads, d=4096) + Emotion-LLaMA's projectors, fed its
  260 feature tokens (256 EVA patches, FaceMAE, VideoMAE, HuBERT, EVA cls) inside its prompt;
- ``qwen2_5_omni``: the Qwen2.5-Omni-7B thinker (28 layers, 28 heads, 4 KV heads, d=3584, with its
  32-layer audio and vision towers), fed a 20-frame 280x560 video (about 2,000 video tokens) with
  4 s of audio interleaved (100 audio tokens) through the real processor code,
- ``emotion_llama``: Emotion-LLaMA as released — EVA ViT-g (39 layers, d=1408, 448 px) on a
  360x640 frame, its projectors and LLaMA-2-7B — through the ``emotion_llama`` adapter (260
  feature tokens: 256 image, FaceMAE, VideoMAE, HuBERT, CLS),
- ``r1_omni``: R1-Omni / HumanOmni-0.5B — Qwen2-0.5B (24 layers, d=896), SigLIP-base (8 frames at
  224 px), the Whisper-large-v3 encoder (32 layers, d=1280, 30 s), BERT-base and the
  all_in_one_small projector — through the ``r1_omni`` adapter (392 visual + 500 audio tokens),

and times, for one batch: input preparation, plain greedy generation (SDPA, no probe), ``modbias.trace``
(generation + the probe's rows pass) and ``modbias.trace`` under AR — each once untimed (warm-up),
then ``--repeats`` times interleaved, reporting the median.  Peak memory is CUDA's
``max_memory_allocated`` per phase on a GPU; on a CPU only the process's peak RSS is known, so
the CPU numbers are a smoke test, not a measurement.  Nothing is downloaded: tokenizer and
processor files come from :func:`modbias.testing.make_tiny_checkpoint`.

    python analyses/bench_real_size.py --device cuda                          # all four families, real size
    python analyses/bench_real_size.py --device cuda --family emotion_llama   # one family
    python analyses/bench_real_size.py --device cpu --scale 0.03              # smoke test (a few minutes)

Every phase also prints the GPU's name.  The released families are built from their adapter
classes with random weights in memory (no multi-GB files are written).
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import modbias
from modbias.data import media
from modbias.data.readers import pack_streams
from modbias.data.sample import Sample
from modbias.interventions import make
from modbias.testing import make_tiny_checkpoint

LLAMA2_7B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096)
QWEN_OMNI_7B_TEXT = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768)
QWEN_OMNI_7B_AUDIO = dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120)
QWEN_OMNI_7B_VISION = dict(hidden_size=1280, depth=32, num_heads=16, intermediate_size=3420)
EVA_G = dict(width=1408, depth=39, heads=16, mlp_hidden=6144, patch=14, image_size=448)
QWEN2_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                 num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True,
                 rope_theta=1e6)
SIGLIP_BASE = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                   image_size=224, patch_size=16)
WHISPER_LARGE_ENCODER = dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120,
                             num_mel_bins=128, max_source_positions=1500)
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                 vocab_size=30522)
EMOTION_LLAMA_STREAMS = {"eva": ("visual", 256, 5632, "linear"), "face_mae": ("visual", 1, 1024, "linear"),
                         "video_mae": ("visual", 1, 1024, "linear"), "hubert": ("audio", 1, 1024, "linear"),
                         "eva_cls": ("visual", 1, 1408, "linear")}


def scaled(n: int, scale: float, minimum: int = 1, multiple: int = 1) -> int:
    return max(minimum, int(round(n * scale / multiple)) * multiple)


def attention_dims(heads: int, kv_heads: int, head_dim: int, scale: float) -> tuple[int, int, int]:
    """Heads, KV heads and head size at ``scale`` (head size 128 kept down to scale 0.5, else 32)."""
    if scale >= 0.5:
        return scaled(heads, scale, 2), max(1, scaled(heads, scale, 2) * kv_heads // heads), head_dim
    n = max(2, int(round(heads * scale)))
    ratio = max(1, heads // kv_heads)
    n = max(ratio, n // ratio * ratio)
    return n, n // ratio, 32


def llama2_7b_dims(scale: float) -> dict:
    heads, kv, head_dim = attention_dims(32, 32, 128, scale)
    return dict(LLAMA2_7B, hidden_size=heads * head_dim, num_attention_heads=heads, num_key_value_heads=kv,
                num_hidden_layers=scaled(32, scale, 2), intermediate_size=scaled(11008, scale, 64, 64))


# -- models ---------------------------------------------------------------------------------------
def features_model(scale: float, device: str, dtype: torch.dtype, tmp: Path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from modbias.models.features import FeatureConfig, FeatureModel
    from modbias.testing import tiny_features_config

    text = llama2_7b_dims(scale)
    tiny = make_tiny_checkpoint("features", tmp / "features")
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    spec = tiny_features_config()
    spec["streams"] = {name: {"modality": m, "tokens": scaled(t, scale, 1) if t > 1 else 1,
                              "dim": scaled(d, scale, 8, 8), "projector": p}
                       for name, (m, t, d, p) in EMOTION_LLAMA_STREAMS.items()}
    with torch.device(device), default_dtype(dtype):
        backbone = LlamaForCausalLM(LlamaConfig(**text, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                attn_implementation="sdpa")).to(dtype).eval()
        model = FeatureModel(backbone, tokenizer, FeatureConfig.from_dict(spec)).to(dtype).eval()
    return model, text


def features_samples(model, n: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        extra = {"streams": {}}
        arrays = {}
        for modality in ("visual", "audio"):
            streams = {name: rng.standard_normal((spec.tokens, spec.dim)).astype(np.float32)
                       for name, spec in model.config.streams.items() if spec.modality == modality}
            arrays[modality], extra["streams"][modality] = pack_streams(f"s{i}", modality, streams)
        out.append(Sample(f"s{i}", "consistent", "happy", arrays["visual"], arrays["audio"],
                          subtitle="i did not think it would be like this today", extra=extra))
    return out


def qwen_model(scale: float, device: str, dtype: torch.dtype, tmp: Path):
    from transformers import Qwen2_5OmniThinkerConfig, Qwen2_5OmniThinkerForConditionalGeneration

    from modbias.models.qwen_omni import OmniPrompt, QwenOmniModel, load_processor

    tiny = make_tiny_checkpoint("qwen2_5_omni", tmp / "qwen")
    for name in ("preprocessor_config.json", "video_preprocessor_config.json"):  # the released pixel limits
        cfg = json.loads((tiny / name).read_text())
        cfg.update(min_pixels=128 * 28 * 28, max_pixels=768 * 28 * 28,
                   size={"shortest_edge": 128 * 28 * 28, "longest_edge": 768 * 28 * 28})
        (tiny / name).write_text(json.dumps(cfg))
    processor = load_processor(tiny)
    tok = processor.tokenizer
    heads, kv, head_dim = attention_dims(28, 4, 128, scale)
    section = [head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16]  # [16, 24, 24] at head size 128
    text = dict(QWEN_OMNI_7B_TEXT, hidden_size=heads * head_dim, num_attention_heads=heads, num_key_value_heads=kv,
                num_hidden_layers=scaled(28, scale, 2), intermediate_size=scaled(18944, scale, 64, 64),
                rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": section},
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False)
    a_heads = max(2, scaled(20, scale, 2))
    audio = dict(QWEN_OMNI_7B_AUDIO, encoder_layers=scaled(32, scale, 1), encoder_attention_heads=a_heads,
                 d_model=a_heads * 64, encoder_ffn_dim=scaled(5120, scale, 64, 64), output_dim=text["hidden_size"])
    v_heads = max(2, scaled(16, scale, 2))
    vision = dict(QWEN_OMNI_7B_VISION, depth=scaled(32, scale, 1), num_heads=v_heads, hidden_size=v_heads * 80,
                  intermediate_size=scaled(3420, scale, 64, 64), out_hidden_size=text["hidden_size"],
                  fullatt_block_indexes=[scaled(32, scale, 1) - 1])
    ids = {k: tok.convert_tokens_to_ids(t) for k, t in (("audio", "<|AUDIO|>"), ("image", "<|IMAGE|>"),
                                                        ("video", "<|VIDEO|>"), ("abos", "<|audio_bos|>"),
                                                        ("aeos", "<|audio_eos|>"), ("vbos", "<|vision_bos|>"),
                                                        ("veos", "<|vision_eos|>"))}
    config = Qwen2_5OmniThinkerConfig(
        text_config=text, audio_config=audio, vision_config=vision, audio_token_index=ids["audio"],
        image_token_index=ids["image"], video_token_index=ids["video"], audio_start_token_id=ids["abos"],
        audio_end_token_id=ids["aeos"], vision_start_token_id=ids["vbos"], vision_end_token_id=ids["veos"])
    config._attn_implementation = "sdpa"
    with torch.device(device), default_dtype(dtype):
        thinker = Qwen2_5OmniThinkerForConditionalGeneration(config).to(dtype).eval()
    return QwenOmniModel(thinker, processor, OmniPrompt(use_audio_in_video=True)), text


def qwen_samples(n: int, scale: float) -> list[Sample]:
    rng = np.random.default_rng(0)
    frames = max(4, scaled(20, scale ** 0.5, 4, 2))
    height, width = (280, 560) if scale >= 0.5 else (scaled(280, scale ** 0.5, 56, 28), scaled(560, scale ** 0.5, 56, 28))
    seconds = max(1.0, 4.0 * scale)
    out = []
    for i in range(n):
        video = media.Video((rng.random((frames, height, width, 3)) * 255).astype(np.uint8), fps=2.0)
        wave = (0.1 * rng.standard_normal(int(seconds * media.AUDIO_RATE))).astype(np.float32)
        out.append(Sample(f"s{i}", "consistent", "happy", np.zeros((1, 0), np.float32), np.zeros((1, 0), np.float32),
                          subtitle="i did not think it would be like this today",
                          extra={"video": video, "audio": wave}))
    return out


def emotion_llama_model(scale: float, device: str, dtype: torch.dtype, tmp: Path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from modbias.models.emotion_llama import PROJECTORS, EmotionLlamaModel
    from modbias.models.eva_vit import EvaViT

    text = llama2_7b_dims(scale)
    tokenizer = AutoTokenizer.from_pretrained(make_tiny_checkpoint("emotion_llama", tmp / "el") / "Llama-2-7b-chat-hf")
    eva_heads = max(1, scaled(EVA_G["heads"], scale))
    eva = dict(EVA_G, width=88 * eva_heads, heads=eva_heads, depth=scaled(EVA_G["depth"], scale),
               mlp_hidden=scaled(EVA_G["mlp_hidden"], scale, 64, 64))  # 448 px, 1024 patches at every scale
    d, w, f = text["hidden_size"], eva["width"], scaled(1024, scale, 8, 8)
    shapes = {"llama_proj": (4 * w, d), "cls_tk_llama_proj": (w, d),
              **{f"feats_llama_proj{i}": (f, d) for i in (1, 2, 3)}}
    with torch.device(device), default_dtype(dtype):
        backbone = LlamaForCausalLM(LlamaConfig(**text, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                attn_implementation="sdpa")).to(dtype).eval()
        model = EmotionLlamaModel(backbone, tokenizer, EvaViT(**eva).to(dtype).eval(),
                                  torch.nn.ModuleDict({n: torch.nn.Linear(*shapes[n]) for n in PROJECTORS}).to(dtype))
    return model.eval(), dict(text, eva_depth=eva["depth"], eva_width=w)


def emotion_llama_samples(model, n: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        dims = model.feature_dims
        visual, v_meta = pack_streams(f"s{i}", "visual", {s: rng.standard_normal(dims[s]).astype(np.float32)
                                                          for s in ("face_mae", "video_mae")})
        audio, a_meta = pack_streams(f"s{i}", "audio", {"hubert": rng.standard_normal(dims["hubert"]).astype(np.float32)})
        frame = (rng.random((360, 640, 3)) * 255).astype(np.uint8)
        out.append(Sample(f"s{i}", "consistent", "happy", visual, audio,
                          subtitle="i did not think it would be like this today",
                          extra={"streams": {"visual": v_meta, "audio": a_meta}, "rows": {"visual": 2, "audio": 1},
                                 "image": frame}))
    return out


def r1_omni_model(scale: float, device: str, dtype: torch.dtype, tmp: Path):
    from transformers import (AutoImageProcessor, AutoTokenizer, BertConfig, BertModel, Qwen2Config, Qwen2ForCausalLM,
                              SiglipVisionConfig, SiglipVisionModel, WhisperConfig, WhisperFeatureExtractor)
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from modbias.models.humanomni_parts import AllInOneSmall, mlp2x_gelu
    from modbias.models.r1_omni import R1OmniModel

    tiny = make_tiny_checkpoint("r1_omni", tmp / "r1")
    heads, kv, head_dim = attention_dims(14, 2, 64, scale)
    text = dict(QWEN2_05B, hidden_size=heads * head_dim, num_attention_heads=heads, num_key_value_heads=kv,
                num_hidden_layers=scaled(24, scale, 2), intermediate_size=scaled(4864, scale, 64, 64))

    def tower(dims: dict, width: str, layers: str, heads_key: str, ffn: str, head_size: int) -> dict:
        n = max(2, scaled(dims[heads_key], scale, 2))
        return dict(dims, **{width: n * head_size, heads_key: n, layers: scaled(dims[layers], scale),
                             ffn: scaled(dims[ffn], scale, 64, 64)})

    vision = tower(SIGLIP_BASE, "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", 64)
    audio = tower(WHISPER_LARGE_ENCODER, "d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim", 64)
    bert = tower(BERT_BASE, "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", 64)
    d = text["hidden_size"]
    with torch.device(device), default_dtype(dtype):
        llm = Qwen2ForCausalLM(Qwen2Config(**text, attn_implementation="sdpa")).to(dtype).eval()
        parts = dict(vision=SiglipVisionModel(SiglipVisionConfig(**vision)).eval(),
                     audio_encoder=WhisperEncoder(WhisperConfig(**audio)).eval(),
                     bert=BertModel(BertConfig(**bert)).eval(),
                     projector=AllInOneSmall(vision["hidden_size"], d, depth=2),
                     audio_projector=mlp2x_gelu(audio["d_model"], d),
                     bert_gate=torch.nn.Sequential(torch.nn.Linear(bert["hidden_size"], 3584), torch.nn.GELU(),
                                                   torch.nn.Linear(3584, 3)))
        parts = {k: v.to(dtype) for k, v in parts.items()}
    model = R1OmniModel(llm, AutoTokenizer.from_pretrained(tiny), parts["vision"],
                        AutoImageProcessor.from_pretrained(tiny / "siglip-base-patch16-224"), parts["audio_encoder"],
                        WhisperFeatureExtractor.from_pretrained(tiny / "whisper-large-v3"), parts["bert"],
                        AutoTokenizer.from_pretrained(tiny / "bert-base-uncased"), parts["projector"],
                        parts["audio_projector"], parts["bert_gate"])
    return model.eval(), dict(text, vision_layers=vision["num_hidden_layers"], audio_layers=audio["encoder_layers"])


def r1_omni_samples(n: int) -> list[Sample]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        video = media.Video((rng.random((40, 360, 640, 3)) * 255).astype(np.uint8), fps=10.0)
        wave = (0.1 * rng.standard_normal(4 * media.AUDIO_RATE)).astype(np.float32)
        out.append(Sample(f"s{i}", "consistent", "happy", np.zeros((1, 0), np.float32), np.zeros((1, 0), np.float32),
                          extra={"video": video, "audio": wave}))
    return out


BUILDERS = {"features": (features_model, lambda model, args: features_samples(model, args.batch)),
            "qwen2_5_omni": (qwen_model, lambda model, args: qwen_samples(args.batch, args.scale)),
            "emotion_llama": (emotion_llama_model, lambda model, args: emotion_llama_samples(model, args.batch)),
            "r1_omni": (r1_omni_model, lambda model, args: r1_omni_samples(args.batch))}


# -- measurement ------------------------------------------------------------------------------------
class default_dtype:
    """Build weights directly in ``dtype`` (a 7B model in float32 first would need twice the memory)."""

    def __init__(self, dtype: torch.dtype):
        self.dtype, self.previous = dtype, torch.get_default_dtype()

    def __enter__(self):
        torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.previous)


def measure(device: str, fn):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - before) / 2 ** 30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # process peak (GiB, Linux KiB)
    return out, time.perf_counter() - start, peak


def run_family(family: str, args, tmp: Path) -> list[dict]:
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    build, make_samples = BUILDERS[family]
    (model, dims), t_build, _ = measure(args.device, lambda: build(args.scale, args.device, dtype, tmp))
    samples = make_samples(model, args)
    batch = model.prepare(samples)
    layout = batch.layouts[0]
    print(f"\n{family}: {dims['num_hidden_layers']} layers, {dims['num_attention_heads']} heads, "
          f"d={dims['hidden_size']}; prompt {layout.prompt_len} tokens ({layout.n_visual} visual, "
          f"{layout.n_audio} audio), batch {args.batch}, {args.new_tokens} new tokens, {dtype}, {device_name(args.device)}"
          f"; random weights built in {t_build:.1f} s")
    common = dict(max_new_tokens=args.new_tokens, batch_size=args.batch)
    phases = {"prepare inputs": lambda: model.prepare(samples),
              "plain generate": lambda: model.generate(batch, args.new_tokens),  # SDPA, no probe
              "trace": lambda: modbias.trace(model, samples, **common),
              "trace + AR": lambda: modbias.trace(model, samples, interventions=[make("ar")], **common)}
    for phase in phases.values():  # warm-up: kernels, allocator, the probe's instrumentation
        phase()
    runs = {name: [] for name in phases}
    for _ in range(args.repeats):  # interleaved, so drift of the machine hits every phase alike
        for name, phase in phases.items():
            out, seconds, peak = measure(args.device, phase)
            runs[name].append((seconds, peak))
            if name == "trace":
                ds = out
    rows = [{"phase": name, "seconds": float(np.median([t for t, _ in got])), "peak_gib": max(m for _, m in got)}
            for name, got in runs.items()]
    t_prep, t_gen = rows[0]["seconds"], rows[1]["seconds"]
    plain = t_prep + t_gen  # trace prepares its inputs itself
    for row in rows:
        ratio = f"   x{row['seconds'] / plain:.2f} of prepare + plain generate" if row["phase"].startswith("trace") else ""
        print(f"  {row['phase']:<16} {row['seconds']:8.2f} s   peak {row['peak_gib']:7.2f} GiB{ratio}")
    found = int(ds.found.values[:, 0].sum())
    print(f"  emotion word found in {found}/{len(samples)} generations (random weights; rows are computed either way)")
    rows_bytes = dims["num_hidden_layers"] * dims["num_attention_heads"] * (layout.prompt_len + args.new_tokens) * 4
    full_bytes = rows_bytes * (layout.prompt_len + args.new_tokens)
    print(f"  one query row per head: {rows_bytes / 2 ** 20:.1f} MiB per sample; full attention matrices "
          f"would be {full_bytes / 2 ** 30:.1f} GiB per sample (float32)")
    del model, batch
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return [{"family": family, "device": device_name(args.device), **row} for row in rows]


def device_name(device: str) -> str:
    return torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--scale", type=float, default=1.0, help="shrink widths, depths and token counts (CPU smoke)")
    parser.add_argument("--family", default="all", choices=("all", "both", *BUILDERS),
                        help="one family; 'both' = features and qwen2_5_omni, 'all' = every family")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per phase after one warm-up (median)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        torch.set_num_threads(min(torch.get_num_threads(), 2) or 1)
    families = {"all": tuple(BUILDERS), "both": ("features", "qwen2_5_omni")}.get(args.family, (args.family,))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in families:
            results += run_family(family, args, Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
