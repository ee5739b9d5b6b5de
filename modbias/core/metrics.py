"""Attention metrics of the CA-MER paper, as pure functions.

Shapes follow the store: ``rows`` ``[..., H, T]`` (attention of the decoded
query on each input position), per-head sums ``S`` ``[..., H]``.  Every
function works on torch tensors and numpy arrays; :func:`with_metrics`
adds the derived variables to an xarray run Dataset.

Zero attention on V (a head that ignores the visual tokens): the ratio of
Eq. (5)/(6) is ``S_a / S_v`` with IEEE semantics, i.e. ``+inf`` when
``S_v = 0 < S_a`` (infinitely audio-leaning) and ``nan`` when both are 0
(no modality attended: the ratio is undefined).  Consequences for Eq. (7):
a ``nan`` head is never biased; an ``inf`` head is biased whenever its layer
ratio is finite and above tau; a layer with ``c = inf`` (no visual attention
in any head) marks no head, since no head can exceed it.
"""

from __future__ import annotations

import numpy as np

try:  # torch is a dependency, but the numpy path must not need it
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _sum(x, axis):
    return x.sum(axis) if isinstance(x, np.ndarray) else x.sum(dim=axis)


def _mean(x, axis):
    return x.mean(axis) if isinstance(x, np.ndarray) else x.mean(dim=axis)


def _ratio(num, den):
    if not (torch is not None and isinstance(num, torch.Tensor)):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(num, dtype=np.float64) / np.asarray(den, dtype=np.float64)
    return num / den


def modality_sums(rows, mask):
    """S_h(ω, X) = Σ_{x∈X} ω_h(x) (Sec. 5.2): ``rows [..., H, T]``, ``mask [..., T]`` → ``[..., H]``.

    Args:
        rows: attention rows ω ``[..., H, T]`` (torch or numpy).
        mask: the modality's positions X ``[..., T]`` (bool or 0/1).

    Returns:
        ``[..., H]``: the attention each head gives X.
    """
    weights = mask[..., None, :]
    return _sum(rows * weights, -1)


def uap(S):
    """Unimodal attention proportion of one layer, Eq. (1): the head-mean of S_h → ``[...]``.

    Args:
        S: per-head sums ``[..., H]``.

    Returns:
        ``[...]``.
    """
    return _mean(S, -1)


def head_ratio(S_a, S_v):
    """Head-level audio/visual ratio c_h(ω) = S_h(ω,A) / S_h(ω,V), Eq. (5).

    Args:
        S_a: audio sums ``[..., H]``.
        S_v: visual sums ``[..., H]``.

    Returns:
        ``[..., H]`` (``inf`` where S_v = 0 < S_a, ``nan`` where both are 0).
    """
    return _ratio(S_a, S_v)


def layer_ratio(S_a, S_v):
    """Layer-level ratio c(ω) = Σ_h S_h(ω,A) / Σ_h S_h(ω,V), Eq. (6): ``[..., H]`` → ``[...]``.

    Args:
        S_a: audio sums ``[..., H]``.
        S_v: visual sums ``[..., H]``.

    Returns:
        ``[...]``.
    """
    return _ratio(_sum(S_a, -1), _sum(S_v, -1))


def biased_heads(S_a, S_v, tau: float = 1.0):
    """H_bias = {h | c(ω) > τ and c_h(ω) > c(ω)}, Eq. (7): boolean ``[..., H]``.

    Args:
        S_a: audio sums ``[..., H]``.
        S_v: visual sums ``[..., H]``.
        tau: the threshold τ.

    Returns:
        bool ``[..., H]``.
    """
    c = layer_ratio(S_a, S_v)[..., None]
    c_h = head_ratio(S_a, S_v)
    return (c > tau) & (c_h > c)


def middle_layers(n_layers: int) -> range:
    """The middle half of the stack, ``[L/4, 3L/4)``: where MLLMs integrate visual
    information (Sec. 4, after Devils [29]); at least one layer.

    Args:
        n_layers: L.

    Returns:
        The layer indices.
    """
    start = n_layers // 4
    return range(start, max(start + 1, n_layers - n_layers // 4))


def token_attention(rows, layers=None):
    """Per-token attention averaged over heads and the chosen layers (Fig. 3b).

    Args:
        rows: ``[..., L, H, T]``.
        layers: layer indices (default :func:`middle_layers`).

    Returns:
        ``[..., T]``.
    """
    layers = list(layers if layers is not None else middle_layers(rows.shape[-3]))
    picked = rows[..., layers, :, :]
    return _mean(_mean(picked, -2), -2)


def middle_layer_mean(per_layer, layers=None):
    """Average of a per-layer quantity ``[..., L]`` over the middle layers (Fig. 3a).

    Args:
        per_layer: ``[..., L]``.
        layers: layer indices (default :func:`middle_layers`).

    Returns:
        ``[...]``.
    """
    layers = list(layers if layers is not None else middle_layers(per_layer.shape[-1]))
    return _mean(per_layer[..., layers], -1)


def with_metrics(ds, tau: float = 1.0):
    """Add ``UAP_v, UAP_a, c_h, c, biased`` computed from ``S_v, S_a`` (dims ..., layer, head).

    Args:
        ds: a Dataset with ``S_v`` and ``S_a`` over ``(..., layer, head)``.
        tau: τ of Eq. (7) (kept in ``biased.attrs["tau"]``).

    Returns:
        A copy with ``UAP_v``, ``UAP_a`` (Eq. 1, ``[..., layer]``), ``c_h`` (Eq. 5, ``[..., layer, head]``),
        ``c`` (Eq. 6, ``[..., layer]``) and ``biased`` (Eq. 7, ``[..., layer, head]``).
    """
    import xarray as xr

    S_v, S_a = ds["S_v"].transpose(..., "head"), ds["S_a"].transpose(..., "head")
    out = ds.assign(
        UAP_v=S_v.mean("head"), UAP_a=S_a.mean("head"),
        c_h=xr.apply_ufunc(head_ratio, S_a, S_v),
        c=xr.apply_ufunc(layer_ratio, S_a, S_v, input_core_dims=[["head"], ["head"]]),
        biased=xr.apply_ufunc(biased_heads, S_a, S_v, kwargs={"tau": tau}),
    )
    out["biased"].attrs["tau"] = tau
    return out

