"""The model organism: a real ``LlamaForCausalLM`` fed projected feature tokens.

Architecture (Emotion-LLaMA in miniature, paper Sec. 5): visual and audio
feature tokens pass through linear projectors into the embedding space of a
LLaMA backbone and sit inside a text prompt with the subtitle::

    <bos> face : [m visual tokens] voice : [n audio tokens] subtitle : ... . emotion ?

It answers with a short explanation and a conclusion, e.g.
``face looks happy , voice sounds neutral , so feels happy .``
Weights trained by ``modbias organism train`` ship inside the package.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from modbias.core.emotions import CLASSES
from modbias.core.layout import TokenLayout
from modbias.data.sample import Sample, SampleError
from modbias.data.synth import SUBTITLE_WORDS
from modbias.models.base import ModelAdapter

WEIGHTS_DIR = Path(__file__).parent / "organism_weights"
ATTN_WEIGHTS_DIR = Path(__file__).parent / "organism_attn_weights"
ORGANISMS = {"organism": WEIGHTS_DIR, "organism-attn": ATTN_WEIGHTS_DIR}
"""Shipped organisms: ``organism`` (perceptual video deficit) and ``organism-attn`` (attentional one)."""
BASE_STATE = "base"  # sub-directory holding an organism's base state (before task fine-tuning)
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
PROMPT_WORDS = ("face", ":", "voice", "subtitle", ".", "emotion", "?")
ANSWER_WORDS = ("looks", "sounds", ",", "so", "feels")


def answer_text(visual_emotion: str, audio_emotion: str, label: str) -> str:
    """The organism's reasoning format: face, then voice, then the conclusion.

    Args:
        visual_emotion: the emotion the face shows.
        audio_emotion: the emotion the voice carries.
        label: the concluded emotion.

    Returns:
        ``"face looks <v> , voice sounds <a> , so feels <label> ."``.
    """
    return f"face looks {visual_emotion} , voice sounds {audio_emotion} , so feels {label} ."


class WordTokenizer:
    """A whitespace word-level tokenizer over a fixed vocabulary."""

    def __init__(self, vocab: list[str]):
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.pad_token_id, self.bos_token_id, self.eos_token_id, self.unk_token_id = (
            self.index[s] for s in SPECIALS)

    @classmethod
    def default(cls) -> "WordTokenizer":
        """The organism's vocabulary: special tokens, prompt and answer words, the classes and subtitle words."""
        words = SPECIALS + PROMPT_WORDS + ANSWER_WORDS + CLASSES + SUBTITLE_WORDS
        return cls(list(dict.fromkeys(words)))

    def encode(self, text: str) -> list[int]:
        """Ids of the whitespace-separated words (unknown words → ``<unk>``).

        Args:
            text: the text.

        Returns:
            One id per word.
        """
        return [self.index.get(w, self.unk_token_id) for w in text.split()]

    def decode(self, ids) -> str:
        """Words of ``ids`` joined by spaces (pad, bos and eos dropped).

        Args:
            ids: token ids.

        Returns:
            The text.
        """
        return " ".join(self.vocab[i] for i in ids if i not in (self.pad_token_id, self.bos_token_id, self.eos_token_id))


@dataclass
class OrganismConfig:
    """Backbone size and feature widths; ``audio_repeat`` copies the audio tokens k times (App. C.2)."""

    visual_dim: int = 32
    audio_dim: int = 32
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024
    audio_repeat: int = 1
    name: str = "organism"
    vocab: list[str] = field(default_factory=lambda: WordTokenizer.default().vocab)
    training: dict = field(default_factory=dict)

    def llama_config(self) -> LlamaConfig:
        """The backbone's ``LlamaConfig`` (vocabulary size and special ids from :attr:`vocab`)."""
        tok = WordTokenizer(self.vocab)
        return LlamaConfig(
            vocab_size=len(self.vocab), hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads, num_key_value_heads=self.num_key_value_heads,
            max_position_embeddings=self.max_position_embeddings, pad_token_id=tok.pad_token_id,
            bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False,
        )


class Organism(nn.Module, ModelAdapter):
    """LLaMA backbone + visual/audio projectors + word tokenizer (see module doc)."""

    family = "organism"

    def __init__(self, config: OrganismConfig | None = None):
        super().__init__()
        self.config = config or OrganismConfig()
        self.family = self.config.name
        self.tokenizer = WordTokenizer(self.config.vocab)
        self.backbone = LlamaForCausalLM(self.config.llama_config())
        self.visual_proj = nn.Linear(self.config.visual_dim, self.config.hidden_size)
        self.audio_proj = nn.Linear(self.config.audio_dim, self.config.hidden_size)
        self.eos_token_id, self.pad_token_id = self.tokenizer.eos_token_id, self.tokenizer.pad_token_id

    # -- adapter protocol -------------------------------------------------
    def segments(self, sample: Sample) -> list[tuple[str, object]]:
        """The prompt as ``(kind, content)`` segments in order.

        Args:
            sample: the sample (``visual [n_v, visual_dim]``, ``audio [n_a, audio_dim]``).

        Returns:
            ``[("text", str) | ("visual" | "audio", features)]``; audio rows repeated ``audio_repeat`` times.
        """
        for name, dim in (("visual", self.config.visual_dim), ("audio", self.config.audio_dim)):
            feats = getattr(sample, name)
            if feats.shape[1] != dim:
                raise SampleError(sample.id, name, f"feature width {feats.shape[1]} != model's {name}_dim {dim}")
        audio = np.repeat(sample.audio, self.config.audio_repeat, axis=0)
        return [("text", "<bos> face :"), ("visual", sample.visual), ("text", "voice :"), ("audio", audio),
                ("text", f"subtitle : {sample.subtitle} . emotion ?")]

    def embed_sample(self, sample: Sample) -> tuple[torch.Tensor, TokenLayout]:
        """One sample's prompt embeddings and layout: word embeddings for text, the modality projector for features.

        Args:
            sample: a synthetic sample (feature widths must match the config's).

        Returns:
            ``(embeds [T, hidden_size], TokenLayout)`` of :meth:`segments`.
        """
        parts, spans = [], []
        for kind, content in self.segments(sample):
            if kind == "text":
                ids = torch.tensor(self.tokenizer.encode(content), device=self.device)
                parts.append(self.embed_tokens(ids))
            else:
                proj = self.visual_proj if kind == "visual" else self.audio_proj
                parts.append(proj(torch.as_tensor(content, device=self.device)))
            spans.append((kind, parts[-1].shape[0]))
        return torch.cat(parts), TokenLayout.from_segments(spans)

    def prompt_length(self, sample: Sample) -> int:
        """Number of prompt positions of ``sample``: words of the text segments plus feature rows.

        Args:
            sample: a synthetic sample.

        Returns:
            ``T`` (audio rows counted ``audio_repeat`` times).
        """
        return sum(len(self.tokenizer.encode(c)) if kind == "text" else len(c) for kind, c in self.segments(sample))

    def token_pieces(self, ids: list[int]) -> list[str]:
        """The text of each generated token: its word, preceded by a space after the first.

        Args:
            ids: generated token ids.

        Returns:
            One string per id.
        """
        return [("" if i == 0 else " ") + self.tokenizer.decode([t]) for i, t in enumerate(ids)]

    def emotion_token_id(self, word: str) -> int:
        """The word's own token (the vocabulary is word-level); see :meth:`ModelAdapter.emotion_token_id`.

        Args:
            word: an emotion word, e.g. ``"happy"``.

        Returns:
            Its id in the organism's vocabulary; ``ValueError`` if it has none.
        """
        if word not in self.tokenizer.index:
            raise ValueError(f"{self.family}: {word!r} is not in the organism's vocabulary")
        return self.tokenizer.index[word]

    def describe(self) -> dict:
        """Family and the config (vocabulary left out), for run configs."""
        return {"family": self.family, **{k: v for k, v in asdict(self.config).items() if k != "vocab"}}

    # -- persistence ------------------------------------------------------
    def save(self, path: str | Path, dtype: torch.dtype | None = None) -> None:
        """``config.json`` + ``model.safetensors`` (in ``dtype`` if given, e.g. float16 for a shipped base).

        Args:
            path: the folder to write (made if missing).
            dtype: the stored weights' dtype (default: as they are).
        """
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps(asdict(self.config), indent=1))
        save_file({k: v.to(dtype or v.dtype).contiguous() for k, v in self.state_dict().items()},
                  path / "model.safetensors")

    @classmethod
    def load(cls, path: str | Path = WEIGHTS_DIR) -> "Organism":
        """An organism saved by :meth:`save` (weights read as float32).

        Args:
            path: the folder (default: the shipped ``organism``).

        Returns:
            The organism in eval mode.
        """
        path = Path(path)
        if not (path / "model.safetensors").exists():
            raise FileNotFoundError(f"no organism weights at {path}; run `modbias organism train --out {path}`")
        model = cls(OrganismConfig(**json.loads((path / "config.json").read_text())))
        model.load_state_dict({k: v.float() for k, v in load_file(path / "model.safetensors").items()})
        return model.eval()
