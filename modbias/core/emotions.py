"""The CA-MER emotion vocabulary and the one emotion parser of modbias.

The nine classes are those of CA-MER (paper Sec. 3).  Each class owns its
inflections and the common synonyms the paper's grouping G (App. C.1, Eq. 22)
would merge into it.  Emotion words outside the nine classes
(:data:`OTHER_EMOTIONS`, e.g. *bored*, *proud*) are recognised too and form
groups of their own (``other:<word>``), so an answer concluding "bored" names
an emotion that matches no label instead of naming none.

Everything that reads emotions from generated text goes through this module:
:func:`find_emotions` locates every emotion word and the generated token that
starts it (how ``y_k`` of Eq. (1) is chosen, :mod:`modbias.runs.trace`);
:func:`split_conclusion` cuts an answer into explanation and final conclusion
(Sec. 6.1: keywords come "from the final conclusion", used by
:mod:`modbias.core.evaluation` and :mod:`modbias.analysis.consistency`); :func:`parse_prediction`
is the conclusion's emotion.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Literal

CLASSES = ("angry", "happy", "surprise", "fear", "sad", "worry", "neutral", "doubt", "contempt")

LEXICON: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger", "angrily", "furious", "fury", "mad", "irritated", "annoyed",
              "rage", "enraged", "irate", "hostile", "frustrated", "frustration", "outraged", "resentful",
              "agitated", "livid", "infuriated"),
    "happy": ("happy", "happiness", "happily", "joy", "joyful", "joyous", "glad", "cheerful", "delighted",
              "pleased", "content", "excited", "elated", "amused", "thrilled", "ecstatic", "satisfied"),
    "surprise": ("surprise", "surprised", "surprising", "astonished", "astonishment", "amazed",
                 "amazement", "shocked", "startled", "stunned", "astounded"),
    "fear": ("fear", "fearful", "afraid", "scared", "frightened", "terrified", "panic", "panicked",
             "terror", "horrified", "alarmed", "dread"),
    "sad": ("sad", "sadness", "sadly", "unhappy", "sorrow", "sorrowful", "depressed", "gloomy",
            "grief", "miserable", "upset", "heartbroken", "disappointed", "melancholy", "tearful", "dejected",
            "despair"),
    "worry": ("worry", "worried", "worrying", "anxious", "anxiety", "nervous", "concerned",
              "uneasy", "tense", "apprehensive", "distressed", "stressed", "troubled"),
    "neutral": ("neutral", "calm", "indifferent", "composed", "unemotional", "flat", "expressionless",
                "impassive"),
    "doubt": ("doubt", "doubtful", "doubting", "skeptical", "sceptical", "suspicious", "uncertain",
              "unsure", "confused", "puzzled", "perplexed", "bewildered", "disbelief", "hesitant"),
    "contempt": ("contempt", "contemptuous", "disdain", "disdainful", "scorn", "scornful",
                 "sneering", "disgust", "disgusted", "condescending", "mocking", "sarcastic", "repulsed"),
}

OTHER_EMOTIONS: tuple[str, ...] = (
    "bored", "boredom", "proud", "pride", "ashamed", "shame", "guilty", "guilt", "embarrassed",
    "embarrassment", "lonely", "loneliness", "jealous", "jealousy", "envious", "envy", "relieved", "relief",
    "hopeful", "grateful", "gratitude", "tired", "exhausted", "curious", "curiosity", "nostalgic", "shy",
    "sympathetic", "pity", "love", "affection")
"""Emotion words outside the nine classes: each is its own group ``other:<word>`` (never a label)."""

OTHER_PREFIX = "other:"
WORD_TO_CLASS: dict[str, str] = {w: c for c, words in LEXICON.items() for w in words}
_ALL_WORDS = sorted([*WORD_TO_CLASS, *OTHER_EMOTIONS], key=len, reverse=True)
_PATTERN = re.compile(r"\b(" + "|".join(_ALL_WORDS) + r")\b", re.I | re.A)


def group_of(word: str) -> str:
    """The built-in grouping G (Eq. 22): a word's CA-MER class, or ``other:<word>`` outside the lexicon.

    Args:
        word: an emotion word (any case).

    Returns:
        One of the nine class names, or ``"other:<word>"`` (lowercased).
    """
    word = word.lower()
    return WORD_TO_CLASS.get(word) or OTHER_PREFIX + word


def emotion_words(text: str) -> list[str]:
    """Every emotion word of ``text`` (lexicon and :data:`OTHER_EMOTIONS`), in order of mention.

    Args:
        text: generated or reference text.

    Returns:
        The matched words as written in ``text`` (case kept).
    """
    return _PATTERN.findall(str(text))


@dataclass(frozen=True)
class EmotionMention:
    """One emotion word in generated text: its class, the word, and the token that starts it."""

    emotion: str
    word: str
    token_index: int
    start: int = field(default=-1, compare=False)  # character offset in the generated text


def find_emotions(pieces: list[str]) -> list[EmotionMention]:
    """All emotion words in the text made by concatenating ``pieces`` (one string per token).

    Works for word-level and sub-word tokenizers alike: a word split over
    several tokens is attributed to the token holding its first character.

    Args:
        pieces: the decoded text of each generated token, in order.

    Returns:
        One :class:`EmotionMention` per word, in order, with its class, the word, the index of the
        token that starts it and its character offset.
    """
    starts, text = [], ""
    for piece in pieces:
        starts.append(len(text))
        text += piece
    out = []
    for match in _PATTERN.finditer(text):
        token = bisect.bisect_right(starts, match.start()) - 1
        out.append(EmotionMention(group_of(match.group(1)), match.group(1), token, match.start()))
    return out


def answer_mention(pieces: list[str], mentions: list[EmotionMention],
                   rule: ConclusionRule = "auto") -> EmotionMention | None:
    """The conclusion's emotion word among ``mentions`` (from :func:`find_emotions` on ``pieces``).

    Under the ``answer`` rule (:data:`FAMILY_CONCLUSION`, e.g. R1-Omni): the first emotion word
    inside the ``<answer>`` block, and ``None`` when the text has no block (a generation cut off
    inside ``<think>`` has not answered yet) or no emotion word in it.  Otherwise the last one.

    Args:
        pieces: the decoded text of each generated token.
        mentions: :func:`find_emotions` of ``pieces``.
        rule: a conclusion rule (``auto``, ``sentence`` or ``answer``).

    Returns:
        The mention that states the answer, or ``None``.
    """
    if rule != "answer":
        return mentions[-1] if mentions else None
    block = _ANSWER_BLOCK.search("".join(pieces))
    if not block:
        return None
    return next((m for m in mentions if m.start >= block.start(1)), None)


# -- the final conclusion -------------------------------------------------------

ConclusionRule = Literal["auto", "sentence", "answer"]
CONCLUSION_RULES = ("auto", "sentence", "answer")
FAMILY_CONCLUSION: dict[str, str] = {"r1_omni": "answer"}
"""Per-family conclusion rule; families not listed use ``auto``.  R1-Omni answers in
``<think>…</think><answer>…</answer>``: its conclusion is the answer block, and an answer
without one has no conclusion."""

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.I | re.S)
_TAGS = re.compile(r"</?\s*(think|answer|aud_desc|vis_desc)\s*>", re.I)
_MARKER = re.compile(r"\b(so|therefore|thus|hence|overall|in conclusion|in summary|to conclude|"
                     r"the (?:final )?answer is|final answer)\b", re.I | re.A)
_SENTENCE_END = re.compile(r"[.!?;:\n]+(?=\s|$)")  # sentence (or clause: ';', ':') boundaries


def split_conclusion(text: str, rule: ConclusionRule = "auto") -> tuple[str, str]:
    """``(explanation, conclusion)`` of a generated answer (Sec. 6.1's "final conclusion").

    - ``answer``: the ``<answer>`` block is the conclusion, the text before it (tags
      removed) the explanation; without a block the conclusion is empty.
    - ``sentence``: the conclusion is the last sentence (or ``;``/``:`` clause) that names an emotion, from its
      last conclusion marker (``so``, ``therefore``, ``thus``, ``overall``, ``the answer
      is`` ...) before the last emotion word, if it has one.
    - ``auto`` (default): ``answer`` when the text has an ``<answer>`` tag, else ``sentence``.

    The organism's ``face looks X , voice sounds Y , so feels Z .`` splits into
    ``face looks X , voice sounds Y ,`` and ``so feels Z .``.  Text naming no emotion is
    all explanation.

    Args:
        text: the generated answer.
        rule: one of :data:`CONCLUSION_RULES`.

    Returns:
        ``(explanation, conclusion)``, both stripped; the conclusion is ``""`` when there is none.
    """
    text = str(text)
    if rule not in CONCLUSION_RULES:
        raise ValueError(f"conclusion rule {rule!r}; expected one of {CONCLUSION_RULES}")
    block = _ANSWER_BLOCK.search(text)
    if rule == "answer" or (rule == "auto" and block):
        if not block:
            return _TAGS.sub(" ", text).strip(), ""
        return _TAGS.sub(" ", text[:block.start()]).strip(), block.group(1).strip()
    mentions = list(_PATTERN.finditer(text))
    if not mentions:
        return text.strip(), ""
    last = mentions[-1].start()
    sentence_start = max((m.end() for m in _SENTENCE_END.finditer(text, 0, last)), default=0)
    markers = [m.start() for m in _MARKER.finditer(text, sentence_start, last)]
    cut = markers[-1] if markers else sentence_start
    return text[:cut].strip(), text[cut:].strip()


def conclusion(text: str, rule: ConclusionRule = "auto") -> str:
    """The final conclusion of ``text`` (see :func:`split_conclusion`).

    Args:
        text: the generated answer.
        rule: one of :data:`CONCLUSION_RULES`.

    Returns:
        The conclusion text (``""`` when there is none).
    """
    return split_conclusion(text, rule)[1]


def parse_prediction(text: str, rule: ConclusionRule = "auto") -> str | None:
    """The prediction: the group of the conclusion's last emotion word (a class or ``other:<word>``).

    Args:
        text: the generated answer.
        rule: one of :data:`CONCLUSION_RULES`.

    Returns:
        :func:`group_of` of the conclusion's last emotion word, or ``None`` when it names none.
    """
    found = emotion_words(conclusion(text, rule))
    return group_of(found[-1]) if found else None
