"""Temporary files of a layout and their writers' locks: a killed writer's files are found and
removed at once, a live writer's never, and a process that wrote to many layouts keeps a lock
only where it is still writing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bundles import files as oci_files
from bundles.oci import OCILayout

_KILLED_WRITER = (
    "import os, signal, sys\n"
    "from bundles.oci import OCILayout\n"
    "fd, _ = OCILayout.open(sys.argv[1]).new_blob_file()\n"
    "os.write(fd, b'x' * 1000)\n"
    "os.kill(os.getpid(), signal.SIGKILL)\n"
)


def _killed_writer(layout: OCILayout) -> None:
    subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(layout.path)], check=False)


def test_a_killed_writers_files_are_found_and_a_live_ones_are_not(tmp_path: Path) -> None:
    layout = OCILayout.init(tmp_path / "l")
    live_fd, live = layout.new_blob_file()
    try:
        _killed_writer(layout)
        found = layout.leftovers()
        assert [(f.size, f.lock) for f in found] == [(1000, False), (0, True)]
        assert live not in [f.path for f in found]
        assert layout.leftovers(remove=True) == found
        assert layout.leftovers() == []
        assert sorted((layout.path / ".stella" / "tmp").iterdir()) == [live]
    finally:
        os.close(live_fd)


def test_the_next_writer_removes_them(tmp_path: Path) -> None:
    layout = OCILayout.init(tmp_path / "l")
    _killed_writer(layout)
    assert layout.leftovers()
    OCILayout.open(layout.path).put_blob(b"next")  # a new writer, as the next import is
    assert layout.leftovers() == []


def test_a_file_of_no_writer_goes_only_when_old(tmp_path: Path) -> None:
    layout = OCILayout.init(tmp_path / "l")
    stray = layout.path / ".stella" / "tmp" / "index.json.abc.tmp"
    stray.write_bytes(b"{}")
    assert layout.leftovers(remove=True) == []
    os.utime(stray, (0, 0))
    assert [f.path for f in layout.leftovers(remove=True)] == [stray]


def test_idle_locks_are_let_go(tmp_path: Path) -> None:
    first = OCILayout.init(tmp_path / "first")
    busy_fd, busy = first.new_blob_file()
    try:
        for i in range(oci_files._HELD + 5):
            fd, path = OCILayout.init(tmp_path / f"l{i}").new_blob_file()
            os.close(fd)
            path.unlink()
        assert len(oci_files._OWNERS) <= oci_files._HELD
        assert first.leftovers() == []  # still held: its blob is being written
        assert busy.exists()
    finally:
        os.close(busy_fd)
