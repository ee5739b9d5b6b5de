"""Benchmark readers with a validating loader: CA-MER-style annotations, MER2023, EMER, DFEW.

Every reader turns a dataset on disk into :class:`~modbias.data.sample.Sample`
objects; problems are :class:`~modbias.data.sample.SampleError` naming the
sample and the field (missing file, unknown label, wrong, empty or non-finite
features, a path outside the dataset, a line that is not a JSON object,
duplicate id).  :func:`load` stops at the first problem and raises only
``SampleError``, :class:`~modbias.data.sample.DatasetError` (a file that cannot
be read as its layout) or ``FileNotFoundError``; :func:`check` (``modbias data
check PATH``) lists every problem without running a model and never raises.
Paths inside annotations must stay inside the dataset folder.

Layouts read (paths inside annotation files are relative to the file):

- ``camer`` — a CA-MER-style annotation file (``.jsonl``, ``.json``, ``.csv``, ``.tsv``),
  one row per sample: ``id``, ``subset`` (video_aligned | audio_aligned |
  consistent), ``label``, optional ``subtitle``, ``video``, ``audio``, ``image``,
  ``visual_features`` / ``audio_features`` (a ``.npy`` path, or several
  streams as ``{"name": path}`` in JSON or ``name=path;name=path`` in CSV),
  ``reasoning``, ``visual_emotion``, ``audio_emotion``.
- ``mer2023`` — Emotion-LLaMA's layout: ``<encoder_dir>/<clip>.npy`` per encoder
  (default FaceMAE ``mae_340_UTT``, VideoMAE ``maeV_399_UTT``, HuBERT ``HL-UTT``),
  an annotation ``.txt`` with lines ``<clip> <frames> <label>`` and a transcript
  CSV with columns ``name, sentence`` (``transcription_en_all.csv``).
- ``emer`` — MER2023 clips plus reference reasoning: a CSV with ``name`` and a
  reasoning column (``reason`` | ``reasoning`` | ``english`` | ``description``)
  and optionally ``label``; the reasoning goes to ``extra["reference_reasoning"]``.
- ``dfew`` — DFEW: a split CSV with ``video_name`` (or ``name``) and ``label``
  (1-7 or a name), clips in ``video_dir``; single label, 7 classes.  DFEW's
  ``disgust`` has no CA-MER class and is read as ``contempt`` (the original is
  kept in ``extra["source_label"]``); ``extra["label_options"]`` lists the seven classes for the
  recognition prompt (:func:`modbias.data.prompts.instruction_for`).

A dataset folder may carry ``modbias_benchmark.json`` with the reader name and
its options (e.g. ``{"reader": "mer2023", "encoders": {...}}``).

Features of several streams of one modality (Emotion-LLaMA's EVA, FaceMAE,
VideoMAE) are packed into one array (:func:`pack_streams`); media-only
modalities get a ``[1, 0]`` placeholder (see :func:`modbias.data.media.media_copies`).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from modbias.core.emotions import CLASSES
from modbias.data.provenance import files_read, fingerprints, note_read
from modbias.data.sample import SUBSETS, Benchmark, DatasetError, Sample, SampleError

CONFIG_FILE = "modbias_benchmark.json"
LABEL_ALIASES = {"worried": "worry", "surprised": "surprise", "anger": "angry", "happiness": "happy",
                 "sadness": "sad", "fearful": "fear", "afraid": "fear", "doubtful": "doubt"}
DFEW_CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")  # label 1..7
DFEW_TO_CAMER = {"disgust": "contempt"}
MER2023_ENCODERS = {"face_mae": ("mae_340_UTT", "visual"), "video_mae": ("maeV_399_UTT", "visual"),
                    "hubert": ("HL-UTT", "audio")}
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset (``sample_id`` is empty for file-level problems)."""

    sample_id: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"sample {self.sample_id!r}, field {self.field!r}: {self.message}" if self.sample_id else \
            f"{self.field}: {self.message}"


@dataclass
class Entry:
    """A sample to be built: its id and a function that builds (and validates) it."""

    id: str
    build: Callable[[], Sample]


# -- feature streams -------------------------------------------------------------------------------
def as_tokens(sample_id: str, field_name: str, array) -> np.ndarray:
    """Features as ``[tokens, dim]`` float32 (a 1-D vector is one token).

    Args:
        sample_id: the sample, for errors.
        field_name: the field, for errors.
        array: ``[dim]`` or ``[tokens, dim]`` real numbers.

    Returns:
        float32 ``[tokens, dim]``; a wrong shape, dtype, no tokens or a non-finite value raises
        :class:`SampleError` naming sample and field.
    """
    array = np.asarray(array)
    if array.ndim == 1:
        array = array[None]
    if array.ndim != 2 or array.shape[1] == 0:
        raise SampleError(sample_id, field_name, f"expected [dim] or [tokens, dim] features, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise SampleError(sample_id, field_name, f"features of dtype {array.dtype} are not real numbers")
    if array.shape[0] == 0:
        raise SampleError(sample_id, field_name, f"no feature tokens (shape {array.shape})")
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise SampleError(sample_id, field_name, f"{int((~np.isfinite(array)).sum())} feature values are NaN or inf "
                                                 "(or too large for float32)")
    return array


def pack_streams(sample_id: str, modality: str, streams: dict[str, np.ndarray]) -> tuple[np.ndarray, list[list]]:
    """Stack a modality's streams along tokens, zero-padded to the widest: ``(array, [[name, tokens, dim], ...])``.

    Args:
        sample_id: the sample, for errors.
        modality: ``"visual"`` or ``"audio"``.
        streams: ``{name: [tokens_i, dim_i]}`` in order.

    Returns:
        ``(float32 [Σ tokens_i, max dim_i], [[name, tokens_i, dim_i], ...])``.
    """
    arrays = {name: as_tokens(sample_id, f"{modality}_features.{name}", a) for name, a in streams.items()}
    width = max(a.shape[1] for a in arrays.values())
    packed = np.zeros((sum(a.shape[0] for a in arrays.values()), width), np.float32)
    meta, start = [], 0
    for name, a in arrays.items():
        packed[start:start + a.shape[0], :a.shape[1]] = a
        meta.append([name, int(a.shape[0]), int(a.shape[1])])
        start += a.shape[0]
    return packed, meta


def unpack_streams(sample: Sample, modality: str, default: list[list] | None = None) -> dict[str, np.ndarray]:
    """The streams of ``sample.<modality>`` by name (inverse of :func:`pack_streams`).

    Copies made by row-wise repetition (audio duplication repeats every row k
    times) stay with their stream; zero rows give empty streams.

    Args:
        sample: a sample whose ``extra["streams"][modality]`` describes the packing.
        modality: ``"visual"`` or ``"audio"``.
        default: the description for arrays without one (``tokens`` ``None`` for a single
            stream taking all rows).

    Returns:
        ``{name: [k·tokens, dim]}`` (``k`` copies), ``{}`` when nothing describes the array.
    """
    array = getattr(sample, modality)
    meta = sample.extra.get("streams", {}).get(modality, default)
    if meta is None:
        return {}
    if len(meta) == 1 and meta[0][1] is None:
        return {meta[0][0]: array[:, :meta[0][2]] if array.shape[1] >= meta[0][2] else array}
    if any(tokens is None for _, tokens, _ in meta):
        raise SampleError(sample.id, f"{modality}_features",
                          "several streams without token counts: the sample must name its streams")
    base = sum(tokens for _, tokens, _ in meta)
    if base == 0 or array.shape[0] % base:
        raise SampleError(sample.id, f"{modality}_features",
                          f"{array.shape[0]} rows are not a multiple of the streams' {base} tokens {meta}")
    copies, start, out = array.shape[0] // base, 0, {}
    for name, tokens, dim in meta:
        if array.shape[0] and array.shape[1] < dim:
            raise SampleError(sample.id, f"{modality}_features.{name}",
                              f"packed width {array.shape[1]} < stream width {dim}")
        out[name] = array[start * copies:(start + tokens) * copies, :dim]
        start += tokens
    return out


# -- shared validation -----------------------------------------------------------------------------
def normalise_label(sample_id: str, value, field_name: str = "label", aliases: dict | None = None) -> str:
    """A label as one of the CA-MER classes (case, spacing and :data:`LABEL_ALIASES` forgiven).

    Args:
        sample_id: the sample, for errors.
        value: the label as read.
        field_name: the field, for errors.
        aliases: further ``{spelling: class}``.

    Returns:
        The class name; anything else raises :class:`SampleError`.
    """
    text = str(value).strip().lower()
    text = {**LABEL_ALIASES, **(aliases or {})}.get(text, text)
    if text not in CLASSES:
        raise SampleError(sample_id, field_name, f"unknown label {value!r}; expected one of {CLASSES}")
    return text


def normalise_subset(sample_id: str, value) -> str:
    """A subset name as one of ``SUBSETS`` or ``train`` (``-`` and spaces read as ``_``).

    Args:
        sample_id: the sample, for errors.
        value: the subset as read.

    Returns:
        The subset name; anything else raises :class:`SampleError`.
    """
    text = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    if text not in SUBSETS + ("train",):
        raise SampleError(sample_id, "subset", f"unknown subset {value!r}; expected one of {SUBSETS}")
    return text


def existing(sample_id: str, field_name: str, path: Path) -> Path:
    """``path`` if it exists (file or folder), else a :class:`SampleError` naming sample and field.

    Args:
        sample_id: the sample.
        field_name: the field that named the path.
        path: the path.

    Returns:
        ``path``.
    """
    if not path.is_file() and not path.is_dir():
        raise SampleError(sample_id, field_name, f"file {path} does not exist")
    note_read(path)
    return path


def inside(sample_id: str, field_name: str, root: Path, value) -> Path:
    """``root / value``, refused when it leaves ``root`` (an absolute path, ``..``, a link out).

    Args:
        sample_id: the sample, for errors.
        field_name: the field, for errors.
        root: the dataset folder.
        value: a path relative to ``root``.

    Returns:
        The joined path (not resolved).
    """
    path = root / str(value)
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        raise SampleError(sample_id, field_name, f"path {value!r} is outside the dataset folder {root}") from None
    return path


def load_npy(sample_id: str, field_name: str, path: Path) -> np.ndarray:
    """One ``.npy`` feature file as ``[tokens, dim]`` float32 (:func:`as_tokens`).

    Args:
        sample_id: the sample, for errors.
        field_name: the field, for errors.
        path: the ``.npy`` file.

    Returns:
        float32 ``[tokens, dim]``; a missing, unreadable or ``.npz`` file raises :class:`SampleError`.
    """
    existing(sample_id, field_name, path)
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # a 0-byte or truncated file raises EOFError
        raise SampleError(sample_id, field_name, f"cannot read {path} as .npy: {err or 'empty file'}") from err
    if not isinstance(array, np.ndarray):
        raise SampleError(sample_id, field_name, f"{path} holds several arrays (.npz), not one")
    return as_tokens(sample_id, field_name, array)


def check_widths(entries_streams: dict[str, dict[str, np.ndarray]], dims: dict[str, int] | None) -> list[SampleError]:
    """Each stream must have one width across the dataset (given in ``dims`` or the most common one).

    Args:
        entries_streams: ``{sample id: {stream: [tokens, dim]}}``.
        dims: ``{stream: width}`` expected; streams not named use their most common width.

    Returns:
        One :class:`SampleError` per stream of a sample with another width.
    """
    errors = []
    widths: dict[str, Counter] = {}
    for streams in entries_streams.values():
        for name, a in streams.items():
            widths.setdefault(name, Counter())[a.shape[1]] += 1
    for sid, streams in entries_streams.items():
        for name, a in streams.items():
            expected = (dims or {}).get(name) or widths[name].most_common(1)[0][0]
            if a.shape[1] != expected:
                errors.append(SampleError(sid, f"features.{name}",
                                          f"feature shape {a.shape}: width {a.shape[1]} != {expected}"))
    return errors


def media_sample(sid: str, subset: str, label: str, subtitle: str, features: dict[str, dict[str, np.ndarray]],
                 media: dict[str, Path], extra: dict, **kwargs) -> Sample:
    """A Sample from per-modality feature streams and media paths (see module doc for the encoding).

    Args:
        sid: the sample id.
        subset: the conflict subset.
        label: the emotion label.
        subtitle: the transcript.
        features: ``{modality: {stream: [tokens, dim]}}``.
        media: ``{"video" | "audio" | "image": path or None}``.
        extra: further ``Sample.extra`` entries.
        **kwargs: further :class:`Sample` fields.

    Returns:
        The sample; a modality without features holds ``[1, 0]`` (media once) or ``[0, 0]`` (none).
    """
    arrays, streams, rows = {}, {}, {}
    has_media = {"visual": bool(media.get("video") or media.get("image")),
                 "audio": bool(media.get("audio") or media.get("video"))}
    for modality in ("visual", "audio"):
        if features.get(modality):
            arrays[modality], streams[modality] = pack_streams(sid, modality, features[modality])
        else:
            arrays[modality] = np.zeros((1 if has_media[modality] else 0, 0), np.float32)
        rows[modality] = arrays[modality].shape[0]
    extra = {**extra, "streams": streams, "rows": rows,
             **{f"{k}_path": str(v) for k, v in media.items() if v}}
    return Sample(sid, subset, label, arrays["visual"], arrays["audio"], subtitle=subtitle, extra=extra, **kwargs)


# -- table reading ---------------------------------------------------------------------------------
def read_table(path: Path) -> list[dict | SampleError]:
    """Rows of a ``.jsonl`` / ``.json`` / ``.csv`` / ``.tsv`` file as dicts; a row that is not a JSON
    object comes back as the :class:`SampleError` naming its line, so a reader reports it and goes on.

    Args:
        path: the annotation file.

    Returns:
        One dict (or SampleError) per row; an unreadable file raises :class:`DatasetError`.
    """
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv", ".tsv"):
        raise DatasetError(f"{path}: unsupported annotation format {suffix!r} (jsonl, json, csv, tsv)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{path} is not UTF-8 text ({err})") from None
    note_read(path)
    if suffix in (".csv", ".tsv"):
        try:
            delimiter = "\t" if suffix == ".tsv" else ","
            return [_plain_row(row) for row in csv.DictReader(text.splitlines(), delimiter=delimiter)]
        except csv.Error as err:
            raise DatasetError(f"{path} is not a readable {suffix[1:].upper()} table ({err})") from None
    if suffix == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as err:
            raise DatasetError(f"{path} is not JSON ({err})") from None
        if isinstance(data, dict):
            if not isinstance(data.get("samples"), list):
                raise DatasetError(f"{path}: expected a list of samples or {{\"samples\": [...]}}")
            data = data["samples"]
        if not isinstance(data, list):
            raise DatasetError(f"{path}: expected a list of samples, got a JSON {type(data).__name__}")
        return [_object_row(row, f"item {n}") for n, row in enumerate(data, 1)]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(_object_row(json.loads(line), f"line {n}"))
            except (ValueError, RecursionError) as err:
                rows.append(SampleError(f"<line {n}>", "line", f"{path.name} line {n} is not JSON ({err})"))
    return rows


def _object_row(row, where: str) -> dict | SampleError:
    if isinstance(row, dict):
        return row
    return SampleError(f"<{where}>", "line", f"{where} is a JSON {type(row).__name__}, not an object")


def _plain_row(row: dict) -> dict:
    """A CSV row without the extra-cell list DictReader files under the key ``None``."""
    return {k: v for k, v in row.items() if isinstance(k, str)}


def _first(row: dict, *names, default=None):
    for name in names:
        value = row.get(name)
        if value is not None and not (isinstance(value, str) and value == ""):
            return value
    return default


def _text(value) -> str:
    """A scalar cell as text; a list or object where text belongs is a problem of the row."""
    if isinstance(value, (dict, list)):
        raise TypeError(f"expected text, got a JSON {type(value).__name__}")
    return str(value)


def _feature_paths(value) -> dict[str, str]:
    """``path`` | ``{"name": path}`` | ``"name=path;name=path"`` → ``{name: path}``."""
    if value is None or value == "":
        return {}
    if isinstance(value, dict):
        return {str(k): _text(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return {Path(_text(v)).stem: _text(v) for v in value}
    text = _text(value)
    if "=" in text:
        return dict(part.split("=", 1) if "=" in part else ("features", part)
                    for part in text.split(";") if part.strip())
    return {"features": text}


# -- readers ---------------------------------------------------------------------------------------
def read_camer(path, *, annotation: str | None = None, **_) -> tuple[str, list[Entry]]:
    """CA-MER-style annotation file (or a folder holding ``annotations.*``).

    Args:
        path: the annotation file or its folder.
        annotation: the file's name inside a folder (default: the one ``annotations.*``).
        **_: other options (ignored).

    Returns:
        ``(benchmark name, entries)``: one :class:`Entry` per row, built (and validated) lazily.
    """
    path = Path(path)
    if path.is_dir():
        found = [path / annotation] if annotation else sorted(
            p for p in path.iterdir() if p.stem == "annotations" and p.suffix in (".jsonl", ".json", ".csv", ".tsv"))
        if not found:
            raise FileNotFoundError(f"{path}: no annotations.jsonl/.json/.csv/.tsv")
        path = found[0]
    root = path.parent
    entries = []
    for n, row in enumerate(read_table(path), 1):
        if isinstance(row, SampleError):
            entries.append(Entry(row.sample_id, _raise(row)))
            continue
        sid = _sample_id(row, n, "id", "name", "video_id")

        def build(row=row, sid=sid) -> Sample:
            label = normalise_label(sid, _first(row, "label", default=""))
            subset = normalise_subset(sid, _first(row, "subset", default=""))
            features = {}
            for modality in ("visual", "audio"):
                field_name = f"{modality}_features"
                named = _feature_paths(_first(row, field_name))
                features[modality] = {name: load_npy(sid, f"{field_name}.{name}", inside(sid, field_name, root, p))
                                      for name, p in named.items()}
            media = {}
            for key in ("video", "audio", "image"):
                value = _first(row, key, f"{key}_path")
                if value:
                    media[key] = existing(sid, key, inside(sid, key, root, _text(value)))
            emotions = {k: normalise_label(sid, row[k], k) if row.get(k) else None
                        for k in ("visual_emotion", "audio_emotion")}
            extra = {"reasoning": _text(row["reasoning"])} if row.get("reasoning") else {}
            return media_sample(sid, subset, label, _text(_first(row, "subtitle", default="")), features, media,
                                extra, **emotions)
        entries.append(Entry(sid, build))
    return path.stem, entries


def _sample_id(row: dict, n: int, *names) -> str:
    """The row's id as text (``<row n>`` when it has none; a list or object id is kept visible)."""
    value = _first(row, *names, default=f"<row {n}>")
    return value if isinstance(value, str) else json.dumps(value)


def _encoders(encoders) -> dict[str, tuple[str, str]]:
    if encoders is None:
        return dict(MER2023_ENCODERS)
    return {name: (spec[0], spec[1]) if isinstance(spec, (list, tuple)) else (spec["dir"], spec["modality"])
            for name, spec in encoders.items()}


def _find_video(root: Path, video_dir: str | None, name: str) -> Path | None:
    if not video_dir:
        return None
    folder = root / video_dir
    for suffix in VIDEO_SUFFIXES:
        if (folder / f"{name}{suffix}").exists():
            return folder / f"{name}{suffix}"
    if (folder / name).is_dir():
        return folder / name
    return folder / f"{name}.mp4"  # reported missing by the builder


def _transcripts(root: Path, transcripts: str | None) -> dict[str, str]:
    file = root / (transcripts or "transcription_en_all.csv")
    if not file.exists():
        if transcripts:
            raise FileNotFoundError(f"transcript file {file} does not exist")
        return {}
    return {str(_first(r, "name", "names", "id")): str(_first(r, "sentence", "english", "subtitle", default=""))
            for r in read_table(file) if isinstance(r, dict)}


def _mer_builder(root: Path, name: str, label, subtitle: str, encoders: dict, video_dir: str | None, subset: str,
                 extra: dict, aliases: dict | None = None) -> Callable[[], Sample]:
    def build() -> Sample:
        emotion = normalise_label(name, label, aliases=aliases)
        features = {"visual": {}, "audio": {}}
        for stream, (folder, modality) in encoders.items():
            features[modality][stream] = load_npy(name, f"{modality}_features.{stream}",
                                                  inside(name, f"{modality}_features.{stream}", root,
                                                         f"{folder}/{name}.npy"))
        media = {}
        inside(name, "name", root, name)
        video = _find_video(root, video_dir, name)
        if video is not None:
            media["video"] = existing(name, "video", video)
        source = {"source_label": str(label)} if str(label).strip().lower() != emotion else {}
        return media_sample(name, subset, emotion, subtitle, features, media, {**extra, **source})
    return build


def _annotation_txt(root: Path, annotation: str | None) -> Path:
    if annotation:
        return root / annotation
    found = sorted(root.glob("*.txt"))
    if len(found) != 1:
        raise FileNotFoundError(f"{root}: pass annotation=<file> (found {len(found)} .txt files)")
    return found[0]


def read_mer2023(path, *, annotation: str | None = None, transcripts: str | None = None, encoders: dict | None = None,
                 video_dir: str | None = None, subset: str = "consistent", **_) -> tuple[str, list[Entry]]:
    """MER2023 in Emotion-LLaMA's layout (see module doc); ``encoders`` maps stream → (dir, modality).

    Args:
        path: the dataset folder.
        annotation: the ``.txt`` label file (default: the folder's only one).
        transcripts: the transcript CSV (default ``transcription_en_all.csv`` when present).
        encoders: ``{stream: (feature dir, modality)}`` (default :data:`MER2023_ENCODERS`).
        video_dir: a folder of the clips' videos, if any.
        subset: the subset every sample is given.
        **_: other options (ignored).

    Returns:
        ``(benchmark name, entries)``: one :class:`Entry` per row, built (and validated) lazily.
    """
    root = Path(path)
    file = _annotation_txt(root, annotation)
    if not file.exists():
        raise FileNotFoundError(f"annotation file {file} does not exist")
    lines = [line.split() for line in _read_text(file).splitlines() if line.strip()]
    subtitles, encoders = _transcripts(root, transcripts), _encoders(encoders)
    entries = []
    for n, parts in enumerate(lines, 1):
        if len(parts) < 3:
            name = parts[0] if parts else f"<line {n}>"
            entries.append(Entry(name, _raise(SampleError(name, "label", f"{file.name} line {n}: expected "
                                                                        "'<clip> <frames> <label>'"))))
            continue
        name, label = parts[0], parts[2]
        entries.append(Entry(name, _mer_builder(root, name, label, subtitles.get(name, ""), encoders, video_dir,
                                                subset, {})))
    return "mer2023", entries


def read_emer(path, *, reasoning: str = "emer.csv", annotation: str | None = None, transcripts: str | None = None,
              encoders: dict | None = None, video_dir: str | None = None, subset: str = "consistent",
              **_) -> tuple[str, list[Entry]]:
    """EMER: MER2023 clips + reference reasoning (and labels) from a CSV (see module doc).

    Args:
        path: the dataset folder.
        reasoning: the CSV with ``name`` and the reasoning column.
        annotation: a ``.txt`` label file for rows without ``label``.
        transcripts: the transcript CSV.
        encoders: ``{stream: (feature dir, modality)}``.
        video_dir: a folder of the clips' videos, if any.
        subset: the subset every sample is given.
        **_: other options (ignored).

    Returns:
        ``(benchmark name, entries)``: one :class:`Entry` per row, built (and validated) lazily.
    """
    root = Path(path)
    rows = read_table(root / reasoning)
    labels = {}
    if annotation or len(list(root.glob("*.txt"))) == 1:
        labels = {p[0]: p[2] for p in (line.split() for line in _read_text(_annotation_txt(root, annotation))
                                       .splitlines()) if len(p) >= 3}
    subtitles, encoders = _transcripts(root, transcripts), _encoders(encoders)
    entries = []
    for n, row in enumerate(rows, 1):
        if isinstance(row, SampleError):
            entries.append(Entry(row.sample_id, _raise(row)))
            continue
        name = _sample_id(row, n, "name", "names", "id")
        text = _first(row, "reason", "reasoning", "english", "description", default="")
        label = _first(row, "label", "discrete", "emotion", default=labels.get(name, ""))
        if not text:
            entries.append(Entry(name, _raise(SampleError(name, "reasoning", "no reference reasoning"))))
            continue
        entries.append(Entry(name, _mer_builder(root, name, label, subtitles.get(name, ""), encoders, video_dir,
                                                subset, {"reference_reasoning": text})))
    return "emer", entries


def read_dfew(path, *, annotation: str | None = None, video_dir: str = "videos", subset: str = "consistent",
              **_) -> tuple[str, list[Entry]]:
    """DFEW: split CSV (``video_name``/``name``, ``label`` 1-7 or a name) and clips in ``video_dir``.

    Args:
        path: the dataset folder.
        annotation: the split CSV (default: the folder's only ``.csv``).
        video_dir: the clips' folder inside ``path``.
        subset: the subset every sample is given.
        **_: other options (ignored).

    Returns:
        ``(benchmark name, entries)``: one :class:`Entry` per row, built (and validated) lazily.
    """
    root = Path(path)
    if annotation:
        file = root / annotation
    else:
        found = sorted(root.glob("*.csv"))
        if len(found) != 1:
            raise FileNotFoundError(f"{root}: pass annotation=<split csv> (found {len(found)} .csv files)")
        file = found[0]
    entries = []
    for n, row in enumerate(read_table(file), 1):
        if isinstance(row, SampleError):
            entries.append(Entry(row.sample_id, _raise(row)))
            continue
        name = _sample_id(row, n, "video_name", "name", "id")
        raw = str(_first(row, "label", default="")).strip()

        def build(name=name, raw=raw) -> Sample:
            label = raw.lower()
            if raw.isdigit():
                if not 1 <= int(raw) <= len(DFEW_CLASSES):
                    raise SampleError(name, "label", f"DFEW label {raw} outside 1..{len(DFEW_CLASSES)}")
                label = DFEW_CLASSES[int(raw) - 1]
            if label not in DFEW_CLASSES:
                raise SampleError(name, "label", f"unknown label {raw!r}; DFEW has {DFEW_CLASSES} (or 1-7)")
            emotion = DFEW_TO_CAMER.get(label, label)
            video = existing(name, "video", _find_video(root, video_dir, str(inside(name, "video_name", root, name)
                                                                             .relative_to(root))))
            extra = {"label_options": list(DFEW_CLASSES), **({"source_label": label} if label != emotion else {})}
            return media_sample(name, subset, emotion, "", {}, {"video": video}, extra)
        entries.append(Entry(name, build))
    return "dfew", entries


def _read_text(file: Path) -> str:
    if not file.is_file():
        raise FileNotFoundError(f"annotation file {file} does not exist")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DatasetError(f"{file} is not UTF-8 text ({err})") from None
    note_read(file)
    return text


def _raise(error: Exception) -> Callable[[], Sample]:
    def build() -> Sample:
        raise error
    return build


READERS: dict[str, Callable] = {"camer": read_camer, "mer2023": read_mer2023, "emer": read_emer, "dfew": read_dfew}


def dataset_options(path) -> dict:
    """Options stored beside the data in ``modbias_benchmark.json`` (``{}`` if none).

    Args:
        path: the dataset folder or a file in it.

    Returns:
        The JSON object (reader name under ``"reader"``).
    """
    path = Path(path)
    file = (path if path.is_dir() else path.parent) / CONFIG_FILE
    if not file.is_file():
        return {}
    try:
        options = json.loads(_read_text(file))
    except ValueError as err:
        raise DatasetError(f"{file} is not JSON ({err})") from None
    if not isinstance(options, dict):
        raise DatasetError(f"{file}: expected a JSON object of reader options")
    return options


def detect_reader(path) -> str:
    """The reader for ``path``: from ``modbias_benchmark.json``, else guessed from the layout.

    Args:
        path: a dataset folder or annotation file.

    Returns:
        A key of :data:`READERS`; an unrecognised layout raises :class:`DatasetError`.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"benchmark path {path} does not exist")
    if (reader := dataset_options(path).get("reader")):
        return str(reader)
    if path.is_file():
        return "camer"
    names = {p.name for p in path.iterdir()}
    if any(n.startswith("annotations.") for n in names):
        return "camer"
    if names & {d for d, _ in MER2023_ENCODERS.values()}:
        return "emer" if "emer.csv" in names else "mer2023"
    if "videos" in names and any(n.endswith(".csv") for n in names):
        return "dfew"
    raise DatasetError(f"cannot tell which reader fits {path}; use reader:path with one of {sorted(READERS)} "
                     f"or add {CONFIG_FILE} with a 'reader' key")


def _entries(path, reader: str | None, options: dict) -> tuple[str, str, list[Entry], dict]:
    options = {**{k: v for k, v in dataset_options(path).items() if k != "reader"}, **options}
    reader = reader or detect_reader(path)
    if reader not in READERS:
        raise DatasetError(f"unknown reader {reader!r}; available: {sorted(READERS)}")
    try:
        name, entries = READERS[reader](path, **options)
    except (TypeError, AttributeError, KeyError, IndexError) as err:  # options of the wrong shape
        raise DatasetError(f"{path}: cannot read it as {reader} with options {options} ({err})") from err
    return reader, name, entries, options


def _build_all(entries: list[Entry], dims: dict | None, strict: bool,
               files_of: dict[str, list[Path]] | None = None) -> tuple[list[Sample], list[Problem]]:
    """Build and validate every entry; ``files_of`` (if given) receives the files each sample was read from."""
    samples, problems, seen = [], [], set()
    for entry in entries:
        if entry.id in seen:
            problem = SampleError(entry.id, "id", "duplicate id")
            if strict:
                raise problem
            problems.append(Problem(entry.id, "id", "duplicate id"))
            continue
        seen.add(entry.id)
        try:
            with files_read() as files:
                samples.append(_built(entry))
            if files_of is not None:
                files_of[entry.id] = files
        except SampleError as err:
            if strict:
                raise
            problems.append(Problem(err.sample_id, err.field_name, str(err).split(": ", 1)[-1]))
    streams = {s.id: {name: a for modality in ("visual", "audio") if s.extra.get("streams", {}).get(modality)
                      for name, a in unpack_streams(s, modality).items()} for s in samples}
    for err in check_widths(streams, dims):
        if strict:
            raise err
        problems.append(Problem(err.sample_id, err.field_name, str(err).split(": ", 1)[-1]))
    bad = {p.sample_id for p in problems if p.field != "id"}  # a duplicate's first occurrence stays
    return [s for s in samples if s.id not in bad], problems


def _built(entry: Entry) -> Sample:
    """The entry's sample; a row whose cells have the wrong type (a list where text belongs, a path
    the system cannot hold) is a :class:`SampleError` of that row."""
    try:
        return entry.build()
    except SampleError:
        raise
    except (TypeError, ValueError, AttributeError, OSError) as err:
        raise SampleError(entry.id, "row", f"cannot read the row: {err}") from err


def load(path, reader: str | None = None, subset: str = "all", limit: int | None = None,
         dims: dict | None = None, **options) -> Benchmark:
    """Read and validate a benchmark; raises the first :class:`SampleError` (or a file-level error).

    The benchmark's ``config["files"]`` holds the content fingerprint of every file read for it
    (annotations, transcripts, and the features and media of the samples kept), by path relative to
    the dataset folder.

    Args:
        path: the dataset folder or annotation file.
        reader: a key of :data:`READERS` (default :func:`detect_reader`).
        subset: a subset name or ``"all"``.
        limit: the most samples kept per subset.
        dims: ``{stream: width}`` (default: each stream's most common width).
        **options: the reader's options (over those in ``modbias_benchmark.json``).

    Returns:
        The :class:`Benchmark`, its ``config`` recording reader, path, subset, limit, options
        and ``files``.
    """
    files_of: dict[str, list[Path]] = {}
    with files_read() as table_files:
        reader, name, entries, options = _entries(path, reader, options)
        samples, _ = _build_all(entries, dims, strict=True, files_of=files_of)
    if subset != "all":
        if subset not in SUBSETS + ("train",):
            raise ValueError(f"unknown subset {subset!r}; expected one of {SUBSETS + ('train', 'all')}")
        samples = [s for s in samples if s.subset == subset]
    if limit is not None:
        kept, counts = [], Counter()
        for s in samples:
            if counts[s.subset] < limit:
                kept.append(s)
                counts[s.subset] += 1
        samples = kept
    root = Path(path) if Path(path).is_dir() else Path(path).parent
    read = table_files + [file for s in samples for file in files_of.get(s.id, [])]
    config = {"name": name, "reader": reader, "path": str(Path(path).resolve()), "subset": subset, "limit": limit,
              "options": options, "files": fingerprints(root, read)}
    return Benchmark(name, samples, config)


@dataclass
class CheckReport:
    """What :func:`check` found: the reader used, samples read, and every problem."""

    path: str
    reader: str
    n_entries: int
    n_ok: int
    problems: list[Problem]
    samples: list[Sample] = field(default_factory=list, repr=False)  # the samples without problems

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    def lines(self) -> list[str]:
        """The report as text: a head line with the counts, then one indented line per problem."""
        head = f"{self.path} ({self.reader}): {self.n_ok} of {self.n_entries} samples ok"
        return [head] + [f"  {p}" for p in self.problems]


def check(path, reader: str | None = None, dims: dict | None = None, decode: bool = False,
          **options) -> CheckReport:
    """Every problem of a benchmark, without running a model (``decode`` also decodes each media file).

    Args:
        path: the dataset folder or annotation file.
        reader: a key of :data:`READERS` (default :func:`detect_reader`).
        dims: ``{stream: width}`` expected.
        decode: also decode every video, audio and image file.
        **options: the reader's options.

    Returns:
        A :class:`CheckReport` (never raises: a file-level error is one problem).
    """
    try:
        reader, _, entries, options = _entries(path, reader, options)
    except (OSError, ValueError, TypeError, KeyError) as err:
        return CheckReport(str(path), reader or "?", 0, 0, [Problem("", str(path), str(err))])
    samples, problems = _build_all(entries, dims, strict=False)
    if decode:
        from modbias.data import media

        for s in list(samples):
            for key in ("video_path", "audio_path", "image_path"):
                if key in s.extra:
                    try:
                        loader = {"video_path": media.load_video, "audio_path": media.load_audio,
                                  "image_path": media.load_image}[key]
                        loader(s.extra[key])
                    except (media.MediaError, ImportError) as err:
                        problems.append(Problem(s.id, key.removesuffix("_path"), str(err)))
        samples = [s for s in samples if s.id not in {p.sample_id for p in problems}]
    return CheckReport(str(path), reader, len(entries), len(samples), problems, samples)
