"""Model families behind one adapter protocol (:class:`~modbias.models.base.ModelAdapter`).

This module imports no torch: :func:`check_model_spec` validates a ``family[:path]``
before anything heavy loads, and each family's loader imports its module on use.
"""

from __future__ import annotations

import importlib
from pathlib import Path

SHIPPED_ORGANISMS = ("organism", "organism-attn")
SHIPPED = (*SHIPPED_ORGANISMS, *(f"{name}-base" for name in SHIPPED_ORGANISMS))
"""Organisms loadable by name alone: ``organism``, ``organism-attn`` and their base states ``<name>-base``."""


def check_model_spec(spec: str) -> tuple[str, str]:
    """``(family, path)`` of a ``family[:path]`` spec; raises ``ValueError`` / ``FileNotFoundError``
    for an unknown family, a missing path, or a path that does not exist (nothing is loaded).

    Args:
        spec: ``family[:path]`` (a shipped organism's name needs no path).

    Returns:
        ``(family, path)``, ``path`` ``""`` when none was given.
    """
    family, _, path = spec.partition(":")
    if family not in SHIPPED and family not in FAMILIES:
        raise ValueError(f"unknown model family {family!r} in {spec!r}; available: {[*SHIPPED, *FAMILIES]}")
    if family not in SHIPPED and not path:
        raise ValueError(f"model family {family!r} needs a checkpoint path: '{family}:/path/to/checkpoint'")
    if path and not Path(path).exists():
        raise FileNotFoundError(f"checkpoint path {path} (from --model {spec!r}) does not exist")
    return family, path


def load_model(spec: str = "organism", device: str = "cpu"):
    """Load a model by ``family[:path]``; a name of :data:`SHIPPED` alone loads the shipped weights.

    Args:
        spec: ``organism``, ``organism-attn``, ``<name>-base``, or ``family:path`` with a family of
            :data:`FAMILIES` and its checkpoint folder.
        device: where the model goes (``"cpu"``, ``"cuda"``, ...).

    Returns:
        The family's :class:`~modbias.models.base.ModelAdapter`, in eval mode on ``device``, with
        ``weights_path`` (the resolved folder its weights were read from, fingerprinted into run identities).
    """
    family, path = check_model_spec(spec)
    if family in SHIPPED:
        from modbias.models.organism import BASE_STATE, ORGANISMS, Organism

        name = family.removesuffix("-base")
        path = path or (ORGANISMS[name] / BASE_STATE if name != family else ORGANISMS[name])
        model = Organism.load(path)
    else:
        module, _, adapter = FAMILIES[family].partition(":")
        model = getattr(importlib.import_module(module), adapter).load(path)
    model.weights_path = str(Path(path).resolve())  # fingerprinted into run identities (modbias.runs.identity)
    model = model.to(device)
    model.load_spec = (spec, device)  # how another process loads the same model (runs on Dask workers)
    return model


_LOADED: dict[tuple[str, str], object] = {}


def load_model_once(spec: str, device: str = "cpu"):
    """:func:`load_model`, cached per process: a Dask worker loads each model once for all its units.

    Args:
        spec: as :func:`load_model`.
        device: as :func:`load_model`.

    Returns:
        The adapter, the same object for every call with the same ``(spec, device)`` in this process.
    """
    if (spec, device) not in _LOADED:
        _LOADED[(spec, device)] = load_model(spec, device)
    return _LOADED[(spec, device)]


FAMILIES = {"features": "modbias.models.features:FeatureModel",
            "qwen2_5_omni": "modbias.models.qwen_omni:QwenOmniModel",
            "llava": "modbias.models.llava:LlavaModel",
            "emotion_llama": "modbias.models.emotion_llama:EmotionLlamaModel",
            "r1_omni": "modbias.models.r1_omni:R1OmniModel"}
"""``family: "module:AdapterClass"``; the module is imported, and ``AdapterClass.load(path)`` called, on use."""

_LAZY = {"ModelAdapter": "modbias.models.base", "PreparedBatch": "modbias.models.base",
         "Organism": "modbias.models.organism", "WEIGHTS_DIR": "modbias.models.organism"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ModelAdapter", "PreparedBatch", "Organism", "check_model_spec", "load_model"]
