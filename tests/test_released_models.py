"""Emotion-LLaMA and R1-Omni as released: tiny checkpoints in the released layout, loaded through the
path a real download takes, checked against reference assemblies written here from the documented
equations (released-checkpoints.md; MiniGPT-v2's encode_img, HumanOmni's encode_images_or_videos)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import modbias
from modbias.cli import app
from modbias.core.probe import AttentionProbe, eager_rows
from modbias.data import media
from modbias.interventions import make
from modbias.models.released_files import CheckpointError
from modbias.runs.store import open_run
from modbias.runs.trace import decode_generation
from modbias.testing import make_tiny_checkpoint, write_camer_benchmark

pytest.importorskip("av")
pytest.importorskip("PIL")

FAMILIES = ("emotion_llama", "r1_omni")
GEN = 5
STREAMS = {"face_mae": ("visual", 1, 16), "video_mae": ("visual", 1, 16), "hubert": ("audio", 1, 16)}
EMOTION_LLAMA_PROMPT = ("<s>[INST] <video>|</video> <feature><FeatureHere></feature> The person in video says: {}.  "
                        "[emotion] Please determine which emotion label in the video represents: happy, sad, neutral, "
                        "angry, worried, surprise, fear, contempt, doubt.  [/INST]")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("released")
    return {family: make_tiny_checkpoint(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def models(checkpoints):
    return {family: modbias.load_model(f"{family}:{path}") for family, path in checkpoints.items()}


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    """CA-MER-style folder: one sample per subset, MP4 + WAV, MER2023-style FaceMAE/VideoMAE/HuBERT vectors."""
    path = write_camer_benchmark(tmp_path_factory.mktemp("bench"), n=3, features=STREAMS)
    rows = [json.loads(line) for line in (path / "annotations.jsonl").read_text().splitlines()]
    for i, row in enumerate(rows):  # prompts of different lengths: batches are left-padded
        row["subtitle"] = " ".join(["i think it is here"] * (i + 1))
    (path / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def bench(bench_dir):
    return modbias.load_benchmark(str(bench_dir))


def copy_checkpoint(src, dst):
    shutil.copytree(src, dst)
    return dst


# -- Emotion-LLaMA: files and keys ---------------------------------------------------------------
def test_emotion_llama_pth_is_the_released_layout(checkpoints):
    ckpt = torch.load(checkpoints["emotion_llama"] / "Emoation_LLaMA.pth", weights_only=True)
    assert set(ckpt) == {"model", "optimizer", "config", "scaler", "epoch"}
    for key in ("llama_proj.weight", "feats_llama_proj1.weight", "cls_tk_llama_proj.weight",
                "llama_model.base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"):
        assert key in ckpt["model"], key
    eva = torch.load(checkpoints["emotion_llama"] / "eva_vit_g.pth", weights_only=True)
    assert eva["pos_embed"].shape[1] == 16 * 16 + 1 and "blocks.0.attn.q_bias" in eva


def reference_eva(state: dict, pixels: torch.Tensor, grid: int) -> torch.Tensor:
    """EVA ViT-g from its equations on the raw LAVIS state dict (88-wide heads, no final norm)."""
    patch = state["patch_embed.proj.weight"].shape[-1]
    x = F.conv2d(pixels, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=patch)
    x = torch.cat([state["cls_token"], x.flatten(2).transpose(1, 2)], dim=1)
    old = state["pos_embed"][:, 1:].reshape(1, 16, 16, -1).permute(0, 3, 1, 2)
    new = F.interpolate(old, size=(grid, grid), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    x = x + torch.cat([state["pos_embed"][:, :1], new.reshape(1, grid * grid, -1)], dim=1)
    width = x.shape[-1]
    heads = width // 88
    for i in range(1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))):
        p = {k[len(f"blocks.{i}."):]: v for k, v in state.items() if k.startswith(f"blocks.{i}.")}
        h = F.layer_norm(x, (width,), p["norm1.weight"], p["norm1.bias"], 1e-6)
        qkv = h @ p["attn.qkv.weight"].T + torch.cat([p["attn.q_bias"], torch.zeros(width), p["attn.v_bias"]])
        q, k, v = (t.reshape(1, -1, heads, 88).transpose(1, 2) for t in qkv.split(width, -1))
        attn = ((q @ k.transpose(-1, -2)) / 88 ** 0.5).softmax(-1) @ v
        x = x + attn.transpose(1, 2).reshape(1, -1, width) @ p["attn.proj.weight"].T + p["attn.proj.bias"]
        h = F.layer_norm(x, (width,), p["norm2.weight"], p["norm2.bias"], 1e-6)
        x = x + F.gelu(h @ p["mlp.fc1.weight"].T + p["mlp.fc1.bias"]) @ p["mlp.fc2.weight"].T + p["mlp.fc2.bias"]
    return x


def test_emotion_llama_equals_the_reference_assembly(checkpoints, models, bench, bench_dir):
    from PIL import Image
    from transformers import AutoTokenizer, LlamaForCausalLM

    folder, model, sample = checkpoints["emotion_llama"], models["emotion_llama"], bench[1]
    ckpt = torch.load(folder / "Emoation_LLaMA.pth", weights_only=True)["model"]
    eva = torch.load(folder / "eva_vit_g.pth", weights_only=True)
    frame = media.first_frame(sample.extra["video_path"])
    size = 32 * eva["patch_embed.proj.weight"].shape[-1]
    image = np.asarray(Image.fromarray(frame).resize((size, size), Image.BICUBIC), np.float32) / 255
    mean, std = np.array([0.48145466, 0.4578275, 0.40821073]), np.array([0.26862954, 0.26130258, 0.27577711])
    pixels = torch.tensor(((image - mean) / std).transpose(2, 0, 1)[None], dtype=torch.float32)
    feats = reference_eva(eva, pixels, 32)[0]
    feats = F.layer_norm(feats, feats.shape[-1:], eps=1e-5)  # ln_vision, identity affine

    def linear(name, x):
        return x @ ckpt[f"{name}.weight"].T + ckpt[f"{name}.bias"]

    patches = linear("llama_proj", feats[1:].reshape(256, -1))  # 1x4: four consecutive patches per token
    face, video, audio = (linear(f"feats_llama_proj{i}", torch.tensor(np.load(bench_dir / name / f"{sample.id}.npy")))
                          for i, name in ((1, "face_mae"), (2, "video_mae"), (3, "hubert")))
    block = torch.cat([patches, face, video, audio, linear("cls_tk_llama_proj", feats[:1])])
    tok = AutoTokenizer.from_pretrained(folder / "Llama-2-7b-chat-hf")
    before, after = EMOTION_LLAMA_PROMPT.format(sample.subtitle).split("|")
    llama = LlamaForCausalLM.from_pretrained(folder / "Llama-2-7b-chat-hf").eval()
    with torch.no_grad():
        for i, layer in enumerate(llama.model.layers):  # LoRA r 64, alpha 16: W + 0.25 B A
            for name in ("q_proj", "v_proj"):
                stem = f"llama_model.base_model.model.model.layers.{i}.self_attn.{name}"
                getattr(layer.self_attn, name).weight += 0.25 * ckpt[f"{stem}.lora_B.weight"] @ ckpt[f"{stem}.lora_A.weight"]
        embed = llama.get_input_embeddings()
        expected = torch.cat([embed(torch.tensor(tok(before).input_ids)), block,
                              embed(torch.tensor(tok(after, add_special_tokens=False).input_ids))])
        batch = model.prepare([sample])
        torch.testing.assert_close(batch.inputs_embeds[0], expected, atol=2e-5, rtol=1e-4)
        ours = model.backbone(inputs_embeds=batch.inputs_embeds).logits
        reference = llama(inputs_embeds=expected[None]).logits
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-4)
    # the layout: block after the first text piece, HuBERT at offset 258, everything else text
    layout, start = batch.layouts[0], len(tok(before).input_ids)
    assert layout.audio.tolist() == [start + 258]
    assert layout.visual.tolist() == list(range(start, start + 258)) + [start + 259]
    assert layout.prompt_len == len(expected) == model.prompt_length(sample)


def test_emotion_llama_peft_default_keys_give_the_same_model(tmp_path, models, bench):
    path = make_tiny_checkpoint("emotion_llama", tmp_path / "peft", peft_default=True)
    assert any(".lora_A.default.weight" in k for k in torch.load(path / "Emoation_LLaMA.pth",
                                                                    weights_only=True)["model"])
    other = modbias.load_model(f"emotion_llama:{path}")
    for (name, a), b in zip(models["emotion_llama"].backbone.state_dict().items(), other.backbone.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_emotion_llama_missing_features_are_zeros_and_copies_follow_rows(models, bench):
    import dataclasses

    model, sample = models["emotion_llama"], bench[0]
    bare = dataclasses.replace(sample, visual=np.zeros((1, 0), np.float32), audio=np.zeros((1, 0), np.float32),
                               extra={k: v for k, v in sample.extra.items() if k not in ("streams", "rows")})
    batch = model.prepare([bare])
    hubert = model.projectors["feats_llama_proj3"].bias  # zero features: the projector's bias
    torch.testing.assert_close(batch.inputs_embeds[0, batch.layouts[0].audio[0]], hubert)
    doubled = model.prepare([make("duplicate_audio", k=2).transform_sample(sample)]).layouts[0]
    assert doubled.n_audio == 2 and doubled.n_visual == 259
    no_visual = dataclasses.replace(sample, visual=sample.visual[:0])
    assert model.prepare([no_visual]).layouts[0].n_visual == 0


def test_emotion_llama_reads_a_mer2023_folder(tmp_path, models):
    from modbias.data.media import write_video
    from modbias.testing import synthetic_clip

    rng = np.random.default_rng(1)
    for folder in ("mae_340_UTT", "maeV_399_UTT", "HL-UTT", "video"):
        (tmp_path / folder).mkdir()
    for name in ("sample_00000167", "sample_00000338"):
        for folder in ("mae_340_UTT", "maeV_399_UTT", "HL-UTT"):
            np.save(tmp_path / folder / f"{name}.npy", rng.standard_normal(16).astype(np.float32))
        write_video(tmp_path / "video" / f"{name}.mp4", synthetic_clip(3)[0], fps=8)
    (tmp_path / "test.txt").write_text("sample_00000167 40 happy\nsample_00000338 52 worried\n")
    (tmp_path / "transcription_en_all.csv").write_text("name,sentence\nsample_00000167,i am here\n"
                                                       "sample_00000338,it is now\n")
    data = modbias.load_benchmark(f"mer2023:{tmp_path}", video_dir="video")
    model = models["emotion_llama"]
    batch = model.prepare(list(data))
    layout = batch.layouts[1]
    off = int(batch.offsets[1])
    hubert = np.load(tmp_path / "HL-UTT" / "sample_00000338.npy")
    expected = model.projectors["feats_llama_proj3"](torch.tensor(hubert))
    torch.testing.assert_close(batch.inputs_embeds[1, off + layout.audio[0]], expected)
    assert data[1].label == "worry" and layout.n_visual == 259


@pytest.mark.parametrize("damage, named", [
    ("drop_eva", "eva_vit_g.pth"),
    ("drop_key:llama_proj.weight", "llama_proj.weight"),
    ("drop_key:llama_model.base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight", "layers.1.self_attn.v_proj"),
    ("shape:feats_llama_proj2.weight", "feats_llama_proj2.weight"),
    ("second_pth", "Emotion-LLaMA checkpoint"),
    ("drop_eva_key:blocks.1.attn.q_bias", "blocks.1.attn.q_bias"),
    ("drop_llama", "base LLaMA folder"),
])
def test_emotion_llama_damage_is_one_clear_error(tmp_path, checkpoints, damage, named):
    path = copy_checkpoint(checkpoints["emotion_llama"], tmp_path / "el")
    kind, _, key = damage.partition(":")
    if kind == "drop_eva":
        (path / "eva_vit_g.pth").unlink()
    elif kind == "drop_llama":
        shutil.rmtree(path / "Llama-2-7b-chat-hf")
    elif kind == "second_pth":
        shutil.copy(path / "Emoation_LLaMA.pth", path / "checkpoint_best.pth")
    elif kind == "drop_eva_key":
        state = torch.load(path / "eva_vit_g.pth", weights_only=True)
        del state[key]
        torch.save(state, path / "eva_vit_g.pth")
    else:
        ckpt = torch.load(path / "Emoation_LLaMA.pth", weights_only=True)
        if kind == "drop_key":
            del ckpt["model"][key]
        else:
            ckpt["model"][key] = ckpt["model"][key][:, :-1]
        torch.save(ckpt, path / "Emoation_LLaMA.pth")
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")) as err:
        modbias.load_model(f"emotion_llama:{path}")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_emotion_llama_files_elsewhere_are_named_in_the_json(tmp_path, checkpoints, models, bench):
    src = checkpoints["emotion_llama"]
    shutil.copytree(src / "Llama-2-7b-chat-hf", tmp_path / "hub" / "llama")
    shutil.copy(src / "eva_vit_g.pth", tmp_path / "hub" / "eva.pth")
    (tmp_path / "run").mkdir()
    shutil.copy(src / "Emoation_LLaMA.pth", tmp_path / "run" / "MER2024-best.pth")
    (tmp_path / "run" / "modbias_emotion_llama.json").write_text(json.dumps(
        {"llama": "../hub/llama", "eva": "../hub/eva.pth", "checkpoint": "MER2024-best.pth"}))
    moved = modbias.load_model(f"emotion_llama:{tmp_path / 'run'}")
    torch.testing.assert_close(moved.prepare([bench[0]]).inputs_embeds,
                               models["emotion_llama"].prepare([bench[0]]).inputs_embeds)


# -- R1-Omni ---------------------------------------------------------------------------------------
def test_r1_omni_safetensors_carry_the_released_keys(checkpoints):
    keys = set(load_file(checkpoints["r1_omni"] / "model.safetensors"))
    for prefix in ("model.mm_projector.s1_video.b1.conv1.conv.weight", "model.mm_projector.sampler_body.0.weight",
                   "model.mm_projector.mlp_2xgelu_face.0.weight", "model.audio_projector.0.weight",
                   "model.bert_gate.2.weight", "model.bert_model.embeddings.word_embeddings.weight",
                   "model.layers.0.self_attn.q_proj.bias", "model.embed_tokens.weight"):
        assert prefix in keys, prefix
    assert json.loads((checkpoints["r1_omni"] / "config.json").read_text())["model_type"] == "HumanOmni_qwen2"


def reference_branch(w: dict, branch: str, frames: torch.Tensor) -> torch.Tensor:
    """One all_in_one_small branch from the raw tensors: RegNet bottlenecks (1x1 conv, channel LayerNorm eps 1e-5,
    SiLU; depthwise 3x3; squeeze-excite; 1x1 conv; + shortcut; SiLU), Conv3d sampler, readout."""
    def norm(x, p):
        return F.layer_norm(x.permute(0, 2, 3, 1), x.shape[1:2], w[p + ".weight"], w[p + ".bias"], 1e-5).permute(0, 3, 1, 2)

    def block(x, p):
        h = F.silu(norm(F.conv2d(x, w[p + "conv1.conv.weight"]), p + "conv1.bn"))
        h = F.silu(norm(F.conv2d(h, w[p + "conv2.conv.weight"], padding=1, groups=h.shape[1]), p + "conv2.bn"))
        se = F.conv2d(F.silu(F.conv2d(h.mean((2, 3), keepdim=True), w[p + "se.fc1.weight"], w[p + "se.fc1.bias"])),
                      w[p + "se.fc2.weight"], w[p + "se.fc2.bias"])
        h = norm(F.conv2d(h * se.sigmoid(), w[p + "conv3.conv.weight"]), p + "conv3.bn")
        short = norm(F.conv2d(x, w[p + "downsample.conv.weight"]), p + "downsample.bn") \
            if p + "downsample.conv.weight" in w else x
        return F.silu(h + short)

    pre = "model.mm_projector."
    x = frames.transpose(1, 2).reshape(8, -1, 14, 14)
    for i in (1, 2):
        x = block(x, f"{pre}s1_{branch}.b{i}.")
    x = F.silu(F.conv3d(x.transpose(0, 1)[None], w[f"{pre}sampler_{branch}.0.weight"], w[f"{pre}sampler_{branch}.0.bias"],
                        stride=(1, 2, 2), padding=(1, 0, 0)))[0, :, :-1].transpose(0, 1)  # 9 steps, the last dropped
    for i in (1, 2):
        x = block(x, f"{pre}s2_{branch}.b{i}.")
    x = x.flatten(2).transpose(1, 2).reshape(-1, x.shape[1])  # (t h w) order
    h = F.gelu(x @ w[f"{pre}readout_{branch}.0.weight"].T + w[f"{pre}readout_{branch}.0.bias"])
    return h @ w[f"{pre}readout_{branch}.2.weight"].T + w[f"{pre}readout_{branch}.2.bias"]


def test_r1_omni_equals_the_reference_assembly(checkpoints, models, bench):
    from transformers import (AutoImageProcessor, AutoTokenizer, BertConfig, BertModel, Qwen2Config, Qwen2ForCausalLM,
                              SiglipVisionModel, WhisperFeatureExtractor, WhisperForAudioClassification)

    folder, model, sample = checkpoints["r1_omni"], models["r1_omni"], bench[2]
    w = load_file(folder / "model.safetensors")
    with torch.no_grad():
        # video: 8 frames at segment midpoints, SigLIP's second-to-last layer
        clip = media.load_video(sample.extra["video_path"]).frames
        idx = [int(round((len(clip) - 1) / 8 * (i + 0.5) + 1e-6)) for i in range(8)]
        pixels = AutoImageProcessor.from_pretrained(folder / "siglip-base-patch16-224")(
            images=list(clip[idx]), return_tensors="pt")["pixel_values"]
        states = SiglipVisionModel.from_pretrained(folder / "siglip-base-patch16-224")(
            pixels, output_hidden_states=True).hidden_states[-2]
        video, body = reference_branch(w, "video", states), reference_branch(w, "body", states)
        face = F.gelu(states @ w["model.mm_projector.mlp_2xgelu_face.0.weight"].T
                      + w["model.mm_projector.mlp_2xgelu_face.0.bias"])
        face = face @ w["model.mm_projector.mlp_2xgelu_face.2.weight"].T + w["model.mm_projector.mlp_2xgelu_face.2.bias"]
        face = F.interpolate(face.reshape(8, 14, 14, -1).permute(0, 3, 1, 2), size=(7, 7), mode="bilinear")
        face = face.permute(0, 2, 3, 1).reshape(392, -1)
        # gate: the checkpoint's BERT on the instruction, [CLS] -> Linear -> GELU -> Linear -> softmax
        bert = BertModel(BertConfig.from_pretrained(folder / "bert-base-uncased")).eval()
        bert.load_state_dict({k[len("model.bert_model."):]: v for k, v in w.items() if k.startswith("model.bert_model.")})
        text = model.instruction
        cls = bert(**AutoTokenizer.from_pretrained(folder / "bert-base-uncased")([text], return_tensors="pt")
                   ).last_hidden_state[0, 0]
        p = (F.gelu(cls @ w["model.bert_gate.0.weight"].T + w["model.bert_gate.0.bias"])
             @ w["model.bert_gate.2.weight"].T + w["model.bert_gate.2.bias"]).softmax(-1)
        visual = p[0] * video + p[1] * body + p[2] * face
        # audio: Whisper encoder over 30 s, mean of each 3 frames, 2-layer GELU projector
        feats = WhisperFeatureExtractor.from_pretrained(folder / "whisper-large-v3")(
            media.load_audio(sample.extra["audio_path"]), sampling_rate=16000, return_tensors="pt").input_features
        enc = WhisperForAudioClassification.from_pretrained(folder / "whisper-large-v3").encoder(feats).last_hidden_state
        pooled = enc[0].reshape(500, 3, -1).mean(1)
        audio = F.gelu(pooled @ w["model.audio_projector.0.weight"].T + w["model.audio_projector.0.bias"])
        audio = audio @ w["model.audio_projector.2.weight"].T + w["model.audio_projector.2.bias"]
        # the chat prompt with markers, sentinels replaced by the blocks
        tok = AutoTokenizer.from_pretrained(folder)
        pieces = ["<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<vi_start>",
                  "<vi_end>\n<au_start>", f"<au_end>\n{text}<|im_end|>\n<|im_start|>assistant\n"]
        ids = [tok(piece, add_special_tokens=False).input_ids for piece in pieces]
        config = json.loads((folder / "config.json").read_text())
        llm = Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in config.items() if k != "model_type"})).eval()
        llm.load_state_dict({k: v for k, v in w.items() if k.startswith("model.") and k.split(".")[1] in (
            "embed_tokens", "layers", "norm")}, strict=False)
        llm.tie_weights()
        embed = llm.get_input_embeddings()
        expected = torch.cat([embed(torch.tensor(ids[0])), visual, embed(torch.tensor(ids[1])), audio,
                              embed(torch.tensor(ids[2]))])
        batch = model.prepare([sample])
        torch.testing.assert_close(batch.inputs_embeds[0], expected, atol=2e-5, rtol=1e-4)
        torch.testing.assert_close(model.backbone(inputs_embeds=batch.inputs_embeds).logits,
                                   llm(inputs_embeds=expected[None]).logits, atol=1e-4, rtol=1e-4)
    layout = batch.layouts[0]
    assert layout.visual.tolist() == list(range(len(ids[0]), len(ids[0]) + 392))
    start = len(ids[0]) + 392 + len(ids[1])
    assert layout.audio.tolist() == list(range(start, start + 500))
    assert layout.prompt_len == len(expected) == model.prompt_length(sample)


def test_r1_omni_answer_step_is_inside_the_answer_tags(models):
    model = models["r1_omni"]
    text = "<think>the face looks sad and the voice sounds angry</think><answer>happy</answer>"
    ids = torch.tensor([model.tokenizer(text, add_special_tokens=False).input_ids + [model.eos_token_id]])
    decoded = decode_generation(model, ids)[0]
    pieces = model.token_pieces(decoded.ids)
    assert pieces[decoded.steps["first"]].strip().startswith("sad") or "sad" in "".join(
        pieces[decoded.steps["first"]:decoded.steps["first"] + 2])
    answer_text = "".join(pieces[decoded.steps["answer"]:])
    assert answer_text.startswith("happy") and decoded.prediction == "happy"
    unfinished = decode_generation(model, torch.tensor([model.tokenizer("<think>so sad", add_special_tokens=False)
                                                        .input_ids]))[0]
    assert unfinished.steps["answer"] == -1 and unfinished.prediction == "" and unfinished.steps["first"] >= 0


@pytest.mark.parametrize("damage, named", [
    ("drop:model.bert_gate.0.weight", "model.bert_gate.0.weight"),
    ("drop:model.mm_projector.s2_body.b2.conv3.bn.weight", "model.mm_projector.s2_body.b2.conv3.bn.weight"),
    ("drop:model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"),
    ("rmdir:whisper-large-v3", "whisper-large-v3"),
    ("rmdir:bert-base-uncased", "bert-base-uncased"),
])
def test_r1_omni_damage_is_one_clear_error(tmp_path, checkpoints, damage, named):
    path = copy_checkpoint(checkpoints["r1_omni"], tmp_path / "r1")
    kind, _, what = damage.partition(":")
    if kind == "rmdir":
        shutil.rmtree(path / what)
    else:
        state = load_file(path / "model.safetensors")
        del state[what]
        save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")) as err:
        modbias.load_model(f"r1_omni:{path}")
    assert str(path) in str(err.value)


def test_r1_omni_towers_elsewhere_are_named_in_the_json(tmp_path, checkpoints):
    path = copy_checkpoint(checkpoints["r1_omni"], tmp_path / "R1-Omni-0.5B")
    shutil.move(path / "siglip-base-patch16-224", tmp_path / "towers-siglip")
    with pytest.raises(CheckpointError, match="siglip-base-patch16-224"):
        modbias.load_model(f"r1_omni:{path}")
    (path / "modbias_r1_omni.json").write_text(json.dumps({"vision_tower": "../towers-siglip"}))
    assert modbias.load_model(f"r1_omni:{path}").files["vision_tower"]["path"].endswith("towers-siglip")


@pytest.mark.parametrize("family", FAMILIES)
def test_weights_load_in_the_dtype_asked_for(family, tmp_path, checkpoints, bench):
    path = copy_checkpoint(checkpoints[family], tmp_path / family)
    (path / f"modbias_{family}.json").write_text(json.dumps({"dtype": "bfloat16"}))
    model = modbias.load_model(f"{family}:{path}")
    dtypes = {p.dtype for name, p in model.named_parameters() if not name.startswith("ln_vision")}
    assert dtypes == {torch.bfloat16}
    embeds = model.prepare([bench[0]]).inputs_embeds
    assert embeds.dtype == torch.bfloat16 and torch.isfinite(embeds.float()).all()
    (path / f"modbias_{family}.json").write_text(json.dumps({"dtype": "half-ish"}))
    with pytest.raises(CheckpointError, match="half-ish"):
        modbias.load_model(f"{family}:{path}")


# -- probe, interventions, CLI ------------------------------------------------------------------
@pytest.mark.parametrize("family", FAMILIES)
def test_probe_rows_equal_eager_attention(family, models, bench):
    model = models[family]
    samples = [make("duplicate_audio", k=2).transform_sample(bench[0]), *bench[1:]]  # R1-Omni has no subtitle
    batch = model.prepare(samples)
    assert len(set(batch.offsets.tolist())) > 1, "the batch should be left-padded"
    full = model.extend(batch, model.generate(batch, 2))
    n = full.inputs_embeds.shape[1]
    query = torch.tensor([[n - 2, n - 1]] * len(samples))
    kwargs = dict(inputs_embeds=full.inputs_embeds, attention_mask=full.attention_mask,
                  position_ids=full.position_ids)
    probed = AttentionProbe(model.backbone).rows(query, **kwargs)
    expected = eager_rows(model.backbone, query, **kwargs)
    for b, off in enumerate(batch.offsets.tolist()):
        torch.testing.assert_close(probed[b, ..., off:], expected[b, ..., off:], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_intervention_runs(family, models, bench):
    model = models[family]
    base = modbias.trace(model, bench[:2], max_new_tokens=GEN, batch_size=2)
    runs = {"ar": [make("ar", tau=1.0)], "pai": [make("pai", alpha=0.5, layers="1:", gamma=1.1)],
            "duplicate_audio": [make("duplicate_audio", k=2)], "mose": [make("mose", r=4, seed=0)],
            "mose+ar": [make("mose", r=4, seed=0), make("ar", tau=0.0)]}
    for name, interventions in runs.items():
        ds = modbias.trace(model, bench[:2], max_new_tokens=GEN, batch_size=2, interventions=interventions)
        assert ds.sizes["sample"] == 2 and np.isfinite(ds.S_v.values[ds.found.values[:, 0]]).all(), name
        factor = 2 if name == "duplicate_audio" else 1
        np.testing.assert_array_equal(ds.n_audio.values, factor * base.n_audio.values, err_msg=name)
        if name == "mose":  # a fresh MoSE is zero-effect: same text as without it
            assert ds.text.values.tolist() == base.text.values.tolist()


@pytest.mark.parametrize("family", FAMILIES)
def test_cli_trace_intervene_mi_drift(family, tmp_path, checkpoints, models, bench_dir):
    runner = CliRunner()
    spec = ["--model", f"{family}:{checkpoints[family]}", "--data", str(bench_dir), "--max-new-tokens", str(GEN)]

    def invoke(*args):
        result = runner.invoke(app, [*args, *spec])
        assert result.exit_code == 0, result.output + repr(result.exception)
        return result

    invoke("trace", "--out", str(tmp_path / "trace"), "--at", "both", "--save-rows")
    ds = open_run(tmp_path / "trace")
    assert ds.attrs["config"]["model"]["family"] == family and ds.sizes["sample"] == 3
    for i, sample_id in enumerate(ds.sample.values):
        sample = next(s for s in modbias.load_benchmark(str(bench_dir)) if s.id == sample_id)
        layout = models[family].prepare([sample]).layouts[0]
        assert np.flatnonzero(ds.audio_mask.values[i]).tolist() == layout.audio.tolist()
        assert np.flatnonzero(ds.visual_mask.values[i]).tolist() == layout.visual.tolist()
    invoke("intervene", "--method", "ar", "--tau", "1", "--subset", "video_aligned", "--cache", str(tmp_path / "c"))
    assert any(p.name.startswith(f"intervene-{family}-") and "-ar-tau" in p.name for p in (tmp_path / "c").iterdir())
    invoke("mi", "--out", str(tmp_path / "mi"))
    mi = open_run(tmp_path / "mi")
    assert mi.sizes["sample"] == 3 and set(mi.mi.values.tolist()) <= {"audio", "visual", "both", "neither"}
    invoke("drift", "--out", str(tmp_path / "drift"), "--mi", str(tmp_path / "mi"))
    drift = open_run(tmp_path / "drift")
    assert drift.sizes["step"] == GEN and "mi" in drift.coords
    result = runner.invoke(app, ["consistency", str(tmp_path / "drift")])
    assert result.exit_code == 0, result.output + repr(result.exception)


# -- against timm, where it can be imported (it needs torchvision) --------------------------------
def test_eva_and_regstage_match_timm(checkpoints, models):
    timm_eva = pytest.importorskip("timm.models.eva")
    from timm.layers import LayerNorm2d
    from timm.models.regnet import RegStage as TimmRegStage

    eva = models["emotion_llama"].eva.float()
    theirs = timm_eva.Eva(img_size=eva.image_size, patch_size=eva.patch, embed_dim=eva.width, depth=len(eva.blocks),
                          num_heads=eva.blocks[0].attn.heads, mlp_ratio=eva.blocks[0].mlp.fc1.out_features / eva.width,
                          qkv_fused=True, num_classes=0, global_pool="", use_fc_norm=False).eval()
    theirs.norm = torch.nn.Identity()
    theirs.load_state_dict(eva.state_dict(), strict=False)
    pixels = torch.randn(1, 3, eva.image_size, eva.image_size)
    torch.testing.assert_close(eva(pixels), theirs.forward_features(pixels), atol=1e-4, rtol=1e-4)
    ours = models["r1_omni"].projector.s1_video.float()
    stage = TimmRegStage(depth=2, in_chs=ours.b1.conv1.conv.in_channels, out_chs=ours.b1.conv1.conv.out_channels,
                         stride=1, dilation=1, act_layer=torch.nn.SiLU, norm_layer=LayerNorm2d).eval()
    stage.load_state_dict(ours.state_dict())
    x = torch.randn(2, ours.b1.conv1.conv.in_channels, 14, 14)
    torch.testing.assert_close(ours(x), stage(x), atol=1e-5, rtol=1e-4)
