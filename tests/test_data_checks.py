"""Data checks never crash: malformed rows, empty or non-finite features, paths outside the dataset,
over-long prompts are per-sample problems; random bytes and random JSON give a report, not a traceback."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from typer.testing import CliRunner

from modbias.data import readers
from modbias.data.sample import DatasetError, SampleError
from modbias.testing import write_camer_benchmark

STREAMS = {"eva": ("visual", 2, 8), "hubert": ("audio", 1, 8)}
DOCUMENTED = (SampleError, DatasetError, FileNotFoundError)  # what readers.load may raise


def _rows(path):
    return [json.loads(line) for line in (path / "annotations.jsonl").read_text().splitlines()]


def _write(path, rows):
    (path / "annotations.jsonl").write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def camer(tmp_path):
    return write_camer_benchmark(tmp_path / "camer", n=4, media=False, features=STREAMS)


def problems_by_sample(path) -> dict[str, list]:
    report = readers.check(path)
    out = {}
    for p in report.problems:
        out.setdefault(p.sample_id, []).append(p)
    return out


def test_a_line_that_is_not_an_object_is_one_samples_problem(camer):
    rows = _rows(camer)
    _write(camer, [rows[0], "[1, 2, 3]\n", "not json at all\n", rows[1]])
    report = readers.check(camer)
    assert report.n_entries == 4 and report.n_ok == 2
    messages = {p.sample_id: p.message for p in report.problems}
    assert "JSON list, not an object" in messages["<line 2>"]
    assert "not JSON" in messages["<line 3>"]
    with pytest.raises(SampleError, match="line 2"):
        readers.load(camer)


@pytest.mark.parametrize("content, expected", [
    (b"", "as .npy"),  # a 0-byte file
    (np.zeros((0, 8), np.float32), "no feature tokens"),
    (np.zeros((0,), np.float32), "expected [dim] or [tokens, dim]"),
    (np.array([[1.0, np.nan] * 4, [0.0] * 8], np.float32), "NaN or inf"),
    (np.array([[1e300] * 8]), "NaN or inf"),  # overflows float32
])
def test_empty_zero_length_and_non_finite_features(camer, content, expected):
    target = camer / "eva" / "clip001.npy"
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        np.save(target, content)
    problems = problems_by_sample(camer)
    assert list(problems) == ["clip001"]
    assert problems["clip001"][0].field == "visual_features.eva" and expected in problems["clip001"][0].message


@pytest.mark.parametrize("path", ["../outside.npy", "/etc/hostname", "eva/../../outside.npy"])
def test_paths_outside_the_dataset_are_refused(camer, path):
    (camer.parent / "outside.npy").parent.mkdir(exist_ok=True)
    np.save(camer.parent / "outside.npy", np.zeros((2, 8), np.float32))
    rows = _rows(camer)
    rows[2]["visual_features"] = {"eva": path}
    rows[3]["video"] = path
    _write(camer, rows)
    problems = problems_by_sample(camer)
    assert sorted(problems) == ["clip002", "clip003"]
    assert all("outside the dataset folder" in p.message for ps in problems.values() for p in ps)
    assert problems["clip003"][0].field == "video"


def test_cells_of_the_wrong_type_are_problems_of_their_row(camer):
    rows = _rows(camer)
    rows[0]["subtitle"] = {"nested": True}
    rows[1]["visual_features"] = [1, 2]
    _write(camer, rows)
    problems = problems_by_sample(camer)
    assert sorted(problems) == ["clip000", "clip001"] and problems["clip000"][0].field == "row"


def test_data_check_reports_prompts_longer_than_the_models_positions(tmp_path):
    """The organism has 1024 positions; 1,100 visual tokens cannot fit."""
    from modbias.cli import app

    path = write_camer_benchmark(tmp_path / "long", n=3, media=False,
                                 features={"eva": ("visual", 4, 32), "hubert": ("audio", 1, 32)})
    np.save(path / "eva" / "clip001.npy", np.zeros((1100, 32), np.float32))
    result = CliRunner().invoke(app, ["data", "check", str(path), "--model", "organism"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if "clip" in line]
    assert len(lines) == 1 and "'clip001'" in lines[0] and "1024 positions" in lines[0], result.output
    assert "2 of 3 samples ok" in result.output


# -- fuzz ----------------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=5), max_leaves=12)
ROW_KEYS = st.sampled_from(["id", "name", "video_name", "subset", "label", "subtitle", "visual_features",
                            "audio_features", "video", "audio", "image", "reasoning", "visual_emotion", "reason"])
ROWS = st.lists(st.dictionaries(ROW_KEYS, JSON, max_size=8) | JSON, max_size=5)

LAYOUTS = {  # reader -> (file it reads, other files it needs)
    "camer_jsonl": ("camer", "annotations.jsonl", {}),
    "camer_json": ("camer", "annotations.json", {}),
    "camer_csv": ("camer", "annotations.csv", {}),
    "mer2023": ("mer2023", "labels.txt", {"HL-UTT/.keep": b""}),
    "emer": ("emer", "emer.csv", {"labels.txt": b"a 1 happy\n"}),
    "dfew": ("dfew", "split.csv", {"videos/.keep": b""}),
    "options": ("camer", "modbias_benchmark.json", {"annotations.jsonl": b'{"id": "a"}\n'}),
}


def _dataset(files: dict[str, bytes]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="fuzz-"))
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def _never_crash(reader: str, files: dict[str, bytes]) -> None:
    root = _dataset(files)
    try:
        report = readers.check(root, reader=reader)
        assert 0 <= report.n_ok <= report.n_entries and report.ok == (not report.problems)
        assert all(isinstance(line, str) for line in report.lines())
        try:
            readers.load(root, reader=reader)
        except DOCUMENTED:
            pass
    finally:
        shutil.rmtree(root)


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(layout=st.sampled_from(sorted(LAYOUTS)), content=st.binary(max_size=300))
def test_random_bytes_give_a_report(layout, content):
    reader, name, others = LAYOUTS[layout]
    _never_crash(reader, {name: content, **others})


@FUZZ
@given(layout=st.sampled_from(sorted(LAYOUTS)), rows=ROWS)
def test_random_json_gives_a_report(layout, rows):
    reader, name, others = LAYOUTS[layout]
    if name.endswith(".jsonl"):
        content = "".join(json.dumps(r) + "\n" for r in rows)
    elif name.endswith(".json"):
        content = json.dumps(rows if len(rows) != 1 else rows[0])
    elif name.endswith(".txt"):
        content = "".join(" ".join(str(v) for v in (r.values() if isinstance(r, dict) else [r])) + "\n" for r in rows)
    else:  # a CSV whose header is the rows' keys
        keys = sorted({k for r in rows if isinstance(r, dict) for k in r}) or ["name"]
        content = ",".join(keys) + "\n" + "".join(
            ",".join(json.dumps(r.get(k)) if isinstance(r, dict) else json.dumps(r) for k in keys) + "\n"
            for r in rows)
    _never_crash(reader, {name: content.encode(), **others})
