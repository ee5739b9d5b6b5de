"""Which files a benchmark was read from: readers note each file they open, :func:`modbias.data.readers.load`
records their content fingerprints in the benchmark's config (part of every run's identity).

>>> with files_read() as files:                      # doctest: +SKIP
...     rows = read_table(path)                      # read_table calls note_read(path)
>>> files
[PosixPath('.../annotations.csv')]
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Iterable, Iterator

from modbias.core.fingerprint import file_fingerprint

_READ: ContextVar[list[Path] | None] = ContextVar("modbias_files_read", default=None)


@contextmanager
def files_read() -> Iterator[list[Path]]:
    """Collect the files noted by :func:`note_read` inside the block (an inner block collects its own).

    Returns:
        (yields) the list the noted paths are appended to.
    """
    files: list[Path] = []
    token = _READ.set(files)
    try:
        yield files
    finally:
        _READ.reset(token)


def note_read(path: str | Path) -> None:
    """Record that a reader read ``path`` (a folder stands for the files in it, e.g. video frames).

    Args:
        path: a file or folder that exists; nothing happens outside :func:`files_read`.
    """
    files = _READ.get()
    if files is None:
        return
    path = Path(path)
    files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])


def fingerprints(root: str | Path, files: Iterable[Path]) -> dict[str, str]:
    """``{path relative to root: "<bytes>:<sha1>"}`` of ``files``, sorted (:func:`modbias.core.fingerprint.file_fingerprint`).

    Args:
        root: the dataset folder (paths outside it stay absolute).
        files: files that exist.
    Returns:
        The fingerprints by relative path.
    """
    root = Path(root).resolve()
    out = {}
    for file in files:
        resolved = Path(file).resolve()
        name = os.path.relpath(resolved, root) if resolved.is_relative_to(root) else str(resolved)
        out[Path(name).as_posix()] = file_fingerprint(resolved)
    return dict(sorted(out.items()))
