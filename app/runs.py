"""The runs of a cache as the dashboard and the figure scripts see them.

Reading only: manifests are parsed on each scan (cheap), datasets are
opened lazily with :func:`modbias.runs.store.open_run`, and everything derived
from a store is cached under the key (path, manifest mtime), so a run that
grows or is rewritten is read afresh while an unchanged one costs nothing.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import xarray as xr

from modbias.analysis.consistency import consistency
from modbias.core.evaluation import deltas, subset_metrics
from modbias.core.metrics import head_ratio
from modbias.runs.store import MANIFEST, list_runs, open_run, read_manifest

SUBSET_ORDER = ("video_aligned", "audio_aligned", "consistent", "overall")
ATTENTION_KINDS = ("trace", "intervene")  # runs in the schema of modbias.runs.trace, which these views read


class StoreFieldError(LookupError):
    """A run lacks what a view or figure needs; the message names the run, the field and the remedy."""


@dataclass
class RunInfo:
    """One run store, described from its manifest (no array is read)."""

    path: str
    kind: str
    config: dict = field(repr=False)
    samples: int
    created: str
    has_rows: bool
    summary: dict | None = field(default=None, repr=False)
    error: str | None = None  # why the store cannot be read (then it is listed, never analysed)

    @property
    def name(self) -> str:
        """The store's folder name."""
        return Path(self.path).name

    @property
    def model(self) -> str:
        """The model family of the run's config (``?`` when absent)."""
        return str(self.config.get("model", {}).get("family", "?"))

    @property
    def audio_repeat(self) -> int:
        """The model's audio copies (1 unless the organism was trained with more)."""
        return int(self.config.get("model", {}).get("audio_repeat", 1))

    @property
    def data(self) -> str:
        """The benchmark name of the run's config (``?`` when absent)."""
        return str(self.config.get("data", {}).get("name", "?"))

    @property
    def interventions(self) -> list[dict]:
        """The applied interventions; ``none`` entries dropped (a trace run has none)."""
        return [i for i in self.config.get("interventions", []) if i.get("name") != "none"]

    @property
    def traces_attention(self) -> bool:
        """A readable trace or intervene run (other kinds, e.g. MI or drift runs, have other schemas)."""
        return self.kind in ATTENTION_KINDS and self.error is None

    @property
    def is_baseline(self) -> bool:
        """A trace or intervene run without interventions."""
        return self.traces_attention and not self.interventions

    @property
    def label(self) -> str:
        """Interventions with their parameters, e.g. ``ar(tau=1)``; ``baseline`` when none; ``–`` for
        runs of other kinds."""
        if not self.traces_attention:
            return "–"
        return " + ".join(intervention_label(i) for i in self.interventions) or "baseline"

    def intervention(self, name: str) -> dict | None:
        """The applied intervention named ``name``, if any.

        Args:
            name: e.g. ``"ar"``.

        Returns:
            Its stored ``describe()`` dict, or ``None``.
        """
        return next((i for i in self.interventions if i.get("name") == name), None)

    def same_setup(self, other: "RunInfo") -> bool:
        """Same model configuration and benchmark (what makes one run the other's baseline).

        Args:
            other: another run.

        Returns:
            Whether both ``config["model"]`` and ``config["data"]`` are equal.
        """
        return self.config.get("model") == other.config.get("model") and \
            self.config.get("data") == other.config.get("data")


def intervention_label(intervention: dict) -> str:
    """``name(param=value, ...)``; unset (None) parameters are left out, except ``layers=all``.

    Args:
        intervention: a stored ``describe()`` dict.

    Returns:
        The label.
    """
    params = ", ".join(f"{k}={'all' if v is None else f'{v:g}' if isinstance(v, float) else v}"
                       for k, v in intervention.items() if k != "name" and (v is not None or k == "layers"))
    return f"{intervention['name']}({params})" if params else intervention["name"]


def run_info(path: str | Path) -> RunInfo:
    """A run described from its manifest alone.

    Args:
        path: a run store.

    Returns:
        Its :class:`RunInfo`; a missing or malformed manifest raises ``FileNotFoundError`` / ``ValueError``.
    """
    path = Path(path)
    manifest = read_manifest(path)
    if not manifest:
        raise FileNotFoundError(f"no modbias run store at {path}")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config", {}), dict):
        raise ValueError(f"{path / MANIFEST} is not a modbias manifest")
    created = manifest.get("created") or _dt.datetime.fromtimestamp(
        (path / MANIFEST).stat().st_mtime).isoformat(timespec="seconds")
    return RunInfo(path=str(path), kind=manifest.get("kind", "?"), config=manifest.get("config", {}),
                   samples=int(manifest.get("done", 0)), created=created,
                   has_rows=(path / "rows" / "zarr.json").exists(), summary=manifest.get("summary"))


def scan(cache: str | Path) -> list[RunInfo]:
    """Every run under ``cache``, oldest first; a store whose manifest cannot be read is listed with its
    ``error`` (and kind ``?``), so one broken store never hides the others.

    Args:
        cache: the folder of run stores.

    Returns:
        One :class:`RunInfo` per store.
    """
    return sorted((_described(p) for p in list_runs(cache)), key=lambda r: (r.created, r.path))


def _described(path: Path) -> RunInfo:
    try:
        return run_info(path)
    except Exception as error:  # noqa: BLE001 - any unreadable manifest is reported, not raised
        stamp = _dt.datetime.fromtimestamp((path / MANIFEST).stat().st_mtime).isoformat(timespec="seconds")
        return RunInfo(path=str(path), kind="?", config={}, samples=0, created=stamp, has_rows=False,
                       error=f"{type(error).__name__}: {error}")


def run_in_cache(cache: str | Path, path: str | None) -> str | None:
    """``path`` when it names a run store directly under ``cache`` (else ``None``): what a dashboard
    callback may read, whatever a client sends.

    Args:
        cache: the folder of run stores.
        path: the path a client sent.

    Returns:
        ``path`` or ``None``.
    """
    if not path:
        return None
    try:
        resolved = Path(path).resolve()
    except (OSError, ValueError, TypeError):
        return None
    runs = {Path(p).resolve(): str(p) for p in list_runs(cache)}
    return str(path) if resolved in runs else None


def newest_with_heads(runs: list[RunInfo]) -> RunInfo | None:
    """The newest readable trace or intervene run with samples (what the Heads view can show).

    Args:
        runs: :func:`scan`'s runs (oldest first).

    Returns:
        The run or ``None``.
    """
    return next((r for r in reversed(runs) if r.traces_attention and r.samples), None)


def _stamp(path: str | Path) -> int:
    try:
        return (Path(path) / MANIFEST).stat().st_mtime_ns
    except OSError as error:
        raise StoreFieldError(f"run {path} is gone or unreadable: {error}") from error


def open_dataset(path: str | Path) -> xr.Dataset:
    """The run's lazily opened Dataset, cached until its manifest changes.

    Args:
        path: a run store.

    Returns:
        :func:`modbias.runs.store.open_run`'s Dataset; an unreadable store raises :class:`StoreFieldError`.
    """
    return _open(str(path), _stamp(path))


@lru_cache(maxsize=32)
def _open(path: str, stamp: int) -> xr.Dataset:
    try:
        return open_run(path)
    except Exception as error:  # noqa: BLE001 - a damaged store is a message in the view, not an HTTP 500
        raise StoreFieldError(f"run {path} cannot be read: {type(error).__name__}: {error}") from error


def require(ds: xr.Dataset, *fields: str, view: str) -> None:
    """Raise :class:`StoreFieldError` naming the run and the first missing field.

    Args:
        ds: the run's Dataset.
        *fields: variable names the view needs.
        view: the view's name, for the message.
    """
    for name in fields:
        if name not in ds.variables:
            hint = (" (traced without --save-rows; re-run `modbias trace ... --save-rows`)"
                    if name in ("rows", "length") or name.endswith("_mask") else "")
            raise StoreFieldError(f"run {ds.attrs.get('path')} has no '{name}' variable{hint}: "
                                  f"the {view} needs it")


def at_values(path: str | Path) -> list[str]:
    """The probed emotion tokens the run stores (its ``at`` coordinate).

    Args:
        path: a run store.

    Returns:
        E.g. ``["first"]`` or ``["first", "answer"]``.
    """
    return [str(a) for a in open_dataset(path)["at"].values]


# ----------------------------------------------------------------------------- per-run arrays, cached


@dataclass(frozen=True)
class SampleTable:
    """Per-sample coordinates of a run, as numpy arrays."""

    path: str
    id: np.ndarray
    subset: np.ndarray
    label: np.ndarray
    visual_emotion: np.ndarray
    audio_emotion: np.ndarray
    prediction: np.ndarray
    correct: np.ndarray
    text: np.ndarray

    def pick(self, subset: str = "all", outcome: str = "all") -> np.ndarray:
        """Boolean mask of the samples in ``subset`` (or all) with ``outcome`` correct/incorrect (or all).

        Args:
            subset: a subset or ``"all"``.
            outcome: ``"correct"``, ``"incorrect"`` or ``"all"``.

        Returns:
            bool ``[sample]``.
        """
        keep = np.ones(len(self.id), bool) if subset in ("all", None) else self.subset == subset
        if outcome == "correct":
            keep &= self.correct
        elif outcome == "incorrect":
            keep &= ~self.correct
        return keep

    def select(self, subset: str = "all", outcome: str = "all", sample: str | None = None) -> np.ndarray:
        """Boolean mask: just ``sample`` when given, else :meth:`pick` of subset and outcome.

        Args:
            subset: a subset or ``"all"``.
            outcome: ``"correct"``, ``"incorrect"`` or ``"all"``.
            sample: a sample id, or ``None``.

        Returns:
            bool ``[sample]``.
        """
        if not sample:
            return self.pick(subset, outcome)
        keep = np.zeros(len(self.id), bool)
        keep[self.index(sample)] = True
        return keep

    def index(self, sample: str) -> int:
        """Position of a sample in the run's ``sample`` axis.

        Args:
            sample: the sample id.

        Returns:
            The index; an unknown id raises :class:`StoreFieldError`.
        """
        hits = np.flatnonzero(self.id == sample)
        if not len(hits):
            raise StoreFieldError(f"sample {sample!r} is not in run {self.path}")
        return int(hits[0])


def sample_table(path: str | Path) -> SampleTable:
    """The run's per-sample coordinates (cached until its manifest changes).

    Args:
        path: a run store.

    Returns:
        A :class:`SampleTable` (``visual_emotion``/``audio_emotion``/``text`` empty strings when not stored).
    """
    return _sample_table(str(path), _stamp(path))


@lru_cache(maxsize=32)
def _sample_table(path: str, stamp: int) -> SampleTable:
    ds = _open(path, stamp)
    require(ds, "subset", "label", "prediction", "correct", view="sample table")
    col = {name: np.asarray(ds[name].values).astype(str) for name in
           ("sample", "subset", "label", "visual_emotion", "audio_emotion", "prediction", "text") if name in ds}
    n = ds.sizes["sample"]
    return SampleTable(path=path, id=col["sample"], subset=col["subset"], label=col["label"],
                       visual_emotion=col.get("visual_emotion", np.full(n, "")),
                       audio_emotion=col.get("audio_emotion", np.full(n, "")), prediction=col["prediction"],
                       correct=np.asarray(ds["correct"].values).astype(bool), text=col.get("text", np.full(n, "")))


@dataclass(frozen=True)
class HeadSums:
    """S_a, S_v ``[sample, layer, head]`` and UAP_a, UAP_v ``[sample, layer]`` at one probed token.

    Samples where no emotion token was found (``found`` false) hold NaN.
    """

    S_a: np.ndarray
    S_v: np.ndarray
    UAP_a: np.ndarray
    UAP_v: np.ndarray
    log10_c_h: np.ndarray  # log10 of Eq. (5), float32: ±inf where one modality gets no attention


def head_sums(path: str | Path, at: str) -> HeadSums:
    """S_a, S_v, UAP and log10 c_h of a run at one probed token (cached until its manifest changes).

    Args:
        path: a run store.
        at: the probed token (``first`` or ``answer``).

    Returns:
        :class:`HeadSums`: ``[sample, layer, head]`` and ``[sample, layer]`` float arrays.
    """
    return _head_sums(str(path), _stamp(path), at)


@lru_cache(maxsize=32)
def _head_sums(path: str, stamp: int, at: str) -> HeadSums:
    ds = _open(path, stamp)
    require(ds, "S_a", "S_v", "UAP_a", "UAP_v", view="head and layer views")
    view = ds.sel(at=at)
    S_a, S_v = (np.asarray(view[n].transpose("sample", "layer", "head").values, np.float64) for n in ("S_a", "S_v"))
    UAP_a, UAP_v = (np.asarray(view[n].transpose("sample", "layer").values, np.float64) for n in ("UAP_a", "UAP_v"))
    with np.errstate(divide="ignore", invalid="ignore"):
        log10_c_h = np.log10(head_ratio(S_a, S_v)).astype(np.float32)
    return HeadSums(S_a, S_v, UAP_a, UAP_v, log10_c_h)


@dataclass(frozen=True)
class HeadMeanRows:
    """Head-averaged attention rows ``[sample, layer, token]`` of the samples with rows, plus their
    valid lengths and per-position modality (visual / audio / text / generated / padding)."""

    index: np.ndarray  # positions in the run's sample axis
    rows: np.ndarray
    length: np.ndarray
    modality: np.ndarray  # [sample, token] of str


MODALITY_ORDER = ("visual", "audio", "text", "generated")


def modality_labels(masks: dict[str, np.ndarray], length: np.ndarray) -> np.ndarray:
    """Per-position modality ``[sample, token]``: the masks' kind, ``generated`` for positions
    past the prompt but before ``length``, ``padding`` after it.

    Args:
        masks: ``{"visual", "audio", "text": bool [sample, token]}``.
        length: int ``[sample]`` valid positions.

    Returns:
        object ``[sample, token]`` of str.
    """
    shape = masks["visual"].shape
    out = np.full(shape, "generated", dtype=object)
    for kind in ("visual", "audio", "text"):
        out[masks[kind]] = kind
    out[np.arange(shape[-1])[None, :] >= length[:, None]] = "padding"
    return out


def head_mean_rows(path: str | Path, at: str, block: int = 32) -> HeadMeanRows:
    """Rows averaged over heads (cached; read block-wise, only samples with ``length > 0``).

    Args:
        path: a run store.
        at: the probed token.
        block: samples read at a time.

    Returns:
        :class:`HeadMeanRows`: ``rows [n, layer, token]``, their sample indices, lengths and modalities.
    """
    return _head_mean_rows(str(path), _stamp(path), at, block)


ROW_FIELDS = ("rows", "length", "visual_mask", "audio_mask", "text_mask")


def row_lengths(path: str | Path, at: str, view: str) -> np.ndarray:
    """Valid positions of each sample's stored row at ``at`` (0: no row); raises if the run has no rows.

    Args:
        path: a run store.
        at: the probed token.
        view: the asking view's name, for the message.

    Returns:
        int64 ``[sample]``.
    """
    ds = open_dataset(path)
    require(ds, *ROW_FIELDS, view=view)
    return _row_lengths(str(path), _stamp(path), at)


@lru_cache(maxsize=32)
def _row_lengths(path: str, stamp: int, at: str) -> np.ndarray:
    return np.asarray(_open(path, stamp)["length"].sel(at=at).values, np.int64)


@lru_cache(maxsize=8)
def _head_mean_rows(path: str, stamp: int, at: str, block: int) -> HeadMeanRows:
    length = row_lengths(path, at, view="token view")
    ds = _open(path, stamp)
    view = ds.sel(at=at)
    index = np.flatnonzero(length > 0)
    rows = view["rows"].transpose("sample", "layer", "head", "token")
    parts = [np.asarray(rows.isel(sample=index[i:i + block]).values, np.float64).mean(2)
             for i in range(0, len(index), block)]
    mean = np.concatenate(parts) if parts else np.zeros((0, ds.sizes["layer"], ds.sizes["token"]))
    masks = {k: np.asarray(ds[f"{k}_mask"].isel(sample=index).values, bool) for k in ("visual", "audio", "text")}
    return HeadMeanRows(index, mean, length[index], modality_labels(masks, length[index]))


def head_row(path: str | Path, at: str, sample: str, layer: int, head: int) -> tuple[np.ndarray, np.ndarray]:
    """One head's attention over the input positions of one sample, and each position's modality.

    Args:
        path: a run store.
        at: the probed token.
        sample: the sample id.
        layer: the layer.
        head: the head.

    Returns:
        ``(float64 [n], modality [n])`` over the sample's ``n`` valid positions.
    """
    n_all = row_lengths(path, at, view="head detail")
    ds = open_dataset(path)
    if not (0 <= layer < ds.sizes["layer"] and 0 <= head < ds.sizes["head"]):
        raise StoreFieldError(f"run {path} has no layer {layer}, head {head}")
    i = sample_table(path).index(sample)
    n = int(n_all[i])
    if n == 0:
        raise StoreFieldError(f"run {path}: sample {sample!r} has no stored rows (length 0 at {at!r})")
    row = np.asarray(ds["rows"].sel(at=at).isel(sample=i, layer=layer, head=head).values[:n], np.float64)
    masks = {k: np.asarray(ds[f"{k}_mask"].isel(sample=[i]).values, bool) for k in ("visual", "audio", "text")}
    return row, modality_labels(masks, np.array([n]))[0, :n]


# ----------------------------------------------------------------------------- metrics and baselines


def metrics(info: RunInfo) -> dict:
    """Per-subset acc / rec / avg / hit (``subset_metrics``): the manifest's summary or computed.

    Args:
        info: the run.

    Returns:
        ``{subset: {"acc", "rec", "avg", "hit", "n"}}``.
    """
    if info.summary and "metrics" in info.summary:
        return info.summary["metrics"]
    return _computed_metrics(info.path, _stamp(info.path))


@lru_cache(maxsize=64)
def _computed_metrics(path: str, stamp: int) -> dict:
    return subset_metrics(_open(path, stamp))


def baseline_of(info: RunInfo, runs: list[RunInfo]) -> RunInfo | None:
    """The run's baseline: the one its summary names, else the newest baseline of the same setup.

    Args:
        info: the run.
        runs: the runs to look among (the summary's named baseline only counts if it is one of them).

    Returns:
        The baseline or ``None``.
    """
    named = (info.summary or {}).get("baseline")
    if named:  # only among the given runs: a summary never makes the app read outside its cache
        match = [r for r in runs if Path(r.path).resolve() == Path(str(named)).resolve()]
        if match:
            return match[0]
    if info.is_baseline:
        return None
    candidates = [r for r in runs if r.is_baseline and r.same_setup(info)]
    return candidates[-1] if candidates else None


def deltas_of(info: RunInfo, runs: list[RunInfo]) -> tuple[dict | None, RunInfo | None]:
    """(run − baseline per subset and metric, the baseline); the summary's deltas when stored.

    Args:
        info: the run.
        runs: the runs to look among for its baseline.

    Returns:
        ``(deltas or None, baseline or None)``.
    """
    base = baseline_of(info, runs)
    if (info.summary or {}).get("deltas") is not None:
        return info.summary["deltas"], base
    if base is None:
        return None, None
    return deltas(metrics(info), metrics(base)), base


def subset_names(metric_table: dict) -> list[str]:
    """The subsets of a metrics dict, in the paper's order (unknown ones after).

    Args:
        metric_table: ``{subset: ...}``.

    Returns:
        Subset names.
    """
    known = [s for s in SUBSET_ORDER if s in metric_table]
    return known + sorted(s for s in metric_table if s not in SUBSET_ORDER)


# ----------------------------------------------------------------------------- MIGR diagnostics


def mi_labels(path: str | Path) -> dict[str, str]:
    """``{sample id: MI label}`` of an MI run (:mod:`modbias.runs.importance`; cached, do not mutate).

    Args:
        path: an MI run store.

    Returns:
        The labels (``audio``, ``visual``, ``both``, ``neither``).
    """
    return _mi_labels(str(path), _stamp(path))


@lru_cache(maxsize=32)
def _mi_labels(path: str, stamp: int) -> dict[str, str]:
    ds = _open(path, stamp)
    require(ds, "mi", view="MI column of the Samples view")
    return dict(zip(np.asarray(ds["sample"].values).astype(str).tolist(),
                    np.asarray(ds["mi"].values).astype(str).tolist()))


def mi_source(runs: list[RunInfo], ids) -> RunInfo | None:
    """The newest MI run (kind ``mi``, with an ``mi`` variable) labelling at least one of ``ids``.

    Args:
        runs: runs oldest first, as :func:`scan` lists them.
        ids: sample ids.

    Returns:
        The MI run or ``None``.
    """
    ids = set(ids)
    for info in reversed(runs):
        if info.kind != "mi" or not info.samples:
            continue
        try:
            labels = mi_labels(info.path)
        except (StoreFieldError, FileNotFoundError):  # an MI store of another schema, or one being written
            continue
        if not ids.isdisjoint(labels):
            return info
    return None


def consistency_of(path: str | Path) -> dict[str, dict[str, float]]:
    """EEA / EPC / FCR / R✗/A✓ per subset and ``overall``: :func:`modbias.analysis.consistency.consistency` of the
    run with its default (lexicon) explanation classifier, or the run's stored ``explanation_emotion``.

    Args:
        path: a run store.

    Returns:
        ``{group: scores}`` (MIGR Eqs. 6-8), cached until the manifest changes.
    """
    return _consistency(str(path), _stamp(path))


@lru_cache(maxsize=64)
def _consistency(path: str, stamp: int) -> dict[str, dict[str, float]]:
    ds = _open(path, stamp)
    require(ds, "text", "prediction", "label", view="consistency table")
    return consistency(ds, by="subset" if "subset" in ds.variables else None)


def clear_caches() -> None:
    """Forget every cached dataset and aggregate (the next read goes to disk)."""
    for cached in (_open, _sample_table, _head_sums, _row_lengths, _head_mean_rows, _computed_metrics, _mi_labels,
                   _consistency):
        cached.cache_clear()
