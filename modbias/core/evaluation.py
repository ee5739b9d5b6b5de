"""Evaluation on conflict subsets (CA-MER Table 1) and recognition metrics.

Two views of a generated answer, both read from its *final conclusion*
(Sec. 6.1: keywords are extracted "from the final conclusion of generated
explanations"; :func:`modbias.core.emotions.split_conclusion`, a per-family rule):

- the *prediction*: the conclusion's emotion, used for ``correct`` ("hit")
  and the recognition metrics (weighted F1, UAR, WAR);
- the *predicted label set* Ŷ: the emotion words of the conclusion mapped
  through a grouper G (App. C.1, Eq. 22).  Set-level accuracy |Y∩Ŷ|/|Ŷ| and
  recall |Y∩Ŷ|/|Y| (Eq. 23) are averaged over samples and their mean is "Avg"
  (Eq. 24), as in Table 1.  An answer naming no emotion scores 0 on both.

``scope="answer"`` reads Ŷ from the whole answer instead (every emotion it
names).  Words outside the nine classes form groups of their own
(``other:<word>``): they count in |Ŷ| and never match a label, so a
conclusion "bored" lowers Acc instead of vanishing.
"""

from __future__ import annotations

import importlib
from typing import Iterable, Literal, Protocol

import numpy as np
import xarray as xr

from modbias.core.emotions import FAMILY_CONCLUSION, conclusion, emotion_words, group_of

METRICS = ("acc", "rec", "avg")
SCOPES = ("conclusion", "answer")
Scope = Literal["conclusion", "answer"]


class Grouper(Protocol):
    """G(·) of Eq. (22): maps an open-vocabulary emotion word to its synonym group (None: not an emotion)."""

    def __call__(self, word: str) -> str | None: ...


def lexicon_grouper(word: str) -> str | None:
    """The built-in grouper: the CA-MER class whose lexicon holds ``word``, else ``other:<word>``.

    Args:
        word: an emotion word.

    Returns:
        Its group (Eq. 22's G(word)).
    """
    return group_of(word)


def load_grouper(spec: str | None) -> Grouper:
    """A grouper named ``module:function`` (``None``: the built-in :func:`lexicon_grouper`).

    Args:
        spec: ``"module:function"`` naming a callable ``word -> group | None``, or ``None``/``""``.

    Returns:
        The grouper; a spec that cannot be imported or called raises ``ValueError`` naming it.
    """
    if not spec:
        return lexicon_grouper
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise ValueError(f"grouper {spec!r}: expected 'module:function'")
    try:
        grouper = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"grouper {spec!r} cannot be loaded: {error}") from error
    if not callable(grouper):
        raise ValueError(f"grouper {spec!r} is not callable")
    return grouper


def grouper_name(grouper: Grouper) -> str:
    """The ``module:qualname`` a grouper is recorded under in a run's summary.

    Args:
        grouper: a :class:`Grouper`.

    Returns:
        ``"module:qualname"`` (``?`` where the object has no module).
    """
    return f"{getattr(grouper, '__module__', '?')}:{getattr(grouper, '__qualname__', type(grouper).__name__)}"


def predicted_set(text: str, grouper: Grouper = lexicon_grouper, scope: Scope = "conclusion",
                  rule: str = "auto") -> set[str]:
    """Ŷ^m of Eq. (22): the groups of the emotion words of the conclusion (``scope="answer"``: of the whole text).

    >>> sorted(predicted_set("face looks happy , voice sounds sad , so feels sad ."))
    ['sad']
    >>> sorted(predicted_set("face looks happy , voice sounds sad , so feels sad .", scope="answer"))
    ['happy', 'sad']

    Args:
        text: the generated answer.
        grouper: G, mapping a word to its group (``None``: not an emotion).
        scope: ``"conclusion"`` (Sec. 6.1) or ``"answer"``.
        rule: the conclusion rule (:data:`modbias.core.emotions.CONCLUSION_RULES`).

    Returns:
        The set of groups.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope {scope!r}; expected one of {SCOPES}")
    part = conclusion(text, rule) if scope == "conclusion" else str(text)
    return {g for g in (grouper(w) for w in emotion_words(part)) if g is not None}


def set_scores(truth: Iterable[str], predicted: set[str], grouper: Grouper = lexicon_grouper) -> tuple[float, float]:
    """(accuracy, recall) of one sample, Eq. (23).

    Args:
        truth: the sample's labels (Y before grouping).
        predicted: Ŷ, already grouped (:func:`predicted_set`).
        grouper: G, applied to ``truth``.

    Returns:
        ``(|Y∩Ŷ|/|Ŷ|, |Y∩Ŷ|/|Y|)``, each 0 when its denominator is empty.
    """
    truth_groups = {g for g in (grouper(t) for t in truth) if g is not None}
    hit = len(truth_groups & predicted)
    return (hit / len(predicted) if predicted else 0.0, hit / len(truth_groups) if truth_groups else 0.0)


def sample_scores(texts, labels, grouper: Grouper = lexicon_grouper, scope: Scope = "conclusion",
                  rule: str = "auto") -> np.ndarray:
    """``[N, 2]`` set-level (accuracy, recall) per sample; labels may be strings or label lists.

    Args:
        texts: ``N`` generated answers.
        labels: ``N`` labels, each a string or a list of strings.
        grouper: G (Eq. 22).
        scope: ``"conclusion"`` or ``"answer"``.
        rule: the conclusion rule.

    Returns:
        float64 ``[N, 2]``: Eq. (23)'s accuracy and recall per sample.
    """
    out = [set_scores([lab] if isinstance(lab, str) else lab, predicted_set(str(t), grouper, scope, rule), grouper)
           for t, lab in zip(texts, labels)]
    return np.asarray(out, dtype=np.float64).reshape(-1, 2)


def conclusion_rule(ds: xr.Dataset) -> str:
    """The conclusion rule of the run's model family (:data:`modbias.core.emotions.FAMILY_CONCLUSION`).

    Args:
        ds: a run Dataset whose ``attrs["config"]["model"]["family"]`` names the family.

    Returns:
        ``"answer"`` or ``"auto"``.
    """
    model = ds.attrs.get("config", {}).get("model", {}) if isinstance(ds.attrs.get("config"), dict) else {}
    return FAMILY_CONCLUSION.get(model.get("family", ""), "auto")


def subset_metrics(ds: xr.Dataset, grouper: Grouper = lexicon_grouper, scope: Scope = "conclusion"
                   ) -> dict[str, dict[str, float]]:
    """Per subset and ``overall``: acc, rec, avg (Eqs. 23-24, in %) and hit (conclusion == label, %).

    Args:
        ds: a run Dataset with ``text``, ``label``, ``subset`` and ``correct`` over ``sample``.
        grouper: G (Eq. 22).
        scope: ``"conclusion"`` or ``"answer"``.

    Returns:
        ``{subset: {"acc", "rec", "avg", "hit", "n"}}`` plus ``"overall"`` (with ``"gap"`` =
        audio_aligned avg − video_aligned avg when both subsets are present).
    """
    scores = sample_scores(ds.text.values, ds.label.values, grouper, scope, conclusion_rule(ds))
    subsets = np.asarray(ds.subset.values).astype(str)
    correct = np.asarray(ds.correct.values).astype(bool)
    out = {}
    for name in list(dict.fromkeys(subsets.tolist())) + ["overall"]:
        pick = np.ones(len(subsets), bool) if name == "overall" else subsets == name
        acc, rec = (float(x) for x in scores[pick].mean(0) * 100)
        out[name] = {"acc": acc, "rec": rec, "avg": (acc + rec) / 2, "hit": float(correct[pick].mean() * 100),
                     "n": int(pick.sum())}
    if "video_aligned" in out and "audio_aligned" in out:
        out["overall"]["gap"] = out["audio_aligned"]["avg"] - out["video_aligned"]["avg"]
    return out


def deltas(run: dict, baseline: dict) -> dict[str, dict[str, float]]:
    """run − baseline for every shared subset and metric.

    Args:
        run: :func:`subset_metrics` of an intervened run.
        baseline: :func:`subset_metrics` of its baseline.

    Returns:
        ``{subset: {metric: difference}}`` over the subsets and metrics both have (``n`` left out).
    """
    return {s: {m: run[s][m] - baseline[s][m] for m in run[s] if m != "n" and m in baseline.get(s, {})}
            for s in run if s in baseline}


def recognition_metrics(truth, predicted, classes=None) -> dict[str, float]:
    """Single-label recognition: weighted F1 (MER2023), UAR and WAR (DFEW), in [0, 1].

    UAR is the mean of per-class recalls, WAR the overall accuracy (recall
    weighted by class frequency); weighted F1 weights each class's F1 by its support
    (MIGR Eqs. 4-5 for WAR and UAR).

    Args:
        truth: ``N`` true labels.
        predicted: ``N`` predicted labels (``None`` counts as wrong).
        classes: the classes to average over (default: those in ``truth``).

    Returns:
        ``{"weighted_f1", "uar", "war"}`` (UAR over classes present in ``truth``).
    """
    truth, predicted = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)
    classes = list(classes) if classes is not None else sorted(set(truth.tolist()))
    recalls, f1s, supports = [], [], []
    for c in classes:
        tp = np.sum((truth == c) & (predicted == c))
        support, npred = np.sum(truth == c), np.sum(predicted == c)
        recall = tp / support if support else 0.0
        precision = tp / npred if npred else 0.0
        recalls.append(recall)
        f1s.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        supports.append(support)
    supports = np.asarray(supports, dtype=np.float64)
    present = supports > 0
    return {"weighted_f1": float(np.dot(f1s, supports) / supports.sum()),
            "uar": float(np.mean(np.asarray(recalls)[present])),
            "war": float(np.mean(truth == predicted))}
