"""Content fingerprints of files and JSON-able values: what a run's identity records of its inputs.

A file's fingerprint is its size and a SHA-1 of its content; files larger than
:data:`FULL_HASH_BYTES` hash their first and last block and :data:`SAMPLED_BLOCKS`
blocks spread evenly between (a 15 GB checkpoint shard, or a video, costs 256 KiB of reading).
An edit that keeps the size and falls outside every sampled block of a large
file goes unnoticed; any edit of a file below the threshold (annotations, feature
files) changes its fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

FULL_HASH_BYTES = 1 << 20
BLOCK_BYTES = 16 << 10
SAMPLED_BLOCKS = 14


def digest(value, length: int = 40) -> str:
    """SHA-1 (hex, first ``length`` digits) of a JSON-able value in canonical form (sorted keys).

    Args:
        value: dicts, lists, strings, numbers, booleans, None (other objects by ``str``).
        length: hex digits kept.
    Returns:
        The hex digest.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def file_fingerprint(path: str | Path) -> str:
    """``"<bytes>:<sha1 of the content, 16 hex>"`` of one file (sampled above :data:`FULL_HASH_BYTES`).

    Args:
        path: an existing file.
    Returns:
        The fingerprint, e.g. ``"2048:9f1c0e4b7a2d55e1"``.
    """
    stat = os.stat(path)
    return _fingerprint(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=65536)
def _fingerprint(path: str, size: int, mtime_ns: int) -> str:
    """Cached per (path, size, mtime): a file read twice in one process is hashed once."""
    sha = hashlib.sha1()
    with open(path, "rb") as f:
        if size <= FULL_HASH_BYTES:
            sha.update(f.read())
        else:
            step = (size - BLOCK_BYTES) // (SAMPLED_BLOCKS + 1)
            for offset in [i * step for i in range(SAMPLED_BLOCKS + 1)] + [size - BLOCK_BYTES]:
                f.seek(offset)
                sha.update(f.read(BLOCK_BYTES))
    return f"{size}:{sha.hexdigest()[:16]}"


def folder_fingerprint(folder: str | Path) -> dict[str, str]:
    """``{file name: fingerprint}`` of the files directly in ``folder`` (or of ``folder`` itself when it is a
    file); subfolders are not entered.

    Args:
        folder: a checkpoint folder or a single file.
    Returns:
        A dict sorted by name; empty when the folder has no files.
    """
    folder = Path(folder)
    if folder.is_file():
        return {folder.name: file_fingerprint(folder)}
    return {p.name: file_fingerprint(p) for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}
