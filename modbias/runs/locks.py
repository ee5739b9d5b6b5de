"""Exclusive locks of a run store, with the holder's pid recorded beside each lock.

Locks are ``filelock.FileLock`` (``flock`` on POSIX): the kernel releases one
when its process dies, so the lock of a killed writer is taken over by the next
one; the pid file beside it only names the holder in the refusal message.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout


class StoreBusy(BlockingIOError):
    """Another live process holds the lock."""


def holder(lock_path: Path) -> str:
    """Who last took a lock.

    Args:
        lock_path: the lock file (its ``.pid`` sidecar is read).
    Returns:
        ``pid N on HOST``, or ``pid unknown`` if unrecorded.
    """
    try:
        info = json.loads(Path(f"{lock_path}.pid").read_text())
        return f"pid {info['pid']} on {info['host']}"
    except (OSError, ValueError, KeyError):
        return "pid unknown"


@contextmanager
def exclusive(lock_path: Path, store: Path, wait: float = 0):
    """Hold ``lock_path`` for the block; raise :class:`StoreBusy` naming ``store`` and the holder's pid
    when another process holds it after ``wait`` seconds (0: fail at once).

    Args:
        lock_path: the lock file (its directory is created).
        store: the store the lock protects (named in the message).
        wait: seconds to wait for the lock.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, timeout=wait)
    try:
        lock.acquire()
    except Timeout:
        raise StoreBusy(f"store {store} is being written by another process ({holder(lock_path)})") from None
    try:
        Path(f"{lock_path}.pid").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        yield
    finally:
        lock.release()


def held(lock_path: Path) -> bool:
    """Whether another process holds a lock now.

    Args:
        lock_path: the lock file.
    Returns:
        ``False`` also when the file does not exist.
    """
    if not lock_path.exists():
        return False
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    lock.release()
    return False
