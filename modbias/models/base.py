"""The adapter protocol: what every model family provides to trace and intervene.

An adapter turns samples into left-padded ``inputs_embeds`` plus one
:class:`~modbias.core.layout.TokenLayout` per sample, and owns an HF causal-LM
``backbone`` whose attention modules the probe instruments.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass

import torch
from transformers import LogitsProcessorList

from modbias.core.hf_compat import output_cache
from modbias.core.layout import TokenLayout, position_ids_from_mask
from modbias.data.sample import Sample


@dataclass
class PreparedBatch:
    """Model inputs for a batch, left-padded; ``offsets[b]`` is sample b's padding."""

    inputs_embeds: torch.Tensor  # [B, T, d]
    attention_mask: torch.Tensor  # [B, T]
    layouts: list[TokenLayout]
    offsets: torch.Tensor  # [B]

    @property
    def position_ids(self) -> torch.Tensor:
        """long ``[B, T]`` positions that skip each sample's left padding."""
        return position_ids_from_mask(self.attention_mask)


def left_pad(rows: list[torch.Tensor], pad_value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack ``[T_b, ...]`` tensors left-padded: returns (stacked, mask, offsets).

    Args:
        rows: one ``[T_b, ...]`` tensor per sample (same trailing shape and dtype).
        pad_value: the value of padded positions.

    Returns:
        ``(stacked [B, T, ...], mask long [B, T], offsets long [B])``, ``T = max T_b`` and
        ``offsets[b] = T - T_b``.
    """
    length = max(r.shape[0] for r in rows)
    out = rows[0].new_full((len(rows), length, *rows[0].shape[1:]), pad_value)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    offsets = torch.tensor([length - r.shape[0] for r in rows])
    for b, r in enumerate(rows):
        out[b, length - r.shape[0]:] = r
        mask[b, length - r.shape[0]:] = 1
    return out, mask, offsets


def tokenizer_pieces(tokenizer, ids: list[int]) -> list[str]:
    """The text each token adds to the decoded string (works for SentencePiece and byte-level BPE).

    Args:
        tokenizer: an HF tokenizer.
        ids: token ids.

    Returns:
        One string per id (``""`` for a token ending inside a UTF-8 character: the completing
        token carries it); their concatenation is the decoded text.
    """
    pieces, previous = [], ""
    for i in range(len(ids)):
        text = tokenizer.decode(ids[:i + 1], skip_special_tokens=True, clean_up_tokenization_spaces=False)
        if text.startswith(previous) and not text.endswith("\ufffd"):
            pieces.append(text[len(previous):])
            previous = text
        else:  # an incomplete UTF-8 sequence: attribute the text to the token that completes it
            pieces.append("")
    return pieces


_BY_SPEC = contextvars.ContextVar("modbias_models_by_spec", default=False)


@contextlib.contextmanager
def pickled_by_spec():
    """Within the block, a model loaded by :func:`modbias.models.load_model` pickles as its ``(spec, device)``
    and unpickles by loading it (:func:`modbias.models.load_model_once`): how a run's batch function travels to
    Dask workers without its weights.  Outside the block models pickle as usual (``copy.deepcopy`` copies).

    Returns:
        A context manager (no value).
    """
    token = _BY_SPEC.set(True)
    try:
        yield
    finally:
        _BY_SPEC.reset(token)


class ModelAdapter:
    """Base class of model families.  Subclasses set ``backbone`` and implement
    :meth:`prepare` and :meth:`token_pieces`; generation is shared."""

    def __reduce_ex__(self, protocol):
        spec = getattr(self, "load_spec", None)
        if _BY_SPEC.get():
            if spec is None:
                raise TypeError(f"this {self.family} model was not loaded by modbias.load_model, so another "
                                f"process cannot load it: load it with load_model(spec) to run it on Dask")
            from modbias.models import load_model_once

            return load_model_once, spec
        return super().__reduce_ex__(protocol)

    backbone: torch.nn.Module
    tokenizer: object
    eos_token_id: int
    pad_token_id: int
    family: str = "base"

    def embed_sample(self, sample: Sample) -> tuple[torch.Tensor, TokenLayout]:
        """One sample's prompt embeddings ``[T, d]`` and layout (or override :meth:`prepare`).

        Args:
            sample: the sample.

        Returns:
            ``(embeds [T, d], TokenLayout)`` with ``T = layout.prompt_len``.
        """
        raise NotImplementedError

    def prepare(self, samples: list[Sample]) -> PreparedBatch:
        """Left-padded embeddings of ``samples`` built from :meth:`embed_sample`.

        Args:
            samples: the batch.

        Returns:
            A :class:`PreparedBatch`: ``inputs_embeds [B, T, d]``, ``attention_mask [B, T]``,
            one layout per sample, ``offsets [B]``.
        """
        embedded = [self.embed_sample(s) for s in samples]
        embeds, mask, offsets = left_pad([e for e, _ in embedded])
        return PreparedBatch(embeds, mask.to(self.device), [layout for _, layout in embedded], offsets)

    def token_pieces(self, ids: list[int]) -> list[str]:
        """The text of each generated token (used to find emotion words): :func:`tokenizer_pieces` of the
        adapter's HF ``tokenizer``; a family with another tokenizer overrides it.

        Args:
            ids: generated token ids.

        Returns:
            One string per id; their concatenation is the generated text.
        """
        return tokenizer_pieces(self.tokenizer, ids)

    def emotion_token_id(self, word: str) -> int:
        """The token that starts ``word`` when the model writes it inside its answer (after a space);
        the target of logit differences (:mod:`modbias.runs.causal`).

        Args:
            word: an emotion word, e.g. ``"happy"``.
        Returns:
            A token id of ``self.tokenizer`` (HF tokenizers: the first token of ``" " + word``).
        """
        ids = self.tokenizer(" " + word, add_special_tokens=False).input_ids
        pieces = self.token_pieces(ids)
        while ids and not pieces[0].strip():  # sentencepiece may give the space a token of its own
            ids, pieces = ids[1:], pieces[1:]
        if not ids:
            raise ValueError(f"{self.family}: the tokenizer gives no token for {word!r}")
        return ids[0]

    def prompt_length(self, sample: Sample) -> int:
        """Number of prompt positions of ``sample`` (used to size stored token axes).

        Args:
            sample: the sample.

        Returns:
            ``T``, the sample's unpadded prompt length.
        """
        return self.prepare([sample]).layouts[0].prompt_len

    def describe(self) -> dict:
        """JSON-able description of the model for run configs."""
        return {"family": self.family}

    @property
    def device(self) -> torch.device:
        """The device of the backbone's parameters."""
        return next(self.backbone.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the backbone's parameters."""
        return next(self.backbone.parameters()).dtype

    @property
    def text_config(self):
        """The language model's config (the config itself for plain causal LMs)."""
        return self.backbone.config.get_text_config()

    @property
    def n_layers(self) -> int:
        """L: decoder layers of the language model."""
        return self.text_config.num_hidden_layers

    @property
    def n_heads(self) -> int:
        """H: attention heads per layer of the language model."""
        return self.text_config.num_attention_heads

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        """The language model's input embeddings of token ids.

        Args:
            ids: long ``[..., G]``.

        Returns:
            ``[..., G, d]``.
        """
        return self.backbone.get_input_embeddings()(ids)

    def generation_inputs(self, batch: PreparedBatch) -> dict:
        """The prompt arguments :meth:`generate` hands the backbone's ``generate``.

        Args:
            batch: the prepared prompts.

        Returns:
            ``{"inputs_embeds": [B, T, d], "attention_mask": [B, T]}`` (families with their own
            position scheme add ``position_ids``).
        """
        return {"inputs_embeds": batch.inputs_embeds, "attention_mask": batch.attention_mask}

    @torch.no_grad()
    def generate(self, batch: PreparedBatch, max_new_tokens: int, return_cache: bool = False,
                 logits_processor: list | None = None):
        """Greedy decoding: ``[B, G]`` new token ids, padded with ``pad_token_id`` after EOS.

        With ``return_cache`` also returns the KV cache, which then holds the
        prompt and every generated token but the last.

        Args:
            batch: the prepared prompts.
            max_new_tokens: G, the most tokens generated.
            return_cache: also return the KV cache.
            logits_processor: transformers logits processors applied at each step (e.g. PAI's guidance).

        Returns:
            long ``[B, G']`` ids (``G' <= G``: generation stops when every sample ended), or
            ``(ids, cache)`` with ``return_cache``.
        """
        out = self.backbone.generate(
            **self.generation_inputs(batch), max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id, return_dict_in_generate=True,
            logits_processor=LogitsProcessorList(logits_processor or []),
        )
        ids = out.sequences[:, -max_new_tokens:] if out.sequences.shape[1] > max_new_tokens else out.sequences
        return (ids, output_cache(out)) if return_cache else ids

    def extend(self, batch: PreparedBatch, generated: torch.Tensor) -> PreparedBatch:
        """The batch with the generated tokens appended (masked after each sample's EOS).

        Args:
            batch: the prepared prompts ``[B, T]``.
            generated: long ``[B, G]`` ids from :meth:`generate`.

        Returns:
            A :class:`PreparedBatch` of length ``T + G`` (same layouts and offsets).
        """
        gen_mask = generated_mask(generated, self.eos_token_id)
        embeds = torch.cat([batch.inputs_embeds, self.embed_tokens(generated.to(self.device))], dim=1)
        mask = torch.cat([batch.attention_mask, gen_mask.to(batch.attention_mask)], dim=1)
        return PreparedBatch(embeds, mask, batch.layouts, batch.offsets)


def generated_mask(generated: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 for generated tokens up to and including the first EOS, 0 after it.

    Args:
        generated: long ``[B, G]`` ids.
        eos_token_id: the end-of-sequence id.

    Returns:
        long ``[B, G]``.
    """
    is_eos = (generated == eos_token_id).long()
    after_eos = (is_eos.cumsum(-1) - is_eos) > 0
    return (~after_eos).long()
