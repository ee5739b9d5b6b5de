"""Explanation consistency: EEA, EPC, FCR (MIGR Eqs. 6-8) and the R✗/A✓ rates (its Table 2).

For sample i with ground truth y_i, prediction ŷ_i (the conclusion's
emotion, as everywhere in modbias) and e_i, the emotion the *explanation*
expresses:

    EEA = mean 1[e_i = y_i]              explanation agrees with the truth
    EPC = mean 1[e_i = ŷ_i]              explanation agrees with the prediction
    FCR = mean 1[e_i = y_i and ŷ_i = y_i]
    R✗/A✓ (all)     = mean 1[e_i ≠ y_i and ŷ_i = y_i]      right answer, wrong reasoning
    R✗/A✓ (correct) = the same count / #{ŷ_i = y_i}

so FCR + R✗/A✓(all) = accuracy.  An explanation with no single emotion
(e_i = None) matches nothing: it counts against EEA, EPC and FCR and, when
the answer is right, as R✗/A✓.

e_i comes from a pluggable *explanation classifier*: any callable
``classifier(explanation: str) -> str | None`` returning one of
:data:`modbias.core.emotions.CLASSES` (or None).  It receives the explanation
only — the text before the conclusion, cut by :func:`modbias.core.emotions.split_conclusion` —
so the conclusion's own emotion word cannot leak into e_i.

- Default, offline: :class:`LexiconClassifier` — the CA-MER class named most
  often in the explanation (lexicon of :mod:`modbias.core.emotions`); a tie (e.g.
  the organism's ``face looks happy , voice sounds sad``) gives None by
  default: the explanation does not commit to one emotion.  ``tie="first"``
  or ``"last"`` breaks ties by order of mention instead.
- An LLM judge, as in the paper (GPT-4.1-mini): wrap any text-in/text-out
  function with :func:`llm_judge`, e.g. ::

      from openai import OpenAI
      client = OpenAI()
      ask = lambda prompt: client.chat.completions.create(
          model="gpt-4.1-mini", temperature=0,
          messages=[{"role": "user", "content": prompt}]).choices[0].message.content
      scores = consistency(ds, classifier=llm_judge(ask))

  or a local model: ``ask = lambda p: pipe(p, max_new_tokens=8, return_full_text=False)[0]["generated_text"]``
  with a transformers ``pipeline("text-generation", ...)``.  The reply is
  parsed with the lexicon (first emotion word); ``cache=True`` (default)
  asks once per distinct explanation.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import xarray as xr

from modbias.core.emotions import CLASSES, emotion_words, group_of, split_conclusion
from modbias.data.sample import SUBSETS

ExplanationClassifier = Callable[[str], "str | None"]
METRICS = ("EEA", "EPC", "FCR", "RxA_all", "RxA_correct")

def named_emotions(text: str) -> list[str]:
    """Groups (CA-MER classes, or ``other:<word>``) of every emotion word in ``text``, in order of mention.

    Args:
        text: an explanation or reply.

    Returns:
        One group per emotion word.
    """
    return [group_of(w) for w in emotion_words(text)]


class LexiconClassifier:
    """The built-in explanation classifier: majority class of the emotion words (see module doc)."""

    def __init__(self, tie: str = "none"):
        if tie not in ("none", "first", "last"):
            raise ValueError(f"tie={tie!r}; expected 'none', 'first' or 'last'")
        self.tie = tie

    def __call__(self, explanation: str) -> str | None:
        named = named_emotions(explanation)
        if not named:
            return None
        counts = Counter(named)
        top = max(counts.values())
        leaders = [c for c in dict.fromkeys(named) if counts[c] == top]
        if len(leaders) == 1:
            return leaders[0]
        if self.tie == "none":
            return None
        order = named if self.tie == "first" else named[::-1]
        return next(c for c in order if c in leaders)

    def __repr__(self) -> str:
        return f"LexiconClassifier(tie={self.tie!r})"


JUDGE_TEMPLATE = ("Which single emotion does the following explanation express? Answer with exactly one word "
                  "from this list: {classes}. If it expresses no single emotion, answer 'none'.\n\n"
                  "Explanation: {explanation}\n\nEmotion:")


def llm_judge(ask: Callable[[str], str], classes: Sequence[str] = CLASSES, template: str = JUDGE_TEMPLATE,
              cache: bool = True) -> ExplanationClassifier:
    """An explanation classifier backed by a text-in/text-out function ``ask`` (an LLM call).

    The prompt is ``template.format(classes=..., explanation=...)``; the reply's
    first emotion word (lexicon of :mod:`modbias.core.emotions`) is the answer,
    kept only if it is one of ``classes``.

    Args:
        ask: prompt → reply.
        classes: the answers accepted.
        template: the prompt, with ``{classes}`` and ``{explanation}``.
        cache: ask once per distinct explanation.

    Returns:
        A classifier ``explanation -> class | None``.
    """
    memo: dict[str, str | None] = {}

    def classify(explanation: str) -> str | None:
        if cache and explanation in memo:
            return memo[explanation]
        reply = ask(template.format(classes=", ".join(classes), explanation=explanation))
        found = [c for c in named_emotions(reply) if c in classes]
        memo[explanation] = found[0] if found else None
        return memo[explanation]

    classify.__name__ = f"llm_judge({getattr(ask, '__name__', 'ask')})"
    return classify


def explanation_emotions(texts: Iterable[str], classifier: ExplanationClassifier | None = None,
                         splitter: Callable[[str], tuple[str, str]] = split_conclusion) -> list[str | None]:
    """e_i for each generated text: ``classifier(splitter(text)[0])``.

    Args:
        texts: generated answers.
        classifier: explanation → emotion (default :class:`LexiconClassifier`).
        splitter: answer → ``(explanation, conclusion)``.

    Returns:
        One emotion (or ``None``) per text.
    """
    classifier = classifier or LexiconClassifier()
    return [classifier(splitter(str(t))[0]) for t in texts]


def consistency_scores(explanation, prediction, label) -> dict[str, float]:
    """EEA, EPC, FCR, R✗/A✓ (all samples, and among correct ones) in [0, 1], plus counts.

    EEA, EPC and FCR are MIGR Eqs. (6)-(8); R✗/A✓ counts right answers whose explanation does not
    name the label.

    Args:
        explanation: e_i per sample (``None`` or ``""``: no single emotion, matches nothing).
        prediction: ŷ_i per sample.
        label: y_i per sample (all three of equal length).

    Returns:
        ``{"EEA", "EPC", "FCR", "RxA_all", "RxA_correct", "accuracy", "n", "n_correct"}`` (``nan`` when empty).
    """
    e = np.array(["" if x is None else str(x) for x in explanation], dtype=object)
    p = np.array(["" if x is None else str(x) for x in prediction], dtype=object)
    y = np.array([str(x) for x in label], dtype=object)
    if not (len(e) == len(p) == len(y)):
        raise ValueError(f"lengths differ: explanation {len(e)}, prediction {len(p)}, label {len(y)}")
    n = len(y)
    e_ok = (e == y) & (e != "")
    e_p = (e == p) & (e != "")
    right = p == y
    rxa = ~e_ok & right
    nan = float("nan")
    return {"EEA": float(e_ok.mean()) if n else nan, "EPC": float(e_p.mean()) if n else nan,
            "FCR": float((e_ok & right).mean()) if n else nan, "RxA_all": float(rxa.mean()) if n else nan,
            "RxA_correct": float(rxa.sum() / right.sum()) if right.any() else nan,
            "accuracy": float(right.mean()) if n else nan, "n": int(n), "n_correct": int(right.sum())}


def with_explanations(ds: xr.Dataset, classifier: ExplanationClassifier | None = None) -> xr.Dataset:
    """``ds`` (a trace / intervene / drift run, or an MI run at one condition) with
    ``explanation_emotion`` (e_i; "" for none) added along ``sample``.

    Args:
        ds: a run with per-sample ``text``.
        classifier: explanation → emotion (default :class:`LexiconClassifier`).

    Returns:
        ``ds`` with the coordinate ``explanation_emotion [sample]``.
    """
    emotions = explanation_emotions(np.asarray(ds.text.values).astype(str).tolist(), classifier)
    return ds.assign_coords(explanation_emotion=("sample", np.array([e or "" for e in emotions], dtype=str)))


def consistency(ds: xr.Dataset | str | Path, classifier: ExplanationClassifier | None = None,
                by: str | None = "subset") -> dict[str, dict[str, float]]:
    """EEA / EPC / FCR / R✗/A✓ of a run, per ``by`` group (default: CA-MER subset) and ``overall``.

    An existing ``explanation_emotion`` coordinate is used as is; otherwise ``classifier``
    is applied.  An MI run is read at its ``audio_visual`` condition.

    >>> scores = consistency(modbias.open_run("cache/trace-..."))       # doctest: +SKIP
    >>> scores["video_aligned"]["EEA"], scores["overall"]["RxA_correct"]

    Args:
        ds: a run with per-sample ``text``, ``prediction`` and ``label``, or a store path.
        classifier: explanation → emotion (default :class:`LexiconClassifier`).
        by: a per-sample coordinate to group by (``None``: overall only).

    Returns:
        ``{group: consistency_scores(...)}`` plus ``"overall"``, values in [0, 1].
    """
    if isinstance(ds, (str, Path)):
        from modbias.runs.store import open_run

        ds = open_run(ds)
    if "condition" in ds.dims:
        ds = ds.sel(condition="audio_visual")
    if "explanation_emotion" not in ds.coords and "explanation_emotion" not in ds:
        ds = with_explanations(ds, classifier)
    e = np.asarray(ds.explanation_emotion.values).astype(str)
    p = np.asarray(ds.prediction.values).astype(str)
    y = np.asarray(ds.label.values).astype(str)
    out = {}
    if by is not None:
        keys = np.asarray(ds[by].values).astype(str)
        present = list(dict.fromkeys(keys.tolist()))
        known = SUBSETS + ("audio", "visual", "both", "neither")  # CA-MER subsets, then MI labels
        order = [s for s in known if s in present] + [s for s in present if s not in known]
        for name in order:
            pick = keys == name
            out[name] = consistency_scores(e[pick], p[pick], y[pick])
    out["overall"] = consistency_scores(e, p, y)
    return out


def run_name_of(ds: xr.Dataset) -> str:
    """A short label for a run: its intervention stack (``none`` for a plain run), as store names spell it.

    Args:
        ds: a run (its ``attrs["config"]["interventions"]``).

    Returns:
        E.g. ``"none"``, ``"ar-tau1.0"`` (:func:`modbias.runs.identity.intervention_label`).
    """
    from modbias.runs.identity import intervention_label

    return intervention_label((ds.attrs.get("config", {}) or {}).get("interventions", []))


def consistency_runs(runs, classifier: ExplanationClassifier | None = None, by: str | None = "subset",
                     names: Sequence[str] | None = None) -> xr.Dataset:
    """Consistency metrics of several runs (e.g. the baseline and intervention runs).

    Run names default to the intervention stack (``none``, ``ar-tau1.0`` ...), made unique by the
    store name when needed.

    Args:
        runs: store paths or Datasets, or a dict ``{name: run}``.
        classifier: explanation → emotion.
        by: a per-sample coordinate to group by.
        names: the runs' names.

    Returns:
        A Dataset with one float variable per metric (and ``accuracy``, ``n``, ``n_correct``) over ``(run, group)``.
    """
    from modbias.runs.store import open_run

    if isinstance(runs, dict):
        names, runs = list(runs), list(runs.values())
    loaded = [open_run(r) if isinstance(r, (str, Path)) else r for r in runs]
    if names is None:
        names = [run_name_of(ds) for ds in loaded]
        if len(set(names)) < len(names):
            names = [f"{n} ({Path(str(ds.attrs.get('path', i))).name})" for i, (n, ds) in enumerate(zip(names, loaded))]
    scores = [consistency(ds, classifier, by) for ds in loaded]
    groups = list(dict.fromkeys(g for s in scores for g in s))
    fields = list(METRICS) + ["accuracy", "n", "n_correct"]
    data = {f: (("run", "group"), np.array([[s.get(g, {}).get(f, np.nan) for g in groups] for s in scores],
                                            dtype=np.float64)) for f in fields}
    return xr.Dataset(data, coords={"run": list(names), "group": groups})


def consistency_table(scores: dict[str, dict[str, float]], title: str = ""):
    """Rich table of :func:`consistency` output, in %.

    Args:
        scores: :func:`consistency`'s output.
        title: the table's title.

    Returns:
        A ``rich.table.Table``.
    """
    from rich.table import Table

    table = Table(title=title)
    for name in ("group", "n", "Correct", "EEA", "EPC", "FCR", "R✗/A✓ all", "R✗/A✓ correct"):
        table.add_column(name, justify="left" if name == "group" else "right", no_wrap=name == "group")
    for group, s in scores.items():
        table.add_row(group, str(s["n"]), *(f"{100 * s[k]:.1f}" for k in ("accuracy", *METRICS)))
    return table
