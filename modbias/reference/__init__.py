"""Independent re-implementations used to cross-check the probe: interventions as TransformerLens hooks."""

from modbias import submodules_on_use

__getattr__ = submodules_on_use(__name__)
