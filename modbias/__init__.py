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
    "trace": "modbias.tracing",
    "intervene": "modbias.intervening",
    "open_run": "modbias.store",
    "mi": "modbias.modality_importance",
    "trace_drift": "modbias.drift",
    "drift_curves": "modbias.drift",
    "attention_rows": "modbias.rows",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["load_model", "load_benchmark", "trace", "intervene", "open_run", "mi", "trace_drift", "drift_curves",
           "attention_rows",
           "__version__"]
