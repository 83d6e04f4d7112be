"""A real PostgreSQL server for tests, started from Debian's ``postgresql`` package.

One server per test process (each pytest-xdist worker has its own): ``initdb`` in a temporary
directory, ``postgres`` listening on a free loopback port only (no Unix socket), stopped when
the process ends. PostgreSQL refuses to run as root, so under root (CI, ``make test``) the
server runs as the package's ``postgres`` user. Each test takes a database of its own
(:meth:`PostgresServer.database`), so tests never see each other's tables.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest

SUPERUSER: Final = "stella_test"
_START_TIMEOUT: Final = 30.0


def server_binaries() -> Path | None:
    """The directory of ``initdb``/``postgres``/``pg_ctl`` (Debian keeps them off ``PATH``)."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).resolve().parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PostgresServer:
    """One running server; :attr:`url` reaches its ``postgres`` database as the superuser."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    _databases: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """Create an empty database for one test and return its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self._databases.append(name)
        return self.url_for(name)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _as_server_user() -> tuple[list[str], int | None, int | None]:
    """The command prefix and owner for running the server (never root)."""
    if os.geteuid() != 0:
        return [], None, None
    account = pwd.getpwnam("postgres")
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    return [runuser, "-u", "postgres", "--"], account.pw_uid, account.pw_gid


def start_server(parent: Path) -> PostgresServer:
    """Initialize and start a server under ``parent``; fails the test when it cannot."""
    binaries = server_binaries()
    if binaries is None:
        message = "PostgreSQL is not installed; run 'make test' (it installs postgresql as root)"
        if os.environ.get("STELLA_ALLOW_SKIP") == "1":
            pytest.skip(message)
        pytest.fail(message)
    prefix, uid, gid = _as_server_user()
    root = parent / f"pg-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    data = root / "data"
    if uid is not None and gid is not None:
        os.chown(root, uid, gid)
        for up in (parent, *parent.parents):  # the server user must reach its directory
            with contextlib.suppress(OSError):
                up.chmod(up.stat().st_mode | 0o011)
    made = subprocess.run(
        [
            *prefix,
            str(binaries / "initdb"),
            "--pgdata",
            str(data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ],
        check=False,
        capture_output=True,
    )
    if made.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"initdb failed: {made.stderr.decode(errors='replace').strip()[-1500:]}")
    port = _free_port()
    log = root / "server.log"
    with open(log, "wb") as out:
        if uid is not None and gid is not None:
            os.chown(log, uid, gid)
        process = subprocess.Popen(
            [
                *prefix,
                str(binaries / "postgres"),
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-k",
                "",  # no Unix socket: loopback TCP only
                "-c",
                "fsync=off",  # a test server; durability is the product's, measured in bench
                "-c",
                "max_connections=200",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_end_with_parent,
        )
    server = PostgresServer(root=root, port=port, process=process)
    deadline = time.monotonic() + _START_TIMEOUT
    while True:
        if process.poll() is not None:
            text = log.read_text(errors="replace")[-2000:]
            shutil.rmtree(root, ignore_errors=True)
            pytest.fail(f"PostgreSQL exited on start: {text}")
        if _accepts(server):
            break
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"PostgreSQL did not accept connections within {_START_TIMEOUT:.0f} s")
        time.sleep(0.05)
    atexit.register(server.stop)
    return server


def _end_with_parent() -> None:
    """In the server's process before it starts: a test process killed before its exit
    handlers run takes its server with it (Linux's parent-death signal)."""
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _accepts(server: PostgresServer) -> bool:
    """Whether the server takes connections yet (not "the database system is starting up")."""
    import psycopg

    try:
        with psycopg.connect(server.url, connect_timeout=2):
            return True
    except (OSError, psycopg.OperationalError):
        return False


_server: PostgresServer | None = None


def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> PostgresServer:
    """The process's server (started on first use, stopped when the process ends)."""
    global _server
    if _server is None or _server.process.poll() is not None:
        _server = start_server(tmp_path_factory.getbasetemp() / "postgres")
    return _server


@contextlib.contextmanager
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database on the process's server."""
    yield postgres_server(tmp_path_factory).database()
