"""The PostgreSQL backend of the stores (docs/scale-out.md): the same tables, transactions and
migrations as the embedded SQLite files, in a schema of a PostgreSQL database.

A store is opened on one schema (``knowledge``, ``state``, or a tenant's state schema); the
connection's ``search_path`` is that schema alone, so the stores' unqualified table names land
in it and two stores sharing a database never see each other's tables.

What SQLite gives by its file lock is rebuilt here explicitly:

- a write transaction takes a transaction-scoped advisory lock named after the schema before
  anything else, so writers of one store run one at a time (as ``BEGIN IMMEDIATE``) and a
  read-then-write (the next audit sequence number) cannot interleave; waiting longer than the
  busy timeout is :class:`~appliance.store.db.DatabaseBusyError`, as on SQLite;
- a read snapshot is a ``REPEATABLE READ, READ ONLY`` transaction: one consistent state;
- statements keep SQLite's ``?`` placeholders (translated once per statement text) and rows
  read by index and by column name, as ``sqlite3.Row`` does;
- text columns are declared ``COLLATE "C"`` in the PostgreSQL migrations, so ``ORDER BY``
  gives code-point order whatever the database's locale: a dataset's exact bytes are rebuilt
  from its records in id order, and that order is the one its signature covers.

Only this module (and :mod:`appliance.store`) imports ``psycopg`` (``scripts/check_layers.py``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from appliance.store.db import (
    DEFAULT_BUSY_TIMEOUT,
    LAYOUT_VERSION,
    Connection,
    Cursor,
    Database,
    DatabaseBusyError,
    DatabaseError,
    Dialect,
    StoreError,
)

SCHEMES: Final = ("postgresql://", "postgres://")
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_CONNECT_TIMEOUT: Final = 10
_BUSY: Final = (
    pg_errors.LockNotAvailable,
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
)
_SECRET_PARAMETERS: Final = frozenset({"password", "passfile", "sslpassword"})


def is_postgres_url(url: str) -> bool:
    return url.startswith(SCHEMES)


def redact(url: str) -> str:
    """``url`` without its password (in the authority or as a query parameter), for
    messages and settings: a URL is shown, its secret never."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            user, _, host = netloc.rpartition("@")
            user = user.split(":", 1)[0]
            netloc = f"{user}@{host}" if user else host
        query = urlencode(
            [(k, v) for k, v in parse_qsl(parts.query) if k.lower() not in _SECRET_PARAMETERS]
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
    except ValueError:
        return url.split("://", 1)[0] + "://(unparsable URL)"


def _first_line(error: BaseException) -> str:
    if isinstance(error, psycopg.Error) and error.diag.message_primary:
        return error.diag.message_primary
    text = " ".join(str(error).split("\n", 1)[0].split())
    return text or type(error).__name__


@lru_cache(maxsize=2048)
def translate(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s``, and a literal ``%`` doubled, outside
    quoted strings and identifiers (a ``?`` inside ``'...'`` stays a question mark)."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


class Row(tuple[Any, ...]):
    """A row readable by index and by column name, like ``sqlite3.Row``."""

    __slots__ = ()
    _index: dict[str, int] = {}  # noqa: RUF012 - set per column list by _row_class

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._index[key])
            except KeyError:
                raise IndexError(f"no column named {key!r}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    return type("Row", (Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _row_factory(cursor: psycopg.Cursor[Any]) -> Any:
    description = cursor.description
    if description is None:
        return tuple
    return _row_class(tuple(d.name for d in description))


class PgConnection:
    """The connection the stores see: :class:`~appliance.store.db.Connection` over psycopg."""

    __slots__ = ("raw",)

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        cursor = self.raw.cursor()
        if parameters:
            cursor.execute(translate(sql), parameters)
        else:  # nothing to fill in: run as written (a script of several statements too)
            cursor.execute(sql)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cursor = self.raw.cursor()
        cursor.executemany(translate(sql), parameters)
        return cursor


def _lock_key(schema: str) -> int:
    """The advisory lock of a schema's writers: 64 bits of a hash of its name."""
    digest = hashlib.sha256(f"stella-ops store {schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresDatabase(Database):
    """One connection to one schema of a PostgreSQL database."""

    __slots__ = ("_conn", "_lock", "_pg", "schema", "url")
    dialect = Dialect.POSTGRES

    def __init__(self, raw: psycopg.Connection[Any], url: str, schema: str) -> None:
        super().__init__()
        self._pg = raw
        self._conn = PgConnection(raw)
        self.url = url
        self.schema = schema
        self._lock = _lock_key(schema)

    @classmethod
    def connect(
        cls, url: str, *, schema: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    ) -> PostgresDatabase:
        """Connect to ``url`` and work in ``schema`` (created when missing).

        Errors are one line naming the URL without its password."""
        shown = redact(url)
        if not is_postgres_url(url):
            raise DatabaseError(
                f"{shown}: not a PostgreSQL URL",
                hint="give postgresql://USER@HOST:PORT/DATABASE (the password in PGPASSWORD "
                "or ~/.pgpass)",
            )
        if not _SCHEMA_NAME.fullmatch(schema):
            raise DatabaseError(
                f"{shown}: schema name {schema!r} is not allowed",
                hint="use lower-case letters, digits and '_' (at most 63), not starting "
                "with a digit",
            )
        try:
            raw = psycopg.connect(
                url,
                autocommit=True,
                row_factory=_row_factory,
                connect_timeout=_CONNECT_TIMEOUT,
                application_name="stella",
            )
        except psycopg.Error as e:
            raise DatabaseError(
                f"{shown}: cannot connect: {_first_line(e)}",
                hint="check the URL (STELLA_DATABASE_URL or the home's databaseUrl setting) "
                "and that the server is running and reachable",
            ) from e
        db = cls(raw, url, schema)
        try:
            raw.execute(f"SET lock_timeout = {max(1, int(busy_timeout * 1000))}")
            raw.execute("SET client_min_messages = warning")
            usable = "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = "
            found = raw.execute(usable + "%s", (schema,)).fetchone()
            if found is None:
                # (a role without CREATE on the database can use schemas made for it)
                with raw.transaction():
                    # two processes creating the schema at once would race on the catalog
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("stella-ops"),))
                    raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            elif not found[0]:  # another tenant's schema, to a tenant's own role
                raise DatabaseError(
                    f"{db.where}: the database role {raw.info.user} may not use this schema",
                    hint="each tenant's role reaches only its own schema and the shared "
                    "knowledge ('stella tenants roles'): connect with the role of the tenant "
                    "whose store this is",
                )
            raw.execute(f'SET search_path = "{schema}"')
            db._check_layout()
        except psycopg.Error as e:
            raw.close()
            raise db._wrap(e, "configure the connection") from e
        except StoreError:  # a layout newer than this program, a schema the role may not use
            raw.close()
            raise
        return db

    @property
    def where(self) -> str:
        return f"{redact(self.url)} (schema {self.schema})"

    @property
    def connection(self) -> PgConnection:
        return self._conn

    @property
    def in_transaction(self) -> bool:
        return self._pg.info.transaction_status != TransactionStatus.IDLE

    @contextmanager
    def in_schema(self, schema: str) -> Iterator[PostgresDatabase]:
        """Inside the open write transaction, work in ``schema`` (created in the transaction
        when missing, its writers' lock taken) until the block ends: ``stella migrate`` fills
        every store of a home, one schema each, in one transaction that commits all or none.

        The schema set here is the transaction's own: were it rolled back, PostgreSQL undoes
        the change of ``search_path`` with everything else."""
        if not self.in_transaction or self._reading:
            raise RuntimeError(f"{self.where}: in_schema() runs inside a write transaction")
        if not _SCHEMA_NAME.fullmatch(schema):
            raise DatabaseError(f"{redact(self.url)}: schema name {schema!r} is not allowed")
        before, lock = self.schema, self._lock
        try:
            self._pg.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._pg.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
            self._pg.execute(f'SET LOCAL search_path = "{schema}"')
        except psycopg.Error as e:
            raise self._wrap(e, f"work in schema {schema}") from e
        self.schema, self._lock = schema, _lock_key(schema)
        failed = False
        try:
            yield self
        except BaseException:
            failed = True  # the transaction's rollback restores the search path
            raise
        finally:
            self.schema, self._lock = before, lock
            if not failed:
                try:
                    self._pg.execute(f'SET LOCAL search_path = "{before}"')
                except psycopg.Error as e:
                    raise self._wrap(e, f"return to schema {before}") from e

    def stream(self, sql: str, *, size: int = 20_000, what: str = "read") -> Iterator[list[Any]]:
        """The rows of one read statement, ``size`` at a time, through a server-side cursor
        inside the open transaction: a table larger than memory is read whole."""
        if not self.in_transaction:
            raise RuntimeError(f"{self.where}: stream() runs inside a transaction")
        try:
            with self._pg.cursor(name="stella_stream") as cursor:
                cursor.execute(sql)
                while rows := cursor.fetchmany(size):
                    yield rows
        except psycopg.Error as e:
            raise self._wrap(e, what) from e

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        return (psycopg.Error,)

    def _wrap(self, error: Exception, doing: str) -> DatabaseError:
        if isinstance(error, _BUSY):
            return DatabaseBusyError(
                f"{self.where}: database is locked by another process ({doing})",
                hint="another stella command is writing; retry when it has finished",
            )
        if isinstance(error, psycopg.OperationalError) and self._pg.closed:
            return DatabaseError(
                f"{self.where}: connection lost ({doing}): {_first_line(error)}",
                hint="check that the database server is running; the change was not committed",
            )
        return DatabaseError(f"{self.where}: cannot {doing}: {_first_line(error)}")

    def _begin(self, *, write: bool) -> None:
        if write:
            self._pg.execute("BEGIN")
            try:
                self._pg.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock,))
            except psycopg.Error:
                self._pg.execute("ROLLBACK")
                raise
        else:
            self._pg.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def _control(self, statement: str) -> None:
        self._pg.execute(statement)

    def _has_versions_table(self) -> bool:
        row = self._pg.execute("SELECT to_regclass('schema_versions') IS NOT NULL").fetchone()
        return bool(row and row[0])

    def _layout(self) -> int:
        row = self._pg.execute("SELECT to_regclass('stella_layout') IS NOT NULL").fetchone()
        if not (row and row[0]):
            return 0
        found = self._pg.execute("SELECT max(version) FROM stella_layout").fetchone()
        return int(found[0]) if found and found[0] is not None else 0

    def _prepare_versions(self, conn: Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions ("
            ' component TEXT COLLATE "C" PRIMARY KEY,'
            " version BIGINT NOT NULL CHECK (version >= 0))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS stella_layout (version BIGINT NOT NULL PRIMARY KEY)"
        )
        if self._layout() < LAYOUT_VERSION:
            conn.execute("DELETE FROM stella_layout")
            conn.execute("INSERT INTO stella_layout VALUES (?)", (LAYOUT_VERSION,))

    def _run_script(self, conn: Connection, script: str) -> None:
        self._pg.execute(script)  # without parameters, several statements may run at once

    def bulk_insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        ignore_conflicts: bool = False,
    ) -> None:
        """``COPY`` the rows in (into a temporary table first when conflicts are to be
        skipped, then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``): a snapshot's
        hundreds of thousands of rows in a few round trips instead of one each."""
        if not rows:
            return
        if not self.in_transaction:  # the staging table empties at each commit
            with self.transaction(f"insert into {table}"):
                self.bulk_insert(table, columns, rows, ignore_conflicts=ignore_conflicts)
            return
        names = ", ".join(columns)
        target = table
        if ignore_conflicts:
            target = f"stella_load_{table}"
            self._pg.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {target} "
                f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
            self._pg.execute(f"TRUNCATE {target}")
        with self._pg.cursor().copy(f"COPY {target} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if ignore_conflicts:
            self._pg.execute(
                f"INSERT INTO {table} ({names}) SELECT {names} FROM {target} "  # noqa: S608
                "ON CONFLICT DO NOTHING"
            )

    def close(self) -> None:
        self._pg.close()

    def __enter__(self) -> PostgresDatabase:
        return self
