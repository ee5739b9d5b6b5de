"""CHAIR: object hallucination in image captions (Rohrbach et al., 2018), as in the MoSEAR paper's Table 13.

A caption *mentions* an MSCOCO object when one of the object's words occurs
in it: the category name or a synonym (:data:`SYNONYMS`), singular or plural,
multi-word names matched as one mention (``hot dog``, ``teddy bears``).  A
mention is *hallucinated* when its object is not among the image's ground-truth
objects: the categories of its instance annotations together with the objects
its reference captions mention.  Over a set of captions::

    CHAIR_s = captions with at least one hallucinated mention / captions
    CHAIR_i = hallucinated mentions / all mentions

Matching rules besides synonyms and plurals (following the CHAIR protocol):

- the longest match wins, so ``hot dog`` is one *hot dog*, never a *dog*;
- a person word used as a qualifier of an animal or vehicle (``baby elephant``,
  ``adult giraffe``, ``passenger train``) mentions only the animal or vehicle;
- phrases that name a place rather than an object (``train track``, ``bus
  stop``, ``tennis court``) mention nothing;
- ``seat`` in a caption that also mentions a toilet is the toilet's seat, not a chair.

The synonym lists are modbias's own, built from the 80 COCO category names
and common words for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

# COCO category (as in instances_*.json) → other words for it; the category name itself always counts.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "person": ("people", "man", "woman", "boy", "girl", "child", "kid", "baby", "adult", "lady", "gentleman",
               "guy", "player", "skier", "snowboarder", "skateboarder", "surfer", "rider", "biker", "cyclist",
               "pedestrian", "passenger", "driver", "worker", "chef", "officer", "policeman", "soldier",
               "teenager", "toddler", "student", "tourist", "spectator", "crowd", "pitcher", "batter",
               "catcher", "umpire", "mother", "father", "bride", "groom", "family", "customer", "vendor",
               "infant", "male", "female", "husband", "wife", "son", "daughter", "friend"),
    "bicycle": ("bike", "tricycle", "unicycle", "mountain bike"),
    "car": ("automobile", "sedan", "suv", "taxi", "cab", "van", "minivan", "jeep", "hatchback", "convertible",
            "limousine", "coupe"),
    "motorcycle": ("motorbike", "motor bike", "scooter", "moped", "dirt bike"),
    "airplane": ("plane", "aeroplane", "jet", "jetliner", "airliner", "aircraft", "airbus", "biplane",
                 "seaplane", "air plane"),
    "bus": ("minibus", "trolley", "double decker"),
    "train": ("locomotive", "tram", "subway", "railcar", "streetcar"),
    "truck": ("lorry", "pickup", "pickup truck", "fire truck", "firetruck", "dump truck"),
    "boat": ("ship", "sailboat", "yacht", "canoe", "kayak", "ferry", "vessel", "motorboat", "speedboat",
             "rowboat", "tugboat", "raft", "barge", "gondola"),
    "traffic light": ("stoplight", "stop light", "traffic signal", "streetlight", "street light"),
    "fire hydrant": ("hydrant",),
    "stop sign": (),
    "parking meter": (),
    "bench": ("pew", "park bench"),
    "bird": ("pigeon", "seagull", "gull", "duck", "goose", "swan", "parrot", "owl", "eagle", "hawk",
             "sparrow", "crow", "chicken", "hen", "rooster", "flamingo", "pelican", "heron", "penguin",
             "turkey", "peacock"),
    "cat": ("kitten", "kitty", "feline", "tabby"),
    "dog": ("puppy", "pup", "canine", "terrier", "retriever", "labrador", "poodle", "bulldog", "beagle",
            "collie", "husky", "pug", "dachshund", "chihuahua", "sheepdog", "hound"),
    "horse": ("pony", "foal", "colt", "stallion", "mare"),
    "sheep": ("lamb", "ram", "ewe"),
    "cow": ("cattle", "calf", "bull", "ox", "steer", "heifer"),
    "elephant": (),
    "bear": ("grizzly", "polar bear", "panda"),
    "zebra": (),
    "giraffe": (),
    "backpack": ("knapsack", "rucksack"),
    "umbrella": ("parasol",),
    "handbag": ("purse", "clutch", "tote bag"),
    "tie": ("necktie", "bow tie"),
    "suitcase": ("luggage", "suit case", "baggage"),
    "frisbee": ("flying disc",),
    "skis": ("ski",),
    "snowboard": (),
    "sports ball": ("ball", "football", "soccer ball", "baseball", "basketball", "tennis ball", "volleyball"),
    "kite": (),
    "baseball bat": ("bat",),
    "baseball glove": ("glove", "mitt"),
    "skateboard": (),
    "surfboard": ("surf board", "longboard", "bodyboard"),
    "tennis racket": ("racket", "racquet"),
    "bottle": (),
    "wine glass": ("wineglass",),
    "cup": ("mug", "teacup"),
    "fork": (),
    "knife": (),
    "spoon": (),
    "bowl": (),
    "banana": (),
    "apple": (),
    "sandwich": ("burger", "hamburger", "cheeseburger", "sub", "panini"),
    "orange": ("tangerine", "mandarin"),
    "broccoli": (),
    "carrot": (),
    "hot dog": ("hotdog",),
    "pizza": (),
    "donut": ("doughnut",),
    "cake": ("cupcake", "cheesecake"),
    "chair": ("stool", "seat", "armchair"),
    "couch": ("sofa", "loveseat", "settee"),
    "potted plant": ("houseplant", "plant pot", "flower pot", "flowerpot"),
    "bed": (),
    "dining table": ("table", "desk"),
    "toilet": ("urinal", "toilet seat"),
    "tv": ("television", "monitor", "tv screen", "flat screen"),
    "laptop": ("notebook", "macbook", "laptop computer"),
    "mouse": (),
    "remote": ("remote control", "controller"),
    "keyboard": (),
    "cell phone": ("cellphone", "phone", "smartphone", "mobile phone", "iphone", "telephone"),
    "microwave": (),
    "oven": ("stove", "stovetop"),
    "toaster": (),
    "sink": (),
    "refrigerator": ("fridge", "freezer"),
    "book": (),
    "clock": (),
    "vase": (),
    "scissors": ("scissor",),
    "teddy bear": ("teddy", "stuffed bear"),
    "hair drier": ("hair dryer", "hairdryer", "blow dryer"),
    "toothbrush": ("tooth brush",),
}

# Supercategories whose words a preceding person word may qualify (``baby elephant``, ``passenger jet``).
QUALIFIED = {"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
             "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat"}
QUALIFIERS = ("baby", "adult", "passenger", "mother", "father")
NOT_OBJECTS = ("train track", "train station", "bus stop", "bus station", "tennis court", "baseball field",
               "baseball diamond", "home plate", "cake stand", "computer desk")  # places and parts, not objects
_IRREGULAR = {"men": "man", "women": "woman", "children": "child", "people": "people", "mice": "mouse",
              "geese": "goose", "oxen": "ox", "knives": "knife", "teeth": "tooth", "feet": "foot",
              "wives": "wife", "calves": "calf", "ties": "tie", "tvs": "tv", "skis": "skis",
              "scissors": "scissors", "glasses": "glass",
              "buses": "bus", "bus": "bus", "ladies": "lady", "puppies": "puppy", "ponies": "pony",
              "sheep": "sheep", "cattle": "cattle", "species": "species", "series": "series"}
_WORD = re.compile(r"[a-z]+")


def singular(word: str) -> str:
    """A lowercase word's singular (English plural rules plus the irregular forms captions use).

    Args:
        word: one lowercase word.

    Returns:
        Its singular form (the word itself when it is not a plural).
    """
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


def words_of(text: str) -> list[str]:
    """Lowercase singular words of ``text``.

    Args:
        text: a caption or phrase (any object; ``str()`` is taken).

    Returns:
        The words, lowercased and made singular by :func:`singular`, in order.
    """
    return [singular(w) for w in _WORD.findall(str(text).lower())]


def _phrase_table() -> dict[tuple[str, ...], str | None]:
    table: dict[tuple[str, ...], str | None] = {}
    for category, others in SYNONYMS.items():
        for name in (category, *others):
            table[tuple(words_of(name))] = category
    for phrase in NOT_OBJECTS:
        table[tuple(words_of(phrase))] = None
    return table


PHRASES = _phrase_table()
LONGEST = max(len(p) for p in PHRASES)


@dataclass(frozen=True)
class Mention:
    """One object mention: the words as matched, the COCO category, and the word index it starts at."""

    words: str
    category: str
    index: int


def mentions(text: str) -> list[Mention]:
    """Every COCO object mention of ``text``, in order (module rules).

    Args:
        text: a caption.

    Returns:
        One :class:`Mention` per object phrase (longest match first; qualifier words and
        non-object phrases dropped).
    """
    words = words_of(text)
    found, i = [], 0
    while i < len(words):
        for n in range(min(LONGEST, len(words) - i), 0, -1):
            key = tuple(words[i:i + n])
            if key in PHRASES:
                if PHRASES[key] is not None:
                    found.append(Mention(" ".join(key), PHRASES[key], i))
                i += n
                break
        else:
            i += 1
    kept = [m for j, m in enumerate(found)
            if not (m.words in QUALIFIERS and j + 1 < len(found) and found[j + 1].index == m.index + 1
                    and found[j + 1].category in QUALIFIED)]
    if any(m.category == "toilet" for m in kept):
        kept = [m for m in kept if m.words != "seat"]
    return kept


def objects_in(texts: Iterable[str]) -> set[str]:
    """The COCO categories mentioned anywhere in ``texts`` (e.g. an image's reference captions).

    Args:
        texts: captions or object names.

    Returns:
        The set of COCO category names.
    """
    return {m.category for text in texts for m in mentions(text)}


@dataclass(frozen=True)
class CaptionScore:
    """One caption against its image's ground-truth objects."""

    mentioned: tuple[str, ...]  # category of each mention, in order
    hallucinated: tuple[str, ...]  # categories of the hallucinated mentions, in order

    @property
    def has_hallucination(self) -> bool:
        """Whether the caption mentions any object absent from its image (CHAIR_s's numerator)."""
        return bool(self.hallucinated)


def score_caption(caption: str, truth: set[str]) -> CaptionScore:
    """The mentions of one caption and which of them are hallucinated.

    Args:
        caption: a generated caption.
        truth: the image's ground-truth COCO categories.

    Returns:
        A :class:`CaptionScore`: the category of each mention and those not in ``truth``.
    """
    found = [m.category for m in mentions(caption)]
    return CaptionScore(tuple(found), tuple(c for c in found if c not in truth))


def chair(captions: Iterable[str], truths: Iterable[set[str]]) -> dict[str, float]:
    """CHAIR_s and CHAIR_i (fractions) of ``captions`` against each image's ground-truth object set,
    with the counts they come from.

    Args:
        captions: generated captions, one per image.
        truths: each image's ground-truth category set, aligned with ``captions``.

    Returns:
        ``{"chair_s", "chair_i", "captions", "hallucinated_captions", "mentions",
        "hallucinated_mentions"}``: CHAIR_s = captions with a hallucination / captions,
        CHAIR_i = hallucinated mentions / mentions (0 where a denominator is 0).
    """
    scores = [score_caption(c, t) for c, t in zip(captions, truths)]
    n_mentions = sum(len(s.mentioned) for s in scores)
    n_hallucinated = sum(len(s.hallucinated) for s in scores)
    n_bad = sum(s.has_hallucination for s in scores)
    return {"chair_s": n_bad / len(scores) if scores else 0.0,
            "chair_i": n_hallucinated / n_mentions if n_mentions else 0.0,
            "captions": len(scores), "hallucinated_captions": n_bad, "mentions": n_mentions,
            "hallucinated_mentions": n_hallucinated}
