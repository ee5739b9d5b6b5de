"""CA-MER's subset construction (MoSEAR paper, Sec. 3 / App. A, Stage 2: majority voting).

Each sample carries three labels over the nine CA-MER classes: the visual
(video-only), the audio (audio-only) and the multimodal one.  The final label
is their majority, and the subset follows from which labels agree:

==========================  ===============  ==============
labels                      subset           final label
==========================  ===============  ==============
V = M ≠ A                   video_aligned    V (= M)
A = M ≠ V                   audio_aligned    A (= M)
V = A = M                   consistent       M
V, A, M all different       discarded        – ("fully inconsistent")
V = A ≠ M                   discarded        – (majority against the multimodal label)
==========================  ===============  ==============

The last row is not named by the paper: its majority label is carried by the
two unimodal labels alone, so the sample fits none of the three subsets
(each needs the multimodal label to agree); it is discarded and counted apart.

Input: a table (``.jsonl``/``.json``/``.csv``/``.tsv``) with an id column
(``id``/``name``), ``visual_label`` (or ``visual_emotion``/``video_label``),
``audio_label`` (or ``audio_emotion``) and ``multimodal_label`` (or
``multimodal_emotion``/``label``); every other column (subtitle, media and
feature paths, reasoning) is kept.  Output: a CA-MER-style annotation file
read by :func:`modbias.data.readers.read_camer`.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from modbias.data.readers import _first, normalise_label, read_table
from modbias.data.sample import SampleError

LABEL_COLUMNS = {"visual": ("visual_label", "visual_emotion", "video_label", "video_emotion"),
                 "audio": ("audio_label", "audio_emotion"),
                 "multimodal": ("multimodal_label", "multimodal_emotion", "label")}
DISCARDED = ("fully_inconsistent", "unimodal_majority")


def assign_subset(visual: str, audio: str, multimodal: str) -> tuple[str, str | None]:
    """``(subset, final label)`` of one sample by Stage 2's rule (module table); discarded samples get
    ``(reason, None)`` with the reason in :data:`DISCARDED`.

    Args:
        visual: the visual-only label.
        audio: the audio-only label.
        multimodal: the audio-visual label.

    Returns:
        ``("consistent" | "video_aligned" | "audio_aligned", label)`` or ``(reason, None)``.
    """
    if visual == audio == multimodal:
        return "consistent", multimodal
    if visual == multimodal:
        return "video_aligned", multimodal
    if audio == multimodal:
        return "audio_aligned", multimodal
    if visual == audio:
        return "unimodal_majority", None
    return "fully_inconsistent", None


@dataclass
class Construction:
    """The kept rows (CA-MER annotation rows) and the count of each subset and discard reason."""

    rows: list[dict] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    @property
    def discarded(self) -> int:
        """How many rows Stage 2 discarded (all reasons together)."""
        return sum(self.counts[r] for r in DISCARDED)


def build_subsets(rows: list[dict]) -> Construction:
    """Apply Stage 2 to every row; a missing or unknown label raises a :class:`SampleError` naming the
    sample and the column.

    Args:
        rows: per-sample rows with an id and visual, audio and multimodal label columns (:data:`LABEL_COLUMNS`).

    Returns:
        The kept rows as CA-MER annotation rows, and the count of each subset and discard reason.
    """
    out, seen = Construction(), set()
    for n, row in enumerate(rows, 1):
        sid = str(_first(row, "id", "name", "video_id", default=f"<row {n}>"))
        if sid in seen:
            raise SampleError(sid, "id", "duplicate id")
        seen.add(sid)
        labels = {}
        for kind, names in LABEL_COLUMNS.items():
            value = _first(row, *names)
            if value is None:
                raise SampleError(sid, names[0], f"no {kind} label (columns {', '.join(names)})")
            column = next(name for name in names if row.get(name) not in (None, ""))
            labels[kind] = normalise_label(sid, value, column)
        subset, label = assign_subset(labels["visual"], labels["audio"], labels["multimodal"])
        out.counts[subset] += 1
        if label is None:
            continue
        kept = {k: v for k, v in row.items() if k not in {c for cs in LABEL_COLUMNS.values() for c in cs}}
        out.rows.append({"id": sid, **{k: v for k, v in kept.items() if k not in ("id", "name", "video_id")},
                         "subset": subset, "label": label, "visual_emotion": labels["visual"],
                         "audio_emotion": labels["audio"], "multimodal_emotion": labels["multimodal"]})
    return out


def _cell(value) -> str:
    """A CSV cell as the CA-MER reader parses it (named feature paths as ``name=path;name=path``)."""
    if isinstance(value, dict):
        return ";".join(f"{k}={v}" for k, v in value.items())
    return json.dumps(value) if isinstance(value, list) else value


def write_annotations(rows: list[dict], path: str | Path) -> Path:
    """Rows as a ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` annotation file (format from the suffix).

    Args:
        rows: annotation rows.
        path: the file to write (folders are made).

    Returns:
        ``path``.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif suffix == ".json":
        path.write_text(json.dumps(rows, indent=1))
    elif suffix in (".csv", ".tsv"):
        columns = list(dict.fromkeys(k for r in rows for k in r))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns, delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows({k: _cell(v) for k, v in r.items()} for r in rows)
    else:
        raise ValueError(f"{path}: unsupported annotation format {suffix!r} (jsonl, json, csv, tsv)")
    return path


def camer_subsets(labels: str | Path, out: str | Path) -> Construction:
    """Read the per-sample labels, assign subsets (Stage 2) and write the annotation file ``out``.

    Args:
        labels: a label table readable by :func:`~modbias.data.readers.read_table`.
        out: the annotation file to write (not ``labels`` itself).

    Returns:
        The :class:`Construction` (kept rows and counts).
    """
    labels, out = Path(labels), Path(out)
    if labels.resolve() == out.resolve():
        raise ValueError(f"{out} is the label file itself; choose another output")
    construction = build_subsets(read_table(labels))
    write_annotations(construction.rows, out)
    return construction
