"""The dashboard: its data functions on small random stores, then every view in headless Chromium.

The browser tests serve the app from a werkzeug thread and read each
figure back from plotly.js (``gd._fullData``, see :mod:`analyses.browser`),
comparing it with numbers computed here directly from the stores.  They skip only when Chromium or
its driver is missing (``apt-get install -y chromium chromium-driver``).
"""

from __future__ import annotations

import numpy as np
import pytest

from analyses.browser import FIGURE_JS, click_cell, click_option, figure, open_tab, tick_row, wait_for, wait_for_rows
from analyses.synthetic_runs import random_run, run_config, write_run
from modbias.runs.store import open_run
from modbias_app.aggregates import biased_share, head_map
from modbias_app.dashboard import focus_choices
from modbias_app.figures import heads_figure
from modbias_app.runs import HeadSums, StoreFieldError, baseline_of, clear_caches, sample_table, scan
from modbias_app.views import heads, tokens
from tests.conftest import browser

L, H = 4, 6  # distinct, so a transposed map cannot pass
pytestmark = [pytest.mark.filterwarnings("ignore:Object at modbias.json is not recognized"),
              pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning")]  # selenium 4.2


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A trace without rows, two AR runs and (newest, so shown first) a baseline with rows."""
    root = tmp_path_factory.mktemp("cache")
    shape = dict(n_layers=L, n_heads=H)
    base = write_run(root / "e-baseline", random_run(24, **shape, rows=9, seed=1), run_config(**shape),
                     created="2025-01-09T00:00:00")
    for name, tau, seed in (("b-ar-tau0", 0.0, 2), ("c-ar-tau2", 2.0, 3)):
        write_run(root / name, random_run(24, **shape, seed=seed), run_config(interventions=[{"name": "ar", "tau": tau, "layers": None}], **shape),
                  created=f"2025-01-0{seed}T00:00:00", baseline=base)
    write_run(root / "a-trace", random_run(12, **shape, seed=4), run_config("trace", **shape),
              created="2025-01-01T00:00:00", summary=False)
    clear_caches()
    return root


def expected_log10_median(path, at="first", pick=None):
    ds = open_run(path).sel(at=at)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.log10(ds.S_a.values.astype(np.float64) / ds.S_v.values)
    return np.median(values if pick is None else values[pick], axis=0)


def expected_layer_marks(path, tau, at="first", pick=None):
    ds = open_run(path).sel(at=at)
    c = ds.c.values if pick is None else ds.c.values[pick]
    return np.flatnonzero((c > tau).mean(0) > 0.5)


# ----------------------------------------------------------------------------- data functions (no browser)


def test_scan_describes_runs(cache):
    runs = scan(cache)
    assert [r.name for r in runs] == ["a-trace", "b-ar-tau0", "c-ar-tau2", "e-baseline"]
    assert [r.label for r in runs] == ["baseline", "ar(tau=0, layers=all)", "ar(tau=2, layers=all)", "baseline"]
    assert [r.has_rows for r in runs] == [False, False, False, True]
    assert baseline_of(runs[1], runs).name == "e-baseline"  # named in the summary, not the newest-by-setup guess


def test_other_kinds_of_run_are_listed_but_not_analysed(tmp_path):
    """Runs of other schemas (e.g. MI, drift) appear in the Runs table only."""
    shape = dict(n_layers=2, n_heads=2)
    write_run(tmp_path / "trace", random_run(6, **shape), run_config("trace", **shape), summary=False)
    write_run(tmp_path / "mi", random_run(6, **shape), {**run_config("trace", **shape), "kind": "mi"}, summary=False)
    runs = scan(tmp_path)
    assert sorted(r.kind for r in runs) == ["mi", "trace"]
    options, value = focus_choices(str(tmp_path), [r.path for r in runs], None)
    assert [o["value"] for o in options] == [value] == [str(tmp_path / "trace")]
    assert [r.name for r in runs if r.is_baseline] == ["trace"]


def test_infinite_and_undefined_ratios():
    """S_v = 0 < S_a gives +inf (drawn at the colour scale's end, named in the hover); 0/0 stays blank."""
    S_a = np.array([[[0.5, 0.0, 0.2]]] * 3)
    S_v = np.array([[[0.0, 0.0, 0.4]]] * 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        log10 = np.log10(S_a / S_v).astype(np.float32)
    sums = HeadSums(S_a, S_v, S_a.mean(-1), S_v.mean(-1), log10)
    keep = np.ones(3, bool)
    values = head_map(sums, keep, "log10_c_h")
    assert values[0, 0] == np.inf and np.isnan(values[0, 1]) and values[0, 2] == pytest.approx(np.log10(0.5))
    share, layers, n = biased_share(sums, keep, tau=0.5)
    assert n == 3 and layers.tolist() == [1.0]  # c = 0.7 / 0.4 > 0.5
    assert share.tolist() == [[1.0, 0.0, 0.0]]  # c_h = inf > c; NaN never biased
    fig = heads_figure(values, "log10_c_h", share, layers, 0.5, "t")
    assert "+inf" in fig.data[0].text[0][0] and np.isfinite(fig.data[0].z[0][0])
    assert fig.layout.shapes[0].path.count("M") == 1


def test_views_name_missing_rows(cache):
    trace = str(cache / "a-trace")
    fig, note = tokens.tokens_view(trace, "first", "all", "all", None, [0, 3])
    assert "a-trace" in note and "'rows'" in note and "--save-rows" in note
    fig, note = heads.head_detail(trace, "first", "all", "all", None, {"points": [{"curveNumber": 0, "x": 1, "y": 1}]})
    assert "a-trace" in note and "'rows'" in note
    with pytest.raises(StoreFieldError, match="sample 'nope'"):
        sample_table(trace).index("nope")


# ----------------------------------------------------------------------------- browser



def layer_marks(fig):
    return sorted(int(y) for t in fig["data"] if t["type"] == "scatter" for y in t["y"])


@browser
def test_runs_table_lists_every_run(page, cache):
    assert len(scan(cache)) == 4
    wait_for_rows(page, "runs-table", 4)
    selected = wait_for_rows(page, "runs-table", 1, selected=True)
    assert "e-baseline" in selected[0].text and "intervene" in selected[0].text


@browser
def test_heads_heatmap_matches_the_store(page, cache):
    base = str(cache / "e-baseline")
    open_tab(page, "Heads")
    fig = figure(page, "heads-graph")
    z = np.array(fig["data"][0]["z"], dtype=float)
    assert fig["data"][0]["type"] == "heatmap" and z.shape == (L, H)
    np.testing.assert_allclose(z, expected_log10_median(base), rtol=1e-5)
    assert base in fig["title"] and "n=24" in fig["title"]
    assert layer_marks(fig) == expected_layer_marks(base, 1.0).tolist()


@browser
def test_tau_and_subset_change_the_heatmap(page, cache):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base = str(cache / "e-baseline")
    open_tab(page, "Heads")
    before = figure(page, "heads-graph")
    tau = 4.9
    assert expected_layer_marks(base, tau).tolist() != expected_layer_marks(base, 1.0).tolist()  # the data allow it
    box = page.find_element(By.CSS_SELECTOR, "#heads-tau input")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(str(tau), Keys.TAB)
    after = figure(page, "heads-graph", lambda f: layer_marks(f) != layer_marks(before))
    assert layer_marks(after) == expected_layer_marks(base, tau).tolist()
    assert f"τ={tau:g}" in page.find_element(By.ID, "heads-note").text

    click_option(page, "heads-subset", "video_aligned")
    sub = figure(page, "heads-graph", lambda f: "video_aligned samples" in f["title"])
    pick = open_run(base).subset.values == "video_aligned"
    np.testing.assert_allclose(np.array(sub["data"][0]["z"], float), expected_log10_median(base, pick=pick), rtol=1e-5)
    assert not np.allclose(np.array(sub["data"][0]["z"], float), np.array(before["data"][0]["z"], float))


@browser
def test_clicking_a_cell_shows_the_heads_attention_row(page, cache):
    base = str(cache / "e-baseline")
    open_tab(page, "Heads")
    figure(page, "heads-graph")
    layer, head = 2, 3
    click_cell(page, "heads-graph", head, layer)
    detail = figure(page, "head-detail", lambda f: f"layer {layer}, head {head}" in f["title"])
    ds = open_run(base).sel(at="first")
    n = int(ds.length.values[0])
    bars = np.zeros(n)
    for trace in detail["data"]:
        bars[np.array(trace["x"], int)] = trace["y"]
    np.testing.assert_allclose(bars, ds.rows.values[0, layer, head, :n], rtol=1e-6)
    visual = [t for t in detail["data"] if t["name"] == "visual"][0]
    assert np.array(visual["x"]).tolist() == np.flatnonzero(ds.visual_mask.values[0][:n]).tolist()
    assert detail["yaxis"] == "log"


@browser
def test_layers_view_shows_uap_per_subset_and_outcome(page, cache):
    base = str(cache / "e-baseline")
    open_tab(page, "Layers")
    fig = figure(page, "layers-graph")
    ds = open_run(base).sel(at="first")
    groups = {(s, c) for s, c in zip(ds.subset.values.tolist(), ds.correct.values.tolist())}
    assert len(fig["data"]) == 2 * len(groups)
    trace = next(t for t in fig["data"] if t["name"] == "UAP_a incorrect" and t["visible"] is True)
    first_incorrect_subset = next(s for s in ("video_aligned", "audio_aligned", "consistent") if (s, False) in groups)
    pick = (ds.subset.values == first_incorrect_subset) & ~ds.correct.values
    np.testing.assert_allclose(trace["y"], ds.UAP_a.values[pick].mean(0), rtol=1e-5)


@browser
def test_tokens_view_shows_attention_per_position(page, cache):
    base = str(cache / "e-baseline")
    open_tab(page, "Tokens")
    fig = figure(page, "tokens-graph")
    ds = open_run(base).sel(at="first")
    with_rows = ds.length.values > 0
    rows = ds.rows.values[with_rows][:, 1:3]  # default layers: the middle layers 1-2 of 4
    expected = rows.mean(axis=(1, 2))[:, : int(ds.length.values.max())].mean(0)
    bars = np.zeros_like(expected)
    for trace in fig["data"]:
        bars[np.array(trace["x"], int)] = trace["y"]
    np.testing.assert_allclose(bars, expected, rtol=1e-5)
    assert fig["yaxis"] == "log" and {t["name"] for t in fig["data"]} >= {"visual", "audio"}


@browser
def test_interventions_compare_ticked_runs(page, cache):
    from selenium.webdriver.common.by import By

    open_tab(page, "Interventions")
    one = figure(page, "interventions-bars")
    assert len(one["data"]) == 1
    open_tab(page, "Runs")
    for name in ("b-ar-tau0", "c-ar-tau2"):
        tick_row(page, "runs-table", str(cache / name))
    open_tab(page, "Interventions")
    bars = figure(page, "interventions-bars", lambda f: len(f["data"]) == 3)
    runs = {r.name: r for r in scan(cache)}
    tau0 = next(t for t in bars["data"] if t["name"].startswith("b-ar-tau0"))
    summary = runs["b-ar-tau0"].summary
    assert list(tau0["x"]) == ["video_aligned", "audio_aligned", "consistent", "overall"]
    np.testing.assert_allclose(tau0["y"], [summary["metrics"][s]["avg"] for s in tau0["x"]])
    table = page.find_element(By.ID, "interventions-table").text
    assert f"{summary['deltas']['video_aligned']['avg']:+.2f}" in table
    sweep = figure(page, "tau-sweep")
    video = next(t for t in sweep["data"] if t["name"].startswith("video_aligned"))
    assert list(video["x"]) == [0, 2]


@browser
def test_choosing_a_sample_drives_the_heads_view(page, cache):
    base = str(cache / "e-baseline")
    open_tab(page, "Samples")
    wait_for_rows(page, "samples-table", 20)  # first page of 24 samples
    ds = open_run(base)
    sample = str(ds.sample.values[5])
    tick_row(page, "samples-table", sample)
    open_tab(page, "Heads")
    fig = figure(page, "heads-graph", lambda f: f"sample {sample}" in f["title"])
    with np.errstate(divide="ignore"):
        expected = np.log10(ds.S_a.sel(at="first").values[5].astype(float) / ds.S_v.sel(at="first").values[5])
    np.testing.assert_allclose(np.array(fig["data"][0]["z"], float), expected, rtol=1e-5)


@browser
def test_run_menu_switches_the_run(page, cache):
    trace = str(cache / "a-trace")
    tick_row(page, "runs-table", trace)
    open_tab(page, "Heads")
    figure(page, "heads-graph")
    click_option(page, "focus-run", "a-trace — baseline")
    fig = figure(page, "heads-graph", lambda f: trace in f["title"])
    np.testing.assert_allclose(np.array(fig["data"][0]["z"], float), expected_log10_median(trace), rtol=1e-5)
    open_tab(page, "Tokens")
    message = wait_for(lambda: (page.execute_script(FIGURE_JS, "tokens-graph") or {}).get("annotations"),
                       what="the no-rows message")
    assert "a-trace" in message[0] and "'rows'" in message[0]
