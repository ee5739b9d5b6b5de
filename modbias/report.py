"""Closing summaries of runs, as plain rows and as rich tables."""

from __future__ import annotations

import numpy as np
import xarray as xr
from rich.table import Table

from modbias.metrics import middle_layers


def trace_summary(ds: xr.Dataset, at: str = "first") -> list[dict]:
    """Per subset (and overall): samples, accuracy, mean middle-layer UAP_v / UAP_a,
    share of biased heads (Eq. 7 at the run's tau), and samples without an emotion word."""
    mid = list(middle_layers(ds.sizes["layer"]))
    view = ds.sel(at=at)
    groups = [(str(s), view.where(view.subset == s, drop=True)) for s in dict.fromkeys(view.subset.values.tolist())]
    if len(groups) > 1:
        groups.append(("overall", view))
    out = []
    for name, part in groups:
        found = part.found.values.astype(bool)
        biased = part.biased.isel(layer=mid).values[found]
        out.append({
            "subset": name, "samples": int(part.sizes["sample"]),
            "accuracy": float(np.mean(part.correct.values.astype(bool))),
            "UAP_v": float(np.nanmean(part.UAP_v.isel(layer=mid).values)),
            "UAP_a": float(np.nanmean(part.UAP_a.isel(layer=mid).values)),
            "biased_heads": float(biased.mean()) if biased.size else float("nan"),
            "no_emotion": int((~found).sum()),
        })
    return out


def summary_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key, justify="left" if key == "subset" else "right")
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()])
    return table


def intervention_table(summary: dict, title: str) -> Table:
    """Per-subset Acc / Rec / Avg (%, Eqs. 23-24) and conclusion hit rate, with deltas vs the baseline."""
    table = Table(title=title)
    for name in ("subset", "Acc", "Rec", "Avg", "hit"):
        table.add_column(name, justify="left" if name == "subset" else "right")
    changes = summary.get("deltas") or {}
    for subset, values in summary["metrics"].items():
        cells = []
        for metric in ("acc", "rec", "avg", "hit"):
            delta = changes.get(subset, {}).get(metric)
            cells.append(f"{values[metric]:.1f}" + (f" ({delta:+.1f})" if delta is not None else ""))
        table.add_row(subset, *cells)
    notes = [f"Ŷ from the {summary['scope']}" if summary.get("scope") else ""]
    notes += [f"{name.replace('_', ' ')} head rows: {total:,}" for name, total in summary.get("edits", {}).items()]
    table.caption = "; ".join(n for n in notes if n) or None
    return table
