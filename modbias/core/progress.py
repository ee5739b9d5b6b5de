"""One rich progress bar style for every long loop."""

from __future__ import annotations

import contextlib

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextlib.contextmanager
def progress_bar(enabled: bool = True):
    """A rich Progress (disabled: still usable, prints nothing).

    Args:
        enabled: show the bar.

    Yields:
        A ``rich.progress.Progress`` to add tasks to.
    """
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=not enabled, transient=False) as bar:
        yield bar
