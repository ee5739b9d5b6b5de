"""``qwen2_5_omni`` family: ``Qwen2_5OmniThinkerForConditionalGeneration`` with its processor.

Per sample, the processor expands the chat template's ``<|VIDEO|>`` and
``<|AUDIO|>`` placeholders (interleaving audio with video in 2-second chunks
when ``use_audio_in_video``); the thinker's own audio and vision towers fill
those positions.  The TokenLayout is read off the token ids: visual =
``input_ids == config.video_token_id`` (or ``image_token_id``), audio =
``input_ids == config.audio_token_id``, text = everything else (including
the ``<|vision_bos|>`` / ``<|audio_bos|>`` markers), also when interleaved.

3-D rotary positions (M-RoPE).  The thinker's ``get_rope_index`` gives each
prompt token (t, h, w) positions; generated tokens continue from the
largest + 1.  modbias passes position ids around as ``[B, T]`` tensors, so
the three components are packed into one int64 (a flag bit, t, and h-t, w-t
offsets: adding 1 advances all three, as ``generate`` does) and a forward
pre-hook on the thinker unpacks them into ``[3, B, T]``.  Plain ``[B, T]``
positions (e.g. PAI's visual-free branch, where every position is 1-D
anyway) pass through unchanged.

Optional ``modbias.json`` in the checkpoint folder overrides the prompt:
``{"system": ..., "instruction": "... {subtitle} ...", "use_audio_in_video": true, "fps": 2.0}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modbias.core.layout import TokenLayout, position_ids_from_mask
from modbias.data import media
from modbias.data.prompts import instruction_for
from modbias.data.sample import Sample, SampleError
from modbias.models.base import ModelAdapter, PreparedBatch, left_pad

SYSTEM = ("You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
          "auditory and visual inputs, as well as generating text and speech.")
INSTRUCTION = ("The person in the video says: \"{subtitle}\". What emotion does the person express? "
               "Describe the facial expression and the tone of voice, then name the emotion.")

_BITS = 20
_FIELD = (1 << _BITS) - 1
_BIAS = 1 << (_BITS - 1)
_FLAG = 1 << 61


def pack_mrope(positions: torch.Tensor) -> torch.Tensor:
    """``[3, B, T]`` (t, h, w) positions → flagged ``[B, T]`` int64; ``+ n`` advances all three by n.

    Args:
        positions: M-RoPE positions ``[3, B, T]``.

    Returns:
        int64 ``[B, T]`` that transformers' ``generate`` can advance like 1-D positions.
    """
    t, h, w = positions.long()
    return _FLAG + t + ((h - t + _BIAS) << _BITS) + ((w - t + _BIAS) << (2 * _BITS))


def unpack_mrope(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_mrope`: ``[B, T]`` → ``[3, B, T]``.

    Args:
        packed: int64 ``[B, T]`` from :func:`pack_mrope` (possibly advanced).

    Returns:
        int64 ``[3, B, T]``.
    """
    x = packed - _FLAG
    t = x & _FIELD
    h = t + ((x >> _BITS) & _FIELD) - _BIAS
    w = t + ((x >> (2 * _BITS)) & _FIELD) - _BIAS
    return torch.stack([t, h, w])


def is_packed(position_ids) -> bool:
    """Whether ``position_ids`` are :func:`pack_mrope`'s flagged ``[B, T]`` positions.

    Args:
        position_ids: a forward's ``position_ids`` (any object).

    Returns:
        ``True`` for a non-empty 2-D tensor whose every entry carries the flag.
    """
    return isinstance(position_ids, torch.Tensor) and position_ids.ndim == 2 and position_ids.numel() > 0 \
        and bool((position_ids >= _FLAG).all())


def _unpack_hook(module, args, kwargs):
    if is_packed(kwargs.get("position_ids")):
        kwargs["position_ids"] = unpack_mrope(kwargs["position_ids"])
    kwargs.pop("logits_to_keep", None)  # the thinker's forward has no such argument
    return args, kwargs


@dataclass
class OmniBatch(PreparedBatch):
    """A prepared batch with M-RoPE: ``rope`` ``[3, B, T_prompt]`` and ``rope_delta`` ``[B]``."""

    rope: torch.Tensor = None
    rope_delta: torch.Tensor = None

    @property
    def position_ids(self) -> torch.Tensor:
        """Packed M-RoPE positions ``[B, T]``: the prompt's 3-D positions, then text positions shifted by ``rope_delta``."""
        text = position_ids_from_mask(self.attention_mask).to(self.rope.device)
        positions = (text + self.rope_delta[:, None]).expand(3, -1, -1).clone()
        positions[:, :, :self.rope.shape[-1]] = self.rope
        return pack_mrope(positions)


@dataclass
class OmniPrompt:
    """Prompt settings (defaults follow Qwen2.5-Omni's emotion use; ``modbias.json`` overrides)."""

    system: str = SYSTEM
    instruction: str = INSTRUCTION
    use_audio_in_video: bool = True
    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 768
    extra: dict = field(default_factory=dict)


def load_processor(path):
    """The checkpoint's processor; without torchvision the video processor is modbias' numpy stand-in.

    Args:
        path: the checkpoint folder.

    Returns:
        A ``Qwen2_5OmniProcessor``.
    """
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path)
    except ImportError:
        from transformers import (AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer,
                                  Qwen2_5OmniProcessor)

        path = Path(path)
        video_file = path / "video_preprocessor_config.json"
        video_cfg = json.loads((video_file if video_file.exists() else path / "preprocessor_config.json").read_text())
        template = None
        if (path / "chat_template.jinja").exists():
            template = (path / "chat_template.jinja").read_text()
        elif (path / "chat_template.json").exists():
            template = json.loads((path / "chat_template.json").read_text())["chat_template"]
        class OmniProcessor(Qwen2_5OmniProcessor):  # accepts the stand-in where transformers cannot check it
            def check_argument_for_proper_class(self, argument_name, argument):
                if argument_name == "video_processor":
                    return type(argument)
                return super().check_argument_for_proper_class(argument_name, argument)

        return OmniProcessor(AutoImageProcessor.from_pretrained(path),
                             media.QwenVideoProcessor.from_config_dict(video_cfg),
                             AutoFeatureExtractor.from_pretrained(path), AutoTokenizer.from_pretrained(path),
                             chat_template=template)


class QwenOmniModel(nn.Module, ModelAdapter):
    """Qwen2.5-Omni thinker + processor (see module doc)."""

    family = "qwen2_5_omni"

    def __init__(self, thinker: nn.Module, processor, prompt: OmniPrompt | None = None, path: str | None = None):
        super().__init__()
        self.backbone, self.processor, self.path = thinker, processor, path
        self.prompt = prompt or OmniPrompt()
        self.tokenizer = processor.tokenizer
        self.eos_token_id = self.tokenizer.convert_tokens_to_ids("<|im_end|>")
        if self.eos_token_id is None or self.eos_token_id == self.tokenizer.unk_token_id:
            self.eos_token_id = self.tokenizer.eos_token_id
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_id
        self._hook = thinker.register_forward_pre_hook(_unpack_hook, with_kwargs=True)
        self._processed: dict = {}

    @classmethod
    def load(cls, path, dtype="auto") -> "QwenOmniModel":
        """The Qwen2.5-Omni thinker (the talker is not loaded), its processor and ``modbias.json``'s prompt settings.

        Args:
            path: a Qwen2.5-Omni (or thinker-only) HF folder.
            dtype: the thinker's dtype (``"auto"``: as stored).

        Returns:
            The adapter, in eval mode.
        """
        from transformers import AutoConfig, Qwen2_5OmniThinkerForConditionalGeneration

        path = Path(path)
        config = AutoConfig.from_pretrained(path)
        kwargs = {"config": config.thinker_config} if config.model_type == "qwen2_5_omni" else {}
        thinker = Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(path, dtype=dtype, **kwargs).eval()
        options = json.loads((path / "modbias.json").read_text()) if (path / "modbias.json").exists() else {}
        known = set(OmniPrompt.__dataclass_fields__) - {"extra"}
        prompt = OmniPrompt(**{k: v for k, v in options.items() if k in known},
                            extra={k: v for k, v in options.items() if k not in known})
        return cls(thinker, load_processor(path), prompt, str(path))

    # -- configuration ----------------------------------------------------
    # -- inputs -----------------------------------------------------------
    def media_of(self, sample: Sample) -> tuple[media.Video | None, np.ndarray | None, int, int]:
        """(sampled video, 16 kHz audio, video copies, audio copies) of a sample.

        Args:
            sample: the sample (``extra`` arrays or media paths).

        Returns:
            ``(Video or None, float32 [n_samples] or None, n_video, n_audio)``; missing or undecodable
            media raise :class:`SampleError`.
        """
        n_video, n_audio = media.media_copies(sample, "visual"), media.media_copies(sample, "audio")
        video = wave = None
        try:
            if n_video:
                if "video" in sample.extra:
                    clip = sample.extra["video"]
                elif "video_path" in sample.extra:
                    clip = media.load_video(sample.extra["video_path"])
                elif "image_path" in sample.extra:
                    clip = media.Video(media.load_image(sample.extra["image_path"])[None], self.prompt.fps)
                else:
                    raise SampleError(sample.id, "video", "no video for the visual modality (extra video_path)")
                video = media.sample_video(clip, self.prompt.fps, self.processor.video_processor.temporal_patch_size,
                                           self.prompt.min_frames, self.prompt.max_frames)
            if n_audio:
                if "audio" in sample.extra:
                    wave = np.asarray(sample.extra["audio"], np.float32)
                elif "audio_path" in sample.extra:
                    wave = media.load_audio(sample.extra["audio_path"])
                elif "video_path" in sample.extra:
                    wave = media.load_audio(sample.extra["video_path"])
                else:
                    raise SampleError(sample.id, "audio", "no audio for the audio modality (extra audio_path)")
        except media.MediaError as err:
            raise SampleError(sample.id, "video" if video is None and n_video else "audio", str(err)) from err
        return video, wave, n_video, n_audio

    def processed(self, sample: Sample) -> tuple[dict, bool]:
        """The processor's output for one sample (tensors) and whether audio is interleaved with video.

        The last few results are kept (decoding and feature extraction dominate the cost on a CPU, and a
        trace asks for the same sample's prompt length before preparing it).

        Args:
            sample: the sample.

        Returns:
            ``(BatchFeature with input_ids [1, T] and the media tensors, interleaved)``.
        """
        return media.cached(self._processed, media.cache_key(sample), lambda: self._process(sample))

    def _process(self, sample: Sample) -> tuple[dict, bool]:
        video, wave, n_video, n_audio = self.media_of(sample)
        interleaved = bool(self.prompt.use_audio_in_video and video is not None and wave is not None)
        standalone = n_audio - 1 if interleaved else n_audio
        content = [{"type": "video"}] * (1 if video is not None else 0)
        content += [{"type": "audio"}] * standalone
        content.append({"type": "text", "text": instruction_for(self.prompt.instruction, sample)})
        conversation = [{"role": "system", "content": [{"type": "text", "text": self.prompt.system}]},
                        {"role": "user", "content": content}]
        text = self.processor.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
        kwargs = {}
        if video is not None:
            kwargs.update(videos=[video.frames], fps=video.fps)
        if wave is not None:
            kwargs["audio"] = [wave] * n_audio
            if interleaved:
                kwargs.update(load_audio_from_video=True, audio_from_video_indices=[0] + [None] * standalone)
        inputs = self.processor(text=[text if isinstance(text, str) else text[0]], return_tensors="pt", **kwargs)
        return inputs, interleaved

    @torch.no_grad()
    def embed_sample(self, sample: Sample) -> tuple[torch.Tensor, TokenLayout, torch.Tensor, torch.Tensor]:
        """Prompt embeddings ``[T, d]``, layout, rope ``[3, T]`` and rope delta of one sample.

        Args:
            sample: the sample.

        Returns:
            ``(embeds [T, d], TokenLayout, rope long [3, T], rope_delta long [])``: visual = video/image
            tokens, audio = audio tokens, text = the rest.
        """
        inputs, interleaved = self.processed(sample)
        thinker, cfg = self.backbone, self.backbone.config
        ids = inputs["input_ids"].to(self.device)
        embeds = thinker.get_input_embeddings()(ids)
        audio_lengths = None
        if "input_features" in inputs:
            fmask = inputs["feature_attention_mask"].to(self.device)
            audio = thinker.get_audio_features(inputs["input_features"].to(self.device, self.dtype), fmask,
                                               return_dict=True).last_hidden_state
            embeds[ids == cfg.audio_token_id] = audio.to(embeds.dtype)
            audio_lengths = fmask.sum(-1)
        grid = inputs.get("video_grid_thw")
        if grid is not None:
            out = thinker.get_video_features(inputs["pixel_values_videos"].to(self.device, self.dtype),
                                             grid.to(self.device), return_dict=True)
            embeds[ids == cfg.video_token_id] = torch.cat(out.pooler_output).to(embeds.dtype)
            grid = grid.to(self.device)
        seconds = inputs.get("video_second_per_grid")
        rope, delta = thinker.get_rope_index(
            ids, None, grid, torch.ones_like(ids), interleaved, audio_lengths,
            None if seconds is None else torch.as_tensor(seconds, device=self.device))
        row = ids[0].cpu().numpy()
        visual = np.flatnonzero((row == cfg.video_token_id) | (row == cfg.image_token_id))
        audio = np.flatnonzero(row == cfg.audio_token_id)
        text = np.setdiff1d(np.arange(len(row)), np.concatenate([visual, audio]))
        layout = TokenLayout(visual, audio, text, len(row))
        return embeds[0], layout, rope[:, 0], delta.reshape(-1)[0]

    def prepare(self, samples: list[Sample]) -> OmniBatch:
        """Left-padded embeddings with M-RoPE positions.

        Args:
            samples: the batch.

        Returns:
            An :class:`OmniBatch` (``rope [3, B, T]``, ``rope_delta [B]``).
        """
        embedded = [self.embed_sample(s) for s in samples]
        embeds, mask, offsets = left_pad([e[0] for e in embedded])
        width = embeds.shape[1]
        rope = torch.ones(3, len(samples), width, dtype=torch.long, device=self.device)
        for b, (_, _, r, _) in enumerate(embedded):
            rope[:, b, width - r.shape[-1]:] = r
        delta = torch.stack([e[3] for e in embedded]).to(self.device)
        return OmniBatch(embeds, mask.to(self.device), [e[1] for e in embedded], offsets, rope=rope, rope_delta=delta)

    def prompt_length(self, sample: Sample) -> int:
        """Number of prompt positions of ``sample``: the processed prompt's ids, no encoder forward.

        Args:
            sample: a sample with media.

        Returns:
            ``T`` (media tokens expanded by the processor).
        """
        return int(self.processed(sample)[0]["input_ids"].shape[1])

    # -- generation -------------------------------------------------------
    def extend(self, batch: OmniBatch, generated: torch.Tensor) -> OmniBatch:
        """The batch with the generated tokens appended, keeping its M-RoPE positions.

        Args:
            batch: the prepared prompts.
            generated: long ``[B, G]`` ids.

        Returns:
            An :class:`OmniBatch` of length ``T + G``.
        """
        base = super().extend(batch, generated)
        return OmniBatch(base.inputs_embeds, base.attention_mask, base.layouts, base.offsets, rope=batch.rope,
                         rope_delta=batch.rope_delta)

    def generation_inputs(self, batch: OmniBatch) -> dict:
        """The prompt arguments of :meth:`ModelAdapter.generate`, with the batch's packed 3-D positions.

        Args:
            batch: the prepared prompts.

        Returns:
            ``{"inputs_embeds", "attention_mask", "position_ids"}`` (positions packed by :func:`pack_mrope`).
        """
        return {**super().generation_inputs(batch), "position_ids": batch.position_ids}

    def describe(self) -> dict:
        """Family, path, layer/head/width counts and the prompt settings, for run configs."""
        text = self.text_config
        return {"family": self.family, "path": self.path, "num_hidden_layers": text.num_hidden_layers,
                "num_attention_heads": text.num_attention_heads, "hidden_size": text.hidden_size,
                "prompt": {k: v for k, v in self.prompt.__dict__.items() if k != "extra"}}
