"""modbias: mechanistic interpretability of modality bias in audio-visual emotion LLMs.

>>> import modbias                                                      # doctest: +SKIP
>>> model = modbias.load_model("organism")
>>> data = modbias.load_benchmark("synth", subset="video_aligned")
>>> ds = modbias.trace(model, data)              # xarray.Dataset: (sample, at, layer, head)

The names below are imported on first use, so ``import modbias`` (and the
command line's ``--help``) does not load torch, transformers or xarray.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "load_model": "modbias.models",
    "load_benchmark": "modbias.data",
    "trace": "modbias.runs.trace",
    "intervene": "modbias.runs.intervene",
    "open_run": "modbias.runs.store",
    "mi": "modbias.runs.importance",
    "trace_drift": "modbias.runs.drift",
    "drift_curves": "modbias.runs.drift",
    "attention_rows": "modbias.core.rows",
    "causal": "modbias.runs.causal",
    "patch": "modbias.runs.patching",
}


def submodules_on_use(package: str):
    """A module ``__getattr__`` that imports ``package.<name>`` on first attribute access.

    Args:
        package: the package's ``__name__``.
    Returns:
        ``__getattr__(name) -> module``; raises ``AttributeError`` when no such submodule exists.
    """
    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        try:
            return importlib.import_module(f"{package}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{package}.{name}":
                raise
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    return __getattr__


_submodule = submodules_on_use(__name__)


def __getattr__(name: str):
    value = getattr(importlib.import_module(_EXPORTS[name]), name) if name in _EXPORTS else _submodule(name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["load_model", "load_benchmark", "trace", "intervene", "open_run", "mi", "trace_drift", "drift_curves",
           "attention_rows",
           "__version__"]
