"""Tests of modbias.core.metrics against hand-worked numbers and the paper's equations.

Eq. (1)  UAP_v = 1/H sum_h S_h(V),  UAP_a = 1/H sum_h S_h(A)
Eq. (5)  c_h = S_h(A) / S_h(V)
Eq. (6)  c = sum_h S_h(A) / sum_h S_h(V)
Eq. (7)  H_bias = {h | c > tau and c_h > c}
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import xarray as xr
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modbias.core.metrics import (
    biased_heads,
    head_ratio,
    layer_ratio,
    middle_layer_mean,
    middle_layers,
    modality_sums,
    token_attention,
    uap,
    with_metrics,
)

FAST = settings(max_examples=50, deadline=None)
# the properties draw tiny S_v on purpose; division then overflows to inf, which is the documented result
QUIET = pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning", "ignore:invalid value:RuntimeWarning",
                                  "ignore:overflow encountered:RuntimeWarning")  # tiny S_v -> c_h = inf

# ---------------------------------------------------------------------------
# Hand-worked example: 1 layer, 3 heads, 5 tokens.
# Tokens 0,1 are visual, token 2 is audio, tokens 3,4 are prompt text.
# ---------------------------------------------------------------------------
VISUAL = [True, True, False, False, False]
AUDIO = [False, False, True, False, False]
# dyadic weights, so every sum below is exact in floating point
ROWS = [
    # v0      v1      a0     t0      t1
    [0.125, 0.125, 0.50, 0.125, 0.125],  # head 0: S_v = 0.125+0.125 = 0.25,  S_a = 0.50
    [0.25, 0.25, 0.25, 0.125, 0.125],  # head 1: S_v = 0.25+0.25 = 0.50,    S_a = 0.25
    [0.0625, 0.0625, 0.75, 0.0625, 0.0625],  # head 2: S_v = 0.0625+0.0625 = 0.125, S_a = 0.75
]
S_V = [0.25, 0.50, 0.125]
S_A = [0.50, 0.25, 0.75]
UAP_V = 0.875 / 3  # (0.25 + 0.50 + 0.125) / 3 heads
UAP_A = 0.5  # (0.50 + 0.25 + 0.75) / 3 heads = 1.5 / 3
C_H = [2.0, 0.5, 6.0]  # 0.50/0.25, 0.25/0.50, 0.75/0.125
C = 12 / 7  # (0.50+0.25+0.75) / (0.25+0.50+0.125) = 1.5 / 0.875 = 12/7 ~ 1.714
BIASED_TAU1 = [True, False, True]  # c = 12/7 > 1; heads with c_h > 12/7: 2.0 and 6.0


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def as_backend(backend, x, dtype=None):
    if backend == "numpy":
        return np.asarray(x, dtype=dtype or np.float64)
    return torch.tensor(x, dtype={None: torch.float64, bool: torch.bool}.get(dtype, dtype))


BACKENDS = ["numpy", "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_worked_example(backend):
    rows = as_backend(backend, ROWS)
    vmask = as_backend(backend, VISUAL, bool)
    amask = as_backend(backend, AUDIO, bool)

    S_v = modality_sums(rows, vmask)
    S_a = modality_sums(rows, amask)
    assert type(S_v) is type(rows)  # stays in the caller's array library
    assert tuple(S_v.shape) == (3,)
    np.testing.assert_allclose(_np(S_v), S_V, rtol=1e-12)
    np.testing.assert_allclose(_np(S_a), S_A, rtol=1e-12)

    np.testing.assert_allclose(float(uap(S_v)), UAP_V, rtol=1e-12)
    np.testing.assert_allclose(float(uap(S_a)), UAP_A, rtol=1e-12)

    np.testing.assert_allclose(_np(head_ratio(S_a, S_v)), C_H, rtol=1e-12)
    np.testing.assert_allclose(float(layer_ratio(S_a, S_v)), C, rtol=1e-12)

    assert _np(biased_heads(S_a, S_v, tau=1.0)).tolist() == BIASED_TAU1
    # default tau is 1.0 (the paper's setting used by the library)
    assert _np(biased_heads(S_a, S_v)).tolist() == BIASED_TAU1
    # tau = 1.75 > c = 12/7: the layer is not biased, so no head is
    assert _np(biased_heads(S_a, S_v, tau=1.75)).tolist() == [False, False, False]
    # tau = c exactly: Eq. (7) needs c > tau strictly
    assert _np(biased_heads(S_a, S_v, tau=C)).tolist() == [False, False, False]
    # tau = 0: still only heads whose c_h exceeds c
    assert _np(biased_heads(S_a, S_v, tau=0.0)).tolist() == BIASED_TAU1


@pytest.mark.parametrize("backend", BACKENDS)
def test_hand_worked_example_with_leading_dims(backend):
    """Two layers stacked: [L=2, H=3, T=5]; layer 1 is visual-leaning (c < 1)."""
    layer1 = [
        # v0   v1   a0   t0   t1
        [0.30, 0.30, 0.20, 0.10, 0.10],  # S_v = 0.60, S_a = 0.20, c_h = 1/3
        [0.20, 0.20, 0.40, 0.10, 0.10],  # S_v = 0.40, S_a = 0.40, c_h = 1
        [0.40, 0.40, 0.10, 0.05, 0.05],  # S_v = 0.80, S_a = 0.10, c_h = 1/8
    ]  # c = (0.20+0.40+0.10)/(0.60+0.40+0.80) = 0.70/1.80 = 7/18 < 1 -> no head biased
    rows = as_backend(backend, [ROWS, layer1])
    S_v = modality_sums(rows, as_backend(backend, VISUAL, bool))
    S_a = modality_sums(rows, as_backend(backend, AUDIO, bool))
    assert tuple(S_v.shape) == (2, 3)
    np.testing.assert_allclose(_np(S_v), [S_V, [0.60, 0.40, 0.80]], rtol=1e-12)
    np.testing.assert_allclose(_np(S_a), [S_A, [0.20, 0.40, 0.10]], rtol=1e-12)
    np.testing.assert_allclose(_np(uap(S_v)), [UAP_V, 1.80 / 3], rtol=1e-12)
    np.testing.assert_allclose(_np(uap(S_a)), [UAP_A, 0.70 / 3], rtol=1e-12)
    np.testing.assert_allclose(_np(head_ratio(S_a, S_v)), [C_H, [1 / 3, 1.0, 1 / 8]], rtol=1e-12)
    np.testing.assert_allclose(_np(layer_ratio(S_a, S_v)), [C, 7 / 18], rtol=1e-12)
    assert _np(biased_heads(S_a, S_v, tau=1.0)).tolist() == [BIASED_TAU1, [False, False, False]]
    # with tau = 0.3 < 7/18 layer 1 becomes biased: c_h > 7/18 ~ 0.389 only for head 1 (c_h = 1)
    assert _np(biased_heads(S_a, S_v, tau=0.3)).tolist() == [BIASED_TAU1, [False, True, False]]


def test_modality_sums_float32_torch_and_numpy_agree():
    rows = np.asarray(ROWS, dtype=np.float32)
    vmask = np.asarray(VISUAL)
    a = modality_sums(rows, vmask)
    b = modality_sums(torch.from_numpy(rows), torch.from_numpy(vmask))
    np.testing.assert_allclose(a, S_V, rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), S_V, rtol=1e-6)


# ---------------------------------------------------------------------------
# Zero visual attention (module docstring)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_visual_attention_head_ratio(backend):
    S_v = as_backend(backend, [0.0, 0.0, 0.5])
    S_a = as_backend(backend, [0.3, 0.0, 0.2])
    c_h = _np(head_ratio(S_a, S_v))
    assert c_h[0] == math.inf  # S_v = 0 < S_a = 0.3
    assert math.isnan(c_h[1])  # S_v = S_a = 0
    assert c_h[2] == pytest.approx(0.4)  # 0.2 / 0.5
    # c = (0.3 + 0 + 0.2) / (0 + 0 + 0.5) = 1.0
    assert float(layer_ratio(S_a, S_v)) == pytest.approx(1.0)
    # tau = 0.5 < c = 1: the inf head is biased, the nan head never, 0.4 <= 1 not
    assert _np(biased_heads(S_a, S_v, tau=0.5)).tolist() == [True, False, False]
    # tau = 1.0 = c: the layer is not biased, so not even the inf head
    assert _np(biased_heads(S_a, S_v, tau=1.0)).tolist() == [False, False, False]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_visual_attention_from_rows(backend):
    rows = as_backend(backend, [
        # v0   v1   a0   t0
        [0.0, 0.0, 0.6, 0.4],  # S_v = 0, S_a = 0.6 -> c_h = inf
        [0.0, 0.0, 0.0, 1.0],  # S_v = 0, S_a = 0   -> c_h = nan
        [0.3, 0.3, 0.2, 0.2],  # S_v = 0.6, S_a = 0.2 -> c_h = 1/3
    ])
    S_v = modality_sums(rows, as_backend(backend, [True, True, False, False], bool))
    S_a = modality_sums(rows, as_backend(backend, [False, False, True, False], bool))
    c_h = _np(head_ratio(S_a, S_v))
    assert c_h[0] == math.inf and math.isnan(c_h[1]) and c_h[2] == pytest.approx(1 / 3)
    # c = (0.6 + 0 + 0.2) / 0.6 = 4/3, finite and > tau = 1
    assert float(layer_ratio(S_a, S_v)) == pytest.approx(4 / 3)
    assert _np(biased_heads(S_a, S_v, tau=1.0)).tolist() == [True, False, False]


@pytest.mark.parametrize("backend", BACKENDS)
def test_layer_without_visual_attention_marks_no_head(backend):
    S_v = as_backend(backend, [[0.0, 0.0], [0.0, 0.0]])
    S_a = as_backend(backend, [[0.3, 0.1], [0.0, 0.0]])
    c = _np(layer_ratio(S_a, S_v))
    assert c[0] == math.inf  # 0.4 / 0
    assert math.isnan(c[1])  # 0 / 0
    c_h = _np(head_ratio(S_a, S_v))
    assert np.isinf(c_h[0]).all() and np.isnan(c_h[1]).all()
    for tau in (0.0, 1.0, 1e300):
        assert not _np(biased_heads(S_a, S_v, tau=tau)).any()


def test_zero_visual_single_layer_numpy_emits_no_warning():
    S_v, S_a = np.array([0.0, 0.0]), np.array([0.3, 0.1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert layer_ratio(S_a, S_v) == math.inf  # 0.4 / 0
        assert math.isnan(layer_ratio(np.zeros(2), np.zeros(2)))  # 0 / 0
        assert not biased_heads(S_a, S_v, tau=1.0).any()


# ---------------------------------------------------------------------------
# Hypothesis properties on random row-stochastic attention
# ---------------------------------------------------------------------------
@st.composite
def attention(draw, max_heads=5, max_tokens=8):
    """rows [H, T] (each row sums to 1) and a per-token kind: 0 visual, 1 audio, 2 other."""
    H = draw(st.integers(1, max_heads))
    T = draw(st.integers(2, max_tokens))
    raw = draw(hnp.arrays(np.float64, (H, T), elements=st.floats(0.0, 1.0)))
    # sometimes drop all visual attention of some heads (the inf / nan cases)
    kinds = np.asarray(draw(st.lists(st.integers(0, 2), min_size=T, max_size=T)))
    drop = np.asarray(draw(st.lists(st.booleans(), min_size=H, max_size=H)))
    raw[np.ix_(drop, kinds == 0)] = 0.0
    sums = raw.sum(-1, keepdims=True)
    rows = np.where(sums > 0, raw / np.where(sums > 0, sums, 1.0), 1.0 / T)
    return rows, kinds


def manual_sums(rows, kinds, kind):
    return np.array([math.fsum(r[t] for t in range(len(r)) if kinds[t] == kind) for r in rows])


def ieee_ratio(num, den):
    if den > 0:
        return num / den
    return math.inf if num > 0 else math.nan


def same_float(a, b, rtol=1e-12):
    if math.isnan(b):
        return math.isnan(a)
    if math.isinf(b):
        return a == b
    return math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300)


@FAST
@given(attention())
def test_modality_sums_match_manual_and_bounded_by_row_sum(data):
    rows, kinds = data
    for backend in BACKENDS:
        r = as_backend(backend, rows)
        S_v = _np(modality_sums(r, as_backend(backend, kinds == 0, bool)))
        S_a = _np(modality_sums(r, as_backend(backend, kinds == 1, bool)))
        np.testing.assert_allclose(S_v, manual_sums(rows, kinds, 0), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(S_a, manual_sums(rows, kinds, 1), rtol=1e-12, atol=1e-15)
        assert (S_v >= 0).all() and (S_a >= 0).all()
        assert (S_v + S_a <= rows.sum(-1) + 1e-12).all()


@QUIET
@FAST
@given(attention())
def test_layer_ratio_is_ratio_of_sums(data):
    rows, kinds = data
    sv, sa = manual_sums(rows, kinds, 0), manual_sums(rows, kinds, 1)
    expected = ieee_ratio(math.fsum(sa), math.fsum(sv))
    for backend in BACKENDS:
        got = float(layer_ratio(as_backend(backend, sa), as_backend(backend, sv)))
        assert same_float(got, expected), (backend, got, expected)
        c_h = _np(head_ratio(as_backend(backend, sa), as_backend(backend, sv)))
        for h in range(len(sa)):
            assert same_float(float(c_h[h]), ieee_ratio(sa[h], sv[h]))


@QUIET
@FAST
@given(attention(), st.floats(0.0, 10.0))
def test_no_biased_head_when_tau_at_least_c(data, extra):
    rows, kinds = data
    sv, sa = manual_sums(rows, kinds, 0), manual_sums(rows, kinds, 1)
    for backend in BACKENDS:
        S_a, S_v = as_backend(backend, sa), as_backend(backend, sv)
        c = float(layer_ratio(S_a, S_v))  # the backend's own rounding of c
        if math.isnan(c):
            taus = [0.0, extra]  # undefined layer ratio: never biased
        elif math.isinf(c):
            taus = [0.0, extra, 1e300]  # no head can exceed c = inf
        else:
            taus = [c, c + extra, c * (1.0 + extra)]
        for tau in taus:
            assert not _np(biased_heads(S_a, S_v, tau=tau)).any(), (backend, tau, c)


@QUIET
@FAST
@given(attention())
def test_tau_zero_leaves_some_head_unbiased(data):
    """c is a weighted mean of the finite c_h (weights S_v) plus inf-head audio, so the
    head with the smallest finite c_h never exceeds c."""
    rows, kinds = data
    sv, sa = manual_sums(rows, kinds, 0), manual_sums(rows, kinds, 1)
    c = float(layer_ratio(sa, sv))
    assume(math.isfinite(c))
    c_h = head_ratio(sa, sv)
    finite = c_h[np.isfinite(c_h)]
    assert finite.size > 0  # c finite => some head attends to V
    assert finite.min() <= c * (1 + 1e-12)
    biased = biased_heads(sa, sv, tau=0.0)
    if biased.all():  # only possible through rounding when all c_h equal c
        np.testing.assert_allclose(c_h, c, rtol=1e-9)
    # biased heads must have c_h > c (Eq. 7)
    assert (c_h[biased] > c).all()


@QUIET
@FAST
@given(attention(), st.floats(0.0, 5.0), st.floats(0.0, 5.0))
def test_biased_set_shrinks_as_tau_grows(data, t1, t2):
    rows, kinds = data
    sv, sa = manual_sums(rows, kinds, 0), manual_sums(rows, kinds, 1)
    lo, hi = sorted((t1, t2))
    b_lo, b_hi = biased_heads(sa, sv, tau=lo), biased_heads(sa, sv, tau=hi)
    assert not (b_hi & ~b_lo).any()


@st.composite
def stacked_rows(draw):
    B = draw(st.integers(1, 2))
    L = draw(st.integers(1, 9))
    H = draw(st.integers(1, 3))
    T = draw(st.integers(1, 5))
    rows = draw(hnp.arrays(np.float64, (B, L, H, T), elements=st.floats(0.0, 1.0)))
    layers = sorted(draw(st.sets(st.integers(0, L - 1), min_size=1)))
    return rows, layers


def manual_token_attention(rows, layers):
    B, L, H, T = rows.shape
    out = np.zeros((B, T))
    for b in range(B):
        for t in range(T):
            out[b, t] = math.fsum(rows[b, l, h, t] for l in layers for h in range(H)) / (len(layers) * H)
    return out


@FAST
@given(stacked_rows())
def test_token_attention_is_mean_over_chosen_layers_and_heads(data):
    rows, layers = data
    for backend in BACKENDS:
        r = as_backend(backend, rows)
        np.testing.assert_allclose(_np(token_attention(r, layers)), manual_token_attention(rows, layers),
                                   rtol=1e-12, atol=1e-15)
        # default: the middle layers
        default = list(middle_layers(rows.shape[1]))
        np.testing.assert_allclose(_np(token_attention(r)), manual_token_attention(rows, default),
                                   rtol=1e-12, atol=1e-15)


@FAST
@given(stacked_rows())
def test_middle_layer_mean(data):
    rows, layers = data
    per_layer = rows[..., 0, 0]  # [B, L]
    L = per_layer.shape[-1]
    expected = np.array([math.fsum(per_layer[b, l] for l in layers) / len(layers) for b in range(len(per_layer))])
    np.testing.assert_allclose(middle_layer_mean(per_layer, layers), expected, rtol=1e-12)
    mid = list(middle_layers(L))
    expected = np.array([math.fsum(per_layer[b, l] for l in mid) / len(mid) for b in range(len(per_layer))])
    np.testing.assert_allclose(middle_layer_mean(torch.from_numpy(per_layer)).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("L", range(1, 65))
def test_middle_layers_nonempty_and_in_range(L):
    layers = list(middle_layers(L))
    assert layers, L
    assert all(0 <= l < L for l in layers)
    assert layers == list(range(layers[0], layers[-1] + 1))  # contiguous
    # the middle half [L/4, 3L/4), rounded outward at most
    assert all(math.floor(L / 4) <= l < math.ceil(3 * L / 4) for l in layers)
    if L % 4 == 0:
        assert layers == list(range(L // 4, 3 * L // 4))


# ---------------------------------------------------------------------------
# with_metrics on an xarray run Dataset
# ---------------------------------------------------------------------------
def _run_dataset(S_v, S_a, order=("sample", "at", "layer", "head")):
    dims = ("sample", "at", "layer", "head")
    ds = xr.Dataset({"S_v": (dims, S_v), "S_a": (dims, S_a)},
                    coords={"sample": [f"s{i}" for i in range(S_v.shape[0])]})
    return ds.transpose(*order)


def test_with_metrics_hand_worked():
    # sample 0: the hand-worked layer + the visual-leaning layer; sample 1: zero-visual cases
    S_v = np.array([[[S_V, [0.60, 0.40, 0.80]]], [[[0.0, 0.0, 0.5], [0.0, 0.0, 0.0]]]])
    S_a = np.array([[[S_A, [0.20, 0.40, 0.10]]], [[[0.3, 0.0, 0.2], [0.3, 0.1, 0.0]]]])
    assert S_v.shape == (2, 1, 2, 3)
    out = with_metrics(_run_dataset(S_v, S_a), tau=0.5)
    assert out["biased"].attrs["tau"] == 0.5
    assert set(out["c"].dims) == {"sample", "at", "layer"}
    assert set(out["c_h"].dims) == {"sample", "at", "layer", "head"}
    c = out["c"].transpose("sample", "at", "layer").values
    np.testing.assert_allclose(c[0, 0], [C, 7 / 18])
    assert c[1, 0, 0] == pytest.approx(1.0)  # 0.5 / 0.5
    assert c[1, 0, 1] == math.inf  # 0.4 / 0
    np.testing.assert_allclose(out["UAP_v"].transpose("sample", "at", "layer").values[0, 0], [UAP_V, 1.8 / 3])
    np.testing.assert_allclose(out["UAP_a"].transpose("sample", "at", "layer").values[0, 0], [UAP_A, 0.7 / 3])
    biased = out["biased"].transpose("sample", "at", "layer", "head").values
    assert biased[0, 0].tolist() == [BIASED_TAU1, [False, False, False]]  # 7/18 < 0.5
    assert biased[1, 0].tolist() == [[True, False, False], [False, False, False]]


@pytest.mark.parametrize("order", [("sample", "at", "layer", "head"), ("head", "layer", "sample", "at"),
                                   ("layer", "head", "at", "sample")])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_with_metrics_agrees_with_array_functions(order, data):
    shape = (data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3)),
             data.draw(st.integers(1, 4)))
    elems = st.one_of(st.just(0.0), st.floats(0.0, 1.0, allow_subnormal=False))
    S_v = data.draw(hnp.arrays(np.float64, shape, elements=elems))
    S_a = data.draw(hnp.arrays(np.float64, shape, elements=elems))
    tau = data.draw(st.floats(0.0, 3.0))
    out = with_metrics(_run_dataset(S_v, S_a, order), tau=tau)
    canon = ("sample", "at", "layer", "head")
    np.testing.assert_allclose(out["UAP_v"].transpose(*canon[:3]).values, uap(S_v))
    np.testing.assert_allclose(out["UAP_a"].transpose(*canon[:3]).values, uap(S_a))
    np.testing.assert_array_equal(out["c_h"].transpose(*canon).values, head_ratio(S_a, S_v))
    np.testing.assert_allclose(out["c"].transpose(*canon[:3]).values, layer_ratio(S_a, S_v), rtol=1e-12)
    np.testing.assert_array_equal(out["biased"].transpose(*canon).values, biased_heads(S_a, S_v, tau=tau))
    # the inputs are kept untouched
    np.testing.assert_array_equal(out["S_v"].transpose(*canon).values, S_v)
