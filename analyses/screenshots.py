"""Screenshots of every dashboard view, into cache/screenshots/ (``--docs``: the tracked docs/screenshots/).

    python analyses/screenshots.py --demo --docs     # build /tmp/modbias-demo first, then shoot it
    python analyses/screenshots.py --cache cache     # shoot an existing cache

The demo cache holds real runs of the shipped organism on the synthetic
benchmark, 20 samples per subset: a trace with rows (both emotion tokens)
and intervene runs for an AR τ sweep, PAI and audio duplication, and a head
patching run (``modbias causal patch``).  Every run is ticked; the single-run views show the newest trace with rows, at the
conclusion's emotion token (``answer``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.browser import click_cell, click_option, dashboard, figure, load, open_tab  # noqa: E402
from modbias_app.runs import at_values, scan  # noqa: E402

OUT = Path("cache") / "screenshots"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"


def build_demo(cache: Path, limit: int = 20) -> None:
    import modbias

    model, bench = modbias.load_model("organism"), modbias.load_benchmark("synth", subset="all", limit=limit)
    modbias.trace(model, bench, out=cache / "organism-trace", at="both", save_rows=True)
    for tau in (0.0, 1.0, 2.0, 3.0):
        modbias.intervene(model, bench, method="ar", tau=tau, cache_dir=cache)
    modbias.intervene(model, bench, method="pai", alpha=0.5, cache_dir=cache)
    for k in (4, 16, 64):
        modbias.intervene(model, bench, method="duplicate_audio", k=k, cache_dir=cache)
    modbias.patch(model, bench, out=cache / "organism-patch")


def shoot(cache: Path, out: Path) -> list[Path]:
    """Tick every run, show the newest traced run with rows (at ``answer`` when stored), save one PNG per view."""
    from selenium.webdriver.common.by import By

    runs = scan(cache)
    focus = next((r for r in reversed(runs) if r.kind == "trace" and r.has_rows), runs[-1])
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with dashboard(cache, width=1400, height=1500) as driver:
        load(driver)
        driver.find_element(By.CSS_SELECTOR, "#runs-table .ag-header-select-all input[type=checkbox]").click()
        click_option(driver, "focus-run", f"{focus.name} — {focus.label}")
        if "answer" in at_values(focus.path):
            driver.find_element(By.XPATH, "//*[@id='at']//label[normalize-space()='answer']").click()
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
        patch_runs = [r.path for r in runs if r.kind == "patch"]
        if patch_runs:
            open_tab(driver, "Causal")
            click_option(driver, "causal-run", patch_runs[-1])
            figure(driver, "causal-graph", lambda f: patch_runs[-1] in f["title"])
            save("causal")
    return shots


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/modbias-demo"))
    parser.add_argument("--demo", action="store_true", help="build the demo cache in --cache first")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    where.add_argument("--docs", dest="out", action="store_const", const=DOCS, help="the tracked docs/screenshots")
    args = parser.parse_args(argv)
    if args.demo and not scan(args.cache):
        build_demo(args.cache)
    print("wrote", *shoot(args.cache, args.out))


if __name__ == "__main__":
    main()
