"""Tests of the emotion vocabulary, the y_k finder and the prediction parser."""

from __future__ import annotations

import pytest

from modbias.core.emotions import CLASSES, LEXICON, WORD_TO_CLASS, EmotionMention, find_emotions, parse_prediction


def word_pieces(text):
    """Word-level tokens with leading spaces, as a BPE tokenizer decodes them."""
    words = text.split(" ")
    return words[:1] + [" " + w for w in words[1:]]


def classes_at(mentions):
    return [(m.emotion, m.token_index) for m in mentions]


# ---------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------
def test_nine_classes_each_owning_its_own_name():
    assert len(CLASSES) == 9 and len(set(CLASSES)) == 9
    assert set(LEXICON) == set(CLASSES)
    for cls in CLASSES:
        assert cls in LEXICON[cls]


def test_no_word_belongs_to_two_classes():
    words = [w for ws in LEXICON.values() for w in ws]
    assert len(words) == len(set(words))
    assert all(WORD_TO_CLASS[w] == c for c, ws in LEXICON.items() for w in ws)


# ---------------------------------------------------------------------------
# find_emotions
# ---------------------------------------------------------------------------
def test_word_level_pieces():
    pieces = ["The", " face", " looks", " happy", ",", " but", " the", " voice", " sounds", " furious", "."]
    #          0      1        2         3        4     5        6       7          8           9         10
    found = find_emotions(pieces)
    assert found == [EmotionMention("happy", "happy", 3), EmotionMention("angry", "furious", 9)]


def test_sub_word_pieces_attribute_the_first_token():
    pieces = ["She", " seems", " wor", "ried", " and", " sad", "ly", " un", "happy"]
    #          0      1         2       3       4       5       6     7      8
    found = find_emotions(pieces)
    assert [(m.emotion, m.word, m.token_index) for m in found] == [
        ("worry", "worried", 2),  # "wor"+"ried" -> token of "wor"
        ("sad", "sadly", 5),  # " sad"+"ly": one word, sad, at " sad"
        ("sad", "unhappy", 7),  # " un"+"happy": the whole word "unhappy" is sad, not happy
    ]


def test_word_split_mid_token():
    # " h" holds the first character of "happy" (after its leading space)
    found = find_emotions(["so", " h", "ap", "py", "!"])
    assert classes_at(found) == [("happy", 1)]
    found = find_emotions(["I am an", "gry"])  # one token holds "I am an", the "an" of angry
    assert classes_at(found) == [("angry", 0)]


def test_empty_pieces_are_skipped():
    # special tokens often decode to "", they do not hold any character
    assert classes_at(find_emotions(["I am ", "", "happy"])) == [("happy", 2)]
    assert classes_at(find_emotions(["", "", "sad", ""])) == [("sad", 2)]
    assert classes_at(find_emotions(["calm", "", " ", "", "scared"])) == [("neutral", 0), ("fear", 4)]


@pytest.mark.parametrize("word, cls", [
    ("furious", "angry"), ("anger", "angry"), ("angrily", "angry"), ("irritated", "angry"),
    ("sadness", "sad"), ("sadly", "sad"), ("unhappy", "sad"), ("upset", "sad"),
    ("worried", "worry"), ("anxious", "worry"), ("nervous", "worry"),
    ("happiness", "happy"), ("joyful", "happy"), ("delighted", "happy"),
    ("surprised", "surprise"), ("astonished", "surprise"), ("shocked", "surprise"),
    ("afraid", "fear"), ("terrified", "fear"), ("panicked", "fear"),
    ("calm", "neutral"), ("indifferent", "neutral"),
    ("doubtful", "doubt"), ("skeptical", "doubt"), ("puzzled", "doubt"),
    ("disgust", "contempt"), ("scornful", "contempt"), ("disdain", "contempt"),
])
def test_synonyms_and_inflections(word, cls):
    found = find_emotions(["The", " speaker", " is", " " + word, "."])
    assert classes_at(found) == [(cls, 3)]
    assert found[0].word == word
    assert parse_prediction(f"Overall the speaker is {word}.") == cls


@pytest.mark.parametrize("text", [
    "The meeting was made official.",  # mad inside made
    "Such madness in the room.",  # mad inside madness
    "A gladiator entered.",  # glad inside gladiator
    "The contentment grew.",  # content inside contentment
    "An intense glare.",  # tense inside intense
    "The scarecrow stood there.",  # scare... not a lexicon word; scared not a prefix of scarecrow
    "She calmly left the flatiron building.",  # calm inside calmly, flat inside flatiron
    "sadder words sadist",  # sad at the start of longer words
    "feared fears",  # fear followed by more letters
])
def test_embedded_emotion_words_do_not_match(text):
    assert "".join(word_pieces(text)) == text
    assert find_emotions(word_pieces(text)) == []
    assert find_emotions([text]) == []
    assert parse_prediction(text) is None


def test_punctuation_delimits_words():
    text = "(happy), sad; 'angry'... fear!"
    assert [m.emotion for m in find_emotions([text])] == ["happy", "sad", "angry", "fear"]


def test_case_insensitive_keeps_original_spelling():
    found = find_emotions(["The", " voice", " is", " FURIOUS", " and", " Sad"])
    assert [(m.emotion, m.word, m.token_index) for m in found] == [("angry", "FURIOUS", 3), ("sad", "Sad", 5)]
    assert parse_prediction("HaPpY") == "happy"


def test_no_emotion_word():
    assert find_emotions([]) == []
    assert find_emotions(["The", " person", " is", " talking", " about", " dinner", "."]) == []
    assert parse_prediction("") is None
    assert parse_prediction("The person is talking about dinner.") is None


def test_all_occurrences_in_order():
    text = "happy happy sad"
    pieces = ["happy", " happy", " sad"]
    assert classes_at(find_emotions(pieces)) == [("happy", 0), ("happy", 1), ("sad", 2)]
    assert parse_prediction(text) == "sad"


# ---------------------------------------------------------------------------
# parse_prediction
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("The face looks happy, but the voice sounds angry. Therefore the emotion is angry.", "angry"),
    ("The voice sounds furious, yet the face is clearly joyful; overall: happy", "happy"),
    ("Although anxious at first, in the end she is surprised.", "surprise"),
    ("The answer is sadness", "sad"),
    ("worried", "worry"),
    ("It was made clear: contempt.", "contempt"),
])
def test_parse_prediction_takes_the_last_emotion(text, expected):
    assert parse_prediction(text) == expected


def test_parse_prediction_agrees_with_find_emotions():
    text = "The face is calm but the voice is nervous, so the speaker feels uneasy and doubtful."
    mentions = find_emotions(word_pieces(text))
    assert [m.emotion for m in mentions] == ["neutral", "worry", "worry", "doubt"]
    assert [m.token_index for m in mentions] == [3, 8, 13, 15]  # calm, nervous, uneasy, doubtful
    assert parse_prediction(text) == mentions[-1].emotion == "doubt"


@pytest.mark.parametrize("text", ["ſad", "The speaker is İRATE."])
def test_unicode_case_folding_does_not_crash(text):
    found = find_emotions([text])  # must not raise; either recognised or ignored
    assert all(m.emotion in CLASSES for m in found)
    assert parse_prediction(text) in (None, *CLASSES)
