"""AR (Algorithm 1, Eqs. 5-14): properties, an independent loop implementation, and the score form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modbias.core.probe import RowContext
from modbias.interventions.ar import DEFAULT_FLOOR, AttentionReallocation, edit_plan, log_factors, reallocate


def algorithm_1(w: np.ndarray, v: np.ndarray, a: np.ndarray, tau: float, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """Algorithm 1 written head by head with plain loops, Eqs. (5)-(7), (12)-(14); heads with
    S_v below ``floor`` are left alone (modbias's documented floor)."""
    H, T = w.shape
    S_v = [sum(w[h, t] for t in range(T) if v[t]) for h in range(H)]
    S_a = [sum(w[h, t] for t in range(T) if a[t]) for h in range(H)]
    if sum(S_v) == 0:
        return w.copy()
    c = sum(S_a) / sum(S_v)
    out = w.copy()
    if not c > tau:
        return out
    for h in range(H):
        if S_v[h] == 0 or S_v[h] < floor or S_a[h] == 0 or not S_a[h] / S_v[h] > c:
            continue
        delta = (S_a[h] - c * S_v[h]) / (1 + c)
        for t in range(T):
            if a[t]:
                out[h, t] = w[h, t] * (1 - delta / S_a[h])
            elif v[t]:
                out[h, t] = w[h, t] * (1 + delta / S_v[h])
    return out


@st.composite
def layer_rows(draw):
    """Rows [H, T] (each sums to 1, some exact zeros) with disjoint visual/audio masks."""
    H, T = draw(st.integers(1, 6)), draw(st.integers(3, 24))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(T, draw(st.sampled_from([0.2, 1.0, 5.0]))), size=H)
    w[rng.random((H, T)) < draw(st.sampled_from([0.0, 0.3]))] = 0.0  # heads may ignore V or A entirely
    w[:, -1] += 1e-3  # the decoded token's own position, never in V or A
    w /= w.sum(-1, keepdims=True)
    kind = rng.integers(0, 3, size=T)
    kind[-1] = 2
    return w, kind == 0, kind == 1, draw(st.sampled_from([0.0, 0.5, 1.0, 2.0]))


def _sums(w, mask):
    return (w * mask).sum(-1)


@settings(max_examples=200, deadline=None)
@given(layer_rows())
def test_reallocate_matches_independent_algorithm_1(case):
    w, v, a, tau = case
    got = reallocate(torch.tensor(w), torch.tensor(v), torch.tensor(a), tau).numpy()
    np.testing.assert_allclose(got, algorithm_1(w, v, a, tau), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(layer_rows())
def test_reallocation_properties(case):
    w, v, a, tau = case
    new = reallocate(torch.tensor(w), torch.tensor(v), torch.tensor(a), tau).numpy()
    assert np.isfinite(new).all()
    np.testing.assert_allclose(new.sum(-1), 1.0, atol=1e-12)  # rows still sum to 1
    S_v, S_a, S_v2, S_a2 = _sums(w, v), _sums(w, a), _sums(new, v), _sums(new, a)
    np.testing.assert_allclose(S_v2 + S_a2, S_v + S_a, atol=1e-12)  # Eq. (9)
    np.testing.assert_allclose(new[:, ~(v | a)], w[:, ~(v | a)])  # other tokens untouched
    c = S_a.sum() / S_v.sum() if S_v.sum() > 0 else np.inf
    changed = ~np.all(np.isclose(new, w, rtol=0, atol=1e-15), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        c_h = S_a / S_v
    if not c > tau or not np.isfinite(c):
        assert not changed.any(), "a layer with c <= tau (or no visual attention) is untouched"
    for h in range(len(w)):
        biased = np.isfinite(c) and c > tau and S_v[h] >= DEFAULT_FLOOR and c_h[h] > c  # below the floor: alone
        if not biased:
            assert not changed[h], "unbiased heads are untouched"
            continue
        np.testing.assert_allclose(S_a2[h] / S_v2[h], c, rtol=1e-9)  # Eq. (8)
        for mask, before, after in ((a, S_a[h], S_a2[h]), (v, S_v[h], S_v2[h])):  # Eqs. (10)-(11)
            np.testing.assert_allclose(new[h, mask] / after, w[h, mask] / before, rtol=1e-9)


@settings(max_examples=100, deadline=None)
@given(layer_rows())
def test_score_form_gives_the_same_rows(case):
    w, v, a, tau = case
    scores = torch.tensor(np.log(np.maximum(w, 1e-300)))  # any scores whose softmax is w
    weights = scores.softmax(-1)
    bias = log_factors(weights, torch.tensor(v), torch.tensor(a), tau)
    assert not torch.isnan(bias).any()
    np.testing.assert_allclose((scores + bias).softmax(-1).numpy(),
                               reallocate(weights, torch.tensor(v), torch.tensor(a), tau).numpy(), atol=1e-12)


def test_batched_leading_dims_and_broadcast_masks():
    rng = np.random.default_rng(0)
    w = rng.dirichlet(np.ones(10), size=(3, 2, 4))  # [B, Q, H, T]
    v = rng.random((3, 1, 10)) < 0.5
    a = ~v & (rng.random((3, 1, 10)) < 0.5)
    got = reallocate(torch.tensor(w), torch.tensor(v), torch.tensor(a), 0.5).numpy()
    for b in range(3):
        for q in range(2):
            np.testing.assert_allclose(got[b, q], algorithm_1(w[b, q], v[b, 0], a[b, 0], 0.5), atol=1e-12)


def test_hand_worked_layer():
    # V = {0, 1}, A = {2}; head 0: S_v = 0.2, S_a = 0.6 (c_h = 3); head 1: S_v = 0.6, S_a = 0.2 (c_h = 1/3)
    # c = 0.8 / 0.8 = 1 > tau = 0.5; head 0 biased; Δ = (0.6 - 1 * 0.2) / 2 = 0.2
    # ω'(a) = 0.6 * (1 - 0.2 / 0.6) = 0.4; ω'(v) = 0.1 * (1 + 0.2 / 0.2) = 0.2
    w = torch.tensor([[0.1, 0.1, 0.6, 0.2], [0.3, 0.3, 0.2, 0.2]], dtype=torch.float64)
    v, a = torch.tensor([1, 1, 0, 0]).bool(), torch.tensor([0, 0, 1, 0]).bool()
    expected = torch.tensor([[0.2, 0.2, 0.4, 0.2], [0.3, 0.3, 0.2, 0.2]], dtype=torch.float64)
    torch.testing.assert_close(reallocate(w, v, a, 0.5), expected)
    torch.testing.assert_close(reallocate(w, v, a, 1.0), w)  # c = 1 is not > tau = 1


@pytest.mark.parametrize("zero", ["visual", "audio"])
def test_heads_without_visual_or_audio_attention_stay_finite(zero):
    w = torch.tensor([[0.0, 0.0, 0.9, 0.1], [0.3, 0.3, 0.2, 0.2]], dtype=torch.float64)
    if zero == "audio":
        w = torch.tensor([[0.5, 0.4, 0.0, 0.1], [0.1, 0.1, 0.6, 0.2]], dtype=torch.float64)
    v, a = torch.tensor([1, 1, 0, 0]).bool(), torch.tensor([0, 0, 1, 0]).bool()
    new = reallocate(w, v, a, 0.0)
    assert torch.isfinite(new).all()
    torch.testing.assert_close(new[0], w[0])  # S_v = 0 (c_h = inf) or S_a = 0 (c_h = 0): left as is


def test_floor_leaves_heads_with_tiny_visual_attention_alone_and_counts_them():
    # head 0: S_v = 2e-9 (c_h ~ 3e8, biased); head 1: ordinary; V = {0, 1}, A = {2}
    w = torch.tensor([[1e-9, 1e-9, 0.6, 0.4 - 2e-9], [0.3, 0.3, 0.2, 0.2]], dtype=torch.float64)
    v, a = torch.tensor([1, 1, 0, 0]).bool(), torch.tensor([0, 0, 1, 0]).bool()
    f_a, f_v, edited, floored = edit_plan(w, v, a, tau=0.0)
    assert floored.tolist() == [True, False] and not edited[0]
    torch.testing.assert_close(reallocate(w, v, a, 0.0)[0], w[0])
    without = reallocate(w, v, a, 0.0, floor=0.0)  # no floor: visual weights multiplied by ~1e8
    assert without[0, 0] / w[0, 0] > 1e7
    np.testing.assert_allclose(without.numpy(), algorithm_1(w.numpy(), v.numpy(), a.numpy(), 0.0, floor=0.0))
    assert edit_plan(w, v, a, tau=0.0, floor=0.0)[3].sum() == 0


def test_trace_records_edited_and_floored_heads(organism, small_bench):
    import modbias
    from modbias.interventions import make
    from modbias.runs.summaries import edit_counts

    default = modbias.trace(organism, small_bench, batch_size=9, interventions=[make("ar", tau=0.0)])
    high = modbias.trace(organism, small_bench, batch_size=9, interventions=[make("ar", tau=0.0, floor=0.5)])
    counts, counts_high = edit_counts(default)["edits"], edit_counts(high)["edits"]
    assert counts["ar_edited"] > 0 and counts_high["ar_floored"] > 0
    assert default.edits_ar_edited.dims == ("sample",) and (default.edits_ar_edited.values >= 0).all()
    # generation length differs between runs, so compare per generated step: the floor only removes edits
    assert counts_high["ar_edited"] < counts["ar_edited"] + counts["ar_floored"]
    assert edit_counts(modbias.trace(organism, small_bench[:2], batch_size=2)) == {}


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.0, 0.5, 1.0, 3.0]))
def test_editor_on_all_heads_and_queries_equals_algorithm_1_row_by_row(seed, tau):
    """The probe hands AR one layer's rows [B, H, Q, T]; the vectorised edit equals Algorithm 1 run
    separately on every (sample, query), and the counts are the heads it changed or floored."""
    rng = np.random.default_rng(seed)
    B, H, Q, T = 3, 4, 2, 9
    rows = rng.dirichlet(np.full(T, 0.5), size=(B, H, Q))
    rows[rng.random(rows.shape) < 0.2] = 0.0
    rows[..., -1] += 1e-3
    rows /= rows.sum(-1, keepdims=True)
    kind = rng.integers(0, 3, size=(B, T))
    visual, audio = kind == 0, kind == 1
    ar = AttentionReallocation(tau=tau)
    ar.begin_batch(None, None, None)
    context = RowContext(0, {"visual": torch.tensor(visual), "audio": torch.tensor(audio)}, None, torch.tensor(rows))
    got = ar.edit_rows(torch.tensor(rows), context).numpy()
    biased = np.zeros(B, dtype=int)
    for b in range(B):
        for q in range(Q):
            w = rows[b, :, q]
            np.testing.assert_allclose(got[b, :, q], algorithm_1(w, visual[b], audio[b], tau), atol=1e-12)
            S_v, S_a = _sums(w, visual[b]), _sums(w, audio[b])
            c = S_a.sum() / S_v.sum() if S_v.sum() > 0 else np.inf
            biased[b] += sum(np.isfinite(c) and c > tau and S_v[h] >= DEFAULT_FLOOR and S_a[h] > c * S_v[h]
                             for h in range(H))
    assert ar.batch_counts()["edited"].tolist() == biased.tolist()


def test_a_layer_without_biased_heads_is_handed_back_unchanged():
    rows = torch.tensor([[[[0.4, 0.1, 0.5]], [[0.3, 0.2, 0.5]]]], dtype=torch.float64)  # [1, H=2, Q=1, T=3]
    masks = {"visual": torch.tensor([[True, False, False]]), "audio": torch.tensor([[False, True, False]])}
    ar = AttentionReallocation(tau=1.0)  # c = 0.3 / 0.7 < tau: nothing to edit
    ar.begin_batch(None, None, None)
    assert ar.edit_rows(rows, RowContext(0, masks, None, rows.log())) is rows  # the model keeps its own output
    assert ar.batch_counts()["edited"].tolist() == [0]
