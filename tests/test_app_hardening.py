"""The dashboard on a cache a newcomer might have: an unreadable store, a newer run of another kind, a run
whose name is markdown; callbacks that refuse paths outside the cache; a server bound to this machine
without a debugger."""

from __future__ import annotations

import json
import shutil

import pytest

from analyses.browser import figure, open_tab, tick_row, wait_for, wait_for_rows
from analyses.synthetic_runs import mi_config, random_mi_run, random_run, run_config, write_run
from modbias_app import create_app
from modbias_app.figures import message_figure
from modbias_app.runs import clear_caches, newest_with_heads, scan
from modbias_app.views import heads
from tests.conftest import browser

SHAPE = dict(n_layers=3, n_heads=5)
MARKDOWN_NAME = "![pixel](evil.png)"
pytestmark = pytest.mark.filterwarnings("ignore:HTTPResponse.getheader:DeprecationWarning")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Oldest to newest: a run named in markdown, the trace the app should open on, an MI run,
    and a store whose manifest is not JSON (its mtime makes it the newest)."""
    root = tmp_path_factory.mktemp("cache")
    ar = [{"name": "ar", "tau": 1.0, "layers": None}]
    write_run(root / MARKDOWN_NAME, random_run(9, **SHAPE, seed=1), run_config(interventions=ar, **SHAPE),
              created="2025-02-01T00:00:00")
    trace = write_run(root / "b-trace", random_run(9, **SHAPE, seed=2), run_config("trace", **SHAPE),
                      created="2025-02-02T00:00:00", summary=False)
    write_run(root / "c-mi", random_mi_run(random_run(9, **SHAPE, seed=2)), mi_config(), created="2025-02-03T00:00:00",
              summary=False)
    broken = root / "d-broken"
    shutil.copytree(trace, broken)
    (broken / "modbias.json").write_text("{not json")
    clear_caches()
    return root


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """A valid run store that is not under the cache."""
    return write_run(tmp_path_factory.mktemp("elsewhere") / "secret", random_run(6, **SHAPE, seed=5),
                     run_config("trace", **SHAPE), summary=False)


# ----------------------------------------------------------------------------- no browser


def test_unreadable_stores_are_listed_with_their_error(cache):
    runs = {r.name: r for r in scan(cache)}
    assert sorted(runs) == sorted([MARKDOWN_NAME, "b-trace", "c-mi", "d-broken"])
    assert "JSONDecodeError" in runs["d-broken"].error and not runs["d-broken"].traces_attention
    assert newest_with_heads(list(scan(cache))).name == "b-trace"


def test_a_store_with_damaged_arrays_is_a_message_in_the_view(cache, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(cache / "b-trace", damaged)
    (damaged / "S_a" / "zarr.json").write_text("{damaged")
    fig, note = heads.heads_view(str(damaged), "first", "all", "all", None, "log10_c_h", 1.0)
    assert "cannot be read" in note and str(damaged) in note
    assert fig.layout.annotations[0].text == message_figure(note).layout.annotations[0].text


def _post(client, app, output_id: str, values: dict):
    """POST a callback request as the browser would, with chosen input values."""
    key = next(k for k in app.callback_map if f"{output_id}." in k)
    spec = app.callback_map[key]
    outputs = [{"id": part.rsplit(".", 1)[0], "property": part.rsplit(".", 1)[1]}
               for part in key.strip(".").split("...")]
    inputs = [{**i, "value": values.get(i["id"])} for i in spec["inputs"]]
    return client.post("/_dash-update-component", json={
        "output": key, "outputs": outputs if len(outputs) > 1 else outputs[0], "inputs": inputs,
        "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"], "state": []})


@pytest.mark.parametrize("output_id", ["heads-graph", "samples-table", "layers-graph", "at"])
def test_callbacks_read_only_runs_in_the_cache(cache, outside, output_id):
    app = create_app(cache)
    client = app.server.test_client()
    assert client.get("/").status_code == 200  # also with an unreadable store in the cache
    values = {"at": "first", "heads-subset": "all", "heads-outcome": "all", "heads-quantity": "log10_c_h",
              "heads-tau": 1.0, "layers-log-y": []}
    inside = _post(client, app, output_id, {**values, "focus-run": str(cache / "b-trace")})
    assert inside.status_code == 200 and json.loads(inside.get_data(as_text=True))["response"]
    for forged in (str(outside), str(cache / "b-trace" / ".." / ".." / outside.parent.name / "secret"), "/etc"):
        refused = _post(client, app, output_id, {**values, "focus-run": forged})
        assert refused.status_code == 204, (forged, refused.get_data(as_text=True)[:200])


def test_the_server_binds_to_this_machine_without_a_debugger(cache, monkeypatch, capsys):
    import dash

    from modbias.cli.errors import main

    calls = []
    monkeypatch.setenv("MODBIAS_DEBUG", "0")  # restored afterwards: --debug below sets it
    monkeypatch.setattr(dash.Dash, "run", lambda self, **kwargs: calls.append(kwargs))
    for args in (["app", "--cache", str(cache)], ["--debug", "app", "--cache", str(cache)],
                 ["app", "--cache", str(cache), "--host", "0.0.0.0"]):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 0
    assert [c["host"] for c in calls] == ["127.0.0.1", "127.0.0.1", "0.0.0.0"]
    assert all(c["debug"] is False and c["dev_tools_ui"] is False for c in calls)


def test_an_error_page_has_no_debugger(cache):
    app = create_app(cache)
    app.server.config["PROPAGATE_EXCEPTIONS"] = False
    response = app.server.test_client().post("/_dash-update-component", data="not json",
                                             content_type="application/json")
    assert response.status_code >= 400
    assert "Werkzeug Debugger" not in response.get_data(as_text=True) and "__debugger__" not in \
        response.get_data(as_text=True)


# ----------------------------------------------------------------------------- browser



# the Interventions table as rendered, read in one step (no element can go stale between reads)
TABLE_JS = """
const table = document.getElementById('interventions-table');
return table ? {text: table.innerText, images: table.querySelectorAll('img').length,
                links: table.querySelectorAll('a').length} : null;
"""


@browser
def test_the_page_lists_the_broken_store_and_opens_the_newest_trace(page, cache):
    rows = wait_for_rows(page, "runs-table", 4)
    broken = next(r for r in rows if "d-broken" in r.text)
    assert "JSONDecodeError" in broken.text
    selected = wait_for_rows(page, "runs-table", 1, selected=True)
    assert "b-trace" in selected[0].text
    open_tab(page, "Heads")
    fig = figure(page, "heads-graph", lambda f: str(cache / "b-trace") in f["title"])
    assert len(fig["data"][0]["z"]) == SHAPE["n_layers"]


@browser
def test_user_text_is_shown_as_text(page, cache):
    wait_for_rows(page, "runs-table", 1, selected=True)  # the default selection has rendered
    tick_row(page, "runs-table", str(cache / MARKDOWN_NAME))
    wait_for_rows(page, "runs-table", 2, selected=True)
    open_tab(page, "Interventions")
    table = wait_for(lambda: (lambda t: t if t and MARKDOWN_NAME in t["text"] else None)(
        page.execute_script(TABLE_JS)), what="the markdown-named run, as text, in the Interventions table")
    assert table["images"] == 0 and table["links"] == 0
    fetched = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert not [url for url in fetched if "evil.png" in url]
