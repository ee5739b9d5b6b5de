"""Fig. 3b: attention per input token over the middle layers, log axis, coloured by modality.

    python analyses/fig3b.py [--run cache/<run>] [--sample ID | --subset S --outcome O] [--layers A B]

Needs a run traced with --save-rows; default run: the newest such baseline in --cache.
Default samples: the video-aligned failures with rows.  Writes fig3b.{html,png}.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.figures import FAILURES, fig3b, newest, save, single_run_parser  # noqa: E402


def main(argv=None) -> None:
    parser = single_run_parser(__doc__)
    parser.add_argument("--sample", help="one sample id instead of a subset")
    parser.add_argument("--subset", default=FAILURES[0])
    parser.add_argument("--outcome", default=FAILURES[1], choices=["all", "correct", "incorrect"])
    parser.add_argument("--layers", type=int, nargs=2, metavar=("FIRST", "LAST"),
                        help="layer range (inclusive); default: the middle layers")
    args = parser.parse_args(argv)
    path = str(args.run or newest(args.cache, lambda r: r.is_baseline and r.has_rows,
                                  "rows (trace --save-rows) and no interventions").path)
    layers = range(args.layers[0], args.layers[1] + 1) if args.layers else None
    print("wrote", *save({"fig3b": fig3b(path, args.at, args.sample, args.subset, args.outcome, layers)}, args.out))


if __name__ == "__main__":
    main()
