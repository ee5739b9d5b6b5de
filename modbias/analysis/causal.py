"""Reading causal runs: are the heads AR edits (c_h > c, Eq. 7) the heads that matter causally?

:func:`compare` ranks heads per subset by their attention ratio c_h (Eq. 5, from the run's own
attention sums at the emotion step, pooled over the subset's samples) and by their causal effect
(patching effect, its attribution estimate, or DLA), and reports the Spearman rank correlation, the
rank correlation with membership of the biased set H_bias at τ (Eq. 7), and the mean effect inside
and outside that set.  :func:`layer_profile` and :func:`head_map` are the per-layer and per-head
means the CLI prints and the dashboard draws.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from modbias.core.metrics import biased_heads, head_ratio

EFFECTS = ("patch_effect", "attribution_effect", "dla_head")


def effect_of(ds: xr.Dataset, effect: str | None = None) -> str:
    """The per-head causal variable to compare: ``effect`` if given, else the first of :data:`EFFECTS` in ``ds``.

    Args:
        ds: a causal run.
        effect: a data variable's name, or ``None`` to pick one.
    Returns:
        The variable's name; ``ValueError`` (naming the run) if ``ds`` lacks ``effect`` or has none of :data:`EFFECTS`.
    """
    if effect is not None:
        if effect not in ds:
            raise ValueError(f"run {ds.attrs.get('path', '')!s} has no {effect!r}; it has {sorted(ds.data_vars)}")
        return effect
    found = [name for name in EFFECTS if name in ds]
    if not found:
        raise ValueError(f"run {ds.attrs.get('path', '')!s} (kind {ds.attrs.get('kind')!r}) has no per-head effect; "
                         f"compare reads {EFFECTS} (a patch or dla run)")
    return found[0]


def spearman(x, y) -> float:
    """Spearman rank correlation of two equal-length vectors over their finite pairs (ties: average ranks).

    Args:
        x, y: array-likes of the same size (flattened).
    Returns:
        Pearson correlation of the ranks; NaN with fewer than 3 finite pairs or constant ranks.
    """
    x, y = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3:
        return float("nan")
    rx, ry = pd.Series(x[keep]).rank(), pd.Series(y[keep]).rank()
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(rx.corr(ry))


def head_map(ds: xr.Dataset, name: str, subset: str | None = None) -> xr.DataArray:
    """Mean of a per-head variable over the samples (NaN skipped), optionally one subset's only.

    Args:
        ds: a causal run.
        name: a variable with dims ``(sample, layer, head)``, e.g. ``patch_effect`` or ``S_a``.
        subset: a value of the ``subset`` coord (``None``: every sample).
    Returns:
        ``[layer, head]`` DataArray, loaded.
    """
    ds = ds if subset is None else ds.where(ds.subset == subset, drop=True)
    return ds[name].mean("sample", skipna=True).load()


def pooled_ratio(ds: xr.Dataset, tau: float, subset: str | None = None) -> tuple[xr.DataArray, xr.DataArray]:
    """c_h (Eq. 5) of the samples' mean attention sums ``S_a``, ``S_v``, and the biased set H_bias at ``tau`` (Eq. 7).

    Args:
        ds: a causal run (``S_v``, ``S_a`` (sample, layer, head) at the emotion step).
        tau: the threshold τ of Eq. 7.
        subset: a value of the ``subset`` coord (``None``: every sample).
    Returns:
        ``(c_h, biased)``, both ``[layer, head]``: the ratio (±inf/NaN as :func:`modbias.core.metrics.head_ratio`)
        and the boolean membership of H_bias.
    """
    S_a, S_v = head_map(ds, "S_a", subset), head_map(ds, "S_v", subset)
    c_h = xr.apply_ufunc(head_ratio, S_a, S_v)
    return c_h, xr.apply_ufunc(biased_heads, S_a, S_v, kwargs={"tau": tau})


def compare(ds: xr.Dataset, tau: float = 1.0, effect: str | None = None) -> pd.DataFrame:
    """Per subset (and ``all``): rank agreement between c_h / H_bias and the per-head causal effect.

    Args:
        ds: a ``patch`` or ``dla`` run (with ``S_v``, ``S_a`` per head at the emotion step).
        tau: threshold of Eq. 7.
        effect: ``patch_effect`` | ``attribution_effect`` | ``dla_head`` (default: the first present).
    Returns:
        DataFrame indexed by subset: ``samples``, ``spearman_c_h`` (c_h vs effect),
        ``spearman_biased`` (H_bias membership vs effect), ``n_biased``, ``biased`` (its heads, ``L1H2 ...``),
        ``effect_biased`` and
        ``effect_other`` (mean effect inside / outside H_bias), ``top_head`` (largest mean effect).
    """
    name = effect_of(ds, effect)
    rows = {}
    for subset in [*dict.fromkeys(ds.subset.values.tolist()), "all"]:
        part = None if subset == "all" else subset
        values = head_map(ds, name, part)
        if not np.isfinite(values.values).any():
            continue
        c_h, biased = pooled_ratio(ds, tau, part)
        inside = values.values[biased.values.astype(bool)]
        outside = values.values[~biased.values.astype(bool)]
        layer, head = np.unravel_index(np.nanargmax(values.values), values.shape)
        rows[subset] = {
            "samples": int((ds.subset == subset).sum()) if part else ds.sizes["sample"],
            "spearman_c_h": spearman(np.log(c_h.values), values.values),
            "spearman_biased": spearman(biased.values, values.values),
            "n_biased": int(biased.values.sum()),
            "biased": " ".join(f"L{layer}H{head}" for layer, head in np.argwhere(biased.values)) or "-",
            "effect_biased": float(np.nanmean(inside)) if inside.size else float("nan"),
            "effect_other": float(np.nanmean(outside)) if outside.size else float("nan"),
            "top_head": f"L{layer}H{head}",
        }
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"{name} (tau={tau})")


def attribution_agreement(ds: xr.Dataset) -> dict:
    """How well attribution patching predicts exact patching, over every (sample, layer, head) with both.

    Args:
        ds: a patch run made with ``method="both"`` (``patch_effect`` and ``attribution_effect``).
    Returns:
        ``{"spearman", "pearson", "n"}``: correlations of ``attribution_effect`` with ``patch_effect`` over
        ``n`` finite pairs (NaN with fewer than 3).
    """
    exact, approx = (np.asarray(ds[k].values, np.float64).ravel() for k in ("patch_effect", "attribution_effect"))
    keep = np.isfinite(exact) & np.isfinite(approx)
    pearson = float(np.corrcoef(exact[keep], approx[keep])[0, 1]) if keep.sum() > 2 else float("nan")
    return {"spearman": spearman(exact, approx), "pearson": pearson, "n": int(keep.sum())}


def layer_profile(ds: xr.Dataset, name: str) -> pd.DataFrame:
    """Mean of ``name`` per subset over samples (and heads, if it has them).

    Args:
        ds: a causal run.
        name: a variable with dims ``(sample, [modality,] layer[, head])``, e.g. ``knockout_delta``,
            ``dla_mlp``, ``lens_logit_diff``.
    Returns:
        DataFrame: rows subset (knockout: ``subset/modality``), columns layer; subsets without a finite value
        (e.g. consistent samples, whose LD is undefined) are left out.
    """
    frames = {}
    for subset in dict.fromkeys(ds.subset.values.tolist()):
        value = ds[name].where(ds.subset == subset, drop=True).mean("sample", skipna=True)
        if "head" in value.dims:
            value = value.mean("head")
        if not np.isfinite(value.values).any():  # e.g. consistent samples: no LD to change
            continue
        if "modality" in value.dims:
            for modality in value.modality.values.tolist():
                frames[f"{subset}/{modality}"] = value.sel(modality=modality).values
        else:
            frames[subset] = value.values
    return pd.DataFrame(frames, index=pd.Index(ds.layer.values if "layer" in ds.coords else
                                               np.arange(ds.sizes["layer"]), name="layer")).T


def logit_summary(ds: xr.Dataset) -> pd.DataFrame:
    """How each subset's logit difference LD and conclusions lean, over its conflicts (samples with an LD).

    Args:
        ds: a causal run (``logit_diff``, ``prediction``, ``audio_emotion``, ``visual_emotion``;
            ``logit_diff_cf`` in a patch run).
    Returns:
        DataFrame indexed by subset (those with a conflict): ``conflicts``, mean ``LD`` (and ``LD_cf``),
        ``says_audio_cue`` and ``says_visual_cue`` (share of the conflicts' predictions naming that cue's emotion).
    """
    rows = {}
    for subset in dict.fromkeys(ds.subset.values.tolist()):
        part = ds.where(ds.subset == subset, drop=True)
        defined = np.isfinite(part.logit_diff.values)
        if not defined.any():
            continue
        row = {"conflicts": int(defined.sum()), "LD": float(np.nanmean(part.logit_diff.values))}
        if "logit_diff_cf" in part:
            row["LD_cf"] = float(np.nanmean(part.logit_diff_cf.values))
        prediction = part.prediction.values[defined]
        row["says_audio_cue"] = float(np.mean(prediction == part.audio_emotion.values[defined]))
        row["says_visual_cue"] = float(np.mean(prediction == part.visual_emotion.values[defined]))
        rows[subset] = row
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("subset")
