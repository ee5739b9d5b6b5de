"""Conclusion-only Ŷ (Sec. 6.1), out-of-lexicon groups, synonyms, pluggable groupers (App. C.1, Eqs. 22-24)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from modbias.core.emotions import FAMILY_CONCLUSION, group_of, parse_prediction, split_conclusion
from modbias.core.evaluation import load_grouper, predicted_set, sample_scores, subset_metrics

ORGANISM_ANSWER = "face looks happy , voice sounds sad , so feels sad ."


def test_acceptance_conclusion_by_default_whole_answer_on_request():
    assert predicted_set(ORGANISM_ANSWER) == {"sad"}
    assert predicted_set(ORGANISM_ANSWER, scope="answer") == {"happy", "sad"}
    with pytest.raises(ValueError, match="scope"):
        predicted_set(ORGANISM_ANSWER, scope="everything")


@pytest.mark.parametrize("text,expected", [
    ("The face is happy. The voice sounds angry and tense.", {"angry", "worry"}),  # last sentence naming one
    ("She smiles; therefore she is joyful.", {"happy"}),  # from the marker on
    ("Happy face, sad voice. The subtitle is neutral text. Overall, he is furious.", {"angry"}),
    ("<think>happy face, sad voice</think><answer>sad</answer>", {"sad"}),  # the answer block
    ("Nothing emotional here.", set()),
])
def test_free_text_conclusions(text, expected):
    assert predicted_set(text) == expected


def test_answer_rule_without_a_block_has_no_conclusion():
    assert FAMILY_CONCLUSION["r1_omni"] == "answer"
    assert split_conclusion("<think>she is sad</think>", rule="answer")[1] == ""
    assert predicted_set("she is sad", rule="answer") == set()
    assert predicted_set("she is sad", rule="sentence") == {"sad"}


# (word, group): the synonyms the paper's grouping merges, and words outside the nine classes
SYNONYMS = [("joyful", "happy"), ("cheerful", "happy"), ("delighted", "happy"), ("thrilled", "happy"),
            ("anxious", "worry"), ("worried", "worry"), ("nervous", "worry"), ("apprehensive", "worry"),
            ("furious", "angry"), ("frustrated", "angry"), ("irritated", "angry"), ("outraged", "angry"),
            ("heartbroken", "sad"), ("disappointed", "sad"), ("depressed", "sad"), ("scared", "fear"),
            ("terrified", "fear"), ("horrified", "fear"), ("astonished", "surprise"), ("stunned", "surprise"),
            ("calm", "neutral"), ("expressionless", "neutral"), ("skeptical", "doubt"), ("perplexed", "doubt"),
            ("disgusted", "contempt"), ("sarcastic", "contempt"), ("bored", "other:bored"),
            ("proud", "other:proud"), ("ashamed", "other:ashamed")]


@pytest.mark.parametrize("word,group", SYNONYMS)
def test_synonym_table(word, group):
    assert group_of(word) == group == group_of(word.upper())
    assert predicted_set(f"so the speaker feels {word} .") == {group}


def test_out_of_lexicon_conclusion_is_its_own_group_and_lowers_acc():
    assert parse_prediction("face looks sad , voice sounds sad , so feels bored .") == "other:bored"
    assert predicted_set("the voice is sad and bored") == {"sad", "other:bored"}
    in_lexicon, mixed, oov = sample_scores(["so sad .", "so sad and bored .", "so bored ."], ["sad"] * 3)
    assert tuple(in_lexicon) == (1.0, 1.0)
    assert tuple(mixed) == (0.5, 1.0)  # |Ŷ| = 2: bored counts, never matches
    assert tuple(oov) == (0.0, 0.0)


def fake_run(texts, labels, subsets):
    return xr.Dataset(coords={"sample": np.arange(len(texts)), "text": ("sample", texts),
                              "label": ("sample", labels), "subset": ("sample", subsets),
                              "correct": ("sample", [parse_prediction(t) == lab for t, lab in zip(texts, labels)])})


def test_subset_metrics_scopes():
    ds = fake_run([ORGANISM_ANSWER, "face looks sad , voice sounds happy , so feels happy ."],
                  ["sad", "sad"], ["video_aligned", "video_aligned"])
    conclusion, answer = subset_metrics(ds)["video_aligned"], subset_metrics(ds, scope="answer")["video_aligned"]
    assert conclusion["acc"] == conclusion["rec"] == conclusion["avg"] == conclusion["hit"] == 50.0
    assert (answer["acc"], answer["rec"]) == (50.0, 100.0)  # both answers name {happy, sad}


def coarse(word):
    """A test grouper: positive vs negative valence."""
    return "positive" if group_of(word) in ("happy", "surprise") else "negative"


def test_grouper_from_module_function():
    grouper = load_grouper("tests.test_evaluation:coarse")
    assert predicted_set("so feels joyful .", grouper) == {"positive"}
    ds = fake_run(["so feels furious ."], ["sad"], ["consistent"])
    assert subset_metrics(ds, grouper)["consistent"]["acc"] == 100.0  # angry and sad share "negative"
    assert subset_metrics(ds)["consistent"]["acc"] == 0.0
    assert load_grouper(None)("glad") == "happy"
    for bad in ("nocolon", "tests.test_evaluation:missing", "no_such_module_xyz:f"):
        with pytest.raises(ValueError, match="grouper"):
            load_grouper(bad)
