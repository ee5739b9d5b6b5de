"""Reductions of one run's arrays to what a figure shows (pure numpy; no Dash, no I/O).

Per-sample quantities follow the paper: S_h sums (Sec. 5.2), UAP (Eq. 1),
c_h (Eq. 5), c (Eq. 6) and H_bias (Eq. 7).  Eq. (7) is a per-sample
statement, so for a group of samples a head is summarised by the *share*
of samples in which it is biased, and called biased when that share is a
majority (> 1/2).  Samples without a probed emotion token hold NaN sums
and are left out of every average and share.
"""

from __future__ import annotations

import warnings

import numpy as np

from modbias.core.metrics import biased_heads, layer_ratio, token_attention

from modbias_app.runs import HeadMeanRows, HeadSums

HEAD_QUANTITIES = {
    "log10_c_h": "log10 c_h = log10(S_a / S_v) (Eq. 5)",
    "diff": "S_a − S_v (per-head UAP_a − UAP_v, Eq. 1)",
}


def _valid(S_a: np.ndarray, S_v: np.ndarray) -> np.ndarray:
    """Samples whose sums are defined (an emotion token was found): ``[sample]``."""
    return ~np.isnan(S_a).all(axis=(1, 2)) & ~np.isnan(S_v).all(axis=(1, 2))


def head_map(sums: HeadSums, keep: np.ndarray, quantity: str) -> np.ndarray:
    """``[layer, head]`` summary over the kept samples.

    ``log10_c_h``: the median over samples of log10 c_h (Eq. 5).  The median keeps
    ±inf heads meaningful (a head with S_v = 0 in most samples stays +inf)
    and ignores undefined (NaN) samples; a cell is NaN only when no kept
    sample defines it.  ``diff``: the mean over samples of S_a − S_v.

    Args:
        sums: a run's :class:`HeadSums` at one probed token.
        keep: bool ``[sample]``: the samples to summarise.
        quantity: ``"log10_c_h"`` or ``"diff"``.

    Returns:
        float ``[layer, head]`` (all NaN when no kept sample is defined).
    """
    if quantity not in HEAD_QUANTITIES:
        raise ValueError(f"quantity {quantity!r}; expected one of {sorted(HEAD_QUANTITIES)}")
    keep = keep & _valid(sums.S_a, sums.S_v)
    n_layers, n_heads = sums.S_a.shape[1:]
    if not keep.any():
        return np.full((n_layers, n_heads), np.nan)
    if quantity == "diff":
        return (sums.S_a[keep] - sums.S_v[keep]).mean(0)
    values = np.ascontiguousarray(sums.log10_c_h[keep].reshape(int(keep.sum()), -1).T)  # [L*H, n]: fast median
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        median = np.nanmedian(values, -1) if np.isnan(values).any() else np.median(values, -1)
    return median.reshape(n_layers, n_heads)


def biased_share(sums: HeadSums, keep: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Share of kept samples in which each head is in H_bias (Eq. 7) ``[layer, head]``, share in
    which each layer has c > τ (Eq. 6) ``[layer]``, and the number of samples counted.

    Args:
        sums: a run's :class:`HeadSums` at one probed token.
        keep: bool ``[sample]``: the samples to summarise.
        tau: τ.

    Returns:
        ``(heads [layer, head], layers [layer], n)``.
    """
    S_a, S_v = sums.S_a[keep], sums.S_v[keep]
    valid = _valid(S_a, S_v)
    S_a, S_v = S_a[valid], S_v[valid]
    if not len(S_a):
        return np.zeros(S_a.shape[1:]), np.zeros(S_a.shape[1]), 0
    with np.errstate(invalid="ignore"):
        heads = biased_heads(S_a, S_v, tau).mean(0)
        layers = (layer_ratio(S_a, S_v) > tau).mean(0)
    return heads, layers, len(S_a)


def layer_profile(sums: HeadSums, keep: np.ndarray) -> dict[str, np.ndarray]:
    """Mean UAP_v and UAP_a per layer (Eq. 1) over the kept samples: ``{"UAP_v": [L], "UAP_a": [L]}``.

    Args:
        sums: a run's :class:`HeadSums` at one probed token.
        keep: bool ``[sample]``: the samples to summarise.

    Returns:
        ``{"UAP_v": [L], "UAP_a": [L]}``.
    """
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for name in ("UAP_v", "UAP_a"):
            values = getattr(sums, name)[keep]
            out[name] = np.nanmean(values, axis=0) if len(values) else np.full(values.shape[1], np.nan)
    return out


def middle_mean(profile: dict[str, np.ndarray], layers) -> dict[str, float]:
    """A layer profile averaged over ``layers`` (the middle layers of Fig. 3a).

    Args:
        profile: ``{name: [L]}`` from :func:`layer_profile`.
        layers: layer indices.

    Returns:
        ``{name: mean}``.
    """
    return {name: float(np.nanmean(values[list(layers)])) for name, values in profile.items()}


def token_profile(hm: HeadMeanRows, keep: np.ndarray, layers) -> tuple[np.ndarray, np.ndarray, int]:
    """Attention per input position averaged over heads, ``layers`` (Fig. 3b,
    :func:`modbias.core.metrics.token_attention`) and the kept samples that have rows.

    Positions are the samples' own (unpadded) token indices; each position
    averages the samples long enough to have it.

    Args:
        hm: the run's head-averaged rows.
        keep: bool ``[sample]`` over the run's samples.
        layers: layer indices.

    Returns:
        ``(profile [T], modality [T] (``mixed`` where samples disagree), samples averaged)``.
    """
    pick = keep[hm.index]
    rows, length, modality = hm.rows[pick], hm.length[pick], hm.modality[pick]
    if not len(rows):
        return np.zeros(0), np.zeros(0, dtype=object), 0
    width = int(length.max())
    per_sample = token_attention(rows[:, :, None, :width], layers)  # [n, T]; head axis already averaged
    valid = np.arange(width)[None, :] < length[:, None]
    profile = np.where(valid, per_sample, 0).sum(0) / valid.sum(0)
    kinds = modality[:, :width]
    first = kinds[valid.argmax(0), np.arange(width)]  # modality in the first sample that has the position
    agree = np.where(valid, kinds == first[None, :], True).all(0)
    return profile, np.where(agree, first, "mixed"), len(rows)
