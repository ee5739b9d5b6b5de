"""``emotion_llama`` family: Emotion-LLaMA as released (MiniGPT-v2 checkpoint + LLaMA-2 + EVA ViT-g).

``--model emotion_llama:DIR`` reads the files a user downloaded, unconverted.
DIR holds them, or ``DIR/modbias_emotion_llama.json`` names them (paths
relative to DIR)::

    {"checkpoint": "save_checkpoint/Emoation_LLaMA.pth",   # default: the one *.pth in DIR besides the EVA file
     "llama": "Llama-2-7b-chat-hf",                        # default: DIR/Llama-2-7b-chat-hf, or the one HF folder
     "eva": "eva_vit_g.pth",                               # default: DIR/eva_vit_g.pth
     "dtype": "auto",           # float16 | bfloat16 | float32; auto = the LLaMA folder's (fp16)
     "image_size": 448,         # default 32 x the EVA patch size
     "eva_heads": 16,           # default EVA width / 88
     "lora_alpha": 16,          # default: the checkpoint's own config, else 16
     "instruction": "Please determine which emotion label ..."}

The checkpoint ``.pth`` is ``torch.save({"model", "optimizer", "config",
"scaler", "epoch"})`` with only the trainable parameters in ``model`` (the
whole dict is taken when there is no ``model`` key).  It is opened with
``torch.load(weights_only=True, mmap=True)``: nothing is unpickled and
tensors are read when used.  Every missing or mis-shaped file or key is
one :class:`~modbias.models.released_files.CheckpointError` naming both.

Assembly (MiniGPT-v2's ``encode_img`` as Emotion-LLaMA changed it), for the
first video frame resized to 448² (:func:`~modbias.models.eva_vit.preprocess_frame`)::

    E   = ln_vision(EVA(frame))                        [1025, 1408]   (ln_vision: fp32, identity unless stored)
    P   = llama_proj(E[1:].view(256, 4·1408))          [256, d]       1x4 grouping: 4 consecutive raster patches
    cls = cls_tk_llama_proj(E[0])                      [1, d]
    f   = feats_llama_proj1(FaceMAE), feats_llama_proj2(VideoMAE)     [1, d] each
    a   = feats_llama_proj3(HuBERT)                    [1, d]
    block = [P | f_FaceMAE | f_VideoMAE | a | cls]     260 tokens

LoRA (peft, r 64, alpha 16, on q_proj and v_proj) is merged into the
LLaMA weights at load: ``W ← W + (alpha / r) · B @ A`` (scale 0.25), with
peft keys read with or without the ``.default`` adapter segment.  The
backbone stays a stock ``LlamaForCausalLM``, so the probe and module-level
interventions (MoSE) attach as on any LLaMA.

Prompt (Emotion-LLaMA's evaluation: ``CONV_VISION_minigptv2``, the MER2023
dataset's instruction, task ``emotion``)::

    <s>[INST] <video><VideoHere></video> <feature><FeatureHere></feature> The person in video says: {subtitle}.  [emotion] {instruction}  [/INST]

split at ``<VideoHere>``: the first piece is tokenized with the tokenizer's
special tokens (BOS), the second without; the 260-token block goes at
``<VideoHere>``, and ``<FeatureHere>`` stays literal text, as at the
original's generation.  TokenLayout: V = the 256 image tokens, FaceMAE,
VideoMAE and CLS; A = the HuBERT token; T = the prompt text.

Features come from the sample's named streams (``face_mae``, ``video_mae``,
``hubert``, or the MER2023 folder names ``mae_340_UTT``, ``maeV_399_UTT``,
``HL-UTT``), one utterance-level vector each; a stream the sample lacks is
zeros, as in the original demo.  Sample rows count copies: zero visual rows
drop every visual token (PAI's visual-free branch, MI's audio-only input),
k audio rows give k HuBERT tokens (audio duplication).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modbias.core.layout import TokenLayout
from modbias.data import media
from modbias.data.readers import unpack_streams
from modbias.data.sample import Sample, SampleError
from modbias.models.base import ModelAdapter
from modbias.models.eva_vit import EvaViT, preprocess_frame
from modbias.models.released_files import (CheckpointError, fingerprint, load_exactly, options_of, resolve,
                                           torch_dtype)

CONFIG_FILE = "modbias_emotion_llama.json"
EVA_FILE = "eva_vit_g.pth"
LLAMA_DIR = "Llama-2-7b-chat-hf"
INSTRUCTION = ("Please determine which emotion label in the video represents: happy, sad, neutral, angry, worried, "
               "surprise, fear, contempt, doubt.")
PROMPT = ("<s>[INST] <video><VideoHere></video> <feature><FeatureHere></feature> The person in video says: "
          "{subtitle}.  [emotion] {instruction}  [/INST]")
PLACEHOLDER = "<VideoHere>"
PROJECTORS = ("llama_proj", "feats_llama_proj1", "feats_llama_proj2", "feats_llama_proj3", "cls_tk_llama_proj")
STREAM_PROJECTOR = {"face_mae": "feats_llama_proj1", "video_mae": "feats_llama_proj2", "hubert": "feats_llama_proj3"}
VISUAL_STREAMS, AUDIO_STREAMS = ("face_mae", "video_mae"), ("hubert",)
STREAM_ALIASES = {"mae_340_UTT": "face_mae", "FaceMAE": "face_mae", "maeV_399_UTT": "video_mae",
                  "VideoMAE": "video_mae", "HL-UTT": "hubert", "HuBERT": "hubert", "audio": "hubert"}
LORA_PREFIX = "llama_model.base_model.model."
LORA_TARGETS = ("q_proj", "v_proj")


# -- files ------------------------------------------------------------------------------------
@dataclass
class EmotionLlamaFiles:
    """Where the three released pieces are, and the options of ``modbias_emotion_llama.json``."""

    checkpoint: Path
    llama: Path
    eva: Path
    options: dict

    @classmethod
    def locate(cls, folder) -> "EmotionLlamaFiles":
        """Find the checkpoint, base LLaMA folder and EVA weights in a folder (options may name each).

        Args:
            folder: the Emotion-LLaMA checkpoint folder (with optional ``modbias_emotion_llama.json``).

        Returns:
            The located files; a missing or ambiguous piece raises :class:`CheckpointError` naming it.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise CheckpointError(folder, "Emotion-LLaMA checkpoint folder not found")
        options = options_of(folder, CONFIG_FILE)

        def pick(key: str, what: str, default: Path | None, candidates: list[Path]) -> Path:
            if key in options:
                return resolve(folder, options[key], what, key, CONFIG_FILE)
            if default is not None and default.exists():
                return default
            if len(candidates) == 1:
                return candidates[0]
            found = f"found {len(candidates)}: {[p.name for p in candidates]}" if candidates else "none found"
            raise CheckpointError(folder, f"{what}: {found}; name it with {key!r} in {CONFIG_FILE}")

        eva = pick("eva", f"EVA ViT-g weights ({EVA_FILE})", folder / EVA_FILE, [])
        pths = sorted(p for p in folder.glob("*.pth") if p.name != EVA_FILE)
        checkpoint = pick("checkpoint", "Emotion-LLaMA checkpoint (*.pth)", None, pths)
        hf_dirs = sorted(p for p in folder.iterdir() if (p / "config.json").exists())
        llama = pick("llama", f"base LLaMA folder ({LLAMA_DIR})", folder / LLAMA_DIR, hf_dirs)
        if not (llama / "config.json").exists():
            raise CheckpointError(llama / "config.json", "the base LLaMA folder has no config.json (HF format expected)")
        return cls(checkpoint, llama, eva, options)


def read_pth(file: Path) -> dict:
    """A ``.pth`` opened without unpickling code (``weights_only``) and memory-mapped where possible.

    Args:
        file: the ``.pth`` file.

    Returns:
        Its object (a dict); an unreadable file raises :class:`CheckpointError`.
    """
    try:
        return torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as err:
        if "mmap" not in str(err):
            raise CheckpointError(file, f"cannot be read with torch.load(weights_only=True): {err}") from err
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors name the offending global
        raise CheckpointError(file, f"cannot be read with torch.load(weights_only=True): {err}") from err


def checkpoint_state(checkpoint: dict) -> dict[str, torch.Tensor]:
    """The parameters of a MiniGPT-style checkpoint: ``ckpt["model"]`` if present, else the dict itself.

    Args:
        checkpoint: the loaded ``.pth`` object.

    Returns:
        ``{name: tensor}``.
    """
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError("expected a dict of tensors (or a dict with a 'model' entry)")
    return state


def lora_alpha_of(checkpoint: dict, options: dict) -> float:
    """``lora_alpha``: the option, else the checkpoint's stored training config, else 16 (MiniGPT-v2's).

    Args:
        checkpoint: the loaded ``.pth`` object.
        options: ``modbias_emotion_llama.json``'s options.

    Returns:
        alpha.
    """
    if "lora_alpha" in options:
        return float(options["lora_alpha"])
    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    model_cfg = config.get("model", {}) if isinstance(config, dict) else {}
    return float(model_cfg.get("lora_alpha", 16)) if isinstance(model_cfg, dict) else 16.0


def lora_pairs(state: dict, n_layers: int, source, targets=LORA_TARGETS) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"model.layers.i.self_attn.q_proj": (A, B)}`` from peft keys, with or without ``.default``.

    Args:
        state: the checkpoint's parameters.
        n_layers: the backbone's layer count.
        source: the file, for errors.
        targets: the projections carrying LoRA.

    Returns:
        ``{module name: (A [r, in], B [out, r])}``; a missing key raises :class:`CheckpointError`.
    """
    plain = {re.sub(r"\.default(?=\.weight$)", "", k): v for k, v in state.items() if k.startswith(LORA_PREFIX)}
    pairs = {}
    for i in range(n_layers):
        for target in targets:
            module = f"model.layers.{i}.self_attn.{target}"
            keys = [f"{LORA_PREFIX}{module}.lora_{part}.weight" for part in "AB"]
            for key in keys:
                if key not in plain:
                    raise CheckpointError(source, f"missing key {key!r} (or its '.default' form): LoRA r/alpha "
                                                  f"on {', '.join(targets)} of every layer expected")
            pairs[module] = (plain[keys[0]], plain[keys[1]])
    return pairs


@torch.no_grad()
def merge_lora(backbone: nn.Module, pairs: dict, alpha: float, source) -> int:
    """``W ← W + (alpha / r) · B @ A`` for every pair (peft's merge); returns r.

    Args:
        backbone: the LLaMA model (changed in place).
        pairs: :func:`lora_pairs`' output.
        alpha: LoRA alpha.
        source: the file, for errors.

    Returns:
        The rank r.
    """
    modules = dict(backbone.named_modules())
    rank = 0
    for name, (A, B) in pairs.items():
        linear = modules[name]
        rank = A.shape[0]
        out_f, in_f = linear.weight.shape
        if A.shape != (rank, in_f) or B.shape != (out_f, rank):
            raise CheckpointError(source, f"LoRA of {name}: A {tuple(A.shape)}, B {tuple(B.shape)} do not fit "
                                          f"the base weight {tuple(linear.weight.shape)}")
        delta = (alpha / rank) * (B.to(linear.weight.device, torch.float32) @ A.to(linear.weight.device, torch.float32))
        linear.weight.add_(delta.to(linear.weight.dtype))
    return rank


def load_eva(files: EmotionLlamaFiles) -> EvaViT:
    """EVA ViT-g from LAVIS' file at the configured (default 448 px) resolution.

    Args:
        files: the located files (``options`` may set ``image_size`` and ``eva_heads``).

    Returns:
        The :class:`EvaViT` in eval mode.
    """
    state = read_pth(files.eva)
    state = checkpoint_state(state) if "model" in state else state
    try:
        eva = EvaViT(**EvaViT.shape_of(state, files.options.get("image_size"), files.options.get("eva_heads")))
        eva.load_lavis(state)
    except KeyError as err:
        raise CheckpointError(files.eva, f"missing key {err.args[0]!r}") from err
    except ValueError as err:
        raise CheckpointError(files.eva, str(err)) from err
    return eva.eval()


def load_projectors(state: dict, eva_width: int, hidden: int, source) -> tuple[nn.ModuleDict, nn.LayerNorm]:
    """The five projectors (and ``ln_vision``: identity unless the checkpoint stores it) from the checkpoint.

    Args:
        state: the checkpoint's parameters.
        eva_width: EVA's width.
        hidden: the LLaMA width d.
        source: the file, for errors.

    Returns:
        ``(ModuleDict of the projectors, LayerNorm [eva_width])``.
    """
    key = "feats_llama_proj1.weight"
    feat = state[key].shape[1] if key in state else 1024
    shapes = {"llama_proj": (4 * eva_width, hidden), "cls_tk_llama_proj": (eva_width, hidden),
              **{p: (feat, hidden) for p in ("feats_llama_proj1", "feats_llama_proj2", "feats_llama_proj3")}}
    projectors = nn.ModuleDict({name: nn.Linear(*shapes[name]) for name in PROJECTORS})
    load_exactly(projectors, {k: v for k, v in state.items() if k.split(".")[0] in PROJECTORS}, source)
    ln_vision = nn.LayerNorm(eva_width)
    if "ln_vision.weight" in state:
        load_exactly(ln_vision, {k[len("ln_vision."):]: v for k, v in state.items() if k.startswith("ln_vision.")},
                     source, prefix="ln_vision.")
    return projectors, ln_vision


# -- the adapter -------------------------------------------------------------------------------
class EmotionLlamaModel(nn.Module, ModelAdapter):
    """LLaMA (LoRA merged) + EVA ViT-g + Emotion-LLaMA's projectors (see module doc)."""

    family = "emotion_llama"

    def __init__(self, backbone: nn.Module, tokenizer, eva: EvaViT, projectors: nn.ModuleDict,
                 ln_vision: nn.LayerNorm | None = None, instruction: str = INSTRUCTION, files: dict | None = None):
        super().__init__()
        self.backbone, self.tokenizer, self.eva, self.projectors = backbone, tokenizer, eva, projectors
        self.ln_vision = (ln_vision or nn.LayerNorm(eva.width)).float()  # fp32, as MiniGPT's LayerNorm
        self.instruction, self.files = instruction, files or {}
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = self.eos_token_id  # the original pads with "$$" for training only
        self.feature_dims = {s: projectors[p].in_features for s, p in STREAM_PROJECTOR.items()}
        self._images: dict = {}

    @classmethod
    def load(cls, path, dtype=None) -> "EmotionLlamaModel":
        """Emotion-LLaMA from its released files: LLaMA with the LoRA merged, EVA ViT-g and the projectors.

        Args:
            path: the folder :meth:`EmotionLlamaFiles.locate` reads.
            dtype: LLaMA's dtype (default: the option ``dtype``, else as stored); EVA and projectors follow it.

        Returns:
            The adapter, in eval mode.
        """
        from transformers import AutoTokenizer, LlamaForCausalLM

        files = EmotionLlamaFiles.locate(path)
        dtype = torch_dtype(dtype or files.options.get("dtype", "auto"), Path(path) / CONFIG_FILE)
        checkpoint = read_pth(files.checkpoint)
        try:
            state = checkpoint_state(checkpoint)
        except ValueError as err:
            raise CheckpointError(files.checkpoint, str(err)) from err
        backbone = LlamaForCausalLM.from_pretrained(files.llama, dtype=dtype).eval()
        pairs = lora_pairs(state, backbone.config.num_hidden_layers, files.checkpoint,
                           tuple(files.options.get("lora_targets", LORA_TARGETS)))
        alpha = lora_alpha_of(checkpoint, files.options)
        rank = merge_lora(backbone, pairs, alpha, files.checkpoint)
        eva = load_eva(files)
        projectors, ln_vision = load_projectors(state, eva.width, backbone.config.hidden_size, files.checkpoint)
        described = {"checkpoint": fingerprint(files.checkpoint), "llama": fingerprint(files.llama),
                     "eva": fingerprint(files.eva), "lora_rank": rank, "lora_alpha": alpha}
        dtype = next(backbone.parameters()).dtype
        model = cls(backbone, AutoTokenizer.from_pretrained(files.llama), eva.to(dtype), projectors.to(dtype),
                    ln_vision, files.options.get("instruction", INSTRUCTION), described)
        return model.eval()

    # -- inputs -----------------------------------------------------------
    def prompt_text(self, sample: Sample) -> tuple[str, str]:
        """The prompt's text before and after ``<VideoHere>``.

        Args:
            sample: the sample (its subtitle).

        Returns:
            ``(before, after)``.
        """
        text = PROMPT.format(subtitle=sample.subtitle, instruction=self.instruction)
        before, after = text.split(PLACEHOLDER)
        return before, after

    def frame_of(self, sample: Sample) -> np.ndarray:
        """The first frame of the sample's video (its image when it has no video).

        Args:
            sample: the sample.

        Returns:
            uint8 ``[H, W, 3]``; missing or undecodable media raise :class:`SampleError`.
        """
        extra = sample.extra
        try:
            if "video" in extra:
                return extra["video"].frames[0]
            if "video_path" in extra:
                return media.first_frame(extra["video_path"])
            if "image" in extra:
                return np.asarray(extra["image"])
            if "image_path" in extra:
                return media.first_frame(extra["image_path"])
        except media.MediaError as err:
            raise SampleError(sample.id, "video", str(err)) from err
        raise SampleError(sample.id, "video", "Emotion-LLaMA needs the clip's video (or an image) for its EVA tokens")

    @torch.no_grad()
    def image_tokens(self, sample: Sample) -> tuple[torch.Tensor, torch.Tensor]:
        """(256 grouped patch tokens ``[G, d]``, CLS token ``[1, d]``) of the sample's first frame.

        Args:
            sample: the sample.

        Returns:
            ``(patches [G, d], cls [1, d])``, projected into the LLaMA width.
        """
        def compute() -> tuple[torch.Tensor, torch.Tensor]:
            pixels = preprocess_frame(self.frame_of(sample), self.eva.image_size)
            feats = self.eva(pixels[None].to(self.device, self.dtype))
            feats = self.ln_vision(feats.float()).to(self.dtype)[0]
            patches = feats[1:].reshape(-1, 4 * feats.shape[-1])  # 1x4 grouping of raster-order patches
            return self.projectors["llama_proj"](patches), self.projectors["cls_tk_llama_proj"](feats[:1])

        key = media.cache_key(sample)
        return media.cached(self._images, key and key[-1], compute)  # the media paths alone fix the frame

    def feature_vectors(self, sample: Sample, modality: str, copies: int) -> dict[str, np.ndarray]:
        """``{stream: [copies, dim]}`` utterance-level features of a modality (zeros where the sample has none).

        Args:
            sample: the sample.
            modality: ``"visual"`` (FaceMAE, VideoMAE) or ``"audio"`` (HuBERT).
            copies: the modality's copies (:func:`~modbias.data.media.media_copies`).

        Returns:
            ``{stream: float32 [copies, dim]}``.
        """
        wanted = VISUAL_STREAMS if modality == "visual" else AUDIO_STREAMS
        array = getattr(sample, modality)
        got = {}
        if copies and array.shape[1]:
            meta = sample.extra.get("streams", {}).get(modality)
            if meta is None and modality == "visual":
                raise SampleError(sample.id, "visual_features", f"unnamed visual features: name the streams "
                                                                f"{VISUAL_STREAMS} (e.g. visual_features: {{name: path}})")
            raw = unpack_streams(sample, modality, default=None if meta else [["hubert", None, array.shape[1]]])
            if modality == "audio" and len(raw) == 1:
                raw = {"hubert": next(iter(raw.values()))}
            for name, feats in raw.items():
                stream = STREAM_ALIASES.get(name, name)
                if stream not in wanted:
                    raise SampleError(sample.id, f"{modality}_features.{name}",
                                      f"unknown stream; Emotion-LLaMA reads {wanted} (or {sorted(STREAM_ALIASES)})")
                got[stream] = feats
        out = {}
        for stream in wanted:
            dim = self.feature_dims[stream]
            feats = got.get(stream, np.zeros((copies, dim), np.float32))  # the demo's zeros
            if feats.shape[1] != dim:
                raise SampleError(sample.id, f"{modality}_features.{stream}",
                                  f"feature width {feats.shape[1]} != checkpoint's {dim}")
            if feats.shape[0] != copies:
                raise SampleError(sample.id, f"{modality}_features.{stream}",
                                  f"{feats.shape[0]} vectors for {copies} cop{'y' if copies == 1 else 'ies'}: "
                                  "Emotion-LLaMA reads one utterance-level vector per clip")
            out[stream] = feats
        return out

    def block(self, sample: Sample) -> list[tuple[str, torch.Tensor]]:
        """The feature block as ``(kind, tokens)`` segments: ``[P | FaceMAE | VideoMAE | HuBERT | CLS]``.

        Args:
            sample: the sample.

        Returns:
            ``[(kind, tokens [n, d])]`` (empty segments dropped).
        """
        n_visual, n_audio = media.media_copies(sample, "visual"), media.media_copies(sample, "audio")
        feats = {**self.feature_vectors(sample, "visual", n_visual), **self.feature_vectors(sample, "audio", n_audio)}
        project = {s: self.projectors[p](torch.as_tensor(feats[s], device=self.device, dtype=self.dtype))
                   for s, p in STREAM_PROJECTOR.items()}
        patches, cls = self.image_tokens(sample) if n_visual else (None, None)
        out = [("visual", patches.repeat(n_visual, 1))] if n_visual else []
        out += [("visual", project["face_mae"]), ("visual", project["video_mae"]), ("audio", project["hubert"])]
        if n_visual:
            out.append(("visual", cls.repeat(n_visual, 1)))
        return [(kind, tokens) for kind, tokens in out if tokens.shape[0]]

    def _text_ids(self, sample: Sample) -> tuple[list[int], list[int]]:
        before, after = self.prompt_text(sample)
        return (self.tokenizer(before, add_special_tokens=True).input_ids,
                self.tokenizer(after, add_special_tokens=False).input_ids)

    @torch.no_grad()
    def embed_sample(self, sample: Sample) -> tuple[torch.Tensor, TokenLayout]:
        """One sample's prompt embeddings and layout: text before ``<VideoHere>``, the feature block, text after.

        Args:
            sample: a sample with a frame and utterance-level features.

        Returns:
            ``(embeds [T, d], TokenLayout)``: :meth:`block`'s segments as visual and audio.
        """
        before, after = self._text_ids(sample)
        segments = [("text", self.embed_tokens(torch.tensor(before, device=self.device)))]
        segments += self.block(sample)
        segments.append(("text", self.embed_tokens(torch.tensor(after, device=self.device))))
        layout = TokenLayout.from_segments([(kind, tokens.shape[0]) for kind, tokens in segments])
        return torch.cat([tokens for _, tokens in segments]), layout

    def prompt_length(self, sample: Sample) -> int:
        """Number of prompt positions of ``sample``: text tokens plus the feature block's size, no EVA forward.

        Args:
            sample: a sample (its visual and audio copies set the block's size).

        Returns:
            ``T``.
        """
        before, after = self._text_ids(sample)
        n_visual, n_audio = media.media_copies(sample, "visual"), media.media_copies(sample, "audio")
        grid = (self.eva.image_size // self.eva.patch) ** 2 // 4
        return len(before) + len(after) + n_visual * (grid + 3) + n_audio

    def describe(self) -> dict:
        """Family, file fingerprints, LoRA rank/alpha, layer/head/width counts, EVA's shape and the instruction."""
        cfg = self.backbone.config
        return {"family": self.family, **self.files, "num_hidden_layers": cfg.num_hidden_layers,
                "num_attention_heads": cfg.num_attention_heads, "hidden_size": cfg.hidden_size,
                "eva": {**self.files.get("eva", {}), "depth": len(self.eva.blocks), "width": self.eva.width,
                        "image_size": self.eva.image_size}, "instruction": self.instruction}
