"""Audio-token duplication (CA-MER App. C.2, Fig. 3c): repeat each sample's audio tokens k times.

Input-level: the features are repeated along the sequence, so the adapter
builds the longer prompt and its TokenLayout itself.  No audio information
is added.  (To *train* with k copies, see ``modbias organism train --audio-repeat``.)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from modbias.data.sample import Sample
from modbias.interventions.base import Intervention, register


@register("duplicate_audio")
class DuplicateAudio(Intervention):
    """Audio-token duplication with ``k`` copies of every audio row (k = 1: unchanged).

    Args:
        k: the number of copies, at least 1.
    """
    def __init__(self, k: int = 1):
        if int(k) < 1:
            raise ValueError(f"duplicate_audio needs k >= 1, got {k}")
        self.k = int(k)

    def params(self) -> dict:
        """``{"k": k}``."""
        return {"k": self.k}

    def transform_sample(self, sample: Sample) -> Sample:
        """The sample with each audio row repeated ``k`` times in place.

        Args:
            sample: the sample (``audio [n_a, d]``).

        Returns:
            A copy with ``audio [k·n_a, d]``.
        """
        return dataclasses.replace(sample, audio=np.repeat(sample.audio, self.k, axis=0))
