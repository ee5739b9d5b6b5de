"""modbias: mechanistic interpretability of modality bias in audio-visual emotion LLMs.

>>> import modbias                                                      # doctest: +SKIP
>>> model = modbias.load_model("organism")
>>> data = modbias.load_benchmark("synth", subset="video_aligned")
>>> ds = modbias.trace(model, data)              # xarray.Dataset: (sample, at, layer, head)
"""

__version__ = "0.1.0"

from modbias.data import load_benchmark  # noqa: E402
from modbias.intervening import intervene  # noqa: E402
from modbias.models import load_model  # noqa: E402
from modbias.store import open_run  # noqa: E402
from modbias.tracing import trace  # noqa: E402
from modbias.modality_importance import mi  # noqa: E402
from modbias.drift import drift_curves, trace_drift  # noqa: E402
from modbias.rows import attention_rows  # noqa: E402

__all__ = ["load_model", "load_benchmark", "trace", "intervene", "open_run", "mi", "trace_drift", "drift_curves", "attention_rows",
           "__version__"]
