"""Screenshots of every dashboard view, for docs/screenshots/.

    python analyses/screenshots.py --demo            # build /tmp/modbias-demo first, then shoot it
    python analyses/screenshots.py --cache cache     # shoot an existing cache (runs ticked: all)

The demo cache holds a real trace of the shipped organism on the synthetic
benchmark (20 samples per subset, both emotion tokens, rows saved) and, for
the Interventions view until ``modbias intervene`` runs exist, runs of
*random* values named ``random-*`` (model and data "random" in the Runs
table).  The views show the organism trace; Interventions shows the random runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.browser import click_cell, click_option, dashboard, figure, load, open_tab  # noqa: E402
from analyses.synthetic_runs import write_demo_cache  # noqa: E402
from modbias_app.runs import scan  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
TRACE = "organism-trace"


def build_demo(cache: Path) -> None:
    import modbias

    modbias.trace(modbias.load_model("organism"), modbias.load_benchmark("synth", subset="all", limit=20),
                  out=cache / TRACE, at="both", save_rows=True, batch_size=60)
    write_demo_cache(cache)


def shoot(cache: Path, out: Path) -> list[Path]:
    """Tick every run, show the newest traced run with rows, and save one PNG per view."""
    from selenium.webdriver.common.by import By

    runs = scan(cache)
    focus = next((r for r in reversed(runs) if r.kind == "trace" and r.has_rows), runs[-1])
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with dashboard(cache, width=1400, height=1500) as driver:
        load(driver)
        driver.find_element(By.CSS_SELECTOR, "#runs-table .ag-header-select-all input[type=checkbox]").click()
        click_option(driver, "focus-run", f"{focus.name} — {focus.label}")
        time.sleep(1)

        def save(name: str) -> None:
            time.sleep(1)  # let plotly finish drawing
            path = out / f"{name}.png"
            driver.save_screenshot(str(path))
            shots.append(path)

        save("runs")
        open_tab(driver, "Heads")
        figure(driver, "heads-graph", lambda f: focus.path in f["title"])
        if focus.has_rows:
            click_cell(driver, "heads-graph", 1, 2)
            figure(driver, "head-detail")
        save("heads")
        for tab, graph in (("Layers", "layers-graph"), ("Tokens", "tokens-graph"),
                           ("Interventions", "interventions-bars")):
            open_tab(driver, tab)
            figure(driver, graph)
            save(tab.lower())
        open_tab(driver, "Samples")
        time.sleep(1)
        save("samples")
    return shots


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/modbias-demo"))
    parser.add_argument("--demo", action="store_true", help="build the demo cache in --cache first")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.demo and not scan(args.cache):
        build_demo(args.cache)
    print("wrote", *shoot(args.cache, args.out))


if __name__ == "__main__":
    main()
