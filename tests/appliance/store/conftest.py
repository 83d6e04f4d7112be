"""The stores' tests run on both backends: each test that takes ``backend`` (or a fixture built
on it) runs once on an SQLite file and once on a fresh database of the test process's own
PostgreSQL server (``pg_url``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.store.db import DEFAULT_BUSY_TIMEOUT, Database, SqliteDatabase

Opener = Callable[..., Database]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Opener]:
    """Open the test's database ``name`` (an SQLite file in ``tmp_path``, or a schema of one
    PostgreSQL database), as often as the test likes; every connection is closed at the end."""
    opened: list[Database] = []
    url = str(request.getfixturevalue("pg_url")) if backend == "postgresql" else ""

    def open_one(
        name: str = "state", *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, keep: bool = True
    ) -> Database:
        """``keep=False``: the caller closes it (a connection opened in another thread)."""
        if backend == "sqlite":
            db: Database = SqliteDatabase.open(tmp_path / f"{name}.db", busy_timeout=busy_timeout)
        else:
            from appliance.store.postgres import PostgresDatabase

            db = PostgresDatabase.connect(url, schema=name, busy_timeout=busy_timeout)
        if keep:
            opened.append(db)
        return db

    yield open_one
    for db in opened:
        db.close()
