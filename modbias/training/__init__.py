"""Training the shipped organisms and MoSE experts (uses models, data and interventions)."""

from modbias import submodules_on_use

__getattr__ = submodules_on_use(__name__)
