"""HumanOmni's multimodal pieces (R1-Omni's base), in the parameter names of its safetensors.

- :class:`RegStage` — timm's RegNet stage of ``Bottleneck`` blocks as HumanOmni
  builds it (``RegStage(depth, in, out, stride=1, dilation=1, act_layer=SiLU,
  norm_layer=LayerNorm2d)``, bottleneck ratio 1, group size 1 (depthwise 3x3),
  squeeze-excite ratio 0.25 of the block input): ``conv1.conv``/``conv1.bn``,
  ``conv2.*``, ``se.fc1``/``se.fc2``, ``conv3.*`` and ``downsample.conv``/``.bn``
  where the channels change.  Each ``.bn`` is timm's ``LayerNormAct2d``
  (LayerNorm over channels, eps 1e-5, then SiLU except after ``conv3``); the
  block ends with ``SiLU(conv3 + shortcut)``.  Written here because timm cannot
  be imported without torchvision; the keys and the arithmetic are timm's.
- :class:`AllInOneSmall` — the ``all_in_one_small`` projector: a ``video`` and a
  ``body`` branch (each RegStage → Conv3d sampler, kernel 2, stride (1, 2, 2),
  temporal padding 1, SiLU; last time step dropped → RegStage → 2-layer GELU
  readout) and the face branch ``mlp_2xgelu_face``.
- :func:`fuse_visual` — the BERT gate: ``p = softmax(bert_gate(BERT([CLS] of the
  instruction)))`` and visual tokens ``p0·video + p1·body + p2·pool2d(face)``.
- :func:`pool_audio` — Whisper encoder states ``[1500, 1280]`` → average pooling
  by 3 → ``[500, 1280]`` (then ``audio_projector``).

Every width is read from the tensors (:func:`projector_dims`), none assumed.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn


class ConvNormAct(nn.Module):
    """``conv`` (no bias) → LayerNorm over channels (eps 1e-5) → optional SiLU (timm ``ConvNormAct``)."""

    def __init__(self, in_chs: int, out_chs: int, kernel: int, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel, padding=kernel // 2, groups=groups, bias=False)
        self.bn = nn.LayerNorm(out_chs, eps=1e-5)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution, channel LayerNorm and (if ``act``) SiLU.

        Args:
            x: ``[N, in_chs, h, w]``.

        Returns:
            ``[N, out_chs, h, w]``.
        """
        x = self.bn(self.conv(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return F.silu(x) if self.act else x


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: channel gates from the spatial mean (1x1 convs, SiLU, sigmoid)."""
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(channels, reduced, 1), nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` scaled by its channel gates.

        Args:
            x: ``[N, C, h, w]``.

        Returns:
            ``[N, C, h, w]``.
        """
        return x * self.fc2(F.silu(self.fc1(x.mean((2, 3), keepdim=True)))).sigmoid()


class Bottleneck(nn.Module):
    """RegNet bottleneck (ratio 1, depthwise 3x3, SE on the block input's width / 4)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.conv1 = ConvNormAct(in_chs, out_chs, 1)
        self.conv2 = ConvNormAct(out_chs, out_chs, 3, groups=out_chs)
        self.se = SqueezeExcite(out_chs, int(round(in_chs * 0.25)))
        self.conv3 = ConvNormAct(out_chs, out_chs, 1, act=False)
        self.downsample = ConvNormAct(in_chs, out_chs, 1, act=False) if in_chs != out_chs else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual bottleneck.

        Args:
            x: ``[N, in_chs, h, w]``.

        Returns:
            ``[N, out_chs, h, w]``.
        """
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.silu(self.conv3(self.se(self.conv2(self.conv1(x)))) + shortcut)


class RegStage(nn.Sequential):
    """``depth`` bottlenecks named ``b1``, ``b2``, ...; the first maps ``in_chs`` → ``out_chs``."""

    def __init__(self, depth: int, in_chs: int, out_chs: int):
        super().__init__()
        for i in range(depth):
            self.add_module(f"b{i + 1}", Bottleneck(in_chs if i == 0 else out_chs, out_chs))


def mlp2x_gelu(in_dim: int, out_dim: int) -> nn.Sequential:
    """``Linear → GELU → Linear`` (keys ``0.*`` and ``2.*``).

    Args:
        in_dim: input width.
        out_dim: hidden and output width.

    Returns:
        The ``Sequential``.
    """
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))


BRANCH_PARTS = ("s1", "sampler", "s2", "readout")


def spatio_temporal(frames: torch.Tensor, s1: nn.Module, sampler: nn.Module, s2: nn.Module,
                    readout: nn.Module) -> torch.Tensor:
    """One branch: ``[T, h·w, C]`` frames → RegStage → Conv3d sampler (T+1 steps, the last dropped; h, w
    halved) → RegStage → readout: ``[T·(h/2)·(w/2), d]`` tokens, time-major.

    Args:
        frames: SigLIP features ``[T, h·w, C]`` (square grid).
        s1: the first RegStage (C → d).
        sampler: the Conv3d sampler.
        s2: the second RegStage.
        readout: the output MLP.

    Returns:
        ``[T·(h/2)·(w/2), d]``.
    """
    t, n, c = frames.shape
    side = int(round(n ** 0.5))
    x = s1(frames.transpose(1, 2).reshape(t, c, side, side))  # [T, d, h, w]
    x = sampler(x.transpose(0, 1)[None])[:, :, :-1]  # [1, d, T, h/2, w/2]
    x = s2(x[0].transpose(0, 1))  # [T, d, h/2, w/2]
    return readout(x.flatten(2).transpose(1, 2).reshape(-1, x.shape[1]))


class AllInOneSmall(nn.Module):
    """HumanOmni's ``all_in_one_small`` projector with its state-dict names (see module doc)."""

    def __init__(self, in_dim: int, hidden: int, depth: int = 2):
        super().__init__()
        for b in ("video", "body"):
            self.add_module(f"s1_{b}", RegStage(depth, in_dim, hidden))
            self.add_module(f"sampler_{b}", nn.Sequential(
                nn.Conv3d(hidden, hidden, 2, stride=(1, 2, 2), padding=(1, 0, 0)), nn.SiLU()))
            self.add_module(f"s2_{b}", RegStage(depth, hidden, hidden))
            self.add_module(f"readout_{b}", mlp2x_gelu(hidden, hidden))
        self.mlp_2xgelu_face = mlp2x_gelu(in_dim, hidden)

    def branch(self, name: str, frames: torch.Tensor) -> torch.Tensor:
        """The ``video`` or ``body`` branch (:func:`spatio_temporal` with that branch's modules).

        Args:
            name: ``"video"`` or ``"body"``.
            frames: ``[T, h·w, C]``.

        Returns:
            ``[T·(h/2)·(w/2), d]``.
        """
        return spatio_temporal(frames, *(getattr(self, f"{part}_{name}") for part in BRANCH_PARTS))

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """SigLIP features ``[T, h·w, C]`` → (video ``[N, d]``, body ``[N, d]``, face ``[T, h·w, d]``).

        Args:
            frames: ``[T, h·w, C]``.

        Returns:
            ``(video [N, d], body [N, d], face [T, h·w, d])`` with ``N = T·(h/2)·(w/2)``.
        """
        return self.branch("video", frames), self.branch("body", frames), self.mlp_2xgelu_face(frames)


def projector_dims(state: dict[str, torch.Tensor]) -> dict:
    """``in_dim``, ``hidden`` and ``depth`` of an ``all_in_one_small`` state dict (keys without prefix).

    Args:
        state: the projector's state dict.

    Returns:
        ``{"in_dim", "hidden", "depth"}``; a missing key raises ``KeyError`` naming it.
    """
    key = "s1_video.b1.conv1.conv.weight"
    if key not in state:
        raise KeyError(key)
    hidden, in_dim = state[key].shape[:2]
    depth = 1 + max(int(m.group(1)) - 1 for k in state if (m := re.match(r"s1_video\.b(\d+)\.", k)))
    return {"in_dim": int(in_dim), "hidden": int(hidden), "depth": depth}


def pool2d(tokens: torch.Tensor, stride: int = 2) -> torch.Tensor:
    """HumanOmni's ``get_2dPool``: ``[T, h·w, d]`` → bilinear resize to ceil(h/stride) per side → ``[T, h'·w', d]``.

    Args:
        tokens: ``[T, h·w, d]`` (square grid).
        stride: the reduction per side.

    Returns:
        ``[T, h'·w', d]`` with ``h' = ceil(h / stride)``.
    """
    t, n, d = tokens.shape
    side = int(round(n ** 0.5))
    grid = tokens.view(t, side, side, d).permute(0, 3, 1, 2)
    new = -(-side // stride)
    grid = F.interpolate(grid, size=(new, new), mode="bilinear")
    return grid.permute(0, 2, 3, 1).reshape(t, new * new, d)


def fuse_visual(video: torch.Tensor, body: torch.Tensor, face: torch.Tensor, gate_logits: torch.Tensor) -> torch.Tensor:
    """``p0·video + p1·body + p2·flatten(pool2d(face))`` with ``p = softmax(gate_logits)`` (the BERT gate).

    Args:
        video: ``[N, d]``.
        body: ``[N, d]``.
        face: ``[T, h·w, d]`` (pooled to ``N`` tokens).
        gate_logits: ``[3]``.

    Returns:
        ``[N, d]``.
    """
    p = gate_logits.softmax(-1).to(video.dtype)
    return p[0] * video + p[1] * body + p[2] * pool2d(face).flatten(0, 1)


def pool_audio(states: torch.Tensor) -> torch.Tensor:
    """Whisper encoder states ``[T, C]`` → ``[T // 3, C]``: average of each 3 consecutive frames.

    Args:
        states: ``[T, C]``.

    Returns:
        ``[T // 3, C]``.
    """
    return F.avg_pool1d(states.T[None], kernel_size=3, stride=3)[0].T
