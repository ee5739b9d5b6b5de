"""``llava`` family: ``LlavaForConditionalGeneration`` with its processor (image-only).

The prompt is the checkpoint's chat template with one image (the sample's
image file, else the middle frame of its video) and the instruction; the
processor expands ``<image>`` to the vision tower's token count.  Layout:
visual = ``input_ids == config.image_token_id``, no audio, text = the rest.
With no audio the competing token set of AR is the text: use
``make("ar", competitor="text")`` (``--competitor text``), as in the
hallucination setting.  Positions are plain 1-D, as LLaVA's.

Optional ``modbias.json`` in the checkpoint folder: ``{"instruction": "... {subtitle} ..."}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modbias.core.layout import TokenLayout
from modbias.data import media
from modbias.data.prompts import instruction_for
from modbias.data.sample import Sample, SampleError
from modbias.models.base import ModelAdapter

INSTRUCTION = ("The person in the image says: \"{subtitle}\". What emotion does the person express? "
               "Describe the facial expression, then name the emotion.")
FALLBACK_TEMPLATE = "USER: <image>\n{instruction} ASSISTANT:"


class LlavaModel(nn.Module, ModelAdapter):
    """LLaVA + processor (see module doc)."""

    family = "llava"

    def __init__(self, model: nn.Module, processor, instruction: str = INSTRUCTION, path: str | None = None):
        super().__init__()
        self.backbone, self.processor, self.instruction, self.path = model, processor, instruction, path
        self.tokenizer = processor.tokenizer
        self.eos_token_id = self.tokenizer.eos_token_id
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_token_id
        self._processed: dict = {}

    @classmethod
    def load(cls, path, dtype="auto") -> "LlavaModel":
        """LLaVA and its processor from a local HF checkpoint folder.

        Args:
            path: the folder (``config.json``, weights, processor files, optional ``modbias.json``).
            dtype: the weights' dtype (``"auto"``: as stored).

        Returns:
            The adapter, in eval mode, with the instruction from ``modbias.json`` if given.
        """
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        path = Path(path)
        model = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype).eval()
        options = json.loads((path / "modbias.json").read_text()) if (path / "modbias.json").exists() else {}
        return cls(model, AutoProcessor.from_pretrained(path), options.get("instruction", INSTRUCTION), str(path))

    def image_of(self, sample: Sample) -> np.ndarray | None:
        """The image LLaVA sees (``None`` when the sample's visual input is left out).

        Args:
            sample: the sample (``extra`` image/video array or path).

        Returns:
            uint8 ``[H, W, 3]`` or ``None``; undecodable media raise :class:`SampleError`.
        """
        if media.media_copies(sample, "visual") == 0:
            return None
        try:
            if "image" in sample.extra:
                return np.asarray(sample.extra["image"])
            if "image_path" in sample.extra:
                return media.load_image(sample.extra["image_path"])
            if "video" in sample.extra:
                return media.middle_frame(sample.extra["video"])
            if "video_path" in sample.extra:
                return media.middle_frame(media.load_video(sample.extra["video_path"]))
        except media.MediaError as err:
            raise SampleError(sample.id, "image", str(err)) from err
        raise SampleError(sample.id, "image", "no image or video for the visual modality (extra image_path/video_path)")

    def processed(self, sample: Sample) -> dict:
        """The processor's output for one sample (the last few are kept, see :func:`media.cache_key`).

        Args:
            sample: the sample.

        Returns:
            The processor's ``BatchFeature``: ``input_ids [1, T]`` (``<image>`` expanded) and, with an
            image, ``pixel_values``.
        """
        return media.cached(self._processed, media.cache_key(sample), lambda: self._process(sample))

    def _process(self, sample: Sample) -> dict:
        image = self.image_of(sample)
        instruction = instruction_for(self.instruction, sample)
        content = ([{"type": "image"}] if image is not None else []) + [{"type": "text", "text": instruction}]
        if self.processor.chat_template:
            text = self.processor.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                      add_generation_prompt=True)
            text = text if isinstance(text, str) else text[0]
        else:
            text = FALLBACK_TEMPLATE.format(instruction=instruction)
            if image is None:
                text = text.replace("<image>\n", "")
        return self.processor(text=[text], images=None if image is None else [image], return_tensors="pt")

    @torch.no_grad()
    def embed_sample(self, sample: Sample) -> tuple[torch.Tensor, TokenLayout]:
        """Prompt embeddings with the projected image features at the image-token positions.

        Args:
            sample: the sample.

        Returns:
            ``(embeds [T, d], TokenLayout)``: visual = the image tokens, no audio, text = the rest.
        """
        inputs = self.processed(sample)
        ids = inputs["input_ids"].to(self.device)
        embeds = self.backbone.get_input_embeddings()(ids)
        image_id = self.backbone.config.image_token_id
        if "pixel_values" in inputs:
            feats = self.backbone.get_image_features(pixel_values=inputs["pixel_values"].to(self.device, self.dtype),
                                                     return_dict=True).pooler_output
            feats = torch.cat(list(feats)) if isinstance(feats, (list, tuple)) else feats.reshape(-1, embeds.shape[-1])
            embeds[ids == image_id] = feats.to(embeds.dtype)
        row = ids[0].cpu().numpy()
        visual = np.flatnonzero(row == image_id)
        text = np.setdiff1d(np.arange(len(row)), visual)
        return embeds[0], TokenLayout(visual, np.zeros(0, dtype=np.int64), text, len(row))

    def prompt_length(self, sample: Sample) -> int:
        """The processed prompt's length (no vision forward).

        Args:
            sample: the sample.

        Returns:
            ``T``.
        """
        return int(self.processed(sample)["input_ids"].shape[1])

    def describe(self) -> dict:
        """Family, checkpoint path, layer/head/width counts and the instruction, for run configs."""
        text = self.text_config
        return {"family": self.family, "path": self.path, "num_hidden_layers": text.num_hidden_layers,
                "num_attention_heads": text.num_attention_heads, "hidden_size": text.hidden_size,
                "instruction": self.instruction}
