"""Drive the dashboard in headless Chromium (selenium): serving, tabs, menus, reading figures back.

Used by ``tests/test_app.py`` and ``analyses/screenshots.py``.  Needs the
Debian packages ``chromium`` and ``chromium-driver``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

# A figure as plotly.js rendered it (typed arrays made plain), or null before it is drawn.
FIGURE_JS = """
const conv = x => ArrayBuffer.isView(x) ? Array.from(x) : Array.isArray(x) ? x.map(conv) : x;
const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
if (!gd || !gd._fullData) return null;
return {data: gd._fullData.map(t => ({type: t.type, name: t.name, x: conv(t.x), y: conv(t.y), z: conv(t.z),
                                      visible: t.visible})),
        title: (gd.layout.title || {}).text || '', annotations: (gd.layout.annotations || []).map(a => a.text),
        shapes: (gd.layout.shapes || []).map(s => s.path || ''), yaxis: gd._fullLayout.yaxis.type};
"""


@contextmanager
def dashboard(cache: str | Path, width: int = 1400, height: int = 1100):
    """Serve the dashboard over ``cache`` on a free local port and yield a headless Chromium driver
    whose ``url_root`` is the app's address."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from werkzeug.serving import make_server

    from modbias_app import create_app

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, create_app(cache).server, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # for console_errors()
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.url_root = f"http://127.0.0.1:{server.socket.getsockname()[1]}/"
    try:
        yield driver
    finally:
        driver.quit()
        server.shutdown()


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def console_errors(driver) -> list[str]:
    """Errors the page logged since the last call (e.g. a callback that failed on the server)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def load(driver) -> None:
    """(Re)load the page and wait for the runs table."""
    from selenium.webdriver.common.by import By

    driver.get(driver.url_root)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#runs-table .ag-row"), what="the runs table")


def open_tab(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, f"//div[contains(@class,'tab') and normalize-space()='{label}']").click()


def figure(driver, graph_id: str, check=lambda f: True) -> dict:
    """The rendered figure of ``graph_id`` once it has data and passes ``check`` (an empty one fails)."""
    def ready():
        fig = driver.execute_script(FIGURE_JS, graph_id)
        return fig if fig and fig["data"] and check(fig) else None

    return wait_for(ready, what=f"a non-empty figure in #{graph_id}")


def click_option(driver, dropdown_id: str, text: str) -> None:
    """Open a dcc.Dropdown and choose the option labelled ``text``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.find_element(By.ID, dropdown_id).click()
    option = wait_for(lambda: [o for o in driver.find_elements(By.CSS_SELECTOR, "[role=option]") if o.text == text],
                      what=f"option {text!r} of #{dropdown_id}")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", option[0])  # long lists scroll
    option[0].click()
    if driver.find_element(By.ID, dropdown_id).get_attribute("aria-expanded") == "true":
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)  # choosing the current value keeps it open


def grid_rows(driver, table_id: str, selected: bool = False) -> list:
    """The rendered rows of an AG Grid (only the ticked ones with ``selected``)."""
    from selenium.webdriver.common.by import By

    kind = ".ag-row-selected" if selected else ".ag-row"
    return driver.find_elements(By.CSS_SELECTOR, f"#{table_id} .ag-center-cols-container {kind}")


def wait_for_rows(driver, table_id: str, count: int, selected: bool = False) -> list:
    """The rows of a grid once exactly ``count`` of them have rendered (AG Grid renders them in steps)."""
    what = f"{count} {'ticked ' if selected else ''}rows in #{table_id}"
    return wait_for(lambda: (lambda rows: rows if len(rows) == count else None)(grid_rows(driver, table_id, selected)),
                    what=what)


def tick_row(driver, table_id: str, row_id: str) -> None:
    """Tick the selection box of one row of an AG Grid (rows are identified by run path / sample id)."""
    from selenium.webdriver.common.by import By

    selector = f'#{table_id} .ag-row[row-id="{row_id}"] input[type=checkbox]'
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, selector), what=f"row {row_id!r} of #{table_id}")[0].click()


def click_cell(driver, graph_id: str, x: float, y: float) -> None:
    """Click the point at data coordinates (x, y) of a figure, as a user would."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    px, py = driver.execute_script("""
        const gd = document.querySelector('#' + arguments[0] + ' .js-plotly-plot'), box = gd.getBoundingClientRect();
        const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
        return [box.left + xa._offset + xa.l2p(arguments[1]), box.top + ya._offset + ya.l2p(arguments[2])];""",
                                   graph_id, x, y)
    action = ActionBuilder(driver)
    action.pointer_action.move_to_location(int(px), int(py)).click()
    action.perform()
