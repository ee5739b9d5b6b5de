"""Tests of TokenLayout (index sets V, A, T of a prompt) and the padded-batch masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from modbias.core.layout import MODALITIES, TokenLayout, batch_masks

# <s> [text text] <vis x3> [text] <aud x2> [text]
SEGMENTS = [("text", 2), ("visual", 3), ("text", 1), ("audio", 2), ("text", 1)]
# positions:  text 0,1 | visual 2,3,4 | text 5 | audio 6,7 | text 8   -> prompt_len 9


def test_from_segments_positions():
    lay = TokenLayout.from_segments(SEGMENTS)
    assert lay.visual.tolist() == [2, 3, 4]
    assert lay.audio.tolist() == [6, 7]
    assert lay.text.tolist() == [0, 1, 5, 8]
    assert lay.prompt_len == 9
    assert lay.n_visual == 3 and lay.n_audio == 2


def test_from_segments_empty_and_zero_length():
    empty = TokenLayout.from_segments([])
    assert empty.prompt_len == 0 and empty.n_visual == 0 and empty.n_audio == 0 and len(empty.text) == 0
    lay = TokenLayout.from_segments([("visual", 0), ("audio", 1), ("text", 0)])
    assert lay.visual.tolist() == [] and lay.audio.tolist() == [0] and lay.prompt_len == 1
    masks = empty.masks(3)
    assert masks["generated"].tolist() == [True, True, True]
    assert not masks["visual"].any() and not masks["audio"].any() and not masks["text"].any()


def test_from_segments_unknown_kind():
    with pytest.raises(ValueError, match="video"):
        TokenLayout.from_segments([("text", 1), ("video", 2)])


def test_masks():
    lay = TokenLayout.from_segments(SEGMENTS)
    m = lay.masks(12)  # 9 prompt positions + 3 generated
    assert set(m) == set(MODALITIES)
    assert all(v.dtype == bool and v.shape == (12,) for v in m.values())
    assert np.flatnonzero(m["visual"]).tolist() == [2, 3, 4]
    assert np.flatnonzero(m["audio"]).tolist() == [6, 7]
    assert np.flatnonzero(m["text"]).tolist() == [0, 1, 5, 8]
    assert np.flatnonzero(m["generated"]).tolist() == [9, 10, 11]


def test_masks_shorter_than_prompt_are_truncated():
    m = TokenLayout.from_segments(SEGMENTS).masks(7)
    assert np.flatnonzero(m["visual"]).tolist() == [2, 3, 4]
    assert np.flatnonzero(m["audio"]).tolist() == [6]  # position 7 is cut off
    assert np.flatnonzero(m["text"]).tolist() == [0, 1, 5]
    assert not m["generated"].any()


@pytest.mark.parametrize("visual, audio, text, prompt_len", [
    ([0, 1], [1], [2], 3),  # 1 is both visual and audio
    ([0], [1], [1, 2], 3),  # 1 is audio and text
    ([0, 0], [1], [], 2),  # duplicated position
])
def test_overlap_is_an_error(visual, audio, text, prompt_len):
    with pytest.raises(ValueError, match="overlap"):
        TokenLayout(np.array(visual, dtype=np.int64), np.array(audio, dtype=np.int64),
                    np.array(text, dtype=np.int64), prompt_len)


@pytest.mark.parametrize("visual, audio, text, prompt_len", [
    ([0, 1], [2], [3], 3),  # 3 == prompt_len
    ([-1], [0], [1], 3),  # negative
    ([5], [], [], 2),
])
def test_out_of_range_is_an_error(visual, audio, text, prompt_len):
    with pytest.raises(ValueError, match="outside"):
        TokenLayout(np.array(visual, dtype=np.int64), np.array(audio, dtype=np.int64),
                    np.array(text, dtype=np.int64), prompt_len)


def test_valid_direct_construction_with_gaps():
    # positions need not cover the prompt (e.g. BOS belongs to no set)
    lay = TokenLayout(np.array([1, 2]), np.array([4]), np.array([5]), 6)
    m = lay.masks(7)
    covered = m["visual"] | m["audio"] | m["text"] | m["generated"]
    assert np.flatnonzero(~covered).tolist() == [0, 3]


segments_strategy = st.lists(st.tuples(st.sampled_from(["visual", "audio", "text"]), st.integers(0, 5)),
                             max_size=6)


@settings(max_examples=50, deadline=None)
@given(segments_strategy, st.integers(0, 4))
def test_from_segments_masks_partition_the_sequence(segments, n_generated):
    lay = TokenLayout.from_segments(segments)
    assert lay.prompt_len == sum(n for _, n in segments)
    length = lay.prompt_len + n_generated
    m = lay.masks(length)
    stacked = np.stack([m[k] for k in MODALITIES]).astype(int)
    assert (stacked.sum(0) == 1).all()  # every position in exactly one set
    # each position belongs to the kind of the segment containing it
    kinds = [k for k, n in segments for _ in range(n)] + ["generated"] * n_generated
    for pos, kind in enumerate(kinds):
        assert m[kind][pos], (pos, kind)


def test_batch_masks_with_left_padding():
    long = TokenLayout.from_segments([("text", 1), ("visual", 2), ("audio", 1), ("text", 1)])  # len 5
    short = TokenLayout.from_segments([("visual", 1), ("audio", 1), ("text", 1)])  # len 3
    # left-padded batch of width 5 plus 2 generated steps: short starts at offset 2
    out = batch_masks([long, short], torch.tensor([0, 2]), 7)
    assert set(out) == set(MODALITIES)
    assert all(v.dtype == torch.bool and tuple(v.shape) == (2, 7) for v in out.values())
    #                          pos: 0  1  2  3  4  5  6
    expected = {
        "visual": [[0, 1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0]],
        "audio": [[0, 0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 0, 0, 0]],
        "text": [[1, 0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0, 0]],
        "generated": [[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1, 1]],
    }
    for kind, rows in expected.items():
        assert out[kind].int().tolist() == rows, kind
    # padding positions belong to no modality
    any_kind = out["visual"] | out["audio"] | out["text"] | out["generated"]
    assert any_kind[1, :2].tolist() == [False, False]


@settings(max_examples=50, deadline=None)
@given(st.lists(segments_strategy, min_size=1, max_size=3), st.integers(0, 3))
def test_batch_masks_are_shifted_single_masks(all_segments, n_generated):
    layouts = [TokenLayout.from_segments(s) for s in all_segments]
    width = max(lay.prompt_len for lay in layouts)
    offsets = torch.tensor([width - lay.prompt_len for lay in layouts])
    length = width + n_generated
    out = batch_masks(layouts, offsets, length)
    for b, lay in enumerate(layouts):
        off = int(offsets[b])
        single = lay.masks(lay.prompt_len + n_generated)
        for kind in MODALITIES:
            row = out[kind][b].numpy()
            assert not row[:off].any()
            assert row[off:].tolist() == single[kind].tolist()
