"""Fig. 3c: metrics per subset against the copies of each audio token.

    python analyses/fig3c.py [--runs cache/<run> ...] [--metric avg]

Uses duplicate_audio runs (x = k, their baseline at x = 1) and baselines of
models trained with different audio_repeat.  Default: every run in --cache.
Writes fig3c.{html,png}.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.figures import chosen_runs, fig3c, many_runs_parser, save  # noqa: E402


def main(argv=None) -> None:
    args = many_runs_parser(__doc__).parse_args(argv)
    runs, known = chosen_runs(args)
    baselines = [r for r in known if r.is_baseline and r not in runs]
    print("wrote", *save({"fig3c": fig3c(runs + baselines, args.metric)}, args.out))


if __name__ == "__main__":
    main()
