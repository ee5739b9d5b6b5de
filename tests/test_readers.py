"""Benchmark readers, the validating loader, ``modbias data check``, and media decoding."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import modbias
from modbias.data import readers
from modbias.data.sample import SampleError
from modbias.testing import write_camer_benchmark

STREAMS = {"eva": ("visual", 4, 24), "face_mae": ("visual", 1, 16), "hubert": ("audio", 1, 16)}


def _rows(path):
    return [json.loads(line) for line in (path / "annotations.jsonl").read_text().splitlines()]


def _write_rows(path, rows):
    (path / "annotations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def camer(tmp_path):
    return write_camer_benchmark(tmp_path / "camer", n=4, media=False, features=STREAMS)


# -- CA-MER-style annotations ---------------------------------------------------------------------
def test_camer_jsonl_reads_streams_labels_and_reasoning(camer):
    bench = modbias.load_benchmark(str(camer))
    assert len(bench) == 4 and [s.subset for s in bench] == ["video_aligned", "audio_aligned", "consistent",
                                                             "video_aligned"]
    sample = bench[0]
    assert sample.visual.shape == (5, 24) and sample.audio.shape == (1, 16)
    assert sample.extra["streams"]["visual"] == [["eva", 4, 24], ["face_mae", 1, 16]]
    assert sample.extra["reasoning"].startswith("the face looks")
    visual = readers.unpack_streams(sample, "visual")
    np.testing.assert_array_equal(visual["face_mae"], np.load(camer / "face_mae" / "clip000.npy"))
    np.testing.assert_array_equal(visual["eva"], np.load(camer / "eva" / "clip000.npy"))
    assert bench.config["reader"] == "camer"
    assert len(modbias.load_benchmark(f"camer:{camer}", subset="video_aligned", limit=1)) == 1


def test_camer_csv_with_named_feature_paths(tmp_path):
    path = write_camer_benchmark(tmp_path / "c", n=3, media=False, features=STREAMS, fmt="csv")
    bench = modbias.load_benchmark(str(path / "annotations.csv"))
    assert [s.id for s in bench] == ["clip000", "clip001", "clip002"]
    assert bench[1].extra["streams"]["audio"] == [["hubert", 1, 16]]


def test_duplicated_rows_keep_their_streams():
    import dataclasses

    packed, meta = readers.pack_streams("x", "visual", {"a": np.ones((2, 3)), "b": 2 * np.ones((1, 5))})
    sample = modbias.data.Sample("x", "consistent", "sad", packed, np.zeros((1, 4), np.float32),
                                 extra={"streams": {"visual": meta}})
    tripled = dataclasses.replace(sample, visual=np.repeat(sample.visual, 3, axis=0))
    streams = readers.unpack_streams(tripled, "visual")
    assert streams["a"].shape == (6, 3) and streams["b"].shape == (3, 5) and (streams["b"] == 2).all()
    empty = readers.unpack_streams(dataclasses.replace(sample, visual=packed[:0]), "visual")
    assert all(len(v) == 0 for v in empty.values())


@pytest.mark.parametrize("corruption, field, message", [
    ("missing_file", "visual_features.eva", "does not exist"),
    ("unknown_label", "label", "unknown label 'elated'"),
    ("wrong_shape", "features.hubert", "width 9 != 16"),
    ("duplicate_id", "id", "duplicate id"),
    ("unknown_subset", "subset", "unknown subset"),
    ("bad_array", "audio_features.hubert", r"expected \[dim\] or \[tokens, dim\]"),
])
def test_camer_rejects_a_corrupted_file_naming_the_sample(camer, corruption, field, message):
    rows = _rows(camer)
    bad = "clip002"
    if corruption == "missing_file":
        (camer / "eva" / f"{bad}.npy").unlink()
    elif corruption == "unknown_label":
        rows[2]["label"] = "elated"
    elif corruption == "wrong_shape":
        np.save(camer / "hubert" / f"{bad}.npy", np.zeros((1, 9), np.float32))
    elif corruption == "duplicate_id":
        rows[3]["id"] = bad
    elif corruption == "unknown_subset":
        rows[2]["subset"] = "mixed"
    elif corruption == "bad_array":
        np.save(camer / "hubert" / f"{bad}.npy", np.zeros((1, 2, 3), np.float32))
    _write_rows(camer, rows)
    with pytest.raises(SampleError, match=message) as err:
        modbias.load_benchmark(str(camer))
    assert err.value.sample_id == bad and err.value.field_name == field
    report = readers.check(camer)
    assert not report.ok and [(p.sample_id, p.field) for p in report.problems] == [(bad, field)]
    assert report.n_ok == 3 and report.n_entries == 4


def test_check_lists_every_problem_and_the_cli_exits_nonzero(camer):
    from modbias.cli.data import data_app

    rows = _rows(camer)
    rows[0]["label"] = "bored"
    (camer / "hubert" / "clip003.npy").unlink()
    _write_rows(camer, rows)
    report = readers.check(camer)
    assert {(p.sample_id, p.field) for p in report.problems} == {("clip000", "label"),
                                                                 ("clip003", "audio_features.hubert")}
    result = CliRunner().invoke(data_app, ["check", str(camer)])
    assert result.exit_code == 1
    assert "clip000" in result.output and "clip003" in result.output and "2 of 4 samples ok" in result.output
    _write_rows(camer, _rows(camer)[1:3])
    result = CliRunner().invoke(data_app, ["check", str(camer)])
    assert result.exit_code == 0 and "no problems found" in result.output


def test_missing_annotation_and_unknown_reader_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError):
        modbias.load_benchmark(f"camer:{tmp_path}")
    with pytest.raises(ValueError, match="available"):
        modbias.load_benchmark("nope")
    report = readers.check(tmp_path / "absent")
    assert not report.ok and "does not exist" in str(report.problems[0])


# -- MER2023 / EMER in Emotion-LLaMA's layout -------------------------------------------------------
def _mer2023(root, names=("sample_00000001", "sample_00000002"), labels=("worried", "happy")):
    rng = np.random.default_rng(0)
    for folder in ("mae_340_UTT", "maeV_399_UTT", "HL-UTT"):
        (root / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            np.save(root / folder / f"{name}.npy", rng.standard_normal(1024).astype(np.float32))
    (root / "test.txt").write_text("".join(f"{n} 40 {lab}\n" for n, lab in zip(names, labels)))
    with open(root / "transcription_en_all.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "sentence"])
        writer.writerows([(n, f"line of {n}") for n in names])
    return root


def test_mer2023_reads_emotion_llama_layout(tmp_path):
    root = _mer2023(tmp_path / "mer")
    bench = modbias.load_benchmark(f"mer2023:{root}")
    first = bench[0]
    assert first.label == "worry" and first.extra["source_label"] == "worried"
    assert first.subtitle == "line of sample_00000001"
    assert first.extra["streams"] == {"visual": [["face_mae", 1, 1024], ["video_mae", 1, 1024]],
                                      "audio": [["hubert", 1, 1024]]}
    np.testing.assert_array_equal(first.audio[0], np.load(root / "HL-UTT" / "sample_00000001.npy"))
    assert modbias.load_benchmark(str(root)).config["reader"] == "mer2023"  # detected from the layout


def test_mer2023_rejects_corruption_naming_the_sample(tmp_path):
    root = _mer2023(tmp_path / "mer")
    np.save(root / "maeV_399_UTT" / "sample_00000002.npy", np.zeros(512, np.float32))
    with pytest.raises(SampleError, match="sample_00000002.*video_mae.*width 512 != 1024"):
        modbias.load_benchmark(f"mer2023:{root}")
    root = _mer2023(tmp_path / "mer2")
    (root / "HL-UTT" / "sample_00000001.npy").unlink()
    with pytest.raises(SampleError, match="sample_00000001.*audio_features.hubert.*does not exist"):
        modbias.load_benchmark(f"mer2023:{root}")
    (root / "test.txt").write_text("sample_00000002 40 bored\n")
    with pytest.raises(SampleError, match="sample_00000002.*label.*bored"):
        modbias.load_benchmark(f"mer2023:{root}")


def test_mer2023_features_feed_a_features_checkpoint(tmp_path):
    from modbias.testing import make_tiny_checkpoint

    ckpt = make_tiny_checkpoint("features", tmp_path / "ckpt")
    root = _mer2023(tmp_path / "mer")
    spec = json.loads((ckpt / "modbias_features.json").read_text())
    encoders = {"eva": ["eva", "visual"], "face_mae": ["mae_340_UTT", "visual"],
                "video_mae": ["maeV_399_UTT", "visual"], "hubert": ["HL-UTT", "audio"],
                "eva_cls": ["eva_cls", "visual"]}
    for stream, (folder, _) in encoders.items():
        (root / folder).mkdir(exist_ok=True)
        for name in ("sample_00000001", "sample_00000002"):
            tokens, dim = spec["streams"][stream]["tokens"], spec["streams"][stream]["dim"]
            np.save(root / folder / f"{name}.npy", np.ones((tokens, dim), np.float32))
    (root / readers.CONFIG_FILE).write_text(json.dumps({"reader": "mer2023", "encoders": encoders}))
    bench = modbias.load_benchmark(str(root))
    model = modbias.load_model(f"features:{ckpt}")
    layout = model.prepare(list(bench)).layouts[0]
    assert layout.n_visual == 11 and layout.n_audio == 1


def test_emer_adds_reference_reasoning(tmp_path):
    root = _mer2023(tmp_path / "emer")
    with open(root / "emer.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "reason"])
        writer.writerow(["sample_00000001", "frowning and a shaky voice suggest worry"])
        writer.writerow(["sample_00000002", ""])
    with pytest.raises(SampleError, match="sample_00000002.*reasoning"):
        modbias.load_benchmark(str(root))  # detected as emer
    report = readers.check(root)
    assert report.reader == "emer" and report.n_ok == 1
    (root / "emer.csv").write_text("name,reason,label\nsample_00000002,smiling broadly,happy\n")
    bench = modbias.load_benchmark(f"emer:{root}")
    assert bench[0].extra["reference_reasoning"] == "smiling broadly" and bench[0].label == "happy"


# -- DFEW -------------------------------------------------------------------------------------------
def test_dfew_single_label_seven_classes(tmp_path):
    root = tmp_path / "dfew"
    (root / "videos").mkdir(parents=True)
    for name in ("0001", "0002", "0003"):
        (root / "videos" / f"{name}.mp4").write_bytes(b"")
    (root / "set_1_test.csv").write_text("video_name,label\n0001,1\n0002,6\n0003,fear\n")
    bench = modbias.load_benchmark(str(root))
    assert [s.label for s in bench] == ["happy", "contempt", "fear"]
    assert bench[1].extra["source_label"] == "disgust"
    assert bench[0].visual.shape == (1, 0) and bench[0].extra["video_path"].endswith("0001.mp4")
    (root / "set_1_test.csv").write_text("video_name,label\n0001,9\n0004,2\n")
    report = readers.check(root)
    assert {(p.sample_id, p.field) for p in report.problems} == {("0001", "label"), ("0004", "video")}
    report = readers.check(root, decode=True, annotation="set_1_test.csv")
    assert not report.ok


# -- media --------------------------------------------------------------------------------------------
def test_media_roundtrip_and_qwen_frame_sampling(tmp_path):
    pytest.importorskip("av")
    from modbias.data import media
    from modbias.testing import synthetic_clip

    frames, audio = synthetic_clip(1, n_frames=20, seconds=2.5)
    media.write_video(tmp_path / "c.mp4", frames, fps=8, audio=audio)
    video = media.load_video(tmp_path / "c.mp4")
    assert video.frames.shape == (20, 56, 56, 3) and video.fps == pytest.approx(8)
    track = media.load_audio(tmp_path / "c.mp4")
    assert abs(len(track) - len(audio)) < 2048
    wav = media.load_audio(media.write_wav(tmp_path / "a.wav", audio))
    np.testing.assert_allclose(wav, audio, atol=1e-3)
    sampled = media.sample_video(video, fps=2.0)  # 2.5 s at 2 fps → 5 frames → even: 4
    assert len(sampled.frames) == 4 and sampled.fps == pytest.approx(4 / 20 * 8)
    assert media.fps_frame_indices(300, 30, 2.0).tolist()[:2] == [0, 16] and \
        len(media.fps_frame_indices(300, 30, 2.0)) == 20
    assert len(media.fps_frame_indices(3, 25)) == 2  # too short for min_frames: an even count that exists
    image = media.load_image(media.write_image(tmp_path / "f.png", frames[0]))
    np.testing.assert_array_equal(image, frames[0])
    with pytest.raises(media.MediaError, match="does not exist"):
        media.load_video(tmp_path / "none.mp4")
    with pytest.raises(media.MediaError, match="no audio"):
        media.write_video(tmp_path / "mute.mp4", frames[:4], fps=8)
        media.load_audio(tmp_path / "mute.mp4")


def test_numpy_video_patches_have_qwen_layout():
    pytest.importorskip("PIL")
    from modbias.data.media import QwenVideoProcessor

    proc = QwenVideoProcessor(min_pixels=56 * 56, max_pixels=56 * 56)
    video = np.zeros((3, 50, 60, 3), np.uint8)
    video[1] = 255
    out = proc([video])
    assert out["video_grid_thw"].tolist() == [[2, 4, 4]]  # 3 frames padded to 4; 56x56 → 4x4 patches
    assert out["pixel_values_videos"].shape == (32, 3 * 2 * 14 * 14)
    first = out["pixel_values_videos"][0].reshape(3, 2, 14, 14)  # channel, time, patch
    assert first[:, 0].mean() < first[:, 1].mean()  # frame 0 black, frame 1 white
