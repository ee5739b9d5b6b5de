"""Fig. 3a: UAP_v vs. UAP_a over the middle layers (video-aligned failures first) and per layer.

    python analyses/fig3a.py [--run cache/<run>] [--at first] [--out cache/figures | --docs]

Default run: the newest baseline (trace, or intervene with 'none') in --cache.
Writes fig3a.{html,png} and fig3a_layers.{html,png}.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyses.figures import fig3a, fig3a_layers, newest, save, single_run_parser  # noqa: E402


def main(argv=None) -> None:
    args = single_run_parser(__doc__).parse_args(argv)
    path = str(args.run or newest(args.cache, lambda r: r.is_baseline, "no interventions (a baseline)").path)
    print("wrote", *save({"fig3a": fig3a(path, args.at), "fig3a_layers": fig3a_layers(path, args.at)}, args.out))


if __name__ == "__main__":
    main()
