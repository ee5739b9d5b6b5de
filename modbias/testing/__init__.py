"""Offline tiny checkpoints and small benchmarks for tests and smoke runs.

:func:`make_tiny_checkpoint` writes a complete directory for a model family
— config, random weights, a tokenizer with the family's special tokens,
processor files — in the same format as the real checkpoint, so that
``modbias.load_model("family:/path")`` loads it through exactly the code a
real checkpoint goes through.  Nothing is downloaded.

:func:`write_camer_benchmark` writes a CA-MER-style annotation file with the
features and/or media it references (see :mod:`modbias.data.readers`).

The tiny models' output rows for emotion words are scaled up, so that a
random model still names emotions and traces have an emotion token to look at.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from modbias.core.emotions import CLASSES

FAMILIES = ("features", "qwen2_5_omni", "llava", "emotion_llama", "r1_omni")
WORDS = (CLASSES + ("worried", "the", "person", "in", "video", "says", "what", "emotion", "does", "express", "face",
                    "looks", "voice", "sounds", "so", "feels", "and", "a", "is", "please", "determine", "which",
                    "label", "it", "i", "you", "not", "here", "now", "subtitle", "answer", "because"))
TINY_TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=2048)

# Emotion-LLaMA's feature block in miniature: 256 EVA patch tokens, FaceMAE, VideoMAE, HuBERT, EVA cls
# (the real block puts HuBERT at offset 258); here the EVA part has ``eva_tokens`` tokens.
EMOTION_LLAMA_ORDER = ("eva", "face_mae", "video_mae", "hubert", "eva_cls")


def tiny_features_config(eva_tokens: int = 8) -> dict:
    """The ``modbias_features.json`` of a tiny Emotion-LLaMA-style checkpoint.

    Args:
        eva_tokens: tokens of the EVA stream.

    Returns:
        The config object (template, placeholders, five streams).
    """
    return {
        "template": "[INST] <video><FeatureHere></video> The person in video says: {subtitle}. [emotion] "
                    "{instruction} [/INST]",
        "instruction": "Please determine which emotion label in the video represents: happy, sad, neutral, angry, "
                       "worried, surprise, fear, contempt, doubt.",
        "placeholders": {"<FeatureHere>": list(EMOTION_LLAMA_ORDER)},
        "streams": {
            "eva": {"modality": "visual", "dim": 24, "tokens": eva_tokens, "projector": "linear"},
            "face_mae": {"modality": "visual", "dim": 16, "tokens": 1, "projector": "linear"},
            "video_mae": {"modality": "visual", "dim": 16, "tokens": 1, "projector": "linear"},
            "hubert": {"modality": "audio", "dim": 16, "tokens": 1, "projector": "linear"},
            "eva_cls": {"modality": "visual", "dim": 12, "tokens": 1, "projector": "mlp2x_gelu"},
        },
        "add_special_tokens": True,
    }


# -- tokenizers ---------------------------------------------------------------------------------
def _chains(words, prefix: str, vocab: dict, merges: list) -> None:
    """BPE merges that build each word (with and without the word-start prefix) from characters."""
    for word in words:
        for piece in (prefix + word, word):
            for i in range(2, len(piece) + 1):
                if piece[:i] not in vocab:
                    vocab[piece[:i]] = len(vocab)
                    merges.append((piece[:i - 1], piece[i - 1]))


def tiny_llama_tokenizer(extra_special: tuple[str, ...] = ()):
    """A LLaMA (SentencePiece-style BPE with byte fallback) tokenizer over a small vocabulary.

    Args:
        extra_special: special tokens to add.

    Returns:
        A ``LlamaTokenizer``.
    """
    from transformers import LlamaTokenizer
    from tokenizers import AddedToken

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for ch in "▁abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'\"[]<>/()-_":
        vocab.setdefault(ch, len(vocab))
    merges: list = []
    _chains(WORDS + ("INST", "video", "feature", "emotion", "USER", "ASSISTANT"), "▁", vocab, merges)
    tok = LlamaTokenizer(vocab=vocab, merges=merges, add_prefix_space=True)
    if extra_special:
        tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in extra_special], special_tokens=True)
    return tok


def tiny_qwen_tokenizer():
    """A Qwen2 byte-level BPE tokenizer with Qwen2.5-Omni's special tokens."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    merges: list = []
    _chains(WORDS, "Ġ", vocab, merges)
    specials = {"image_token": "<|IMAGE|>", "audio_token": "<|AUDIO|>", "video_token": "<|VIDEO|>",
                "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
                "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>"}
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>",
                         pad_token="<|endoftext|>", extra_special_tokens=specials)
    tok.add_tokens([AddedToken("<|im_start|>", special=True, normalized=False)], special_tokens=True)
    return tok


QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}"
    "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}"
    "{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")


def _emotion_token_ids(tokenizer) -> list[int]:
    """Ids of the word-start tokens of emotion words (``▁happy`` / ``Ġhappy``), so generated text keeps spaces."""
    ids = []
    for word in WORDS[:len(CLASSES) + 1]:
        for piece_id in tokenizer.encode(" " + word, add_special_tokens=False)[-1:]:
            if tokenizer.convert_ids_to_tokens(piece_id) in ("▁" + word, "Ġ" + word):
                ids.append(piece_id)
    return sorted(set(ids))


def _boost_emotions(lm_head: torch.nn.Module, tokenizer, factor: float = 6.0) -> None:
    """Scale the output rows of emotion words so that the random model names emotions."""
    with torch.no_grad():
        lm_head.weight[_emotion_token_ids(tokenizer)] *= factor


# -- checkpoints --------------------------------------------------------------------------------
def make_tiny_checkpoint(family: str, path, *, seed: int = 0, backbone: str = "llama", eva_tokens: int = 8,
                         peft_default: bool = False) -> Path:
    """Write a complete, loadable tiny checkpoint of ``family`` to ``path`` (returned).

    Args:
        family: one of :data:`FAMILIES`: ``features`` (an HF causal LM + projectors +
            ``modbias_features.json``), ``qwen2_5_omni`` (full Qwen2.5-Omni format), ``llava``
            (LLaVA-1.5 format), ``emotion_llama`` / ``r1_omni`` (the released layouts,
            :mod:`modbias.testing.released`).
        path: the folder to write.
        seed: the weights' seed.
        backbone: ``llama`` or ``qwen2`` (``features`` only).
        eva_tokens: tokens of the EVA stream (``features`` only).
        peft_default: write Emotion-LLaMA's LoRA keys with newer peft's ``.default`` segment.

    Returns:
        ``path``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; available: {FAMILIES}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    from modbias.testing.released import tiny_emotion_llama, tiny_r1_omni

    makers = {"features": _tiny_features, "qwen2_5_omni": _tiny_qwen_omni, "llava": _tiny_llava,
              "emotion_llama": tiny_emotion_llama, "r1_omni": tiny_r1_omni}
    makers[family](path, backbone=backbone, eva_tokens=eva_tokens, peft_default=peft_default)
    return path


def _tiny_features(path: Path, backbone: str, eva_tokens: int, **_) -> None:
    from safetensors.torch import save_file
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    from modbias.models.features import FeatureConfig, build_projectors

    tok = tiny_llama_tokenizer()
    classes = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}
    if backbone not in classes:
        raise ValueError(f"backbone must be one of {sorted(classes)}")
    config_cls, model_cls = classes[backbone]
    config = config_cls(vocab_size=len(tok), pad_token_id=0, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id, tie_word_embeddings=False, **TINY_TEXT)
    model = model_cls(config).eval()
    _boost_emotions(model.lm_head, tok)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    spec = tiny_features_config(eva_tokens)
    (path / "modbias_features.json").write_text(json.dumps(spec, indent=1))
    projectors = build_projectors(FeatureConfig.from_dict(spec), config.hidden_size)
    save_file({k: v.contiguous() for k, v in projectors.state_dict().items()}, path / "projectors.safetensors")


def _tiny_qwen_omni(path: Path, **_) -> None:
    from safetensors.torch import save_file
    from transformers import (Qwen2_5OmniConfig, Qwen2_5OmniThinkerConfig,
                              Qwen2_5OmniThinkerForConditionalGeneration, WhisperFeatureExtractor)

    tok = tiny_qwen_tokenizer()
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in (
        ("audio", "<|AUDIO|>"), ("image", "<|IMAGE|>"), ("video", "<|VIDEO|>"), ("audio_bos", "<|audio_bos|>"),
        ("audio_eos", "<|audio_eos|>"), ("vision_bos", "<|vision_bos|>"), ("vision_eos", "<|vision_eos|>"))}
    text = dict(TINY_TEXT, vocab_size=len(tok), rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                                  "mrope_section": [2, 3, 3]},
                tie_word_embeddings=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    thinker_config = Qwen2_5OmniThinkerConfig(
        text_config=text,
        audio_config=dict(num_mel_bins=128, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64,
                          d_model=32, output_dim=TINY_TEXT["hidden_size"], n_window=50, max_source_positions=1500),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=14,
                           spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[0],
                           out_hidden_size=TINY_TEXT["hidden_size"]),
        audio_token_index=ids["audio"], image_token_index=ids["image"], video_token_index=ids["video"],
        audio_start_token_id=ids["audio_bos"], audio_end_token_id=ids["audio_eos"],
        vision_start_token_id=ids["vision_bos"], vision_end_token_id=ids["vision_eos"],
        position_id_per_seconds=25, seconds_per_chunk=2, tie_word_embeddings=False)
    thinker = Qwen2_5OmniThinkerForConditionalGeneration(thinker_config).eval()
    _boost_emotions(thinker.lm_head, tok)
    # The released checkpoint holds thinker, talker and token2wav; the talker is left out (enable_audio_output).
    config = Qwen2_5OmniConfig(thinker_config=thinker_config.to_dict(), talker_config={"vocab_size": 152064},
                               enable_audio_output=False)
    config.save_pretrained(path)
    save_file({f"thinker.{k}": v.contiguous() for k, v in thinker.state_dict().items()}, path / "model.safetensors",
              metadata={"format": "pt"})
    tok.save_pretrained(path)
    (path / "chat_template.jinja").write_text(QWEN_CHAT_TEMPLATE)
    # One preprocessor_config.json for audio and images, as the released checkpoint has.
    pixels = {"min_pixels": 56 * 56, "max_pixels": 56 * 56}
    preprocessor = {**WhisperFeatureExtractor(feature_size=128).to_dict(),
                    "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5OmniProcessor",
                    "do_resize": True, "do_rescale": True, "do_normalize": True, "do_convert_rgb": True,
                    "rescale_factor": 1 / 255, "resample": 3, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                    "image_std": [0.26862954, 0.26130258, 0.27577711], "patch_size": 14, "temporal_patch_size": 2,
                    "merge_size": 2, "size": {"shortest_edge": pixels["min_pixels"],
                                              "longest_edge": pixels["max_pixels"]}, **pixels}
    (path / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1, default=float))
    video = {k: preprocessor[k] for k in ("do_resize", "do_rescale", "do_normalize", "do_convert_rgb",
                                          "rescale_factor", "resample", "image_mean", "image_std", "patch_size",
                                          "temporal_patch_size", "merge_size", "size", "min_pixels", "max_pixels")}
    video.update(video_processor_type="Qwen2VLVideoProcessor", processor_class="Qwen2_5OmniProcessor")
    (path / "video_preprocessor_config.json").write_text(json.dumps(video, indent=1))


def _tiny_llava(path: Path, **_) -> None:
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    tok = tiny_llama_tokenizer(extra_special=("<image>",))
    tok.pad_token = tok.unk_token
    image_token_id = tok.convert_tokens_to_ids("<image>")
    config = LlavaConfig(
        vision_config=dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64,
                           num_hidden_layers=2, num_attention_heads=2, image_size=56, patch_size=14,
                           projection_dim=32),
        text_config=dict(model_type="llama", vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **TINY_TEXT),
        image_token_index=image_token_id, vision_feature_select_strategy="default", vision_feature_layer=-2,
        projector_hidden_act="gelu", tie_word_embeddings=False)
    model = LlavaForConditionalGeneration(config).eval()
    _boost_emotions(model.lm_head, tok)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    (path / "chat_template.jinja").write_text(LLAVA_CHAT_TEMPLATE)
    preprocessor = {"image_processor_type": "CLIPImageProcessor", "processor_class": "LlavaProcessor",
                    "do_resize": True, "size": {"shortest_edge": 56}, "resample": 3, "do_center_crop": True,
                    "crop_size": {"height": 56, "width": 56}, "do_rescale": True, "rescale_factor": 1 / 255,
                    "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                    "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True}
    (path / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=1))
    (path / "processor_config.json").write_text(json.dumps(
        {"processor_class": "LlavaProcessor", "patch_size": 14, "vision_feature_select_strategy": "default",
         "image_token": "<image>", "num_additional_image_tokens": 1}, indent=1))


# -- benchmarks ---------------------------------------------------------------------------------
def synthetic_clip(seed: int, n_frames: int = 8, size: int = 56, seconds: float = 1.0,
                   sampling_rate: int = 16000) -> tuple[np.ndarray, np.ndarray]:
    """Random-ish RGB frames ``[T, size, size, 3]`` and a tone with noise (mono float32).

    Args:
        seed: the seed (also sets the tone's pitch).
        n_frames: T.
        size: the frame side.
        seconds: the audio's length.
        sampling_rate: Hz.

    Returns:
        ``(uint8 [T, size, size, 3], float32 [seconds · sampling_rate])``.
    """
    rng = np.random.default_rng(seed)
    frames = (rng.random((n_frames, size, size, 3)) * 255).astype(np.uint8)
    t = np.arange(int(seconds * sampling_rate)) / sampling_rate
    audio = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.02 * rng.standard_normal(t.shape)
    return frames, audio.astype(np.float32)


def write_camer_benchmark(path, n: int = 6, *, media: bool = True, features: dict | None = None,
                          fps: int = 8, seed: int = 0, fmt: str = "jsonl") -> Path:
    """A CA-MER-style benchmark folder: ``annotations.<fmt>`` plus the files it names.

    Subsets and labels cycle through CA-MER's.

    Args:
        path: the folder to write.
        n: the number of samples.
        media: write an MPEG-4 clip with an AAC track and a WAV per sample.
        features: ``{stream: (modality, tokens, dim)}`` (e.g. :func:`feature_streams`) of ``.npy`` files to write.
        fps: the clips' frame rate.
        seed: the seed.
        fmt: ``"jsonl"`` or ``"csv"``.

    Returns:
        ``path``.
    """
    from modbias.data.camer import write_annotations
    from modbias.data.media import write_video, write_wav
    from modbias.data.sample import SUBSETS

    if fmt not in ("jsonl", "csv"):
        raise ValueError("fmt must be jsonl or csv")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        sid = f"clip{i:03d}"
        row = {"id": sid, "subset": SUBSETS[i % 3], "label": CLASSES[i % len(CLASSES)],
               "subtitle": "i think it is here now", "reasoning": f"the face looks {CLASSES[i % len(CLASSES)]}"}
        if media:
            frames, audio = synthetic_clip(seed * 1000 + i)
            write_video(path / f"{sid}.mp4", frames, fps=fps, audio=audio)
            write_wav(path / f"{sid}.wav", audio)
            row.update(video=f"{sid}.mp4", audio=f"{sid}.wav")
        if features:
            for modality in ("visual", "audio"):
                named = {}
                for name, (mod, tokens, dim) in features.items():
                    if mod == modality:
                        (path / name).mkdir(exist_ok=True)
                        np.save(path / name / f"{sid}.npy", rng.standard_normal((tokens, dim)).astype(np.float32))
                        named[name] = f"{name}/{sid}.npy"
                if named:
                    row[f"{modality}_features"] = named
        rows.append(row)
    write_annotations(rows, path / f"annotations.{fmt}")
    return path


def feature_streams(checkpoint) -> dict:
    """``{stream: (modality, tokens, dim)}`` of a features checkpoint (for :func:`write_camer_benchmark`).

    Args:
        checkpoint: the checkpoint folder.

    Returns:
        The streams (``tokens`` 1 where the config leaves it open).
    """
    spec = json.loads((Path(checkpoint) / "modbias_features.json").read_text())
    return {name: (s["modality"], s.get("tokens") or 1, s["dim"]) for name, s in spec["streams"].items()}


def write_mer2023_benchmark(path, checkpoint, labels=("worried", "happy", "sad"), *, reasons=None,
                            seed: int = 0) -> Path:
    """MER2023 in Emotion-LLaMA's layout for a features ``checkpoint``: one ``.npy`` per stream and clip,
    ``test.txt`` (``<clip> <frames> <label>``), ``transcription_en_all.csv`` and ``modbias_benchmark.json``.

    Args:
        path: the folder to write.
        checkpoint: the features checkpoint whose streams are written.
        labels: one label per clip.
        reasons: one reference reasoning per clip: then it is an EMER folder (``emer.csv``).
        seed: the seed.

    Returns:
        ``path``.
    """
    import csv

    from modbias.data.readers import CONFIG_FILE

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"sample_{i + 1:08d}" for i in range(len(labels))]
    streams = feature_streams(checkpoint)
    for stream, (_, tokens, dim) in streams.items():
        (path / stream).mkdir(exist_ok=True)
        for name in names:
            np.save(path / stream / f"{name}.npy", rng.standard_normal((tokens, dim)).astype(np.float32))
    (path / "test.txt").write_text("".join(f"{n} 40 {lab}\n" for n, lab in zip(names, labels)))
    with open(path / "transcription_en_all.csv", "w", newline="") as f:
        csv.writer(f).writerows([("name", "sentence"), *((n, "i think it is here now") for n in names)])
    options = {"reader": "emer" if reasons else "mer2023",
               "encoders": {s: [s, modality] for s, (modality, _, _) in streams.items()}}
    if reasons:
        with open(path / "emer.csv", "w", newline="") as f:
            csv.writer(f).writerows([("name", "reason"), *zip(names, reasons)])
    (path / CONFIG_FILE).write_text(json.dumps(options))
    return path


def write_dfew_benchmark(path, labels=(1, 2, 6, 7), seed: int = 0) -> Path:
    """A DFEW split: ``set_1_test.csv`` (``video_name,label`` with labels 1-7) and one clip per row in ``videos/``.

    Args:
        path: the folder to write.
        labels: DFEW labels (1-7), one per clip.
        seed: the seed.

    Returns:
        ``path``.
    """
    from modbias.data.media import write_video

    path = Path(path)
    (path / "videos").mkdir(parents=True, exist_ok=True)
    rows = ["video_name,label"]
    for i, label in enumerate(labels):
        frames, _ = synthetic_clip(seed * 1000 + i, n_frames=4)
        write_video(path / "videos" / f"{i + 1:05d}.mp4", frames, fps=4)
        rows.append(f"{i + 1:05d},{label}")
    (path / "set_1_test.csv").write_text("\n".join(rows) + "\n")
    return path
