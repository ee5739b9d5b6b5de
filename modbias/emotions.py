"""The CA-MER emotion vocabulary and the finder for the first emotion token y_k.

The nine classes are those of CA-MER (paper Sec. 3).  Each class owns its
inflections and common synonyms; :func:`find_emotions` locates every
emotion word in generated text and maps it back to the generated token that
starts it, which is how ``y_k`` of Eq. (1) is chosen.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

CLASSES = ("angry", "happy", "surprise", "fear", "sad", "worry", "neutral", "doubt", "contempt")

LEXICON: dict[str, tuple[str, ...]] = {
    "angry": ("angry", "anger", "angrily", "furious", "fury", "mad", "irritated", "annoyed",
              "rage", "enraged", "irate", "hostile"),
    "happy": ("happy", "happiness", "happily", "joy", "joyful", "glad", "cheerful", "delighted",
              "pleased", "content", "excited", "elated"),
    "surprise": ("surprise", "surprised", "surprising", "astonished", "astonishment", "amazed",
                 "amazement", "shocked", "startled"),
    "fear": ("fear", "fearful", "afraid", "scared", "frightened", "terrified", "panic", "panicked"),
    "sad": ("sad", "sadness", "sadly", "unhappy", "sorrow", "sorrowful", "depressed", "gloomy",
            "grief", "miserable", "upset"),
    "worry": ("worry", "worried", "worrying", "anxious", "anxiety", "nervous", "concerned",
              "uneasy", "tense"),
    "neutral": ("neutral", "calm", "indifferent", "composed", "unemotional", "flat"),
    "doubt": ("doubt", "doubtful", "doubting", "skeptical", "sceptical", "suspicious", "uncertain",
              "unsure", "confused", "puzzled"),
    "contempt": ("contempt", "contemptuous", "disdain", "disdainful", "scorn", "scornful",
                 "sneering", "disgust", "disgusted"),
}

WORD_TO_CLASS: dict[str, str] = {w: c for c, words in LEXICON.items() for w in words}
_PATTERN = re.compile(r"\b(" + "|".join(sorted(WORD_TO_CLASS, key=len, reverse=True)) + r")\b", re.I | re.A)


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
    """
    starts, text = [], ""
    for piece in pieces:
        starts.append(len(text))
        text += piece
    out = []
    for match in _PATTERN.finditer(text):
        token = bisect.bisect_right(starts, match.start()) - 1
        out.append(EmotionMention(WORD_TO_CLASS[match.group(1).lower()], match.group(1), token, match.start()))
    return out


def answer_mention(pieces: list[str], mentions: list[EmotionMention],
                   answer_tag: str | None = None) -> EmotionMention | None:
    """The conclusion's emotion word among ``mentions`` (from :func:`find_emotions` on ``pieces``).

    Without ``answer_tag``: the last emotion word.  With one (R1-Omni's ``<answer>``): the first
    emotion word after the tag's first occurrence, and ``None`` when the text has no tag (a
    generation cut off inside ``<think>`` has not answered yet) or no emotion word after it.
    """
    if not answer_tag:
        return mentions[-1] if mentions else None
    at = "".join(pieces).find(answer_tag)
    if at < 0:
        return None
    return next((m for m in mentions if m.start >= at + len(answer_tag)), None)


def parse_prediction(text: str) -> str | None:
    """The predicted class: the emotion of the conclusion, i.e. the last emotion word in ``text``."""
    found = [WORD_TO_CLASS[m.lower()] for m in _PATTERN.findall(text)]
    return found[-1] if found else None
