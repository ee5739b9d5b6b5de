"""Attention knockout (Geva et al. 2023, "Dissecting Recall of Factual Associations", Sec. 5).

On the chosen layers, the edited queries' attention to one modality's tokens is set to zero and
the rest renormalised (:func:`modbias.core.causal.knock_out`), through the probe's row editing, so
every other query keeps fused SDPA.  During generation that is every decoded token; in a causal
run (:mod:`modbias.runs.causal`) the probe request selects the emotion-step query only.
"""

from __future__ import annotations

import torch

from modbias.core.causal import knock_out
from modbias.core.probe import RowContext
from modbias.interventions.base import Intervention, layer_set, register

KNOCKOUT_MODALITIES = ("visual", "audio", "text")


@register("knockout")
class AttentionKnockout(Intervention):
    """Block the attention to ``modality``'s tokens on ``layers`` (a :func:`layer_set` spec; ``[]``: none).

    Args:
        modality: ``visual``, ``audio`` or ``text`` (a TokenLayout mask).
        layers: ``None``/``"all"``, ``"start:end"``, ``"1,3"`` or a list of layer indices.
    """

    def __init__(self, modality: str = "visual", layers=None):
        if modality not in KNOCKOUT_MODALITIES:
            raise ValueError(f"knockout modality must be one of {KNOCKOUT_MODALITIES}, got {modality!r}")
        self.modality, self.layers = modality, layers
        self.active_layers: frozenset[int] | None = None

    def params(self) -> dict:
        """``{"modality", "layers"}`` as given, for run configs."""
        return {"modality": self.modality, "layers": self.layers}

    def attach(self, model) -> None:
        """Resolve ``layers`` against the model's depth.

        Args:
            model: the adapter (its ``n_layers`` is read).
        """
        self.active_layers = layer_set(self.layers, model.n_layers)

    def edit_rows(self, rows: torch.Tensor, context: RowContext) -> torch.Tensor:
        """On an active layer, knock out the modality's keys (:func:`modbias.core.causal.knock_out`).

        Args:
            rows: post-softmax rows ``[B, H, Q, T_k]``.
            context: the layer and the modality masks over keys ``[B, T_k]``.

        Returns:
            Rows ``[B, H, Q, T_k]``: renormalised over the other keys on an active layer, else the input itself.
        """
        if self.active_layers is None or context.layer not in self.active_layers:
            return rows
        return knock_out(rows, context.masks[self.modality])
