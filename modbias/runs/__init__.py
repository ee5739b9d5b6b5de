"""Runs: the store, the run loop and what each kind of run (trace, intervene, drift, mi, captioning) records per batch."""

from modbias import submodules_on_use

__getattr__ = submodules_on_use(__name__)
