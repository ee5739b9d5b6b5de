"""Analyses of stored runs: explanation consistency, summary tables. Reads stores, never runs models."""

from modbias import submodules_on_use

__getattr__ = submodules_on_use(__name__)
