"""The tests' own PostgreSQL server: real, loopback only, one database per test."""

from __future__ import annotations

import psycopg

from tests.postgres import SUPERUSER


def test_each_test_gets_its_own_empty_database(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("SELECT current_user, inet_server_addr()::text, version()").fetchone()
        assert row is not None
        assert row[0] == SUPERUSER
        assert row[1].startswith("127.0.0.1")
        assert row[2].startswith("PostgreSQL ")
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("CREATE TABLE t (x integer)")


def test_a_second_test_does_not_see_the_first_ones_tables(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone() == (0,)
