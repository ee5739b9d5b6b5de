"""Core vocabulary and pure functions: token layout, attention probe, metrics, emotion words, scoring. Imports nothing else of modbias."""

from modbias import submodules_on_use

__getattr__ = submodules_on_use(__name__)
