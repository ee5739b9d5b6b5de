"""Run identity: what decides a store (refused resumes name the difference), stores named by identity,
and τ with every derived metric computed on read from the stored sums."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import modbias
import modbias.runs.trace as trace_module
from modbias.cli import app
from modbias.runs.identity import (OldStoreFormat, default_store, identity_changes, model_identity, read_tau,
                                   store_name)
from modbias.runs.store import RunConfigMismatch, list_runs, open_run, read_manifest
from modbias.testing import write_camer_benchmark
from tests.conftest import Killed

runner = CliRunner()
STREAMS = {"v": ("visual", 8, 32), "a": ("audio", 1, 32)}  # the organism's feature widths


def direct_biased(S_a: np.ndarray, S_v: np.ndarray, tau: float) -> np.ndarray:
    """Eq. 7 written out here from Eqs. 5-6, on the raw sums ``[..., layer, head]``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        c = S_a.sum(-1, keepdims=True) / S_v.sum(-1, keepdims=True)
        c_h = S_a / S_v
        return (c > tau) & (c_h > c)


def stored_sums(path) -> tuple[np.ndarray, np.ndarray]:
    """S_a, S_v as the zarr arrays hold them (plain xarray, no modbias reader)."""
    raw = xr.open_zarr(path).load()
    order = ("sample", "at", "layer", "head")
    return (raw[n].transpose(*order).values.astype(np.float64) for n in ("S_a", "S_v"))


def counting_batches(monkeypatch) -> list:
    """Patch the trace batch function to count its calls (the work a run does)."""
    calls, real = [], trace_module.trace_batch

    def counted(model, probe, samples, *args, **kwargs):
        calls.append(len(samples))
        return real(model, probe, samples, *args, **kwargs)

    monkeypatch.setattr(trace_module, "trace_batch", counted)
    return calls


# -- refused resumes ------------------------------------------------------------------------------
def test_resume_with_another_limit_subset_or_edited_data_is_refused_naming_it(tmp_path):
    data = write_camer_benchmark(tmp_path / "camer", n=6, media=False, features=STREAMS, fmt="csv")
    out = tmp_path / "run"
    base = ["trace", "--data", str(data), "--out", str(out)]
    assert runner.invoke(app, [*base, "--limit", "1"]).exit_code == 0
    assert read_manifest(out)["done"] == 3

    def refused(*args: str) -> str:
        result = runner.invoke(app, [*base, *args])
        assert isinstance(result.exception, RunConfigMismatch), result.output
        return str(result.exception)

    assert "data.limit (1 → 2), data.sample_ids (3 samples → 6)" in refused("--limit", "2")
    message = refused("--limit", "1", "--subset", "video_aligned")
    assert "data.sample_ids (3 samples → 1)" in message and "data.subset ('all' → 'video_aligned')" in message
    annotations = data / "annotations.csv"
    annotations.write_text(annotations.read_text().replace("the face looks neutral", "the face looks calm"))
    assert refused("--limit", "1").endswith("differs in data.files.annotations.csv (changed); "
                                            "choose another --out or delete the store")
    np.save(data / "v" / "clip000.npy", np.zeros((8, 32), np.float32))  # a feature file of a traced sample
    assert "data.files.v/clip000.npy (changed)" in refused("--limit", "1")
    assert read_manifest(out)["done"] == 3  # nothing was written


def test_data_files_are_those_of_the_samples_kept(tmp_path):
    data = write_camer_benchmark(tmp_path / "camer", n=6, media=False, features=STREAMS)
    bench = modbias.load_benchmark(str(data), subset="video_aligned")
    assert [s.id for s in bench] == ["clip000", "clip003"]
    assert sorted(bench.config["files"]) == ["a/clip000.npy", "a/clip003.npy", "annotations.jsonl",
                                             "v/clip000.npy", "v/clip003.npy"]
    size, digest = bench.config["files"]["v/clip003.npy"].split(":")
    assert int(size) == (data / "v" / "clip003.npy").stat().st_size and len(digest) == 16


def test_model_weights_are_part_of_the_identity(tmp_path):
    from modbias.models.organism import ORGANISMS

    weights = tmp_path / "weights"
    shutil.copytree(ORGANISMS["organism"], weights, ignore=shutil.ignore_patterns("base"))
    before = model_identity(modbias.load_model(f"organism:{weights}"))
    assert set(before["weights"]) == {"config.json", "model.safetensors"} and before["dtype"] == "torch.float32"
    with open(weights / "model.safetensors", "r+b") as f:  # one byte of the tensor data, size unchanged
        f.seek(-3, 2)
        byte = f.read(1)
        f.seek(-3, 2)
        f.write(bytes([byte[0] ^ 1]))
    after = model_identity(modbias.load_model(f"organism:{weights}"))
    assert identity_changes(before, after) == ["weights.model.safetensors (changed)"]


def test_identity_changes_name_nested_fields_and_list_items():
    stored = {"data": {"limit": None, "sample_ids": {"count": 5, "sha1": "a"}}, "interventions": [{"tau": 1.0}]}
    wanted = {"data": {"limit": None, "sample_ids": {"count": 5, "sha1": "b"}}, "interventions": [{"tau": 2.0}],
              "parameters": {"at": "first"}}
    assert identity_changes(stored, wanted) == [
        "data.sample_ids (5 samples, other ids or order)", "interventions[0].tau (1.0 → 2.0)",
        "parameters (not in the store → {…})"]
    assert identity_changes(stored, stored) == []


# -- stores named by identity ---------------------------------------------------------------------
def test_the_same_trace_twice_opens_the_same_store_without_work(tmp_path, monkeypatch):
    calls = counting_batches(monkeypatch)
    args = ["trace", "--subset", "video_aligned", "--limit", "3", "--cache", str(tmp_path)]
    first = runner.invoke(app, [*args, "--batch-size", "2"], env={"COLUMNS": "200"})
    assert first.exit_code == 0, first.output
    assert sum(calls) == 3
    (store,) = list_runs(tmp_path)
    assert store.name.startswith("trace-organism-synth-video_aligned-") and len(store.name.rsplit("-", 1)[1]) == 8
    created = read_manifest(store)["created"]
    again = runner.invoke(app, [*args, "--batch-size", "3", "--tau", "2"], env={"COLUMNS": "200"})
    assert again.exit_code == 0, again.output
    assert sum(calls) == 3 and list_runs(tmp_path) == [store]  # no batch traced, no new store
    assert read_manifest(store)["created"] == created and f"store: {store}" in again.output
    other = runner.invoke(app, [*args[:-2], "--limit", "2", "--cache", str(tmp_path)])
    assert other.exit_code == 0 and len(list_runs(tmp_path)) == 2  # another identity, another store


def test_batch_size_change_on_resume_is_accepted(organism, tmp_path, interrupt):
    bench = modbias.load_benchmark("synth", subset="all", limit=2)
    out = tmp_path / "run"
    resume = interrupt(trace_module, "trace_batch", after=1)
    with pytest.raises(Killed):
        modbias.trace(organism, bench, out=out, batch_size=2, progress=False)
    assert read_manifest(out)["done"] == 2
    resume()
    ds = modbias.trace(organism, bench, out=out, batch_size=4, progress=False)
    clean = modbias.trace(organism, bench, batch_size=6, progress=False)
    assert ds.sample.values.tolist() == [s.id for s in bench]
    np.testing.assert_allclose(ds.S_a.values, clean.S_a.values, atol=1e-6)


# -- tau on read --------------------------------------------------------------------------------
def test_biased_heads_at_any_tau_come_from_one_stored_trace(tmp_path, monkeypatch):
    calls = counting_batches(monkeypatch)
    args = ["trace", "--subset", "all", "--limit", "2", "--cache", str(tmp_path)]
    outputs, summaries = {}, []
    for tau in (0.05, 0.5, 1.0, 2.0):
        result = runner.invoke(app, [*args, "--tau", str(tau)], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        outputs[tau] = result.output
        summaries.append(read_manifest(list_runs(tmp_path)[0])["summary"])
    assert sum(calls) == 6 and len(list_runs(tmp_path)) == 1  # traced once, read four times
    assert all(summary == summaries[0] for summary in summaries)  # the recorded summary holds no τ
    (store,) = list_runs(tmp_path)
    S_a, S_v = stored_sums(store)
    assert not {"UAP_v", "c", "c_h", "biased"} & set(xr.open_zarr(store).data_vars)  # only sums are stored
    counts = []
    for tau, output in outputs.items():
        expected = direct_biased(S_a, S_v, tau)
        ds = open_run(store, tau=tau)
        np.testing.assert_array_equal(ds.biased.transpose("sample", "at", "layer", "head").values, expected)
        assert ds.attrs["tau"] == tau and ds.biased.attrs["tau"] == tau
        counts.append(int(expected.sum()))
        # the CLI's "biased" cell: share of biased heads over the middle layers (1, 2 of 4) of samples with a token
        found = ds.found.sel(at="first").values.astype(bool)
        share = expected[:, 0, 1:3][found].mean()
        row = next(line for line in output.splitlines() if line.startswith("│ overall"))
        assert [c.strip() for c in row.split("│") if c.strip()][6] == f"{share:.3f}"
        assert f"tau={tau}" in output
    assert counts[0] > 0 and counts == sorted(counts, reverse=True)  # a threshold that marks heads, then fewer


def test_biased_heads_at_0_5_1_2_from_one_store_equal_the_stored_sums(tmp_path):
    from analyses.synthetic_runs import random_run, run_config, write_run

    store = write_run(tmp_path / "run", random_run(24, seed=2, audio_bias=2.0), run_config("trace"), summary=False)
    S_a, S_v = stored_sums(store)
    counts = [int(open_run(store, tau=tau).biased.sum()) for tau in (0.5, 1.0, 2.0)]
    assert counts == [int(direct_biased(S_a, S_v, tau).sum()) for tau in (0.5, 1.0, 2.0)]
    assert counts[0] > counts[1] > counts[2] > 0


def test_intervene_tau_is_the_runs_identity_and_another_tau_reads_it(organism, tmp_path, monkeypatch):
    bench = modbias.load_benchmark("synth", subset="video_aligned", limit=2)
    run = modbias.intervene(organism, bench, method="ar", tau=0.1, cache_dir=tmp_path, batch_size=2, progress=False)
    path = run.attrs["path"]
    assert run.attrs["config"]["interventions"][0]["tau"] == 0.1
    assert run.attrs["tau"] == 0.1 and open_run(path).attrs["tau"] == 0.1  # read at AR's own τ by default
    S_a, S_v = stored_sums(path)
    np.testing.assert_array_equal(open_run(path, tau=2).biased.transpose("sample", "at", "layer", "head").values,
                                  direct_biased(S_a, S_v, 2.0))
    calls = counting_batches(monkeypatch)
    again = modbias.intervene(organism, bench, method="ar", tau=0.1, cache_dir=tmp_path, batch_size=1,
                              progress=False)
    assert calls == [] and again.attrs["path"] == path  # batch size is no part of the run or its baseline
    names = sorted(p.name.split("-")[0] for p in list_runs(tmp_path))
    assert names == ["baseline", "intervene"]
    other = modbias.intervene(organism, bench, method="ar", tau=2.0, cache_dir=tmp_path, progress=False)
    assert other.attrs["path"] != path and len(list_runs(tmp_path)) == 3  # AR's τ is identity: a new run


def test_read_tau_defaults_to_ars_own_threshold():
    assert read_tau({"interventions": [{"name": "ar", "tau": 3.0}]}) == 3.0
    assert read_tau({"interventions": [{"name": "pai", "alpha": 0.2}]}) == 1.0
    assert read_tau({"interventions": [{"name": "ar", "tau": 3.0}]}, tau=0.5) == 0.5


# -- the previous format --------------------------------------------------------------------------
def test_a_store_of_the_previous_format_is_refused_with_how_to_proceed(tmp_path):
    from analyses.synthetic_runs import random_run

    old = {"kind": "trace", "model": {"family": "organism"}, "data": {"name": "synth"},
           "trace": {"at": "first", "max_new_tokens": 16, "batch_size": 32, "save_rows": False, "tau": 1.0}}
    store = tmp_path / "old"  # the layout before run identities: batches appended, a `done` count, no format
    random_run(4, seed=1).to_zarr(store, mode="w", zarr_format=3, consolidated=False)
    (store / "modbias.json").write_text(json.dumps({"kind": "trace", "config": old, "done": 4}))
    with pytest.raises(OldStoreFormat, match="written by an earlier modbias .*run the same command again"):
        open_run(store)
    result = runner.invoke(app, ["trace", "--limit", "1", "--out", str(store)])
    assert isinstance(result.exception, OldStoreFormat)
    assert json.loads((store / "modbias.json").read_text())["config"] == old  # left as it was


def test_store_names_are_readable_and_change_with_the_identity():
    identity = {"kind": "intervene", "model": {"family": "organism"}, "data": {"name": "synth", "subset": "all"},
                "interventions": [{"name": "ar", "tau": 1.0}]}
    assert store_name(identity).startswith("intervene-organism-synth-ar-tau1.0-")
    assert store_name({**identity, "interventions": []}).startswith("baseline-organism-synth-")
    assert default_store(identity, "c") != default_store({**identity, "data": {"name": "synth", "subset": "x"}}, "c")


def test_samples_without_a_benchmark_config_are_identified_by_content(organism):
    import dataclasses

    from modbias.runs.identity import run_identity

    samples = list(modbias.load_benchmark("synth", subset="consistent", limit=2))
    edited = [samples[0], dataclasses.replace(samples[1], visual=samples[1].visual + 1e-3)]
    before, after = (run_identity("trace", organism, s) for s in (samples, edited))
    assert identity_changes(before, after)[0].startswith("data.content (")


def test_file_fingerprints_see_every_byte_of_a_small_file_and_the_sampled_blocks_of_a_large_one(tmp_path):
    from modbias.core import fingerprint as fp

    small, large = tmp_path / "small.bin", tmp_path / "large.bin"
    rng = np.random.default_rng(0)
    small.write_bytes(rng.bytes(fp.FULL_HASH_BYTES))
    large.write_bytes(rng.bytes(3 * fp.FULL_HASH_BYTES + 7))
    before = fp.file_fingerprint(small), fp.file_fingerprint(large)

    def flip(path, offset):
        with open(path, "r+b") as f:
            f.seek(offset)
            value = f.read(1)[0]
            f.seek(offset)
            f.write(bytes([value ^ 0xFF]))
        return fp.file_fingerprint(path)

    assert flip(small, fp.FULL_HASH_BYTES // 2 + 1) != before[0]  # any byte of a small file
    size = large.stat().st_size
    step = (size - fp.BLOCK_BYTES) // (fp.SAMPLED_BLOCKS + 1)
    changed = flip(large, 5 * step + 3)  # inside the 6th sampled block
    assert changed != before[1] and changed.startswith(f"{size}:")
    assert flip(large, 5 * step + fp.BLOCK_BYTES + 1) == changed  # between two blocks: not read
