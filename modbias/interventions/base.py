"""One protocol for every intervention, and a registry.

An intervention may act at any of three levels; each hook defaults to a no-op:

- **input** — :meth:`Intervention.transform_sample` rewrites a sample before the
  adapter builds inputs and the TokenLayout (audio-token duplication);
- **attention** — :meth:`Intervention.edit_rows` edits the probe's rows of the
  query being decoded, at every generation step (AR, PAI);
- **module** — :meth:`Intervention.attach` / :meth:`Intervention.detach` add and
  remove modules, :meth:`Intervention.begin_batch` passes the batch's layout
  (MoSE); :meth:`Intervention.logits_processors` adjusts decoding (PAI guidance).

Any list of interventions can be active at once (:func:`applied`); leaving
the block detaches what they attached, so the model computes what it did
before.  The probe's instrumentation (attention implementation, ``row_tap``
modules) stays; :func:`modbias.core.probe.instrumented` removes it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch

from modbias.core.probe import RowContext
from modbias.data.sample import Sample

if TYPE_CHECKING:  # annotations only: interventions never import the adapters at run time
    from modbias.models.base import ModelAdapter, PreparedBatch


class Intervention:
    """Base class: override the hooks an intervention needs (see module doc)."""

    name = "none"

    def params(self) -> dict:
        """JSON-able parameters, stored in run configs."""
        return {}

    def describe(self) -> dict:
        """The JSON-able description ``{"name": name, **params()}`` a run config stores (:func:`from_config` rebuilds it)."""
        return {"name": self.name, **self.params()}

    def transform_sample(self, sample: Sample) -> Sample:
        """Input level: rewrite a sample before the adapter builds its inputs (default: unchanged).

        Args:
            sample: the sample.

        Returns:
            The (possibly new) sample.
        """
        return sample

    def attach(self, model: ModelAdapter) -> None:
        """Module level: add modules or settings to ``model`` when the block of :func:`applied` opens.

        Args:
            model: the adapter.
        """
        pass

    def detach(self, model: ModelAdapter) -> None:
        """Undo :meth:`attach` when the block closes.

        Args:
            model: the adapter.
        """
        pass

    def begin_batch(self, model: ModelAdapter, batch: PreparedBatch, samples: list[Sample]) -> None:
        """Called once per batch before generation, with the batch's inputs and layouts.

        Args:
            model: the adapter.
            batch: the prepared batch.
            samples: its (transformed) samples.
        """
        pass

    def logits_processors(self, model: ModelAdapter, batch: PreparedBatch, samples: list[Sample]) -> list:
        """Decoding level: transformers logits processors for this batch (default none).

        Args:
            model: the adapter.
            batch: the prepared batch.
            samples: its (transformed) samples.

        Returns:
            ``LogitsProcessor`` objects.
        """
        return []

    def batch_counts(self) -> dict[str, np.ndarray]:
        """Per-sample counters of the batch just generated (e.g. AR's edited heads); stored by traces."""
        return {}

    @property
    def edits_rows(self) -> bool:
        """Whether the subclass overrides :meth:`edit_rows` (only then is it handed to the probe)."""
        return type(self).edit_rows is not Intervention.edit_rows

    def edit_rows(self, rows: torch.Tensor, context: RowContext) -> torch.Tensor:
        """Attention level: edit the decoded query's rows of one layer (default: unchanged).

        Args:
            rows: post-softmax rows ``[B, H, Q, T_k]``.
            context: the layer, modality masks over keys ``[B, T_k]``, query index and scores.

        Returns:
            Rows ``[B, H, Q, T_k]`` (the input itself to leave them).
        """
        return rows

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


REGISTRY: dict[str, Callable[..., Intervention]] = {"none": Intervention}


def register(name: str):
    """Class decorator adding an intervention to the registry under ``name``.

    Args:
        name: the registry key (also set as the class's ``name``).

    Returns:
        The decorator, which returns the class unchanged.
    """
    def add(cls):
        cls.name = name
        REGISTRY[name] = cls
        return cls
    return add


def make(name: str, **params) -> Intervention:
    """Instantiate a registered intervention by name.

    Args:
        name: a key of :data:`REGISTRY`.
        **params: the class's constructor arguments.

    Returns:
        The intervention; an unknown name raises ``ValueError`` listing the known ones.
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown intervention {name!r}; available: {sorted(REGISTRY)}")
    return REGISTRY[name](**params)


def from_config(configs: list[dict]) -> list[Intervention]:
    """Rebuild interventions from their stored ``describe()`` dicts.

    Args:
        configs: ``[{"name": ..., **params}]`` as a run config stores them.

    Returns:
        The interventions, in order.
    """
    return [make(c["name"], **{k: v for k, v in c.items() if k != "name"}) for c in configs]


@contextlib.contextmanager
def applied(model: ModelAdapter, interventions: list[Intervention]) -> Iterator[list[Intervention]]:
    """Attach the module-level parts of ``interventions`` for the block; detach in reverse order.

    Args:
        model: the adapter.
        interventions: applied in order (all attached ones are detached even when one fails).

    Yields:
        ``interventions``.
    """
    attached = []
    try:
        for intervention in interventions:
            intervention.attach(model)
            attached.append(intervention)
        yield interventions
    finally:
        for intervention in reversed(attached):
            intervention.detach(model)


def layer_set(spec, n_layers: int) -> frozenset[int]:
    """Layers named by ``spec``: ``None``/``"all"``, a slice ``"start:end"`` (either side may be empty),
    or indices (``"1,3"`` or a list).  Out-of-range layers are an error.

    Args:
        spec: the layer spec.
        n_layers: L.

    Returns:
        The layer indices.
    """
    if spec is None or spec == "all":
        return frozenset(range(n_layers))
    if isinstance(spec, str) and ":" in spec:
        start, end = (int(x) if x.strip() else None for x in spec.split(":", 1))
        if not 0 <= (start or 0) < n_layers or (end is not None and not 0 < end <= n_layers):
            raise ValueError(f"layers {spec!r} outside the model's {n_layers} layers")
        layers = range(n_layers)[slice(start, end)]
    else:
        layers = [int(x) for x in (spec.split(",") if isinstance(spec, str) else spec)]
    bad = [layer for layer in layers if not 0 <= layer < n_layers]
    if bad:
        raise ValueError(f"layers {bad} outside the model's {n_layers} layers (spec {spec!r})")
    return frozenset(layers)
