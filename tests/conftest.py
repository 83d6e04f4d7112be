"""Suite-wide guards: no test reaches beyond loopback, and tools the tests drive must exist.

The suite runs in parallel (``make test``: pytest-xdist, ``--dist loadgroup``). Tests that
share a module- or class-scoped fixture are kept on one worker (an ``xdist_group`` per
module), so what such a fixture builds, it builds once; every other test goes wherever a
worker is free. Each worker has its own temporary directory, its own session fixtures and
its own loopback ports.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
from typing import Any

import pytest

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):  # AF_UNIX path
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class NetworkBlocked(RuntimeError):
    pass


_SHARED_SCOPES = frozenset({"module", "class", "package"})


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Group each test that uses a module-, class- or package-scoped fixture with the other
    tests of its module (unless it names its own ``xdist_group``)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        info = getattr(item, "_fixtureinfo", None)
        if info is None:
            continue
        if any(d.scope in _SHARED_SCOPES for defs in info.name2fixturedefs.values() for d in defs):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection that leaves the machine, in every test."""

    def connect(self: socket.socket, address: Any) -> None:
        if not _is_loopback(address):
            raise NetworkBlocked(f"test tried to reach {address!r}: tests stay on loopback")
        _real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        if not _is_loopback(address):
            raise NetworkBlocked(f"test tried to reach {address!r}: tests stay on loopback")
        return _real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Block every socket connection, loopback included: proves a code path is offline."""

    def refuse(self: socket.socket, address: Any) -> None:
        raise NetworkBlocked(f"network access attempted to {address!r} in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def require_tools(*names: str) -> None:
    """Fail (or, with STELLA_ALLOW_SKIP=1, skip) when an external tool is missing."""
    missing = [n for n in names if shutil.which(n) is None]
    if not missing:
        return
    message = f"missing tools: {', '.join(missing)}; run 'make test' (it installs them as root)"
    if os.environ.get("STELLA_ALLOW_SKIP") == "1":
        pytest.skip(message)
    pytest.fail(message)


@pytest.fixture
def home(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh STELLA_HOME for one test."""
    path = tmp_path / "home"
    monkeypatch.setenv("STELLA_HOME", str(path))
    return path


@pytest.fixture
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The URL of a fresh, empty database on this test process's own PostgreSQL server
    (:mod:`tests.postgres`: started on first use on a loopback port, stopped at exit)."""
    from tests.postgres import postgres_server

    return postgres_server(tmp_path_factory).database()
