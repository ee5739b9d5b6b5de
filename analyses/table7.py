"""Table 7: per-subset metrics of intervention runs with deltas vs. their baselines.

    python analyses/table7.py [--runs cache/<run> ...] [--metric avg]

Default: every intervene run in --cache and the baselines they name.
Prints the markdown table and writes table7.md and table7.{html,png} (bars).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.outputs import save_markdown  # noqa: E402
from analyses.figures import METRICS, chosen_runs, many_runs_parser, save, table7  # noqa: E402
from modbias_app.runs import baseline_of  # noqa: E402


def main(argv=None) -> None:
    args = many_runs_parser(__doc__).parse_args(argv)
    runs, known = chosen_runs(args)
    if not args.runs:
        runs = [r for r in runs if r.kind == "intervene"]
    for base in [b for b in (baseline_of(r, known) for r in runs) if b is not None]:
        if base.path not in {r.path for r in runs}:
            runs.append(base)
    text, fig = table7(runs, known, args.metric)
    title = f"Table 7 layout: {METRICS[args.metric]} per subset, Δ vs. each run's baseline " \
            f"(`{' '.join(['python', 'analyses/table7.py', *sys.argv[1:]])}`)"
    print(title, text, sep="\n\n")
    print("wrote", save_markdown(text, title, "table7", args.out), *save({"table7": fig}, args.out))


if __name__ == "__main__":
    main()
