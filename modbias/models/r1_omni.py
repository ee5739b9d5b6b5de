"""``r1_omni`` family: R1-Omni and HumanOmni checkpoints as released, on stock transformers classes.

``--model r1_omni:DIR``: DIR is the released folder (``config.json`` with
``model_type: HumanOmni_qwen2``, ``model*.safetensors``, tokenizer files).
The towers load from their own folders, found in this order: the option in
``DIR/modbias_r1_omni.json`` (paths relative to DIR), the path in
``config.json`` (``mm_vision_tower``, ``mm_audio_tower``) if it exists, then
a folder of that name in DIR or beside it::

    {"vision_tower": "../siglip-base-patch16-224", "audio_tower": "../whisper-large-v3",
     "bert": "../bert-base-uncased",           # the original hard-codes its authors' path
     "dtype": "auto",                           # bfloat16 | float16 | float32; auto = config.json's
     "instruction": "As an emotional recognition expert; ..."}

What runs (HumanOmni's ``encode_images_or_videos``, ``encode_audios`` and
sentinel splicing, re-written; widths read from the tensors):

- LLM: ``Qwen2ForCausalLM`` with a ``Qwen2Config`` built from ``config.json``;
  the safetensors' ``model.*`` LLM keys load into it.
- Video: 8 frames at segment midpoints (:func:`modbias.data.media.segment_midpoints`),
  the SigLIP folder's image processor (224², no padding), ``SiglipVisionModel``
  ``hidden_states[-2]`` ``[8, 196, 768]`` → ``model.mm_projector``
  (:class:`~modbias.models.humanomni_parts.AllInOneSmall`): video and body branch
  ``[392, d]`` each, face branch pooled 14→7 ``[392, d]`` → fused by the BERT
  gate on the instruction's [CLS] (``model.bert_gate``, BERT weights from
  ``model.bert_model.*`` when the safetensors hold them, else the BERT folder).
- Audio: 16 kHz mono, ``WhisperFeatureExtractor`` (30 s), the encoder of
  ``WhisperForAudioClassification`` ``[1500, 1280]`` → average pool 3 →
  ``model.audio_projector`` → 500 tokens.
- Prompt: the tokenizer's chat template (Qwen2's default system prompt) on
  ``<video>\\n<audio>\\n{instruction}``, markers ``<vi_start>``/``<vi_end>``,
  ``<au_start>``/``<au_end>`` around the sentinels (``mm_use_x_start_end``),
  each chunk tokenized without special tokens, the sentinels ``<image>`` −200,
  ``<video>`` −201, ``<audio>`` −202 replaced by their blocks.

TokenLayout: V = the 392 fused visual tokens, A = the 500 audio tokens, T =
everything else.  Sample rows count copies (zero visual rows: no
``<video>``, as the original's audio-only prompt; k audio rows: k audio
blocks).  Generated text is ``<think> ... </think><answer> ... </answer>``:
``--at answer`` takes the first emotion word after ``<answer>``
(``FAMILY_CONCLUSION`` in :mod:`modbias.core.emotions`), ``--at first`` the first anywhere.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modbias.core.layout import TokenLayout
from modbias.data import media
from modbias.data.sample import Sample, SampleError
from modbias.models.base import ModelAdapter
from modbias.models.humanomni_parts import AllInOneSmall, fuse_visual, mlp2x_gelu, pool_audio, projector_dims
from modbias.models.released_files import (CheckpointError, TensorFile, fingerprint, load_exactly, options_of,
                                           quiet_loading, resolve, torch_dtype)

CONFIG_FILE = "modbias_r1_omni.json"
INSTRUCTION = ("As an emotional recognition expert; throughout the video, which emotion conveyed by the characters "
               "is the most obvious to you?  Output the thinking process in <think> </think> and final emotion in "
               "<answer> </answer> tags.")
SENTINELS = {"<image>": -200, "<video>": -201, "<audio>": -202}
MARKERS = {"<image>": ("<im_start>", "<im_end>"), "<video>": ("<vi_start>", "<vi_end>"),
           "<audio>": ("<au_start>", "<au_end>")}
TOWERS = {"vision_tower": ("mm_vision_tower", "siglip-base-patch16-224"),
          "audio_tower": ("mm_audio_tower", "whisper-large-v3"), "bert": (None, "bert-base-uncased")}
NOT_QWEN2 = ("model_type", "architectures", "auto_map", "_name_or_path", "transformers_version")


@dataclass
class R1OmniFiles:
    """The released folder, its ``config.json`` and the tower folders (see module doc)."""

    folder: Path
    config: dict
    vision_tower: Path
    audio_tower: Path
    bert: Path
    options: dict

    @classmethod
    def locate(cls, folder) -> "R1OmniFiles":
        """The released folder's config and its SigLIP, Whisper and BERT tower folders.

        Args:
            folder: the checkpoint folder (``config.json``, weights, optional ``modbias_r1_omni.json``).

        Returns:
            The located files; a missing tower or another projector type raises :class:`CheckpointError`.
        """
        folder = Path(folder)
        config_file = folder / "config.json"
        if not config_file.exists():
            raise CheckpointError(config_file, "R1-Omni/HumanOmni checkpoint folder has no config.json")
        config = json.loads(config_file.read_text())
        kind = config.get("mm_projector_type", "all_in_one_small")
        if kind != "all_in_one_small":
            raise CheckpointError(config_file, f"mm_projector_type {kind!r}: only HumanOmni's 'all_in_one_small' "
                                               "(R1-Omni, HumanOmni-0.5B/7B) is implemented")
        options = options_of(folder, CONFIG_FILE)
        towers = {}
        for key, (config_key, default) in TOWERS.items():
            if key in options:
                towers[key] = resolve(folder, options[key], key.replace("_", " "), key, CONFIG_FILE)
                continue
            named = str(config.get(config_key) or default) if config_key else default
            given = Path(named).expanduser()
            tried = ([given] if given.is_absolute() else []) + [folder / given.name, folder.parent / given.name]
            found = next((p for p in tried if p.exists()), None)
            if found is None:
                raise CheckpointError(folder, f"{key.replace('_', ' ')} folder not found (looked for "
                                              f"{', '.join(str(p) for p in tried)}); set {key!r} in {CONFIG_FILE}")
            towers[key] = found
        return cls(folder, config, options=options, **towers)


def qwen2_config(config: dict):
    """A ``Qwen2Config`` from HumanOmni's ``config.json`` (its extra ``mm_*`` keys are kept as attributes).

    Args:
        config: the parsed ``config.json``.

    Returns:
        The ``Qwen2Config``.
    """
    from transformers import Qwen2Config

    return Qwen2Config(**{k: v for k, v in config.items() if k not in NOT_QWEN2})


def load_heads(tensors: TensorFile) -> tuple[AllInOneSmall, nn.Module, nn.Sequential]:
    """``model.mm_projector``, ``model.audio_projector`` (mlp2x_gelu or linear) and ``model.bert_gate``,
    shaped from their tensors.

    Args:
        tensors: the checkpoint's tensors.

    Returns:
        ``(projector, audio_projector, bert_gate)``, loaded exactly (:func:`load_exactly`).
    """
    source = tensors.source
    state = tensors.with_prefix("model.mm_projector.")
    try:
        projector = AllInOneSmall(**projector_dims(state))
    except KeyError as err:
        raise CheckpointError(source, f"missing key 'model.mm_projector.{err.args[0]}'") from err
    load_exactly(projector, state, source, "model.mm_projector.")
    state = tensors.with_prefix("model.audio_projector.")
    if "0.weight" in state:  # mlp2x_gelu, as released
        audio_projector = mlp2x_gelu(state["0.weight"].shape[1], state["0.weight"].shape[0])
    elif "weight" in state:  # linear
        audio_projector = nn.Linear(state["weight"].shape[1], state["weight"].shape[0])
    else:
        raise CheckpointError(source, "missing key 'model.audio_projector.0.weight'")
    load_exactly(audio_projector, state, source, "model.audio_projector.")
    state = tensors.with_prefix("model.bert_gate.")
    for key in ("0.weight", "2.weight"):
        if key not in state:
            raise CheckpointError(source, f"missing key 'model.bert_gate.{key}'")
    hidden, bert_width = state["0.weight"].shape
    gate = nn.Sequential(nn.Linear(bert_width, hidden), nn.GELU(), nn.Linear(hidden, state["2.weight"].shape[0]))
    load_exactly(gate, state, source, "model.bert_gate.")
    return projector, audio_projector, gate


class R1OmniModel(nn.Module, ModelAdapter):
    """Qwen2 + SigLIP + Whisper encoder + BERT gate + HumanOmni projectors (see module doc)."""

    family = "r1_omni"

    def __init__(self, backbone: nn.Module, tokenizer, vision: nn.Module, image_processor, audio_encoder: nn.Module,
                 feature_extractor, bert: nn.Module, bert_tokenizer, projector: AllInOneSmall,
                 audio_projector: nn.Module, bert_gate: nn.Module, *, num_frames: int = 8, select_layer: int = -2,
                 instruction: str = INSTRUCTION, x_start_end: bool = True, files: dict | None = None):
        super().__init__()
        self.backbone, self.tokenizer = backbone, tokenizer
        self.vision, self.image_processor = vision, image_processor
        self.audio_encoder, self.feature_extractor = audio_encoder, feature_extractor
        self.bert, self.bert_tokenizer = bert, bert_tokenizer
        self.projector, self.audio_projector, self.bert_gate = projector, audio_projector, bert_gate
        self.num_frames, self.select_layer, self.instruction = num_frames, select_layer, instruction
        self.x_start_end, self.files = x_start_end, files or {}
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.eos_token_id = end if isinstance(end, int) and end != tokenizer.unk_token_id else tokenizer.eos_token_id
        self.pad_token_id = self.eos_token_id  # the original generates with pad = eos
        self._visual: dict = {}
        self._audio: dict = {}

    @classmethod
    def load(cls, path, dtype=None) -> "R1OmniModel":
        """R1-Omni / HumanOmni from the released folder and its three tower folders.

        Args:
            path: the folder :meth:`R1OmniFiles.locate` reads.
            dtype: Qwen2's dtype (default: the option ``dtype``, else as stored); every other part follows it.

        Returns:
            The adapter in eval mode (SigLIP, Whisper encoder, BERT and heads cast to Qwen2's dtype).
        """
        from transformers import (AutoImageProcessor, AutoTokenizer, BertModel, Qwen2ForCausalLM, SiglipVisionModel,
                                  WhisperFeatureExtractor, WhisperForAudioClassification)

        files = R1OmniFiles.locate(path)
        dtype = torch_dtype(dtype or files.options.get("dtype", "auto"), files.folder / CONFIG_FILE)
        tensors = TensorFile(files.folder)
        with quiet_loading():  # the projector keys are "unexpected" to Qwen2; they are checked below
            backbone, info = Qwen2ForCausalLM.from_pretrained(files.folder, config=qwen2_config(files.config),
                                                              dtype=dtype, output_loading_info=True)
        missing = [k for k in info["missing_keys"] if not (k == "lm_head.weight" and backbone.config.tie_word_embeddings)]
        if missing:
            raise CheckpointError(tensors.source, f"missing key {sorted(missing)[0]!r} of the Qwen2 language model")
        dtype = next(backbone.parameters()).dtype

        projector, audio_projector, bert_gate = load_heads(tensors)

        with quiet_loading():
            bert = BertModel.from_pretrained(files.bert).eval()
            vision = SiglipVisionModel.from_pretrained(files.vision_tower).eval()
            audio = WhisperForAudioClassification.from_pretrained(files.audio_tower).encoder.eval()
        bert_state = tensors.with_prefix("model.bert_model.", required=False)
        if bert_state:  # the trained BERT in the checkpoint overrides the folder's
            load_exactly(bert, {k: v for k, v in bert_state.items() if not k.endswith("position_ids")},
                         tensors.source, "model.bert_model.")
        described = {"checkpoint": fingerprint(files.folder), "vision_tower": fingerprint(files.vision_tower),
                     "audio_tower": fingerprint(files.audio_tower), "bert": fingerprint(files.bert),
                     "model_type": files.config.get("model_type")}
        with quiet_loading():  # AutoTokenizer does not know model_type HumanOmni_qwen2; the tokenizer files are stock
            tokenizer = AutoTokenizer.from_pretrained(files.folder)
        model = cls(backbone.eval(), tokenizer, vision,
                    AutoImageProcessor.from_pretrained(files.vision_tower), audio,
                    WhisperFeatureExtractor.from_pretrained(files.audio_tower), bert,
                    AutoTokenizer.from_pretrained(files.bert), projector, audio_projector, bert_gate,
                    num_frames=int(files.config.get("num_frames", 8)),
                    select_layer=int(files.config.get("mm_vision_select_layer", -2)),
                    instruction=files.options.get("instruction", INSTRUCTION),
                    x_start_end=bool(files.config.get("mm_use_x_start_end", True)), files=described)
        for part in (model.vision, model.audio_encoder, model.bert, model.projector, model.audio_projector,
                     model.bert_gate):
            part.to(dtype)
        return model.eval()

    # -- media ------------------------------------------------------------
    def frames_of(self, sample: Sample) -> np.ndarray:
        """``num_frames`` RGB frames at segment midpoints.

        Args:
            sample: the sample (``extra`` video or a video/image path).

        Returns:
            uint8 ``[num_frames, H, W, 3]``; missing or undecodable media raise :class:`SampleError`.
        """
        extra = sample.extra
        try:
            if "video" in extra:
                frames = extra["video"].frames
                return frames[media.segment_midpoints(len(frames), self.num_frames)]
            for key in ("video_path", "image_path"):
                if key in extra:
                    return media.load_frames(extra[key], self.num_frames)
        except media.MediaError as err:
            raise SampleError(sample.id, "video", str(err)) from err
        raise SampleError(sample.id, "video", "R1-Omni needs the clip's video for its visual tokens")

    def wave_of(self, sample: Sample) -> np.ndarray:
        """The clip's audio, mono 16 kHz.

        Args:
            sample: the sample (``extra`` audio or an audio/video path).

        Returns:
            float32 ``[n_samples]``; missing or undecodable media raise :class:`SampleError`.
        """
        extra = sample.extra
        try:
            if "audio" in extra:
                return np.asarray(extra["audio"], np.float32)
            for key in ("audio_path", "video_path"):
                if key in extra:
                    return media.load_audio(extra[key])
        except media.MediaError as err:
            raise SampleError(sample.id, "audio", str(err)) from err
        raise SampleError(sample.id, "audio", "R1-Omni needs the clip's audio (audio_path or a video with sound)")

    def _cached(self, store: dict, sample: Sample, compute):
        key = media.cache_key(sample)
        return media.cached(store, key and key[-1], lambda: compute(sample))  # the media paths alone

    @torch.no_grad()
    def gate_logits(self) -> torch.Tensor:
        """The BERT gate's logits ``[3]`` for the instruction (the question the original feeds BERT)."""
        inputs = self.bert_tokenizer([self.instruction], return_tensors="pt", padding=True, truncation=True)
        cls = self.bert(**{k: v.to(self.device) for k, v in inputs.items()}).last_hidden_state[:, 0]
        return self.bert_gate(cls.to(self.dtype))[0].float()

    @torch.no_grad()
    def visual_tokens(self, sample: Sample) -> torch.Tensor:
        """The fused visual tokens ``[N, d]`` (392 for 8 frames of 14x14 patches).

        Args:
            sample: the sample.

        Returns:
            ``[N, d]``: video, body and pooled face branches mixed by the BERT gate (:func:`fuse_visual`).
        """
        def compute(s):
            pixels = self.image_processor(images=list(self.frames_of(s)), return_tensors="pt")["pixel_values"]
            states = self.vision(pixels.to(self.device, self.dtype), output_hidden_states=True).hidden_states
            video, body, face = self.projector(states[self.select_layer])
            return fuse_visual(video, body, face, self.gate_logits())
        return self._cached(self._visual, sample, compute)

    @torch.no_grad()
    def audio_tokens(self, sample: Sample) -> torch.Tensor:
        """The audio tokens ``[M, d]`` (500 for Whisper's 30-s window).

        Args:
            sample: the sample.

        Returns:
            ``[M, d]``: Whisper encoder states pooled by 3 and projected.
        """
        def compute(s):
            features = self.feature_extractor(self.wave_of(s), sampling_rate=media.AUDIO_RATE,
                                              return_tensors="pt").input_features
            states = self.audio_encoder(features.to(self.device, self.dtype)).last_hidden_state[0]
            return self.audio_projector(pool_audio(states))
        return self._cached(self._audio, sample, compute)

    # -- prompt -----------------------------------------------------------
    def prompt_ids(self, sample: Sample) -> list[int]:
        """Token ids of the chat prompt with sentinels (negative ids) where the blocks go.

        Args:
            sample: the sample (its copies of each modality).

        Returns:
            Token ids, with one negative sentinel per ``<video>``/``<audio>`` block.
        """
        n_visual, n_audio = media.media_copies(sample, "visual"), media.media_copies(sample, "audio")
        content = "<video>\n" * n_visual + "<audio>\n" * n_audio + self.instruction
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                  add_generation_prompt=True)
        if self.x_start_end:
            for token, (start, end) in MARKERS.items():
                text = text.replace(token, f"{start}{token}{end}")
        ids = []
        for chunk in re.split("(" + "|".join(map(re.escape, SENTINELS)) + ")", text):
            if chunk in SENTINELS:
                ids.append(SENTINELS[chunk])
            elif chunk:
                ids.extend(self.tokenizer(chunk, add_special_tokens=False).input_ids)
        return ids

    @torch.no_grad()
    def embed_sample(self, sample: Sample) -> tuple[torch.Tensor, TokenLayout]:
        """One sample's prompt embeddings and layout: text runs embedded, each sentinel replaced by its block.

        Args:
            sample: a sample with video and audio.

        Returns:
            ``(embeds [T, d], TokenLayout)``: :meth:`visual_tokens` as visual, :meth:`audio_tokens` as audio.
        """
        ids = self.prompt_ids(sample)
        segments, run = [], []
        for token in ids + [None]:
            if token is not None and token >= 0:
                run.append(token)
                continue
            if run:
                segments.append(("text", self.embed_tokens(torch.tensor(run, device=self.device))))
                run = []
            if token in (SENTINELS["<video>"], SENTINELS["<image>"]):
                segments.append(("visual", self.visual_tokens(sample)))
            elif token == SENTINELS["<audio>"]:
                segments.append(("audio", self.audio_tokens(sample)))
        layout = TokenLayout.from_segments([(kind, x.shape[0]) for kind, x in segments])
        return torch.cat([x.to(self.dtype) for _, x in segments]), layout

    def prompt_length(self, sample: Sample) -> int:
        """Number of prompt positions of ``sample``: text tokens plus the blocks' fixed sizes.

        Args:
            sample: a sample (its copies of each modality).

        Returns:
            ``T`` (no encoder forward).
        """
        ids = self.prompt_ids(sample)
        sizes = {SENTINELS["<video>"]: self.n_visual_tokens, SENTINELS["<image>"]: self.n_visual_tokens,
                 SENTINELS["<audio>"]: self.n_audio_tokens}
        return sum(sizes.get(t, 1) for t in ids)

    @property
    def n_visual_tokens(self) -> int:
        """N, the visual tokens of one clip: ``num_frames · ceil(side / 2)²``."""
        side = self.vision.config.image_size // self.vision.config.patch_size
        return self.num_frames * (-(-side // 2)) ** 2

    @property
    def n_audio_tokens(self) -> int:
        """M, the audio tokens of one clip: Whisper's positions / 3."""
        return self.audio_encoder.config.max_source_positions // 3

    def describe(self) -> dict:
        """Family, file fingerprints, layer/head/width counts, frame count and instruction, for run configs."""
        cfg = self.backbone.config
        return {"family": self.family, **self.files, "num_hidden_layers": cfg.num_hidden_layers,
                "num_attention_heads": cfg.num_attention_heads, "hidden_size": cfg.hidden_size,
                "num_frames": self.num_frames, "instruction": self.instruction}
