"""Model families behind one adapter protocol (:class:`~modbias.models.base.ModelAdapter`)."""

from __future__ import annotations

from modbias.models.base import ModelAdapter, PreparedBatch
from modbias.models.organism import WEIGHTS_DIR, Organism


def load_model(spec: str = "organism", device: str = "cpu") -> ModelAdapter:
    """Load a model by ``family[:path]``; ``organism`` alone loads the shipped weights."""
    family, _, path = spec.partition(":")
    if family == "organism":
        model = Organism.load(path or WEIGHTS_DIR)
    else:
        raise ValueError(f"unknown model family {family!r} in {spec!r}; available: 'organism'")
    return model.to(device)


__all__ = ["ModelAdapter", "PreparedBatch", "Organism", "load_model"]
