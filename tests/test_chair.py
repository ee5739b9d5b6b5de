"""CHAIR (Table 13): object mentions, hand-worked CHAIR_s / CHAIR_i, the COCO reader and ``modbias chair``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import modbias
from modbias.cli import app
from modbias.core.chair import chair, mentions, singular
from modbias.data.coco import read_coco
from modbias.data.sample import SampleError
from modbias.runs.store import read_manifest
from modbias.testing import make_tiny_checkpoint

runner = CliRunner(env={"COLUMNS": "250"})  # error panels on one line

CAPTIONS = [
    # (caption, ground truth, mentioned categories in order, hallucinated)
    ("A man throws a frisbee to his dog while a cat watches.", {"person", "dog", "frisbee"},
     ["person", "frisbee", "dog", "cat"], ["cat"]),
    ("Two pizzas on a wooden table next to wine glasses and a knife.", {"pizza", "dining table"},
     ["pizza", "dining table", "wine glass", "knife"], ["wine glass", "knife"]),
    ("A baby elephant walks beside its mother elephant near a hot dog stand.", {"elephant", "person"},
     ["elephant", "elephant", "hot dog"], ["hot dog"]),
    ("A clean bathroom with a toilet, its seat up, and a sink.", {"toilet", "sink"}, ["toilet", "sink"], []),
]


@pytest.mark.parametrize("caption,truth,mentioned,hallucinated", CAPTIONS)
def test_mentions_follow_synonyms_plurals_phrases_and_qualifiers(caption, truth, mentioned, hallucinated):
    assert [m.category for m in mentions(caption)] == mentioned
    assert [m.category for m in mentions(caption) if m.category not in truth] == hallucinated


def test_chair_by_hand():
    scores = chair([c for c, *_ in CAPTIONS], [t for _, t, *_ in CAPTIONS])
    # captions with a hallucination: 3 of 4; mentions 4 + 4 + 3 + 2 = 13, hallucinated 1 + 2 + 1 + 0 = 4
    assert scores["chair_s"] == pytest.approx(3 / 4) and scores["chair_i"] == pytest.approx(4 / 13)
    assert (scores["captions"], scores["mentions"], scores["hallucinated_mentions"]) == (4, 13, 4)
    assert chair([], []) == {"chair_s": 0.0, "chair_i": 0.0, "captions": 0, "hallucinated_captions": 0,
                             "mentions": 0, "hallucinated_mentions": 0}


def test_singular_forms():
    assert [singular(w) for w in ("dogs", "puppies", "knives", "benches", "glasses", "bus", "skis", "men", "ties",
                                  "tennis")] == ["dog", "puppy", "knife", "bench", "glass", "bus", "skis", "man",
                                                 "tie", "tennis"]
    assert [m.category for m in mentions("hot dogs, teddy bears and cell phones; no dog")] == \
        ["hot dog", "teddy bear", "cell phone", "dog"]
    assert [m.category for m in mentions("a passenger train on the train tracks")] == ["train"]


# -- a tiny COCO-format folder ---------------------------------------------------------------------------
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 18, "name": "dog"}, {"id": 59, "name": "pizza"},
              {"id": 67, "name": "dining table"}]


def write_coco(root, n=4):
    from modbias.data.media import write_image

    (root / "annotations").mkdir(parents=True)
    (root / "val2014").mkdir()
    rng = np.random.default_rng(0)
    images = [{"id": i + 1, "file_name": f"COCO_val2014_{i + 1:012d}.jpg"} for i in range(n)]
    for im in images:
        write_image(root / "val2014" / im["file_name"], (rng.random((56, 56, 3)) * 255).astype(np.uint8))
    instances = [{"image_id": 1, "category_id": 1}, {"image_id": 1, "category_id": 18},
                 {"image_id": 2, "category_id": 59}, {"image_id": 2, "category_id": 67}]
    (root / "annotations" / "instances_val2014.json").write_text(json.dumps(
        {"images": images, "categories": CATEGORIES, "annotations": instances}))
    captions = [{"image_id": 1, "caption": "A man and his dog play with a frisbee."},
                {"image_id": 3, "caption": "A cat sleeps on a couch."}]
    (root / "annotations" / "captions_val2014.json").write_text(json.dumps({"annotations": captions}))
    return root


def test_coco_reader_ground_truth_is_instances_and_reference_caption_objects(tmp_path):
    root = write_coco(tmp_path / "coco")
    images = {im.id: im for im in read_coco(root, limit=None)}
    assert images[1].objects == {"person", "dog", "frisbee"}
    assert images[2].objects == {"pizza", "dining table"}
    assert images[3].objects == {"cat", "couch"} and images[4].objects == frozenset()
    first = [im.id for im in read_coco(root, limit=2, seed=927)]
    assert first == [im.id for im in read_coco(root, limit=2, seed=927)] and len(set(first)) == 2
    assert sorted(im.id for im in read_coco(root, limit=10)) == [1, 2, 3, 4]
    (root / "val2014" / "COCO_val2014_000000000002.jpg").unlink()
    with pytest.raises(SampleError, match="'2'.*'image'.*does not exist"):
        read_coco(root, limit=None)


@pytest.mark.parametrize("method", ["none", "ar", "pai"])
def test_chair_command_on_a_tiny_llava(method, tmp_path):
    root = write_coco(tmp_path / "coco")
    ckpt = make_tiny_checkpoint("llava", tmp_path / "llava")
    out = tmp_path / "run"
    result = runner.invoke(app, ["chair", "--model", f"llava:{ckpt}", "--coco", str(root), "--method", method,
                                 "--limit", "3", "--max-new-tokens", "8", "--out", str(out)]
                        + (["--layers", "1:"] if method == "pai" else []))  # PAI's default starts at layer 2
    assert result.exit_code == 0, result.output
    ds = modbias.open_run(out)
    assert ds.sizes["sample"] == 3 and ds.attrs["config"]["model"]["instruction"].startswith("Please help me")
    assert [i["name"] for i in ds.attrs["config"]["interventions"]] == ([] if method == "none" else [method])
    truths = [set(filter(None, o.split(";"))) for o in ds.objects.values.astype(str)]
    stored = read_manifest(out)["summary"]["evaluation"]
    assert stored["benchmark"] == "coco" and stored["metrics"] == chair(ds.text.values.astype(str), truths)
    assert f"{stored['metrics']['chair_s']:.4f}" in result.output and "CHAIR_i" in result.output
    again = runner.invoke(app, ["evaluate", str(out)])
    assert again.exit_code == 0 and f"{stored['metrics']['chair_i']:.4f}" in again.output


def test_chair_command_errors_are_clear(tmp_path):
    ckpt = tmp_path / "none"
    result = runner.invoke(app, ["chair", "--model", f"llava:{ckpt}", "--coco", str(tmp_path)])
    assert result.exit_code != 0 and "no annotations/instances_<split>.json" in result.output
    root = write_coco(tmp_path / "coco")
    result = runner.invoke(app, ["chair", "--model", "organism", "--coco", str(root), "--limit", "1"])
    assert result.exit_code != 0 and "image family" in str(result.exception)


def test_chair_invariants_on_random_captions():
    from hypothesis import given, settings, strategies as st

    from modbias.core.chair import SYNONYMS

    words = st.sampled_from(sorted({w for c, others in SYNONYMS.items() for w in (c, *others)} |
                                   {"a", "the", "on", "next", "to", "and", "with", "sunny", "day"}))
    captions = st.lists(st.lists(words, max_size=8).map(" ".join), min_size=1, max_size=5)

    @settings(max_examples=60, deadline=None)
    @given(captions, st.sets(st.sampled_from(sorted(SYNONYMS)), max_size=10))
    def check(texts, truth):
        scores = chair(texts, [truth] * len(texts))
        assert 0 <= scores["chair_i"] <= 1 and 0 <= scores["chair_s"] <= 1
        assert (scores["chair_s"] == 0) == (scores["hallucinated_mentions"] == 0)
        assert chair(texts, [set(SYNONYMS)] * len(texts))["chair_s"] == 0  # everything is in the image
        empty = chair(texts, [set()] * len(texts))  # nothing is: every mention is hallucinated
        assert empty["hallucinated_mentions"] == empty["mentions"] == scores["mentions"]
        assert empty["chair_s"] == sum(bool(mentions(t)) for t in texts) / len(texts)

    check()
