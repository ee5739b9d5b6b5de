"""The unit store: one writer per store, integrity checks, shards and Dask give the single-process store."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

import modbias
from modbias.cli import app, main
from modbias.runs import schema
from modbias.runs.identity import FORMAT
from modbias.runs.store import RunConfigMismatch, RunStore, StoreBusy, StoreDamaged, open_run, read_manifest, verify_store

runner = CliRunner()
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
TEST_IDENTITY = {"kind": "test", "format": FORMAT}  # a run kind of the tests' own, in the identity format
TRACE = [sys.executable, "-m", "modbias", "trace", "--subset", "video_aligned", "--batch-size", "4"]


def _same_run(got: xr.Dataset, expected: xr.Dataset) -> None:
    """Same samples in the same order, equal texts, counts and coordinates; floats equal to 1e-6 (another
    process may run another attention kernel or thread count, which moves the last bits; c_h, a ratio, to 1e-5)."""
    assert got.sample.values.tolist() == expected.sample.values.tolist()
    got, expected = got.drop_attrs().load(), expected.drop_attrs().load()
    assert set(got.variables) == set(expected.variables)
    for name in got.variables:
        if got[name].dtype.kind == "f":
            np.testing.assert_allclose(got[name].values, expected[name].values, rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(got[name].values, expected[name].values, err_msg=name)


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """12 samples, 3 units of 4, written by one process (a freshly loaded organism, as the shards load it)."""
    out = tmp_path_factory.mktemp("single") / "run"
    bench = modbias.load_benchmark("synth", subset="video_aligned", limit=12)
    modbias.trace(modbias.load_model("organism"), bench, out=out, batch_size=4, progress=False)
    return out


def _wait_for(condition, seconds=300):
    end = time.time() + seconds
    while not condition():
        assert time.time() < end, "timed out"
        time.sleep(0.2)


def test_a_second_writer_is_refused_at_once_naming_the_pid(tmp_path, capsys):
    out = tmp_path / "run"
    first = subprocess.Popen([*TRACE, "--limit", "150", "--out", str(out)], env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: read_manifest(out).get("done", 0) > 0 or first.poll() is not None)
        with pytest.raises(SystemExit) as second:  # the same command, in this process
            main(["trace", "--subset", "video_aligned", "--batch-size", "4", "--limit", "150", "--out", str(out)])
        still_running = first.poll() is None
    finally:
        first.wait()
    assert first.returncode == 0, first.stderr
    assert second.value.code == 1
    assert f"error: store {out} is being written by another process (pid {first.pid} on" in capsys.readouterr().err
    assert still_running  # refused while the first was writing, not after it finished
    ids = open_run(out).sample.values.tolist()
    assert len(ids) == len(set(ids)) == 150


def test_the_lock_of_a_killed_writer_is_taken_over(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom modbias.runs.store import RunStore\n"
                               f"with RunStore({str(out)!r}).writing():\n    print('held', flush=True)\n"
                               "    time.sleep(600)"], stdout=subprocess.PIPE, text=True, env=ENV)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreBusy, match=f"pid {holder.pid} on"):
        with RunStore(out).writing():
            pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with RunStore(out).writing():
        assert json.loads((out / "locks" / "writer.lock.pid").read_text())["pid"] == os.getpid()


def test_shards_and_the_same_shard_twice(tmp_path):
    out = tmp_path / "run"
    with RunStore(out).writing(shard=(0, 2)):
        RunStore(out).check_free((1, 2))  # another shard may run
        for other in (None, (0, 2)):  # a plain writer or the same shard may not
            with pytest.raises(StoreBusy, match="being written by another process"):
                RunStore(out).check_free(other)


def test_a_deleted_shard_file_is_named_by_sample_and_rerunning_repairs_it(tmp_path, organism, single):
    out = tmp_path / "run"
    bench = modbias.load_benchmark("synth", subset="video_aligned", limit=12)
    modbias.trace(organism, bench, out=out, batch_size=4, progress=False)
    damaged = [s.id for s in bench][4:8]  # unit 1
    (out / "S_a" / "c" / "1" / "0" / "0" / "0").unlink()
    result = runner.invoke(app, ["store", "verify", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    assert "unit 1" in result.output and all(i in result.output for i in damaged) and "S_a" in result.output
    assert [d.sample_ids for d in verify_store(out)] == [damaged]
    with pytest.raises(StoreDamaged, match=damaged[0]):
        open_run(out, verify=True)
    modbias.trace(organism, bench, out=out, batch_size=4, progress=False)  # the same command again
    assert verify_store(out) == []
    _same_run(open_run(out, verify=True), open_run(single))
    assert runner.invoke(app, ["store", "verify", str(out)]).exit_code == 0


def test_a_corrupt_chunk_is_found(tmp_path, single):
    out = tmp_path / "run"
    shutil.copytree(single, out)
    text = out / "text" / "c" / "2"
    text.write_bytes(text.read_bytes()[:-3] + b"xyz")
    assert [d.unit.index for d in verify_store(out)] == [2]


def test_a_killed_store_opens_its_committed_units(tmp_path, organism, single):
    out = tmp_path / "run"
    bench = modbias.load_benchmark("synth", subset="video_aligned", limit=12)
    modbias.trace(organism, bench, out=out, batch_size=4, progress=False, shard=(1, 2))  # units 1 only
    ds = open_run(out)
    assert not ds.attrs["complete"] and "summary" not in read_manifest(out)
    _same_run(ds, open_run(single).isel(sample=slice(4, 8)))
    assert xr.open_zarr(out).sizes["sample"] == 12  # plain xarray: all, uncommitted as fill values


def test_shards_run_concurrently_equal_one_process(tmp_path, single):
    out = tmp_path / "run"
    shards = [subprocess.Popen([*TRACE, "--limit", "12", "--out", str(out), "--shard", f"{i}/2"], env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    for shard in shards:
        stdout, stderr = shard.communicate()
        assert shard.returncode == 0, stderr
    _same_run(open_run(out, verify=True), open_run(single))
    assert read_manifest(out)["summary"] == read_manifest(single)["summary"]


def test_dask_local_cluster_equals_one_process(tmp_path, organism, single):
    pytest.importorskip("distributed")
    out = tmp_path / "run"
    bench = modbias.load_benchmark("synth", subset="video_aligned", limit=12)
    modbias.trace(modbias.load_model("organism"), bench, out=out, batch_size=4, progress=False, dask="local:2")
    _same_run(open_run(out, verify=True), open_run(single))
    assert read_manifest(out)["summary"] == read_manifest(single)["summary"]


def test_resuming_with_other_samples_is_refused(tmp_path, organism, single):
    out = tmp_path / "run"
    shutil.copytree(single, out)
    bench = modbias.load_benchmark("synth", subset="video_aligned", limit=16)  # another --limit
    with pytest.raises(RunConfigMismatch, match=r"data.sample_ids \(12 samples → 16\)"):
        modbias.trace(organism, bench, out=out, batch_size=4, progress=False)


def test_a_batch_that_does_not_fit_the_store_is_named(tmp_path, single):
    store = RunStore(single)
    manifest = read_manifest(single)
    batch = open_run(single).isel(sample=slice(0, 4)).load().drop_vars("S_a")
    with pytest.raises(schema.SchemaMismatch, match="S_a"):
        schema.write_region(store.path, batch, 0, 4)
    assert read_manifest(single) == manifest


def test_strings_of_any_length_survive_region_writes(tmp_path):
    ids = [f"s{i}" for i in range(6)]
    texts = ["", "é" * 3, "a much longer generated answer " * 20, "x", "y\nz", "🙂"]
    ds = xr.Dataset({"score": ("sample", np.arange(6.0))}, coords={"sample": ids, "text": ("sample", texts)})
    out = tmp_path / "run"
    from types import SimpleNamespace

    from modbias.runs.loop import run

    run(None, [SimpleNamespace(id=i) for i in ids], lambda chunk: ds.sel(sample=[s.id for s in chunk]),
        config=TEST_IDENTITY, out=out, batch_size=2, unit_size=2, progress=False)
    assert open_run(out, verify=True).text.values.tolist() == texts
    assert sorted(p.name for p in (out / "text" / "c").iterdir()) == ["0", "1", "2"]  # one file per unit


def test_rows_are_stored_compact_one_chunk_per_sample_one_shard_per_unit(tmp_path, organism):
    out = tmp_path / "run"
    bench = modbias.load_benchmark("synth", subset="video_aligned", limit=8)
    modbias.trace(organism, bench, out=out, batch_size=4, save_rows=True, progress=False)
    import zarr

    rows = zarr.open_array(out / "rows", mode="r")
    assert rows.dtype == np.float16 and rows.chunks[0] == 1 and rows.shards[0] == 4
    assert len([p for p in (out / "rows").rglob("*") if p.is_file() and p.name != "zarr.json"]) == 2


def test_a_unit_whose_dask_worker_dies_is_rerun(tmp_path):
    pytest.importorskip("distributed")
    from types import SimpleNamespace

    from modbias.runs.loop import run

    ids = [f"s{i}" for i in range(8)]
    ds = xr.Dataset({"score": ("sample", np.arange(8.0))}, coords={"sample": ids})
    marker = tmp_path / "died"

    def record(chunk):  # the first worker to record unit 1 dies mid-unit
        if chunk[0].id == "s4":
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                os._exit(1)
            except FileExistsError:
                pass
        return ds.sel(sample=[s.id for s in chunk])

    out = tmp_path / "run"
    got = run(None, [SimpleNamespace(id=i) for i in ids], record, config=TEST_IDENTITY, out=out, batch_size=2,
              unit_size=4, progress=False, dask="local:2")
    assert marker.exists()  # a worker did die
    xr.testing.assert_equal(got.drop_attrs().load(), ds)
    assert verify_store(out) == [] and read_manifest(out)["done"] == 8


def test_intervene_shards_with_their_baseline_equal_one_process(tmp_path, organism):
    bench = modbias.load_benchmark("synth", subset="all", limit=4)
    options = dict(method="ar", batch_size=4, progress=False, tau=1.0)
    one = modbias.intervene(organism, bench, cache_dir=tmp_path / "one", **options)
    first = modbias.intervene(organism, bench, cache_dir=tmp_path / "shards", shard=(0, 2), **options)
    assert not first.attrs["complete"] and "summary" not in read_manifest(first.attrs["path"])
    last = modbias.intervene(organism, bench, cache_dir=tmp_path / "shards", shard=(1, 2), **options)
    _same_run(last, one)
    summary, expected = read_manifest(last.attrs["path"])["summary"], read_manifest(one.attrs["path"])["summary"]
    assert {**summary, "baseline": None} == {**expected, "baseline": None}  # only the baseline's path differs
    base = Path(summary["baseline"])
    _same_run(open_run(base, verify=True), open_run(expected["baseline"]))
