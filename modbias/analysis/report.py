"""Closing summaries of runs, as plain rows and as rich tables, named as in the README's glossary.

``Acc``, ``Rec``, ``Avg``: set-level metrics of Eqs. (22)-(24), in %.  ``Correct``: % of samples
whose conclusion emotion equals the label (the mean of the store's per-sample ``correct``; the
summaries written by :func:`modbias.core.evaluation.subset_metrics` hold it under the key ``hit``).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from rich.table import Table

from modbias.core.metrics import middle_layers


def trace_summary(ds: xr.Dataset, at: str = "first") -> list[dict]:
    """Per subset (and overall), in the README's vocabulary: samples, Correct (% whose conclusion
    emotion equals the label), over the middle layers the mean UAP_v / UAP_a (Eq. 1), the median c
    (Eq. 6) and the share of biased heads ("biased", Eq. 7 at the run's tau), and samples without an emotion word
    ("no emotion").

    Args:
        ds: a trace run (``open_run``: ``UAP_v``, ``UAP_a``, ``c``, ``biased``, ``found``, ``correct`` over ``(sample, at, layer[, head])``).
        at: which emotion token: ``"first"`` or ``"answer"``.

    Returns:
        One dict per subset (then ``overall``) with keys ``subset``, ``samples``, ``Correct``,
        ``UAP_v``, ``UAP_a``, ``c``, ``biased``, ``no emotion``.
    """
    mid = list(middle_layers(ds.sizes["layer"]))
    view = ds.sel(at=at)
    groups = [(str(s), view.where(view.subset == s, drop=True)) for s in dict.fromkeys(view.subset.values.tolist())]
    if len(groups) > 1:
        groups.append(("overall", view))
    out = []
    for name, part in groups:
        found = part.found.values.astype(bool)
        biased = part.biased.isel(layer=mid).values[found]
        c = part.c.isel(layer=mid).values[found]
        out.append({
            "subset": name, "samples": int(part.sizes["sample"]),
            "Correct": float(np.mean(part.correct.values.astype(bool)) * 100),
            "UAP_v": float(np.nanmean(part.UAP_v.isel(layer=mid).values)),
            "UAP_a": float(np.nanmean(part.UAP_a.isel(layer=mid).values)),
            "c": float(np.nanmedian(c)) if c.size else float("nan"),
            "biased": float(biased.mean()) if biased.size else float("nan"),
            "no emotion": int((~found).sum()),
        })
    return out


def summary_table(rows: list[dict], title: str) -> Table:
    """Rich table of summary rows (percent columns with one decimal, other floats with three).

    Args:
        rows: dicts with the same keys, e.g. :func:`trace_summary`'s.
        title: the table's title.

    Returns:
        A ``rich.table.Table``.
    """
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key, justify="left" if key == "subset" else "right", no_wrap=key == "subset")
    for row in rows:
        table.add_row(*[(f"{v:.1f}" if k in PERCENT else f"{v:.3f}") if isinstance(v, float) else str(v)
                        for k, v in row.items()])
    return table


INTERVENTION_COLUMNS = {"Acc": "acc", "Rec": "rec", "Avg": "avg", "Correct": "hit"}  # header -> summary key
PERCENT = ("Correct", *INTERVENTION_COLUMNS)


def intervention_table(summary: dict, title: str) -> Table:
    """Per-subset Acc / Rec / Avg (%, Eqs. 22-24) and Correct (% conclusion = label), with deltas vs the baseline.

    Args:
        summary: an intervene run's summary (``metrics``, optional ``deltas``, ``scope``, ``edits``).
        title: the table's title.

    Returns:
        A ``rich.table.Table`` (its caption names the scope and edit counts).
    """
    table = Table(title=title)
    for name in ("subset", *INTERVENTION_COLUMNS):
        table.add_column(name, justify="left" if name == "subset" else "right", no_wrap=name == "subset")
    changes = summary.get("deltas") or {}
    for subset, values in summary["metrics"].items():
        cells = []
        for metric in INTERVENTION_COLUMNS.values():
            delta = changes.get(subset, {}).get(metric)
            cells.append(f"{values[metric]:.1f}" + (f" ({delta:+.1f})" if delta is not None else ""))
        table.add_row(subset, *cells)
    notes = [f"Ŷ from the {summary['scope']}" if summary.get("scope") else ""]
    notes += [f"{name.replace('_', ' ')} head rows: {total:,}" for name, total in summary.get("edits", {}).items()]
    table.caption = "; ".join(n for n in notes if n) or None
    return table
