"""The MoSEAR paper's Tables 1-4, 7, 8, 13 and 14 in its layout, every cell from a stored run.

    python analyses/tables.py [--runs cache/<run> ...] [--cache cache] [--cost cache/figures/table14.json] [--docs]

Each run contributes the evaluation its benchmark calls for
(:mod:`modbias.runs.summaries`: the summary stored with the run, or
computed from the store for runs traced before summaries held it):

- Table 1 (CA-MER / synthetic conflict runs): Acc / Rec / Avg per subset and overall;
- Table 2 (EMER): Accuracy / Recall / Average;  Table 3 (MER2023): F1;
- Table 4 (DFEW): per-class accuracy, UAR, WAR;
- Table 7: Avg per CA-MER subset and EMER Avg for each design (base model, MoSE) alone, + PAI and + AR,
  arrows against the design alone;  Table 8: Avg per subset against τ of AR;
- Table 13 (``modbias chair`` runs): CHAIR_s / CHAIR_i;  Table 14: the cost file of analyses/table14.py.

Every row names its run(s); in the HTML each cell's tooltip gives the run path and the metric.
Writes tables.md and tables.html into --out (default cache/figures; --docs: the tracked docs/figures).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modbias.data.readers import DFEW_CLASSES  # noqa: E402
from modbias.runs.store import open_run  # noqa: E402
from modbias.runs.summaries import EVALUATIONS, evaluate_run  # noqa: E402
from modbias_app.runs import RunInfo, intervention_label, run_info, scan  # noqa: E402
from analyses.outputs import output_options  # noqa: E402

SUBSETS = (("video_aligned", "Video-Aligned"), ("audio_aligned", "Audio-Aligned"), ("consistent", "Consistent"),
           ("overall", "Overall"))
METHODS = ("pai", "ar")  # attention edits compared in Table 7; everything else belongs to the design
CAPTIONS = {
    "Table 1": "Performance (%) of emotion reasoning on CA-MER-style conflict subsets",
    "Table 2": "Performance (%) of emotion reasoning on EMER",
    "Table 3": "F1 score of emotion recognition on MER2023",
    "Table 4": "Performance (%) of emotion recognition on DFEW",
    "Table 7": "Effect of AR vs. PAI: Avg of accuracy and recall per CA-MER subset, and on EMER",
    "Table 8": "Effect of the threshold τ of AR: Avg per subset",
    "Table 13": "CHAIR_s and CHAIR_i of image captions on MSCOCO",
    "Table 14": "FLOPs and inference time per sample",
}


@dataclass
class Cell:
    """One number, where it came from, and (Table 7) its change against the design alone."""

    value: float | None
    source: str = ""  # run path (or cost file) and metric
    delta: float | None = None
    digits: int = 2

    def text(self) -> str:
        if self.value is None:
            return "–"
        out = f"{self.value:.{self.digits}f}"
        if self.delta is not None:
            out += f" ({'↑' if self.delta > 0 else '↓' if self.delta < 0 else '='})"
        return out


@dataclass
class PaperTable:
    name: str
    header: list[str]
    rows: list[tuple[str, list[Cell], list[str]]] = field(default_factory=list)  # label, cells, run names

    def markdown(self) -> str:
        if not self.rows:
            return f"### {self.name}: {CAPTIONS[self.name]}\n\nno run for this table.\n"
        lines = [f"### {self.name}: {CAPTIONS[self.name]}", "",
                 "| " + " | ".join([*self.header, "run(s)"]) + " |", "|---" * (len(self.header) + 1) + "|"]
        lines += ["| " + " | ".join([label, *(c.text() for c in cells), ", ".join(runs)]) + " |"
                  for label, cells, runs in self.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in [*self.header, "run(s)"])
        body = "".join(
            "<tr><td>" + html.escape(label) + "</td>"
            + "".join(f'<td title="{html.escape(c.source)}">{html.escape(c.text())}</td>' for c in cells)
            + f"<td>{html.escape(', '.join(runs))}</td></tr>" for label, cells, runs in self.rows)
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" if self.rows else \
            "<p>no run for this table.</p>"
        return f"<h3>{html.escape(self.name)}: {html.escape(CAPTIONS[self.name])}</h3>{table}"


# -- runs and their evaluations -----------------------------------------------------------------------
@dataclass
class Scored:
    info: RunInfo
    evaluation: dict

    @property
    def benchmark(self) -> str:
        return self.evaluation["benchmark"]

    @property
    def design(self) -> str:
        """The model and every intervention except the compared attention edit, e.g. ``organism mose(r=8)``."""
        rest = [intervention_label(i) for i in self.info.interventions if i.get("name") not in METHODS]
        return " + ".join([self.info.model, *rest])

    @property
    def method(self) -> dict | None:
        return next((i for i in self.info.interventions if i.get("name") in METHODS), None)

    @property
    def label(self) -> str:
        applied = " + ".join(intervention_label(i) for i in self.info.interventions)
        return f"{self.info.model} {applied or 'baseline'}"

    def cell(self, *keys, digits: int = 2) -> Cell:
        value = self.evaluation["metrics"]
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        return Cell(value, f"{self.info.path} · {'.'.join(keys)}", digits=digits)


def score(info: RunInfo) -> Scored | None:
    """The run's stored evaluation, or one computed from its store; None for kinds without one."""
    if not (info.traces_attention or info.kind == "chair"):
        return None
    stored = (info.summary or {}).get("evaluation")
    return Scored(info, stored if stored else evaluate_run(open_run(info.path)))


def _same_model(a: Scored, b: Scored) -> bool:
    return a.info.config.get("model") == b.info.config.get("model")


# -- the tables ------------------------------------------------------------------------------------------
def table1(runs: list[Scored]) -> PaperTable:
    header = ["Model"] + [f"{name} {m}" for _, name in SUBSETS for m in ("Acc.", "Rec.", "Avg.")]
    table = PaperTable("Table 1", header)
    for r in runs:
        if EVALUATIONS[r.benchmark].table == "Table 1":
            table.rows.append((r.label, [r.cell(s, m) for s, _ in SUBSETS for m in ("acc", "rec", "avg")],
                               [r.info.name]))
    return table


def table2(runs: list[Scored]) -> PaperTable:
    table = PaperTable("Table 2", ["Model", "Accuracy", "Recall", "Average"])
    table.rows += [(r.label, [r.cell(m) for m in ("acc", "rec", "avg")], [r.info.name])
                   for r in runs if r.benchmark == "emer"]
    return table


def table3(runs: list[Scored]) -> PaperTable:
    table = PaperTable("Table 3", ["Method", "F1 Score"])
    table.rows += [(r.label, [r.cell("weighted_f1", digits=4)], [r.info.name])
                   for r in runs if r.benchmark == "mer2023"]
    return table


def table4(runs: list[Scored]) -> PaperTable:
    table = PaperTable("Table 4", ["Method", *(c[:3].capitalize() + "." for c in DFEW_CLASSES), "UAR", "WAR"])
    table.rows += [(r.label, [r.cell("recall", c) for c in DFEW_CLASSES] + [r.cell("uar"), r.cell("war")],
                    [r.info.name]) for r in runs if r.benchmark == "dfew"]
    return table


def table7(runs: list[Scored], tau: float = 1.0) -> PaperTable:
    """Designs alone, + PAI and + AR (the newest run of each; for AR the newest at ``tau``, the paper's
    τ = 1, when there is one); arrows compare with the design alone."""
    conflict = [r for r in runs if EVALUATIONS[r.benchmark].table == "Table 1"]
    emer = [r for r in runs if r.benchmark == "emer"]
    table = PaperTable("Table 7", ["Design", "V.-Aligned", "A.-Aligned", "Consist.", "EMER"])
    designs = list(dict.fromkeys(r.design for r in conflict + emer))
    for design in designs:
        def newest(pool, method, design=design):
            found = [r for r in pool if r.design == design and (r.method or {}).get("name") == method]
            at_tau = [r for r in found if method == "ar" and float(r.method.get("tau", 1.0)) == tau]
            return (at_tau or found or [None])[-1]

        alone = {"conflict": newest(conflict, None), "emer": newest(emer, None)}
        for method in (None, *METHODS):
            picked = {"conflict": newest(conflict, method), "emer": newest(emer, method)}
            if not any(picked.values()):
                continue
            cells = []
            for kind, keys in (("conflict", [(s, "avg") for s, _ in SUBSETS[:3]]), ("emer", [("avg",)])):
                for key in keys:
                    run, ref = picked[kind], alone[kind]
                    cell = run.cell(*key) if run else Cell(None)
                    if method and ref and cell.value is not None:
                        base = ref.cell(*key).value
                        cell.delta = None if base is None else cell.value - base
                    cells.append(cell)
            label = design if method is None else "+ " + intervention_label(
                next(r for r in picked.values() if r).method)
            table.rows.append((label, cells, [r.info.name for r in picked.values() if r]))
    return table


def table8(runs: list[Scored]) -> PaperTable:
    table = PaperTable("Table 8", ["Design · τ", *(name for _, name in SUBSETS)])
    swept = [r for r in runs if EVALUATIONS[r.benchmark].table == "Table 1" and (r.method or {}).get("name") == "ar"]
    for r in sorted(swept, key=lambda r: (r.design, float(r.method.get("tau", 1.0)))):
        table.rows.append((f"{r.design} · τ={float(r.method.get('tau', 1.0)):g}",
                           [r.cell(s, "avg") for s, _ in SUBSETS], [r.info.name]))
    return table


def table13(runs: list[Scored]) -> PaperTable:
    table = PaperTable("Table 13", ["Method", "CHAIR_s ↓", "CHAIR_i ↓"])
    table.rows += [(r.label, [r.cell("chair_s", digits=3), r.cell("chair_i", digits=3)], [r.info.name])
                   for r in runs if r.benchmark == "coco"]
    return table


def table14(cost_file: Path | None) -> PaperTable:
    table = PaperTable("Table 14", ["Model", "FLOPs (G)", "Inference Time (ms)"])
    if cost_file is None or not cost_file.exists():
        return table
    record = json.loads(cost_file.read_text())
    for row in record["rows"]:
        source = f"{cost_file} · {row['configuration']} ({record['command']})"
        table.rows.append((f"{record['model']} {row['configuration']}",
                           [Cell(row["flops"] / 1e9, source, digits=3), Cell(row["ms"], source)], [cost_file.name]))
    return table


def paper_tables(runs: list[RunInfo], cost_file: Path | None = None, tau: float = 1.0) -> list[PaperTable]:
    scored = [s for s in (score(r) for r in runs) if s is not None]
    return [table1(scored), table2(scored), table3(scored), table4(scored), table7(scored, tau), table8(scored),
            table13(scored), table14(cost_file)]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="*", help="run stores; default: every run in --cache")
    parser.add_argument("--cache", type=Path, default=Path("cache"))
    parser.add_argument("--cost", type=Path, default=None,
                        help="analyses/table14.py's JSON (default: table14.json in the output folder)")
    parser.add_argument("--tau", type=float, default=1.0, help="Table 7's AR runs: this τ (the paper's 1) if run")
    args = output_options(parser).parse_args(argv)
    runs = [run_info(p) for p in args.runs] if args.runs else scan(args.cache)
    tables = paper_tables(runs, args.cost or args.out / "table14.json", args.tau)
    command = " ".join(["python", "analyses/tables.py", *(sys.argv[1:] if argv is None else argv)])
    title = f"MoSEAR paper tables from stored runs (`{command}`)"
    text = f"{title}\n\n" + "\n".join(t.markdown() for t in tables)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tables.md").write_text(text)
    (args.out / "tables.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>MoSEAR tables</title><h2>{html.escape(title)}</h2>"
        "<p>Hover a cell for the run and the metric it comes from.</p>" + "".join(t.html() for t in tables))
    print("wrote", args.out / "tables.md", args.out / "tables.html")


if __name__ == "__main__":
    main()
