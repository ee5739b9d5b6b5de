"""``features`` family: an HF causal LM fed projected, precomputed per-sample features (Emotion-LLaMA style).

A checkpoint directory holds the backbone in HF format (``config.json``,
weights, tokenizer; LLaMA, Qwen2 or any ``AutoModelForCausalLM``), the
projector weights ``projectors.safetensors`` and ``modbias_features.json``,
which fixes the prompt and therefore the TokenLayout::

    {"template": "[INST] <video><FeatureHere></video> The person in video says: {subtitle}. [emotion] {instruction} [/INST]",
     "instruction": "Please determine which emotion label ...",
     "placeholders": {"<FeatureHere>": ["eva", "face_mae", "video_mae", "hubert", "eva_cls"]},
     "streams": {"eva":      {"modality": "visual", "dim": 5632, "tokens": 256, "projector": "linear"},
                 "face_mae": {"modality": "visual", "dim": 1024, "tokens": 1},
                 "video_mae":{"modality": "visual", "dim": 1024, "tokens": 1},
                 "hubert":   {"modality": "audio",  "dim": 1024, "tokens": 1},
                 "eva_cls":  {"modality": "visual", "dim": 1408, "tokens": 1}},
     "add_special_tokens": true}

Each placeholder is replaced by its streams' projected tokens, in the listed
order (for Emotion-LLaMA the 260-token block with HuBERT at offset 258);
the offsets follow from this file, never from code.  Text between
placeholders is tokenized piece by piece, the first piece with the
tokenizer's special tokens (BOS), as Emotion-LLaMA does.  Projectors are
``linear`` or ``mlp2x_gelu`` and their weights are keyed ``<stream>.*``.

A sample provides the streams of a modality packed in ``sample.visual`` /
``sample.audio`` with ``extra["streams"]`` naming them (see
:func:`modbias.data.readers.pack_streams`); a modality with a single stream
may come as a plain ``[tokens, dim]`` array.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modbias.core.layout import TokenLayout
from modbias.data.prompts import instruction_for
from modbias.data.readers import unpack_streams
from modbias.data.sample import Sample, SampleError
from modbias.models.base import ModelAdapter

CONFIG_FILE = "modbias_features.json"
PROJECTOR_FILE = "projectors.safetensors"
PROJECTORS = ("linear", "mlp2x_gelu")


@dataclass
class StreamSpec:
    """One feature stream: its modality, width, tokens per copy (``None``: any) and projector kind."""

    modality: str
    dim: int
    tokens: int | None = None
    projector: str = "linear"

    def __post_init__(self):
        if self.modality not in ("visual", "audio"):
            raise ValueError(f"stream modality must be 'visual' or 'audio', got {self.modality!r}")
        if self.projector not in PROJECTORS:
            raise ValueError(f"projector must be one of {PROJECTORS}, got {self.projector!r}")


@dataclass
class FeatureConfig:
    """The prompt template and feature streams of a features checkpoint (``modbias_features.json``)."""

    template: str
    placeholders: dict[str, list[str]]
    streams: dict[str, StreamSpec]
    instruction: str = ""
    add_special_tokens: bool = True
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, spec: dict) -> "FeatureConfig":
        """The config from ``modbias_features.json``'s object, checked (:meth:`check`).

        Args:
            spec: ``{"template", "placeholders", "streams"[, "instruction", "add_special_tokens", ...]}``;
                unknown keys are kept in ``extra``.

        Returns:
            The config; a missing key or an inconsistent placeholder raises ``ValueError``.
        """
        known = {"template", "placeholders", "streams", "instruction", "add_special_tokens"}
        missing = {"template", "placeholders", "streams"} - set(spec)
        if missing:
            raise ValueError(f"{CONFIG_FILE}: missing keys {sorted(missing)}")
        config = cls(spec["template"], {k: list(v) for k, v in spec["placeholders"].items()},
                     {k: StreamSpec(**v) for k, v in spec["streams"].items()}, spec.get("instruction", ""),
                     bool(spec.get("add_special_tokens", True)), {k: v for k, v in spec.items() if k not in known})
        config.check()
        return config

    @classmethod
    def from_dir(cls, path) -> "FeatureConfig":
        """The config of a features checkpoint folder.

        Args:
            path: the folder holding ``modbias_features.json``.

        Returns:
            The config (:meth:`from_dict`).
        """
        file = Path(path) / CONFIG_FILE
        if not file.exists():
            raise FileNotFoundError(f"{file} not found: a features checkpoint needs its prompt/stream config")
        return cls.from_dict(json.loads(file.read_text()))

    def check(self) -> None:
        """Raise ``ValueError`` unless every stream is named by exactly one placeholder and each placeholder occurs once in the template."""
        used = [s for names in self.placeholders.values() for s in names]
        unknown = sorted(set(used) - set(self.streams))
        if unknown:
            raise ValueError(f"{CONFIG_FILE}: placeholders name unknown streams {unknown}")
        if len(used) != len(set(used)) or set(used) != set(self.streams):
            raise ValueError(f"{CONFIG_FILE}: every stream must appear in exactly one placeholder")
        for placeholder in self.placeholders:
            if self.template.count(placeholder) != 1:
                raise ValueError(f"{CONFIG_FILE}: placeholder {placeholder!r} must occur once in the template")

    def streams_of(self, modality: str) -> list[str]:
        """The streams of one modality, in template order.

        Args:
            modality: ``"visual"`` or ``"audio"``.

        Returns:
            Stream names.
        """
        return [name for names in self.placeholders.values() for name in names
                if self.streams[name].modality == modality]

    def to_dict(self) -> dict:
        """The config as the JSON object :meth:`from_dict` reads."""
        return {"template": self.template, "instruction": self.instruction, "placeholders": self.placeholders,
                "streams": {k: asdict(v) for k, v in self.streams.items()},
                "add_special_tokens": self.add_special_tokens, **self.extra}


def build_projectors(config: FeatureConfig, hidden_size: int) -> nn.ModuleDict:
    """One projector per stream, ``<stream>.*`` in the state dict.

    Args:
        config: the streams (width and projector kind: ``linear`` or ``mlp2x_gelu``).
        hidden_size: d, the language model's width.

    Returns:
        ``ModuleDict`` mapping ``[tokens, dim]`` → ``[tokens, d]`` per stream.
    """
    out = nn.ModuleDict()
    for name, spec in config.streams.items():
        if spec.projector == "linear":
            out[name] = nn.Linear(spec.dim, hidden_size)
        else:
            out[name] = nn.Sequential(nn.Linear(spec.dim, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
    return out


class FeatureModel(nn.Module, ModelAdapter):
    """HF causal-LM backbone + per-stream projectors + template (see module doc)."""

    family = "features"

    def __init__(self, backbone: nn.Module, tokenizer, config: FeatureConfig, path: str | None = None):
        super().__init__()
        self.backbone, self.tokenizer, self.config, self.path = backbone, tokenizer, config, path
        self.projectors = build_projectors(config, backbone.config.hidden_size)
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id
        pattern = "|".join(re.escape(p) for p in config.placeholders)
        self._split = re.compile(f"({pattern})")

    @classmethod
    def load(cls, path, dtype="auto") -> "FeatureModel":
        """A features checkpoint: an HF causal LM, its tokenizer, ``modbias_features.json`` and the projectors' safetensors.

        Args:
            path: the folder holding all four.
            dtype: the causal LM's dtype (``"auto"``: as stored); the projectors follow it.

        Returns:
            The adapter, in eval mode.
        """
        from safetensors.torch import load_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = Path(path)
        config = FeatureConfig.from_dir(path)
        backbone = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
        model = cls(backbone, AutoTokenizer.from_pretrained(path), config, str(path))
        file = path / PROJECTOR_FILE
        if not file.exists():
            raise FileNotFoundError(f"{file} not found: projector weights of the feature streams")
        model.projectors.load_state_dict(load_file(file))
        return model.to(next(backbone.parameters()).dtype).eval()

    # -- adapter protocol -------------------------------------------------
    def sample_streams(self, sample: Sample) -> dict[str, np.ndarray]:
        """The sample's features per stream, checked against the checkpoint's streams.

        Args:
            sample: the sample (packed streams, :func:`~modbias.data.readers.pack_streams`).

        Returns:
            ``{stream: [tokens, dim]}``; a missing, extra or wrongly sized stream raises :class:`SampleError`.
        """
        out = {}
        for modality in ("visual", "audio"):
            names = self.config.streams_of(modality)
            array = getattr(sample, modality)
            if names and array.shape[0] and array.shape[1] == 0:
                raise SampleError(sample.id, f"{modality}_features",
                                  "the sample has media but no precomputed features, which this family needs")
            fallback = [[n, self.config.streams[n].tokens, self.config.streams[n].dim] for n in names]
            if len(names) == 1:
                fallback[0][1] = None  # a single stream takes all rows
            got = unpack_streams(sample, modality, default=fallback)
            extra = sorted(set(got) - set(names))
            if extra:
                raise SampleError(sample.id, f"{modality}_features",
                                  f"streams {extra} are not used by this checkpoint (it reads {names})")
            for name in names:
                spec = self.config.streams[name]
                if name not in got:
                    raise SampleError(sample.id, f"{modality}_features",
                                      f"missing stream {name!r}; the checkpoint reads {names}")
                feats = got[name]
                if feats.shape[1] != spec.dim:
                    raise SampleError(sample.id, f"{modality}_features.{name}",
                                      f"feature width {feats.shape[1]} != checkpoint's {spec.dim}")
                out[name] = feats
        return out

    def segments(self, sample: Sample) -> list[tuple[str, object, str | None]]:
        """The prompt as ``(kind, content, stream)`` in order; kind is text, visual or audio.

        Args:
            sample: the sample.

        Returns:
            ``[(kind, text or features [tokens, dim], stream name or None)]``.
        """
        streams = self.sample_streams(sample)
        text = instruction_for(self.config.template.replace("{instruction}", self.config.instruction), sample)
        out = []
        for piece in self._split.split(text):
            if piece in self.config.placeholders:
                out.extend((self.config.streams[n].modality, streams[n], n) for n in self.config.placeholders[piece])
            elif piece or not out:
                out.append(("text", piece, None))
        return out

    def _text_ids(self, text: str, first: bool) -> list[int]:
        return self.tokenizer(text, add_special_tokens=first and self.config.add_special_tokens).input_ids

    def embed_sample(self, sample: Sample) -> tuple[torch.Tensor, TokenLayout]:
        """One sample's prompt embeddings and layout: tokenised text and projected feature streams in template order.

        Args:
            sample: a sample with the checkpoint's streams.

        Returns:
            ``(embeds [T, d], TokenLayout)``: each stream's rows are visual or audio by its ``modality``.
        """
        parts, spans = [], []
        for i, (kind, content, stream) in enumerate(self.segments(sample)):
            if kind == "text":
                ids = torch.tensor(self._text_ids(content, i == 0), dtype=torch.long, device=self.device)
                parts.append(self.embed_tokens(ids))
            else:
                feats = torch.as_tensor(np.ascontiguousarray(content), device=self.device, dtype=self.dtype)
                parts.append(self.projectors[stream](feats))
            spans.append((kind, parts[-1].shape[0]))
        return torch.cat(parts), TokenLayout.from_segments(spans)

    def prompt_length(self, sample: Sample) -> int:
        """Number of prompt positions of ``sample``: text tokens plus feature rows, nothing projected.

        Args:
            sample: a sample with the checkpoint's streams.

        Returns:
            ``T``.
        """
        return sum(len(self._text_ids(c, i == 0)) if kind == "text" else len(c)
                   for i, (kind, c, _) in enumerate(self.segments(sample)))

    def describe(self) -> dict:
        """Family, path, backbone type, layer/head/width counts and the feature config, for run configs."""
        cfg = self.backbone.config
        return {"family": self.family, "path": self.path, "backbone": cfg.model_type,
                "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
                "hidden_size": cfg.hidden_size, "features": self.config.to_dict()}
