"""EVA ViT-g as MiniGPT-v2 / Emotion-LLaMA run it, loaded from LAVIS' ``eva_vit_g.pth``.

The architecture (Fang et al., EVA; MiniGPT-4's ``create_eva_vit_g``): patch
embedding (conv, stride = patch), a CLS token, learned absolute positions, and
``depth`` pre-norm blocks ``x + attn(norm1(x))``, ``x + mlp(norm2(x))``
(LayerNorm eps 1e-6, exact GELU, no layer scale, no relative position bias).
The fused ``qkv`` projection has no bias of its own; the file holds
``q_bias`` and ``v_bias`` and the key bias is zero.  The output is the last
block's tokens with no final norm.

This is the EVA of timm (``timm.models.eva.Eva`` with ``qkv_fused``, giant
patch-14 arguments) in the parameter names of the LAVIS file; it is written
here because timm cannot be imported without torchvision.

The file's ``pos_embed`` is a 16x16 (+CLS) grid for 224 px; at 448 px it is
resized to 32x32 bicubic with ``align_corners=False`` and *no* antialias, the
CLS entry kept, as MiniGPT-4's ``interpolate_pos_embed`` does.  Head count is
not stored in the file: EVA-g uses 88-wide heads (1408 = 16 x 88), the
default here.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HEAD_DIM = 88
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PATCH_GRID = 32  # MiniGPT-v2 runs EVA at 448 px = 32 x 14: 1024 patches, 256 groups of four


class EvaAttention(nn.Module):
    """EVA's self-attention: fused ``qkv`` without bias plus separate q and v biases (the key bias is zero)."""
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(width))
        self.v_bias = nn.Parameter(torch.zeros(width))
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Multi-head attention over all N tokens (no mask), then the output projection.

        Args:
            x: ``[B, N, width]``.

        Returns:
            ``[B, N, width]``.
        """
        b, n, d = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        q, k, v = F.linear(x, self.qkv.weight, bias).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # scale 1/sqrt(head dim), as EVA
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class EvaMlp(nn.Module):
    """EVA's feed-forward: ``fc2(gelu(fc1(x)))`` (exact GELU)."""
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The feed-forward on every token.

        Args:
            x: ``[B, N, width]``.

        Returns:
            ``[B, N, width]``.
        """
        return self.fc2(F.gelu(self.fc1(x)))


class EvaBlock(nn.Module):
    """One pre-norm EVA block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""
    def __init__(self, width: int, heads: int, hidden: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width, eps=1e-6), nn.LayerNorm(width, eps=1e-6)
        self.attn, self.mlp = EvaAttention(width, heads), EvaMlp(width, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block on every token.

        Args:
            x: ``[B, N, width]``.

        Returns:
            ``[B, N, width]``.
        """
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Patch embedding: a convolution with kernel and stride ``patch``."""
    def __init__(self, patch: int, width: int):
        super().__init__()
        self.proj = nn.Conv2d(3, width, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patches in raster order.

        Args:
            x: ``[B, 3, S, S] pixels``.

        Returns:
            ``[B, (S/patch)², width]``.
        """
        return self.proj(x).flatten(2).transpose(1, 2)


class EvaViT(nn.Module):
    """EVA ViT on ``image_size`` px images: ``[B, 3, S, S]`` → ``[B, 1 + (S/patch)², width]``."""

    def __init__(self, image_size: int, patch: int, width: int, depth: int, heads: int, mlp_hidden: int):
        super().__init__()
        self.image_size, self.patch = image_size, patch
        grid = image_size // patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, width))
        self.patch_embed = PatchEmbed(patch, width)
        self.blocks = nn.ModuleList(EvaBlock(width, heads, mlp_hidden) for _ in range(depth))

    @property
    def width(self) -> int:
        """The model width (1408 for EVA-g)."""
        return self.cls_token.shape[-1]

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """The last block's tokens (CLS first), no final norm.

        Args:
            pixels: ``[B, 3, S, S]`` normalised images (:func:`preprocess_frame`).

        Returns:
            ``[B, 1 + (S/patch)², width]``.
        """
        x = self.patch_embed(pixels)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return x

    # -- the LAVIS file ---------------------------------------------------
    @staticmethod
    def shape_of(state: dict, image_size: int | None = None, heads: int | None = None) -> dict:
        """Constructor arguments read from a LAVIS EVA state dict (raises ``KeyError`` naming a missing key).

        Args:
            state: the LAVIS state dict.
            image_size: the input resolution (default 32 patches: 448 px at patch 14).
            heads: the head count (default width / 88).

        Returns:
            ``{"image_size", "patch", "width", "depth", "heads", "mlp_hidden"}``.
        """
        for key in ("cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.mlp.fc1.weight"):
            if key not in state:
                raise KeyError(key)
        width = state["cls_token"].shape[-1]
        patch = state["patch_embed.proj.weight"].shape[-1]
        depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
        return {"image_size": image_size or PATCH_GRID * patch, "patch": patch, "width": width, "depth": depth,
                "heads": heads or max(1, width // HEAD_DIM), "mlp_hidden": state["blocks.0.mlp.fc1.weight"].shape[0]}

    def load_lavis(self, state: dict) -> None:
        """Load a LAVIS EVA state dict, resizing ``pos_embed`` to this model's grid; unused keys (``norm``,
        ``head``) are ignored, missing ones raise ``KeyError`` naming the first.

        Args:
            state: the LAVIS state dict.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        if missing:
            raise KeyError(missing[0])
        values = {k: state[k] for k in own}
        values["pos_embed"] = resize_pos_embed(state["pos_embed"], self.image_size // self.patch)
        for key, value in values.items():
            if value.shape != own[key].shape:
                raise ValueError(f"{key}: shape {tuple(value.shape)} != expected {tuple(own[key].shape)}")
        self.load_state_dict(values)


def resize_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """``[1, 1 + g², d]`` → ``[1, 1 + grid², d]``: bicubic, ``align_corners=False``, no antialias, CLS kept.

    Args:
        pos_embed: ``[1, 1 + g², d]``.
        grid: the new side length.

    Returns:
        ``[1, 1 + grid², d]`` (the input itself when ``g == grid``).
    """
    old = int(round((pos_embed.shape[1] - 1) ** 0.5))
    if old == grid:
        return pos_embed
    cls, tokens = pos_embed[:, :1], pos_embed[:, 1:].float()
    tokens = tokens.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    tokens = F.interpolate(tokens, size=(grid, grid), mode="bicubic", align_corners=False)
    tokens = tokens.permute(0, 2, 3, 1).flatten(1, 2).to(pos_embed.dtype)
    return torch.cat([cls, tokens], dim=1)


def preprocess_frame(frame: np.ndarray, size: int) -> torch.Tensor:
    """An RGB frame ``[H, W, 3]`` uint8 → ``[3, size, size]``: bicubic resize (no crop), CLIP mean/std
    (BLIP-2's ``blip2_image_train`` processor, which Emotion-LLaMA's evaluation uses).

    Args:
        frame: uint8 ``[H, W, 3]``.
        size: the side in pixels.

    Returns:
        float32 ``[3, size, size]``.
    """
    from PIL import Image

    resized = np.asarray(Image.fromarray(np.asarray(frame, np.uint8)).convert("RGB").resize((size, size),
                                                                                            Image.BICUBIC))
    pixels = (resized.astype(np.float32) / 255.0 - np.asarray(CLIP_MEAN, np.float32)) / np.asarray(CLIP_STD,
                                                                                                   np.float32)
    return torch.from_numpy(pixels.transpose(2, 0, 1).copy())
