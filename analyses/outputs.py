"""Where the analyses write: ``cache/figures/`` by default, ``--docs`` for the tracked ``docs/figures/``.

Kept apart from :mod:`analyses.figures` so that scripts that draw nothing (``table14.py``,
``tables.py``) need no plotting or dashboard packages.
"""

from __future__ import annotations

import argparse
from pathlib import Path

OUT = Path("cache") / "figures"  # default output, git-ignored like every run
DOCS = Path(__file__).resolve().parents[1] / "docs" / "figures"  # the tracked figures (--docs)


def output_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--out DIR`` (default ``cache/figures``) or ``--docs`` (the tracked ``docs/figures``)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, default=OUT, help=f"output folder (default {OUT})")
    where.add_argument("--docs", dest="out", action="store_const", const=DOCS,
                       help=f"regenerate the tracked figures in {DOCS.relative_to(DOCS.parents[1])}")
    return parser


def save_markdown(text: str, title: str, name: str, out: Path = OUT) -> Path:
    """Write ``out/name.md``: the title line, a blank line, the text."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.md"
    path.write_text(f"{title}\n\n{text}\n")
    return path
