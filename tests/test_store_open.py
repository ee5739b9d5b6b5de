"""Stores open anywhere: plain ``xarray.open_zarr`` without warnings, config in attrs; ``open_run`` verifies
and derives."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import xarray as xr

from analyses.synthetic_runs import random_run, run_config, write_run
from modbias.core.metrics import biased_heads
from modbias.runs.store import open_run


@pytest.fixture
def store(tmp_path):
    return write_run(tmp_path / "run", random_run(12, n_layers=3, n_heads=4, seed=3), run_config("trace"),
                     batch=5, summary=False)


def test_plain_xarray_opens_a_store_without_warnings_and_shows_its_config(store):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = xr.open_zarr(store)
        ds.load()
    assert ds.sizes["sample"] == 12  # written in three units, all visible
    assert ds.attrs["config"] == json.loads((store / "modbias.json").read_text())["config"]
    assert ds.attrs["kind"] == "trace"
    np.testing.assert_array_equal(ds.S_a.values, open_run(store).S_a.values)


def test_open_run_derives_metrics_at_another_tau(store):
    ds = open_run(store, tau=2.5)
    expected = biased_heads(ds.S_a.values.astype(np.float64), ds.S_v.values.astype(np.float64), tau=2.5)
    np.testing.assert_array_equal(ds.biased.values, expected)
    assert not np.array_equal(ds.biased.values, open_run(store).biased.values)


def test_open_run_refuses_a_store_missing_committed_samples(store):
    manifest = json.loads((store / "modbias.json").read_text())
    (store / "modbias.json").write_text(json.dumps({**manifest, "samples": 20}))
    with pytest.raises(ValueError, match="commits 20 samples but the arrays hold 12"):
        open_run(store)
