"""A family's instruction filled in for one sample: its subtitle and, for single-label recognition, the
label list of its benchmark.

Recognition benchmarks whose classes differ from the family's list (DFEW's seven:
happy, sad, neutral, angry, surprise, disgust, fear) give their samples
``extra["label_options"]``.  The family's instruction then names those labels:

- a ``{labels}`` placeholder is filled with them;
- else Emotion-LLaMA's recognition list (:data:`EMOTION_LLAMA_LABELS`, as in its released
  evaluation prompt) is replaced by them;
- else a sentence asking for one of them is appended.

Samples without ``label_options`` (CA-MER, EMER, MER2023 read with Emotion-LLaMA's
nine-label prompt) get the instruction as the family wrote it.
"""

from __future__ import annotations

from modbias.data.sample import Sample

EMOTION_LLAMA_LABELS = "happy, sad, neutral, angry, worried, surprise, fear, contempt, doubt"


def instruction_for(instruction: str, sample: Sample) -> str:
    """``instruction`` with ``{subtitle}`` and the sample's recognition labels filled in (module doc).

    Args:
        instruction: the family's instruction template.
        sample: the sample (its ``subtitle`` and ``extra["label_options"]``).

    Returns:
        The instruction text.
    """
    text = instruction.replace("{subtitle}", sample.subtitle)
    options = sample.extra.get("label_options")
    if not options:
        return text.replace("{labels}", EMOTION_LLAMA_LABELS)
    labels = ", ".join(options)
    if "{labels}" in text:
        return text.replace("{labels}", labels)
    if EMOTION_LLAMA_LABELS in text:
        return text.replace(EMOTION_LLAMA_LABELS, labels)
    return f"{text.rstrip()} Answer with one emotion label from: {labels}."
