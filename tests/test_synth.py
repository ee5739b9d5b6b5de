"""Tests of the synthetic conflict benchmark and of Sample / Benchmark validation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from modbias.core.emotions import CLASSES, find_emotions, parse_prediction
from modbias.data import load_benchmark
from modbias.data.sample import SUBSETS, Benchmark, Sample, SampleError
from modbias.data.synth import SUBTITLE_WORDS, SynthConfig, make_sample, synth_benchmark

SMALL = SynthConfig(n_visual=8, visual_dim=4, audio_dim=3, visual_cue_tokens=3, n_per_subset=12, n_train=30)


def same_sample(a: Sample, b: Sample) -> bool:
    return (a.id == b.id and a.subset == b.subset and a.label == b.label and a.subtitle == b.subtitle
            and a.visual_emotion == b.visual_emotion and a.audio_emotion == b.audio_emotion
            and a.extra == b.extra and np.array_equal(a.visual, b.visual) and np.array_equal(a.audio, b.audio))


# ---------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("subset", ["all", "train", "video_aligned"])
def test_same_config_same_data(subset):
    a, b = synth_benchmark(subset, SMALL), synth_benchmark(subset, SynthConfig(**vars(SMALL)))
    assert len(a) == len(b) > 0
    assert all(same_sample(x, y) for x, y in zip(a, b))


def test_sample_does_not_depend_on_limit_or_size():
    full = synth_benchmark("video_aligned", SMALL)
    short = synth_benchmark("video_aligned", SMALL, limit=4)
    bigger = synth_benchmark("video_aligned", SynthConfig(**{**vars(SMALL), "n_per_subset": 40}))
    assert len(short) == 4 and len(full) == 12 and len(bigger) == 40
    for i in range(4):
        assert same_sample(short[i], full[i]) and same_sample(full[i], bigger[i])
    for i in range(12):
        assert same_sample(full[i], bigger[i])
        assert same_sample(full[i], make_sample(SMALL, "video_aligned", i))
    # "all" holds the same samples as each subset on its own
    everything = synth_benchmark("all", SMALL)
    for name in SUBSETS:
        assert all(same_sample(x, y) for x, y in zip(everything.subset(name), synth_benchmark(name, SMALL)))
    # train: also limit-independent
    train_short, train = synth_benchmark("train", SMALL, limit=5), synth_benchmark("train", SMALL)
    assert all(same_sample(train_short[i], train[i]) for i in range(5))


def test_seed_and_split_change_the_data():
    other_seed = SynthConfig(**{**vars(SMALL), "seed": 1})
    a, b = make_sample(SMALL, "consistent", 0), make_sample(other_seed, "consistent", 0)
    assert not np.array_equal(a.visual, b.visual)
    c = make_sample(SMALL, "audio_aligned", 0)
    assert not np.array_equal(a.visual, c.visual)
    assert not np.array_equal(a.visual, make_sample(SMALL, "consistent", 1).visual)


def test_load_benchmark_limit_is_per_subset():
    bench = load_benchmark("synth", subset="all", limit=3, **{k: v for k, v in vars(SMALL).items()})
    assert Counter(s.subset for s in bench) == {name: 3 for name in SUBSETS}
    with pytest.raises(ValueError):
        load_benchmark("nope")


# ---------------------------------------------------------------------------
# Subset semantics
# ---------------------------------------------------------------------------
def test_subset_semantics():
    bench = synth_benchmark("all", SMALL)
    assert len(bench) == 3 * SMALL.n_per_subset
    for s in bench:
        assert s.label in CLASSES
        if s.subset == "video_aligned":
            assert s.visual_emotion == s.label != s.audio_emotion
        elif s.subset == "audio_aligned":
            assert s.audio_emotion == s.label != s.visual_emotion
        else:
            assert s.subset == "consistent"
            assert s.visual_emotion == s.audio_emotion == s.label


def test_train_subsets_follow_the_same_semantics():
    train = synth_benchmark("train", SMALL)
    assert all(s.subset == "train" for s in train)
    for s in train:
        kind = s.extra["train_subset"]
        if kind == "video_aligned":
            assert s.visual_emotion == s.label != s.audio_emotion
        elif kind == "audio_aligned":
            assert s.audio_emotion == s.label != s.visual_emotion
        else:
            assert kind == "consistent" and s.visual_emotion == s.audio_emotion == s.label


def test_train_split_is_balanced_between_conflict_types():
    config = SynthConfig(**{**vars(SMALL), "n_train": 300})
    counts = Counter(s.extra["train_subset"] for s in synth_benchmark("train", config))
    assert counts == {"video_aligned": 100, "audio_aligned": 100, "consistent": 100}


def test_label_and_conflict_drawn_independently_of_the_subset():
    """Forcing another subset on the same (seed, split, index) changes nothing but which
    modality carries the label: labels, the conflicting emotion and the two intensities
    are drawn identically, so both conflict types have the same label distribution."""
    for i in range(60):
        va = make_sample(SMALL, "train", i, subset="video_aligned")
        aa = make_sample(SMALL, "train", i, subset="audio_aligned")
        co = make_sample(SMALL, "train", i, subset="consistent")
        assert va.label == aa.label == co.label
        assert va.audio_emotion == aa.visual_emotion  # the same "other" emotion
        assert va.extra["visual_intensity"] == aa.extra["audio_intensity"]
        assert va.extra["audio_intensity"] == aa.extra["visual_intensity"]
        assert va.subtitle == aa.subtitle


def test_label_counts_match_across_conflict_types():
    config = SynthConfig(**{**vars(SMALL), "n_train": 2700})
    train = synth_benchmark("train", config)
    per = {k: Counter(s.label for s in train if s.extra["train_subset"] == k) for k in SUBSETS}
    for kind in ("video_aligned", "audio_aligned"):
        assert set(per[kind]) == set(CLASSES)
        # 900 draws per type, 100 per class expected; sd ~ 9.4
        assert all(abs(per[kind][c] - 100) < 45 for c in CLASSES), per[kind]
    diff = max(abs(per["video_aligned"][c] - per["audio_aligned"][c]) for c in CLASSES)
    assert diff < 60


def test_stronger_intensity_wins_conflicts():
    lo, hi = SMALL.intensity_range
    for s in synth_benchmark("all", SMALL):
        vi, ai = s.extra["visual_intensity"], s.extra["audio_intensity"]
        assert lo <= vi <= hi and lo <= ai <= hi
        if s.subset == "video_aligned":
            assert vi > ai
        elif s.subset == "audio_aligned":
            assert ai > vi


def test_audio_alone_decides_three_quarters_of_conflicts_in_both_subsets():
    """Module doc: the audio cue alone (its intensity above the midpoint of the range)
    decides ~75 % of conflicts, equally often for both subsets."""
    config = SynthConfig(n_visual=2, visual_dim=2, audio_dim=2, visual_cue_tokens=1, n_per_subset=600)
    mid = sum(config.intensity_range) / 2
    va = synth_benchmark("video_aligned", config)
    aa = synth_benchmark("audio_aligned", config)
    right_va = np.mean([s.extra["audio_intensity"] < mid for s in va])  # weak audio: trust the face
    right_aa = np.mean([s.extra["audio_intensity"] > mid for s in aa])  # strong audio: trust it
    assert abs(right_va - 0.75) < 0.06 and abs(right_aa - 0.75) < 0.06


# ---------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------
def test_shapes_follow_config():
    config = SynthConfig(n_visual=5, n_audio=3, visual_dim=4, audio_dim=6, visual_cue_tokens=2, n_per_subset=3)
    for s in synth_benchmark("all", config):
        assert s.visual.shape == (5, 4) and s.audio.shape == (3, 6)
        assert s.visual.dtype == np.float32 and s.audio.dtype == np.float32
    proto_v, proto_a = config.prototypes()
    assert proto_v.shape == (9, 4) and proto_a.shape == (9, 6)
    np.testing.assert_allclose(np.linalg.norm(proto_v, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(proto_a, axis=1), 1.0, rtol=1e-6)


def test_noise_free_features_are_the_cues():
    """Without noise the visual tokens are zero except `visual_cue_tokens` copies of
    intensity * scale * prototype(visual_emotion); the audio token is the audio cue."""
    config = SynthConfig(n_visual=10, n_audio=2, visual_dim=5, audio_dim=4, visual_cue_tokens=3,
                         visual_noise=0.0, audio_noise=0.0, visual_cue_scale=1.5, audio_cue_scale=2.5,
                         n_per_subset=6)
    proto_v, proto_a = config.prototypes()
    for s in synth_benchmark("all", config):
        cue_rows = np.flatnonzero(np.abs(s.visual).sum(1) > 0)
        assert len(cue_rows) == 3
        expected_v = s.extra["visual_intensity"] * 1.5 * proto_v[CLASSES.index(s.visual_emotion)]
        np.testing.assert_allclose(s.visual[cue_rows], np.tile(expected_v, (3, 1)), rtol=1e-5, atol=1e-6)
        expected_a = s.extra["audio_intensity"] * 2.5 * proto_a[CLASSES.index(s.audio_emotion)]
        np.testing.assert_allclose(s.audio, np.tile(expected_a, (2, 1)), rtol=1e-5, atol=1e-6)


def test_cue_tokens_capped_by_token_count():
    config = SynthConfig(n_visual=2, visual_cue_tokens=16, visual_noise=0.0, visual_dim=3, n_per_subset=2)
    for s in synth_benchmark("all", config):
        assert (np.abs(s.visual).sum(1) > 0).all()


def test_subtitles_are_emotion_free_filler():
    lo, hi = SMALL.subtitle_words
    for s in list(synth_benchmark("all", SMALL)) + list(synth_benchmark("train", SMALL)):
        words = s.subtitle.split(" ")
        assert lo <= len(words) <= hi
        assert set(words) <= set(SUBTITLE_WORDS)
        assert find_emotions([s.subtitle]) == []
        assert parse_prediction(s.subtitle) is None
    assert all(parse_prediction(w) is None for w in SUBTITLE_WORDS)


# ---------------------------------------------------------------------------
# Benchmark
# ---------------------------------------------------------------------------
def test_ids_unique_and_named_after_split():
    bench = synth_benchmark("all", SMALL)
    ids = [s.id for s in bench]
    assert len(set(ids)) == len(ids)
    assert ids[0] == "video_aligned-00000" and ids[-1] == f"consistent-{SMALL.n_per_subset - 1:05d}"


def test_benchmark_subset_filtering():
    bench = synth_benchmark("all", SMALL)
    assert bench.subset("all") is bench
    for name in SUBSETS:
        part = bench.subset(name)
        assert isinstance(part, Benchmark)
        assert len(part) == SMALL.n_per_subset
        assert [s.id for s in part] == [s.id for s in bench if s.subset == name]
        assert part.config == bench.config
    with pytest.raises(ValueError, match="bogus"):
        bench.subset("bogus")
    with pytest.raises(ValueError, match="bogus"):
        synth_benchmark("bogus", SMALL)


def test_benchmark_slicing_and_meta():
    bench = synth_benchmark("all", SMALL)
    head = bench[:5]
    assert isinstance(head, Benchmark) and len(head) == 5
    assert [s.id for s in head] == [s.id for s in bench.samples[:5]]
    assert bench[3] is bench.samples[3]
    assert bench.config["n_visual"] == SMALL.n_visual and bench.config["intensity_range"] == list(SMALL.intensity_range)


def _sample(**kw):
    base = dict(id="clip-7", subset="consistent", label="happy", visual=np.zeros((4, 2), np.float32),
                audio=np.zeros((1, 2), np.float32))
    return Sample(**{**base, **kw})


def test_duplicate_id_is_an_error():
    a, b = _sample(id="x-1"), _sample(id="x-2")
    Benchmark("ok", [a, b])
    with pytest.raises(SampleError) as err:
        Benchmark("dup", [a, b, _sample(id="x-2")])
    assert err.value.sample_id == "x-2" and err.value.field_name == "id"
    assert "x-2" in str(err.value) and "id" in str(err.value)


@pytest.mark.parametrize("field, value", [
    ("label", "bored"),
    ("label", "Happy"),
    ("visual_emotion", "joy"),
    ("audio_emotion", "rage"),
    ("subset", "test"),
    ("visual", np.zeros(4, np.float32)),  # 1-D
    ("audio", np.zeros((1, 2, 3), np.float32)),  # 3-D
    ("visual", [[0.0, 1.0]]),  # not an array
    ("visual", np.array([[0.0, np.nan]], np.float32)),
    ("audio", np.array([[np.inf, 0.0]], np.float32)),
])
def test_sample_validation_names_sample_and_field(field, value):
    with pytest.raises(SampleError) as err:
        _sample(**{field: value})
    assert isinstance(err.value, ValueError)
    assert err.value.sample_id == "clip-7" and err.value.field_name == field
    msg = str(err.value)
    assert "clip-7" in msg and field in msg


def test_valid_sample_accepts_unknown_unimodal_emotions():
    s = _sample(visual_emotion=None, audio_emotion=None, subset="train")
    assert s.visual_emotion is None and s.audio_emotion is None


def test_missing_label_is_an_error():
    with pytest.raises(SampleError) as err:
        _sample(label=None)
    assert err.value.field_name == "label" and "clip-7" in str(err.value)
