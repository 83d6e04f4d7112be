"""Crash-safe file updates for the layout: temp file, fsync, rename, and an exclusive lock.

A reader of the layout never sees a half-written file: everything is written to a temporary
file on the same filesystem, flushed to disk, then renamed over its target, and the directory
is synced so the rename itself survives a power cut. Writers of shared files (``index.json``)
serialize on ``flock`` of a separate lock file, because a lock on the file being replaced would
be a lock on an inode that is about to disappear.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FILE_MODE = 0o644


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(target: Path, data: bytes, *, tmp_dir: Path) -> None:
    """Replace ``target`` with ``data`` atomically; ``tmp_dir`` must share its filesystem."""
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=f"{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.chmod(FILE_MODE)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on ``lock_file`` (created if absent) for the ``with`` body.

    Not re-entrant: taking it twice in one process, even from one thread, deadlocks.
    """
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
