"""Recognition prompts: the family's instruction with the benchmark's label list (DFEW's seven classes)."""

from __future__ import annotations

import numpy as np

import modbias
from modbias.data.prompts import EMOTION_LLAMA_LABELS, instruction_for
from modbias.data.sample import Sample
from modbias.testing import feature_streams, make_tiny_checkpoint, write_camer_benchmark, write_dfew_benchmark

DFEW = "happy, sad, neutral, angry, surprise, disgust, fear"


def _sample(options=None):
    extra = {"label_options": options} if options else {}
    return Sample("s", "consistent", "happy", np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float32),
                  subtitle="hello", extra=extra)


def test_instruction_for_fills_the_label_list_three_ways():
    seven = DFEW.split(", ")
    emotion_llama = f"[emotion] Please determine which emotion label in the video represents: {EMOTION_LLAMA_LABELS}."
    assert instruction_for(emotion_llama, _sample(seven)).endswith(f"represents: {DFEW}.")
    assert instruction_for(emotion_llama, _sample()) == emotion_llama
    assert instruction_for("Says {subtitle}. Pick one of {labels}.", _sample(seven)) == \
        f"Says hello. Pick one of {DFEW}."
    assert instruction_for("Says {subtitle}.", _sample(seven)) == \
        f"Says hello. Answer with one emotion label from: {DFEW}."


def test_dfew_samples_ask_a_features_and_a_llava_model_for_dfews_classes(tmp_path):
    bench = modbias.load_benchmark(f"dfew:{write_dfew_benchmark(tmp_path / 'dfew', labels=(1,))}")
    assert bench[0].extra["label_options"] == DFEW.split(", ")
    ckpt = make_tiny_checkpoint("features", tmp_path / "features")
    features = modbias.load_model(f"features:{ckpt}")
    camer = write_camer_benchmark(tmp_path / "c", 1, media=False, features=feature_streams(ckpt))
    sample = modbias.load_benchmark(f"camer:{camer}")[0]
    text = "".join(c for kind, c, _ in features.segments(sample) if kind == "text")
    assert EMOTION_LLAMA_LABELS in text
    sample.extra["label_options"] = DFEW.split(", ")
    text = "".join(c for kind, c, _ in features.segments(sample) if kind == "text")
    assert DFEW in text and "worried" not in text
    llava = modbias.load_model(f"llava:{make_tiny_checkpoint('llava', tmp_path / 'llava')}")
    ids = llava.processed(bench[0])["input_ids"][0].tolist()
    assert DFEW.replace(" ", "") in llava.tokenizer.decode(ids).replace(" ", "")
