"""Crash-safe file updates: temp file, fsync, rename, and an exclusive lock; used by the OCI
layout, the stores' files, key files and the mirror's snapshots.

A reader never sees a half-written file: everything is written to a temporary
file on the same filesystem, flushed to disk, then renamed over its target, and the directory
is synced so the rename itself survives a power cut. Writers of shared files (``index.json``)
serialize on ``flock`` of a separate lock file, because a lock on the file being replaced would
be a lock on an inode that is about to disappear.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import secrets
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bundles.errors import StellaError

FILE_MODE = 0o644


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


SYNC_THREADS: Final = 16


def sync_files(paths: Sequence[Path]) -> None:
    """Make the content of every file in ``paths`` durable (each one ``fsync``-ed; an error
    for any of them is raised). The files are synced from several threads at once: a
    journaling file system commits concurrent syncs together, so syncing hundreds of small
    files costs about what syncing a few does."""

    def sync(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    if len(paths) == 1:
        sync(paths[0])
        return
    with ThreadPoolExecutor(min(SYNC_THREADS, len(paths)), "fsync") as pool:
        for _ in pool.map(sync, paths):
            pass


def atomic_write(
    target: Path, data: bytes, *, tmp_dir: Path | None = None, mode: int = FILE_MODE
) -> None:
    """Replace ``target`` with ``data`` atomically and durably, the file given ``mode`` before
    any byte is written (a private key is never readable by others, not even for a moment);
    ``tmp_dir`` (default: the target's directory) must share its filesystem."""
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent if tmp_dir is None else tmp_dir,
        prefix=f"{target.name}.",
        suffix=".tmp",
    )
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
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


# ---------------------------------------------------------------- temporary files and their owners
#
# A temporary file in a layout's ``.stella/tmp`` is named after an owner token
# (``blob-<token>-XXXX.tmp``), and ``.stella/writers/<token>.owner`` is held under ``flock`` by
# the process that writes with that token, for as long as it lives. A process killed mid-write
# (``kill -9``, a power cut) leaves its files behind but not its lock: whoever next finds the
# owner file unlocked knows no live process writes those files and removes them, whatever their
# age, while a concurrent writer's files are never touched. Files named after no owner (written by
# ``atomic_write``, or by older versions) are removed only once they are older than an age.

OWNER_SUFFIX = ".owner"
_OWNERS: dict[tuple[str, int], tuple[str, int]] = {}  # (tmp dir, pid) -> (token, its lock fd)
_HELD: Final = 256  # owner locks one process keeps before it lets idle ones go


def _owner_token(tmp_dir: Path) -> str:
    key = (os.path.realpath(tmp_dir), os.getpid())  # a forked child gets its own owner
    held = _OWNERS.get(key)
    if held is not None:
        return held[0]
    if len(_OWNERS) >= _HELD:
        _release_idle()
    while True:
        token = secrets.token_hex(8)
        writers = _writers(tmp_dir)
        writers.mkdir(exist_ok=True)
        owner = writers / f"{token}{OWNER_SUFFIX}"
        fd = os.open(owner, os.O_RDWR | os.O_CREAT | os.O_EXCL, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_nlink == 0:  # taken for a dead owner's between create and lock
            os.close(fd)
            continue
        if not _OWNERS:
            atexit.register(_release_owners)
        _OWNERS[key] = (token, fd)
        return token


def _release(key: tuple[str, int]) -> None:
    token, fd = _OWNERS.pop(key)
    (_writers(Path(key[0])) / f"{token}{OWNER_SUFFIX}").unlink(missing_ok=True)
    os.close(fd)


def _release_idle() -> None:
    """Let go of the locks of directories where this process has no temporary file now (a
    long-lived process that wrote to many layouts keeps one descriptor per busy one only)."""
    for key, (token, _) in list(_OWNERS.items()):
        if key[1] != os.getpid():
            continue
        try:
            busy = any(_token_of(name) == token for name in os.listdir(key[0]))
        except FileNotFoundError:
            busy = False
        except (OSError, StellaError):  # a directory this process may not read now (behind a
            continue  # tenant's boundary, say): its lock is kept, as a busy one's is
        if not busy:
            _release(key)


def _release_owners() -> None:
    """At a normal exit: drop this process's owner files (its temporary files are gone)."""
    for key in list(_OWNERS):
        if key[1] == os.getpid():
            _release(key)


def _writers(tmp_dir: Path) -> Path:
    return tmp_dir.parent / "writers"


def owned_temp(tmp_dir: Path, *, prefix: str, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new temporary file in ``tmp_dir`` that :func:`stale_temporary` leaves alone while
    this process lives: (descriptor, path)."""
    token = _owner_token(tmp_dir)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix=f"{prefix}{token}-", suffix=suffix)
    return fd, Path(name)


def _token_of(name: str) -> str | None:
    parts = name.split("-")
    if len(parts) >= 3 and len(parts[1]) == 16 and all(c in "0123456789abcdef" for c in parts[1]):
        return parts[1]
    return None


@dataclass(frozen=True, slots=True)
class Leftover:
    """A temporary file no live process is writing (``lock``: the lock file of a writer that is
    gone, empty, removed with its files but not worth reporting on its own)."""

    path: Path
    size: int
    lock: bool = False


def stale_temporary(tmp_dir: Path, *, unowned_age: float, remove: bool) -> list[Leftover]:
    """The files in ``tmp_dir`` whose writer is gone (their owner's lock is free), and files
    of no owner older than ``unowned_age`` seconds; removed when ``remove``."""
    try:
        names = sorted(os.listdir(tmp_dir))
    except FileNotFoundError:
        names = []
    writers = _writers(tmp_dir)
    try:
        owners = sorted(n for n in os.listdir(writers) if n.endswith(OWNER_SUFFIX))
    except FileNotFoundError:
        owners = []
    live: set[str] = set()
    dead: dict[str, int] = {}  # token -> descriptor holding its (free) lock while we remove
    found: list[Leftover] = []
    try:
        for name in owners:
            token = name[: -len(OWNER_SUFFIX)]
            try:
                fd = os.open(writers / name, os.O_RDWR)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                live.add(token)
                continue
            dead[token] = fd
        cutoff = time.time() - unowned_age
        for name in names:
            path = tmp_dir / name
            owner = _token_of(name)
            if owner in live:
                continue
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            if owner not in dead and info.st_mtime > cutoff:
                continue  # no owner to ask: only its age tells
            found.append(Leftover(path, info.st_size))
            if remove:
                path.unlink(missing_ok=True)
        for token in dead:
            owner_file = writers / f"{token}{OWNER_SUFFIX}"
            found.append(Leftover(owner_file, 0, lock=True))
            if remove:
                owner_file.unlink(missing_ok=True)
    finally:
        for fd in dead.values():
            os.close(fd)
    return found
