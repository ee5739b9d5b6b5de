"""TokenLayout: which input positions are visual (V), audio (A) and prompt text (T).

The layout is the one vocabulary shared by adapters, the attention probe, the
metrics, the interventions and the app.  Positions are indices into the
*unpadded* prompt of one sample; generated tokens follow the prompt, from
``prompt_len`` on.  Batch code shifts a layout by the sample's left padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MODALITIES = ("visual", "audio", "text", "generated")


@dataclass(frozen=True)
class TokenLayout:
    """Index sets V, A, T of one sample's prompt (paper notation, Sec. 5)."""

    visual: np.ndarray
    audio: np.ndarray
    text: np.ndarray
    prompt_len: int

    def __post_init__(self):
        seen = np.concatenate([self.visual, self.audio, self.text])
        if len(np.unique(seen)) != len(seen):
            raise ValueError("TokenLayout: visual, audio and text positions overlap")
        if len(seen) and (seen.min() < 0 or seen.max() >= self.prompt_len):
            raise ValueError(f"TokenLayout: positions outside the prompt of length {self.prompt_len}")

    @classmethod
    def from_segments(cls, segments: list[tuple[str, int]]) -> "TokenLayout":
        """Build from consecutive ``(kind, length)`` segments, kind in visual/audio/text.

        Args:
            segments: the prompt in order, e.g. ``[("text", 3), ("visual", 32), ("text", 5)]``.

        Returns:
            The layout; ``prompt_len`` is the sum of the lengths.
        """
        spans: dict[str, list[np.ndarray]] = {"visual": [], "audio": [], "text": []}
        start = 0
        for kind, length in segments:
            if kind not in spans:
                raise ValueError(f"TokenLayout: unknown segment kind {kind!r}")
            spans[kind].append(np.arange(start, start + length))
            start += length
        cat = {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in spans.items()}
        return cls(cat["visual"], cat["audio"], cat["text"], start)

    @property
    def n_visual(self) -> int:
        """|V|: the number of visual positions."""
        return len(self.visual)

    @property
    def n_audio(self) -> int:
        """|A|: the number of audio positions."""
        return len(self.audio)

    def masks(self, length: int) -> dict[str, np.ndarray]:
        """Boolean masks over ``length`` positions for each of :data:`MODALITIES`.

        Args:
            length: how many positions (prompt plus any generated tokens; shorter cuts the prompt).

        Returns:
            ``{"visual", "audio", "text", "generated": bool [length]}``; positions from ``prompt_len`` on are generated.
        """
        out = {}
        for kind in ("visual", "audio", "text"):
            mask = np.zeros(length, dtype=bool)
            idx = getattr(self, kind)
            mask[idx[idx < length]] = True
            out[kind] = mask
        out["generated"] = np.arange(length) >= self.prompt_len
        return out


def batch_masks(layouts: list[TokenLayout], offsets: torch.Tensor, length: int) -> dict[str, torch.Tensor]:
    """Masks ``[batch, length]`` in padded-batch coordinates (sample b starts at ``offsets[b]``).

    Args:
        layouts: one layout per sample.
        offsets: ``[batch]`` left padding of each sample.
        length: the padded sequence length.

    Returns:
        ``{modality: bool [batch, length]}`` for each of :data:`MODALITIES` (padding belongs to none;
        ``generated``: positions after the sample's prompt); each is set with one scatter for the batch.
    """
    offsets = np.asarray(torch.as_tensor(offsets).cpu(), dtype=np.int64).reshape(len(layouts))
    out = {}
    for kind in ("visual", "audio", "text"):
        index = [getattr(layout, kind) for layout in layouts]
        rows = np.repeat(np.arange(len(layouts)), [len(i) for i in index])
        cols = np.concatenate(index + [np.zeros(0, dtype=np.int64)]).astype(np.int64) + offsets[rows]
        keep = cols < length
        mask = np.zeros((len(layouts), length), dtype=bool)
        mask[rows[keep], cols[keep]] = True
        out[kind] = torch.from_numpy(mask)
    prompt_end = offsets + np.array([layout.prompt_len for layout in layouts], dtype=np.int64)
    out["generated"] = torch.from_numpy(np.arange(length)[None, :] >= prompt_end[:, None])
    return out


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as ``generate`` computes them.

    Args:
        attention_mask: ``[B, T]`` (1 for tokens, 0 for padding).

    Returns:
        long ``[B, T]``: 0 at each sample's first token, counting up (0 on padding).
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
