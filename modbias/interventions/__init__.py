"""Interventions behind one protocol and a registry: ``none``, ``ar``, ``pai``, ``duplicate_audio``, ``mose``, ``knockout``.

>>> from modbias.interventions import make
>>> make("ar", tau=1.0)
AttentionReallocation(tau=1.0, layers=None, competitor='audio')
"""

from modbias.interventions import ar, duplicate_audio, knockout, mose, pai  # noqa: F401  (registers)
from modbias.interventions.base import REGISTRY, Intervention, applied, from_config, make, register

__all__ = ["REGISTRY", "Intervention", "applied", "from_config", "make", "register"]
