"""The dashboard's MIGR columns: MI labels in the Samples table, explanation consistency in Interventions.

Small random stores (:mod:`analyses.synthetic_runs`): two intervene runs
and MI runs over (parts of) their samples.  The data functions are checked
against :func:`modbias.analysis.consistency.consistency` and the MI stores directly;
the browser tests (headless Chromium, as in ``tests/test_app.py``) read the
rendered tables back.
"""

from __future__ import annotations

import numpy as np
import pytest

from analyses.browser import load, open_tab, tick_row, wait_for
from analyses.synthetic_runs import mi_config, random_mi_run, random_run, run_config, write_run
from modbias.analysis.consistency import consistency
from modbias.runs.store import open_run, update_manifest
from modbias_app.compare import CONSISTENCY_COLUMNS, consistency_markdown, consistency_rows
from modbias_app.runs import _consistency, clear_caches, consistency_of, mi_source, scan
from modbias_app.views import samples
from tests.conftest import browser

SHAPE = dict(n_layers=2, n_heads=3)
N = 24
AR_ACCURACY = {"video_aligned": 0.8, "audio_aligned": 0.5, "consistent": 0.6}
pytestmark = [pytest.mark.filterwarnings("ignore:Object at modbias.json is not recognized"),
              pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning")]  # selenium 4.2


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """MI runs m1 (all samples, oldest), m2 (first 16), m3 (other samples), m4 (kind mi, another schema),
    then a baseline r1 and (newest, ticked at load) an AR run r2 over the same 24 sample ids."""
    root = tmp_path_factory.mktemp("migr")
    base_ds = random_run(N, **SHAPE, seed=1)
    write_run(root / "m1-mi-all", random_mi_run(base_ds, seed=11), mi_config(), created="2025-01-01T00:00:00",
              summary=False)
    write_run(root / "m2-mi-part", random_mi_run(base_ds.isel(sample=slice(0, 16)), seed=12), mi_config("zeros"),
              created="2025-01-02T00:00:00", summary=False)
    write_run(root / "m3-mi-other", random_mi_run(random_run(8, **SHAPE, start=100), seed=13), mi_config("mean"),
              created="2025-01-03T00:00:00", summary=False)
    write_run(root / "m4-mi-schema", random_run(6, **SHAPE), {**run_config("trace", **SHAPE), "kind": "mi"},
              created="2025-01-04T00:00:00", summary=False)
    base = write_run(root / "r1-baseline", base_ds, run_config(**SHAPE), created="2025-01-05T00:00:00")
    write_run(root / "r2-ar", varied_explanations(random_run(N, **SHAPE, seed=2, accuracy=AR_ACCURACY)),
              run_config(interventions=[{"name": "ar", "tau": 1.0, "layers": None}], **SHAPE),
              created="2025-01-06T00:00:00", baseline=base)
    clear_caches()
    return root


def varied_explanations(ds):
    """Every other explanation names the visual cue instead of the audio one (random_run's texts name the
    audio cue, so EEA would only follow the subset)."""
    text = ds.text.values.astype(str).copy()
    visual, prediction = ds.visual_emotion.values.astype(str), ds.prediction.values.astype(str)
    for i in range(0, len(text), 2):  # subsets cycle with period 3: each gets both kinds
        text[i] = f"the face looks {visual[i]}, so the answer is {prediction[i]}"
    return ds.assign_coords(text=("sample", text))


def expected_mi(cache, run: str) -> dict[str, str]:
    ds = open_run(cache / run)
    return dict(zip(ds.sample.values.astype(str).tolist(), ds.mi.values.astype(str).tolist()))


def percent(value: float) -> str:
    return "–" if np.isnan(value) else f"{100 * value:.1f}"


# ----------------------------------------------------------------------------- data functions (no browser)


def test_consistency_aggregate_equals_modbias_consistency(cache):
    for run in ("r1-baseline", "r2-ar"):
        path = cache / run
        got = consistency_of(path)
        np.testing.assert_equal(got, consistency(open_run(path), by="subset"))
        assert list(got) == ["video_aligned", "audio_aligned", "consistent", "overall"]
        assert got["overall"]["n"] == N and 0 < got["overall"]["EPC"] < 1  # the random texts are not degenerate
    r1, r2 = consistency_of(cache / "r1-baseline"), consistency_of(cache / "r2-ar")
    assert r1["video_aligned"]["EEA"] != r2["video_aligned"]["EEA"] and r1["overall"]["FCR"] != r2["overall"]["FCR"]


def test_consistency_is_cached_per_manifest_stamp(tmp_path):
    path = write_run(tmp_path / "run", random_run(9, **SHAPE, seed=5), run_config(**SHAPE))
    clear_caches()
    first = consistency_of(path)
    assert consistency_of(path) is first and _consistency.cache_info().hits == 1
    update_manifest(path, note="touched")  # a rewritten manifest is read afresh
    assert consistency_of(path) is not first and _consistency.cache_info().misses == 2
    np.testing.assert_equal(consistency_of(path), first)


def test_consistency_rows_and_markdown(cache, tmp_path):
    runs = {r.name: r for r in scan(cache)}
    rows = consistency_rows([runs["r1-baseline"], runs["r2-ar"]])
    subsets = ("video_aligned", "audio_aligned", "consistent", "overall")
    assert [(r["run"], r["subset"]) for r in rows] == [(run, s) for run in ("r1-baseline", "r2-ar") for s in subsets]
    expected = consistency(open_run(cache / "r2-ar"))
    row = next(r for r in rows if r["run"] == "r2-ar" and r["subset"] == "audio_aligned")
    assert row["interventions"] == "ar(tau=1, layers=all)" and row["n"] == expected["audio_aligned"]["n"]
    np.testing.assert_equal({k: row[k] for k in CONSISTENCY_COLUMNS},
                            {k: expected["audio_aligned"][k] for k in CONSISTENCY_COLUMNS})
    line = next(x for x in consistency_markdown(rows).splitlines() if x.startswith("| r2-ar |") and "| overall |" in x)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells == ["r2-ar", "ar(tau=1, layers=all)", "overall", str(N)] + \
        [percent(expected["overall"][k]) for k in CONSISTENCY_COLUMNS]
    # a run without texts: one row naming the missing field
    write_run(tmp_path / "no-text", random_run(6, **SHAPE).drop_vars("text"), run_config(**SHAPE), summary=False)
    (bad,) = consistency_rows([r for r in scan(tmp_path)])
    assert "no-text" in bad["error"] and "'text'" in bad["error"]
    assert "| no-text | baseline | – | – | – |" in consistency_markdown([bad])


def test_mi_source_is_the_newest_mi_run_covering_the_samples(cache):
    runs = scan(cache)
    ids = open_run(cache / "r2-ar").sample.values.astype(str).tolist()
    assert mi_source(runs, ids).name == "m2-mi-part"  # m3 (newer) shares no sample; m4 has no 'mi'
    assert mi_source(runs, ids[16:]).name == "m1-mi-all"  # m2 lacks these
    assert mi_source(runs, ["nope"]) is None
    assert mi_source([r for r in runs if r.name != "m2-mi-part"], ids).name == "m1-mi-all"


def test_samples_view_adds_the_mi_column(cache, tmp_path):
    rows, columns, note = samples.samples_view(str(cache), str(cache / "r2-ar"))
    assert [c["field"] for c in columns] == list(samples.MI_COLUMNS) and "MI" in [c["headerName"] for c in columns]
    labels = expected_mi(cache, "m2-mi-part")
    assert [r["MI"] for r in rows] == [labels.get(r["sample"], "") for r in rows]
    assert all(r["MI"] for r in rows[:16]) and not any(r["MI"] for r in rows[16:])
    assert labels != {k: v for k, v in expected_mi(cache, "m1-mi-all").items() if k in labels}  # m1 would differ
    assert "m2-mi-part" in note and "16 of 24" in note
    # no MI run: no MI column
    write_run(tmp_path / "only", random_run(6, **SHAPE), run_config(**SHAPE), summary=False)
    rows, columns, note = samples.samples_view(str(tmp_path), str(tmp_path / "only"))
    assert "MI" not in [c["field"] for c in columns] and "MI" not in rows[0] and note == samples.NO_MI


# ----------------------------------------------------------------------------- browser



@browser
def test_samples_table_shows_mi_labels(page, cache):
    from selenium.webdriver.common.by import By

    load(page)
    open_tab(page, "Samples")
    ids = open_run(cache / "r2-ar").sample.values.astype(str).tolist()
    labels = expected_mi(cache, "m2-mi-part")

    def cell(sample):
        found = page.find_elements(By.CSS_SELECTOR, f'#samples-table .ag-row[row-id="{sample}"] .ag-cell[col-id="MI"]')
        return found[0] if found else None

    def mi_column():
        cells = [cell(ids[i]) for i in (0, 3, 7, 15, 17)]
        texts = [c.text for c in cells] if all(cells) else None
        return texts if texts and all(texts[:4]) else None  # the four labelled samples have rendered

    shown = wait_for(mi_column, what="the MI cells of five samples")
    # m2 lacks sample 17's label: blank, not m1's label
    assert shown == [labels[ids[i]] for i in (0, 3, 7, 15)] + [""]
    headers = [h.text for h in page.find_elements(By.CSS_SELECTOR, "#samples-table .ag-header-cell-text")]
    assert "MI" in headers
    assert "m2-mi-part" in wait_for(lambda: page.find_element(By.ID, samples.NOTE).text, what="the MI source note")


@browser
def test_interventions_show_consistency_per_run_and_subset(page, cache):
    from selenium.webdriver.common.by import By

    load(page)
    tick_row(page, "runs-table", str(cache / "r1-baseline"))
    open_tab(page, "Interventions")

    def table_rows():
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in page.find_elements(By.CSS_SELECTOR, "#interventions-consistency tr")]
        rows = [r for r in rows if r]
        return rows if len(rows) == 8 else None

    rows = wait_for(table_rows, what="the consistency table of two runs")
    header = [th.text for th in page.find_elements(By.CSS_SELECTOR, "#interventions-consistency th")]
    assert header == ["run", "interventions", "subset", "n", "EEA", "EPC", "FCR", "R✗/A✓ (correct)"]
    for run in ("r1-baseline", "r2-ar"):
        expected = consistency(open_run(cache / run))
        for subset in ("video_aligned", "overall"):
            row = next(r for r in rows if r[0] == run and r[2] == subset)
            assert row[3:] == [str(expected[subset]["n"])] + [percent(expected[subset][k]) for k in CONSISTENCY_COLUMNS]
