"""Table 8: metrics per subset against the threshold τ of AR (Eq. 7).

    python analyses/table8.py [--runs cache/<run> ...] [--metric avg]

Default: every run in --cache whose interventions include 'ar'.
Prints the markdown table and writes table8.md and table8.{html,png} (lines).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.outputs import save_markdown  # noqa: E402
from analyses.figures import METRICS, chosen_runs, many_runs_parser, save, table8  # noqa: E402


def main(argv=None) -> None:
    args = many_runs_parser(__doc__).parse_args(argv)
    runs, _ = chosen_runs(args)
    text, fig = table8(runs, args.metric)
    title = f"Table 8 layout: {METRICS[args.metric]} per subset against τ of AR " \
            f"(`{' '.join(['python', 'analyses/table8.py', *sys.argv[1:]])}`)"
    print(title, text, sep="\n\n")
    print("wrote", save_markdown(text, title, "table8", args.out), *save({"table8": fig}, args.out))


if __name__ == "__main__":
    main()
