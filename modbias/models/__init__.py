"""Model families behind one adapter protocol (:class:`~modbias.models.base.ModelAdapter`)."""

from __future__ import annotations

from modbias.models.base import ModelAdapter, PreparedBatch
from modbias.models.organism import BASE_STATE, ORGANISMS, Organism

SHIPPED = {**ORGANISMS, **{f"{name}-base": path / BASE_STATE for name, path in ORGANISMS.items()}}
"""Organisms loadable by name: ``organism``, ``organism-attn`` and their base states ``<name>-base``."""


def load_model(spec: str = "organism", device: str = "cpu") -> ModelAdapter:
    """Load a model by ``family[:path]``; a name of :data:`SHIPPED` alone loads the shipped weights."""
    family, _, path = spec.partition(":")
    if family in SHIPPED:
        model = Organism.load(path or SHIPPED[family])
    elif family in FAMILIES:
        if not path:
            raise ValueError(f"model family {family!r} needs a checkpoint path: '{family}:/path/to/checkpoint'")
        model = FAMILIES[family](path)
    else:
        raise ValueError(f"unknown model family {family!r} in {spec!r}; available: {[*SHIPPED, *FAMILIES]}")
    return model.to(device)


def _load_features(path):
    from modbias.models.features import FeatureModel

    return FeatureModel.load(path)


def _load_qwen2_5_omni(path):
    from modbias.models.qwen_omni import QwenOmniModel

    return QwenOmniModel.load(path)


def _load_llava(path):
    from modbias.models.llava import LlavaModel

    return LlavaModel.load(path)


FAMILIES = {"features": _load_features, "qwen2_5_omni": _load_qwen2_5_omni, "llava": _load_llava}


__all__ = ["ModelAdapter", "PreparedBatch", "Organism", "load_model"]
