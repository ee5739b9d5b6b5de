"""The dashboard's Causal view, in headless Chromium, over causal runs of the organism."""

from __future__ import annotations

import numpy as np
import pytest

import modbias
from analyses.browser import click_option, figure, open_tab
from modbias.analysis.causal import head_map, pooled_ratio
from modbias.runs.causal import causal
from modbias.runs.patching import patch
from modbias.runs.store import open_run
from modbias_app.runs import clear_caches
from modbias_app.views import causal as view
from tests.conftest import browser

pytestmark = [pytest.mark.filterwarnings("ignore:Object at modbias.json is not recognized"),
              pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory, organism):
    """A patch run and a knockout run (window 2) on two samples per subset."""
    root = tmp_path_factory.mktemp("causal-cache")
    bench = modbias.load_benchmark("synth", subset="all", limit=2)
    patch(organism, bench, out=root / "a-patch", progress=False, method="exact")
    causal("knockout", organism, bench, out=root / "b-knockout", progress=False, window=2)
    clear_caches()
    return root


def close(rendered, expected) -> bool:
    return np.allclose(np.asarray(rendered, dtype=float), np.asarray(expected, dtype=float), atol=1e-5,
                       equal_nan=True)


def test_heads_pair_figure_outlines_the_biased_set_on_both_maps(cache):
    ds = open_run(cache / "a-patch")
    fig = view.heads_pair_figure(ds, 1.0, "t")
    _, biased = pooled_ratio(ds, 1.0)
    assert close(fig.data[0].z, head_map(ds, "patch_effect").values)
    assert len(fig.layout.shapes) == (2 if biased.values.any() else 0)


@browser
def test_causal_view_draws_patching_next_to_c_h_and_knockout_curves(page, cache):
    patch_path, knockout_path = str(cache / "a-patch"), str(cache / "b-knockout")
    patch_ds, knockout_ds = open_run(patch_path), open_run(knockout_path)
    effect = head_map(patch_ds, "patch_effect").values
    c_h, biased = pooled_ratio(patch_ds, 1.0)
    open_tab(page, "Causal")
    click_option(page, view.RUN, patch_path)
    fig = figure(page, view.GRAPH, lambda f: len(f["data"]) == 2 and f["data"][0]["z"] is not None
                 and close(f["data"][0]["z"], effect))
    assert [t["type"] for t in fig["data"]] == ["heatmap", "heatmap"]
    assert close(fig["data"][1]["z"], np.clip(np.log10(c_h.values), -3, 3))
    outlined = int(biased.values.sum())
    assert len(fig["shapes"]) == (2 if outlined else 0)
    assert all(s.count("M ") == outlined for s in fig["shapes"])

    click_option(page, view.RUN, knockout_path)
    delta = knockout_ds.knockout_delta.mean("sample", skipna=True)
    fig = figure(page, view.GRAPH, lambda f: [t["name"] for t in f["data"]] == ["visual blocked", "audio blocked"])
    for trace, modality in zip(fig["data"], ("visual", "audio")):
        assert close(trace["y"], delta.sel(modality=modality).values)
