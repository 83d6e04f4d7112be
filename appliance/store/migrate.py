"""``stella migrate``: move an embedded home's stores (``knowledge.db``, ``state.db``, and the
``state.db`` of each of its tenants) into PostgreSQL, the scale-out backend
(docs/scale-out.md).

Every store is copied in one PostgreSQL transaction, the whole home at once: the shared
knowledge into the schema ``knowledge``, the home's state into ``state``, and each tenant's
state into its own schema (:func:`appliance.tenancy.pg_schema`, ``tenant_<name>``). For each
store the schema is created at the current version of every component, every table is copied
(parents before the tables whose foreign keys name them; large tables streamed in batches with
``COPY``), identity counters are moved past the copied ids, and the copy is checked before the
next store begins: every table, read back, holds as many rows as its source with the same
content (an order-free digest of the rows, :class:`_RowsDigest`), and the audit log's signed
chain verifies in PostgreSQL (with the key of the home or tenant that signed it) to the same
head as in the file. Any failure, in the last tenant as in the first store, or ``--dry-run``,
rolls the one transaction back: no store is left half-copied, nor a store copied while another
was not, for a later command to take as the whole home.

A tenant's files are read behind that tenant's boundary (appliance/tenancy.py), as if the
tenant itself ran the copy. A tenant with knowledge of its own (its own ``knowledge.db``) is
refused: on PostgreSQL every tenant reads the shared knowledge.

A target schema that already holds tables is refused unless ``force`` (then it is dropped and
rebuilt, in the same transaction). The refusals that can be known beforehand (a target not
empty, a tenant that cannot move, an audit log that does not verify) are checked before
anything is written, so a refused move leaves the database as it was. The SQLite files are
left as they were; once everything is committed the ``databaseUrl`` setting of every tenant,
then of the home, names the database (without a password), so no command falls back to the
files by mistake.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from appliance import tenancy
from appliance.home import DATABASE_URL_SETTING, Home
from appliance.store import (
    KNOWLEDGE_SCHEMA,
    STATE_SCHEMA,
    audit,
    components,
    verdicts,
    vex,
)
from appliance.store.db import Schema, SqliteDatabase, StoreError
from appliance.store.knowledge import SCHEMA as KNOWLEDGE
from appliance.store.postgres import PostgresDatabase, redact
from bundles.errors import StellaError

STATE_SCHEMAS: Final = (audit.SCHEMA, vex.SCHEMA, verdicts.SCHEMA, components.SCHEMA)
KNOWLEDGE_SCHEMAS: Final = (KNOWLEDGE,)
_BATCH: Final = 20_000


class MigrateError(StoreError):
    """The home's stores cannot be moved into PostgreSQL as asked."""


class _DryRun(Exception):
    """Raised inside the transaction to roll a verified dry run back."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    rows: int
    digest: str = ""  # of its rows' content, the same in the file and after the copy


@dataclass(frozen=True, slots=True)
class StoreCopy:
    """One store copied (or, in a dry run, copied and rolled back) and checked."""

    store: str  # "knowledge" or "state"
    source: str  # the SQLite file
    schema: str  # the PostgreSQL schema
    tables: tuple[TableCopy, ...]
    audit_records: int | None = None  # state: records whose chain verified after the copy
    copied: bool = True  # False: the home never wrote this store; its tables were made empty
    tenant: str | None = None  # the tenant whose state this is (None: the home's own)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "tenant": self.tenant,
            "source": self.source,
            "schema": self.schema,
            "rows": self.rows,
            "tables": {t.table: t.rows for t in self.tables},
            "digests": {t.table: t.digest for t in self.tables},
            "auditRecords": self.audit_records,
            "copied": self.copied,
        }


@dataclass(frozen=True, slots=True)
class Migration:
    url: str  # without its password
    stores: tuple[StoreCopy, ...]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "to": self.url,
            "dryRun": self.dry_run,
            "stores": [s.to_dict() for s in self.stores if s.tenant is None],
            "tenants": [s.to_dict() for s in self.stores if s.tenant is not None],
        }


def _tables(source: SqliteDatabase) -> list[str]:
    """The source's tables, parents before children (by their foreign keys)."""
    names = [
        str(r[0])
        for r in source.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_versions' ORDER BY name"
        )
    ]
    parents = {
        name: {
            str(r["table"])
            for r in source.query(f"PRAGMA foreign_key_list({name})")
            if str(r["table"]) != name
        }
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:
            raise MigrateError(f"{source.where}: the tables' foreign keys run in a circle")
        ordered.extend(ready)
    return ordered


def _batches(source: SqliteDatabase, table: str) -> Iterator[tuple[list[str], list[Any]]]:
    cursor = source.connection.execute(f"SELECT * FROM {table}")  # noqa: S608 - names from the file's catalog
    columns = [str(d[0]) for d in cursor.description]
    while True:
        rows = cursor.fetchmany(_BATCH)
        if not rows:
            return
        yield columns, [tuple(r) for r in rows]


class _RowsDigest:
    """A digest of a table's rows that does not depend on their order (the sum, modulo
    2**256, of each row's SHA-256), so the file and PostgreSQL are compared without sorting
    either: the same rows, each with the same values, give the same digest."""

    __slots__ = ("total",)
    _MODULUS: Final = 1 << 256

    def __init__(self) -> None:
        self.total = 0

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        total = self.total
        for row in rows:
            values = tuple(
                bytes(v) if isinstance(v, memoryview) else int(v) if isinstance(v, bool) else v
                for v in row
            )
            total += int.from_bytes(hashlib.sha256(repr(values).encode()).digest(), "big")
        self.total = total % self._MODULUS

    def hex(self) -> str:
        return f"{self.total:064x}"


def _check_copy(target: PostgresDatabase, item: TableCopy, columns: list[str], path: Path) -> None:
    """Read the copied table back (streamed) and compare its row count and digest with the
    file's; a table may be empty (nothing to read)."""
    count, digest = 0, _RowsDigest()
    if columns:
        sql = f"SELECT {', '.join(columns)} FROM {item.table}"  # noqa: S608 - catalog names
        for rows in target.stream(sql, what=f"read back table {item.table}"):
            count += len(rows)
            digest.add(rows)
    else:
        count = int(target.query(f"SELECT COUNT(*) FROM {item.table}")[0][0])  # noqa: S608
    if count != item.rows:
        raise MigrateError(
            f"{target.where}: table {item.table} holds {count} rows after the copy, {path} "
            f"holds {item.rows}"
        )
    if columns and digest.hex() != item.digest:
        raise MigrateError(
            f"{target.where}: table {item.table} holds other values after the copy than "
            f"{path} (digest {digest.hex()[:16]}, the file's {item.digest[:16]})"
        )


def _target_tables(target: PostgresDatabase) -> list[str]:
    rows = target.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "ORDER BY table_name",
        (target.schema,),
    )
    return [str(r[0]) for r in rows]


def _reset_identity(target: PostgresDatabase, table: str) -> None:
    """Move identity columns' counters past the copied ids (``datasets``, ``verdicts``)."""
    for (column,) in target.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = ? AND is_identity = 'YES'",
        (target.schema, table),
    ):
        target.connection.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?), "  # noqa: S608 - catalog names
            f"COALESCE((SELECT max({column}) FROM {table}), 0) + 1, false)",
            (table, str(column)),
        )


@dataclass(frozen=True, slots=True)
class _Source:
    """One store to move: the shared knowledge, the home's state, or one tenant's state."""

    store: str  # "knowledge" or "state"
    home: Home  # the home, or the tenant whose store it is (its key verifies the audit log)
    schema: str
    parts: tuple[Schema, ...]

    @property
    def path(self) -> Path:
        return self.home.knowledge_db if self.store == "knowledge" else self.home.state_db

    @property
    def label(self) -> str:
        return f"tenant {self.home.tenant!r}" if self.home.tenant is not None else self.store

    def acting(self) -> AbstractContextManager[None]:
        """The boundary this store is read behind: a tenant's files are read as that tenant
        (appliance/tenancy.py), never by a process free to reach the other tenants."""
        if self.home.tenant is None:
            return nullcontext()
        return tenancy.confined(self.home.boundary)


def _sources(home: Home, schemas: tuple[str, str]) -> list[_Source]:
    """What a home holds to move: its knowledge and state, then each tenant's state."""
    found = [
        _Source("knowledge", home, schemas[0], KNOWLEDGE_SCHEMAS),
        _Source(STATE_SCHEMA, home, schemas[1], STATE_SCHEMAS),
    ]
    for name in tenancy.list_tenants(home.base):
        tenant = Home.of(home.base, name)
        found.append(_Source(STATE_SCHEMA, tenant, tenancy.pg_schema(name), STATE_SCHEMAS))
    return found


def _copy_store(source: _Source, target: PostgresDatabase, *, force: bool) -> StoreCopy:
    """Copy one store into ``target``'s current schema, inside the move's transaction (a
    savepoint of it), and check the copy before going on."""
    path = source.path
    tenant = source.home.tenant
    existing = _target_tables(target)
    if existing and not force:  # made since the preflight
        raise _not_empty(target, existing)
    if existing:
        target.connection.execute(f'DROP SCHEMA "{target.schema}" CASCADE')
        target.connection.execute(f'CREATE SCHEMA "{target.schema}"')
    if not path.is_file():
        with target.transaction("create the store"):
            for schema in source.parts:
                target.ensure(schema)
        return StoreCopy(source.store, str(path), target.schema, (), copied=False, tenant=tenant)
    db = SqliteDatabase.open(path)
    try:
        for schema in source.parts:
            db.ensure(schema)  # an older file is brought to the current version first
        known = {s.component for s in source.parts}
        stored = {str(r[0]) for r in db.query("SELECT component FROM schema_versions")}
        if stored - known:
            raise MigrateError(
                f"{path}: holds tables of {', '.join(sorted(stored - known))}, which this "
                "program cannot move",
                hint="use the stella version that wrote them",
            )
        copied: list[TableCopy] = []
        audit_records: int | None = None
        key = source.home.public_key()
        with db.snapshot("read the store to copy"), target.transaction("copy the store"):
            expected_log = (
                audit.AuditLog(db, public_key=key).verify()
                if source.store == STATE_SCHEMA
                else None
            )
            if expected_log is not None and expected_log.problem is not None:
                raise _unverified(path, expected_log.problem.message)
            for schema in source.parts:
                target.ensure(schema)
            for table in _tables(db):
                count, digest = 0, _RowsDigest()
                names: list[str] = []
                with target.transaction(f"copy table {table}"):
                    for columns, rows in _batches(db, table):
                        target.bulk_insert(table, columns, rows)
                        count += len(rows)
                        digest.add(rows)
                        names = columns
                    _reset_identity(target, table)
                copied.append(TableCopy(table, count, digest.hex()))
                _check_copy(target, copied[-1], names, path)
            if expected_log is not None:
                moved = audit.AuditLog(target, public_key=key).verify()
                same = (
                    moved.head is not None
                    and expected_log.head is not None
                    and (moved.head.seq, moved.head.hash)
                    == (expected_log.head.seq, expected_log.head.hash)
                ) or (moved.head is None and expected_log.head is None)
                if not moved.ok or not same or moved.records != expected_log.records:
                    problem = moved.problem.message if moved.problem else "another head"
                    raise MigrateError(
                        f"{target.where}: the copied audit log does not verify to the "
                        f"file's head ({problem})"
                    )
                audit_records = moved.records
        return StoreCopy(
            source.store, str(path), target.schema, tuple(copied), audit_records, tenant=tenant
        )
    finally:
        db.close()


def migrate(
    home: Home,
    url: str,
    *,
    dry_run: bool = False,
    force: bool = False,
    schemas: tuple[str, str] = (KNOWLEDGE_SCHEMA, STATE_SCHEMA),
) -> Migration:
    """Copy the embedded home's knowledge and state stores, and the state store of each of
    its tenants, into the PostgreSQL database at ``url`` (schemas ``knowledge``, ``state`` and
    ``tenant_<name>``), all in one checked transaction; unless ``dry_run``, then record the
    URL (without its password) as the ``databaseUrl`` of the home and of every tenant."""
    home = home.require()
    if home.tenant is not None:
        raise MigrateError(
            f"tenant {home.tenant!r}: stella migrate moves the whole home, every tenant with it",
            hint="run it as the home's administrator (without --tenant or STELLA_TENANT)",
        )
    if home.settings().get(DATABASE_URL_SETTING) is not None:
        raise MigrateError(
            f"{home.config}: the home already uses the database "
            f"{home.settings()[DATABASE_URL_SETTING]}",
            hint="migrate copies an embedded home's knowledge.db and state.db; this one has "
            "moved already",
        )
    sources = _sources(home, schemas)
    _preflight(sources, url, redact(url), force=force)
    done: list[StoreCopy] = []
    with PostgresDatabase.connect(url, schema=schemas[0]) as target:
        try:
            with target.transaction("move the home's stores"):
                for number, source in enumerate(sources, 1):
                    try:
                        with source.acting(), target.in_schema(source.schema):
                            done.append(_copy_store(source, target, force=force))
                    except StellaError as e:
                        raise _failed(source, number, len(sources), e) from e
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
    if not dry_run:
        setting = {DATABASE_URL_SETTING: redact(url)}
        for source in sources[2:]:  # the tenants first: the home's own setting comes last
            with source.acting():
                source.home.write_settings({**source.home.settings(), **setting})
        home.write_settings({**home.settings(), **setting})
    return Migration(redact(url), tuple(done), dry_run)


def _failed(source: _Source, number: int, total: int, error: StellaError) -> MigrateError:
    """The one line a failed move ends with: which store, why, and that nothing stayed."""
    hints = [error.hint] if error.hint else []
    if "out of shared memory" in error.message:
        hints.append(
            "the move holds a lock per table of every store until it commits: raise the "
            "server's max_locks_per_transaction (docs/scale-out.md)"
        )
    hints.append(
        "nothing was committed: every store moves in one transaction; correct the cause and "
        "run stella migrate again"
    )
    return MigrateError(
        f"{source.label} ({number} of {total} stores): {error.message}", hint="; ".join(hints)
    )


def _not_empty(target: PostgresDatabase, existing: Sequence[str], schema: str = "") -> MigrateError:
    shown = ", ".join(existing[:4]) + (" ..." if len(existing) > 4 else "")
    where = f"{redact(target.url)} (schema {schema})" if schema else target.where
    return MigrateError(
        f"{where}: is not empty (tables {shown})",
        hint="migrate into an empty database or schema, or pass --force to replace what it holds",
    )


def _unverified(path: Path, problem: str) -> MigrateError:
    return MigrateError(
        f"{path}: the audit log does not verify: {problem}",
        hint="run 'stella audit verify'; a log that fails is evidence: keep the file as it is",
    )


def _preflight(sources: Sequence[_Source], url: str, shown: str, *, force: bool) -> None:
    """What would refuse a later store is found before anything is written: a target that
    is not empty, a tenant that cannot move (its own knowledge, a file it cannot read), an
    audit log that does not verify."""
    for source in sources:
        if source.home.tenant is None:
            continue
        with source.acting():
            _check_tenant(source, shown)
    with PostgresDatabase.connect(url, schema=sources[0].schema) as target:
        for source in sources:
            existing = [
                str(r[0])
                for r in target.query(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
                    "ORDER BY table_name",
                    (source.schema,),
                )
            ]
            if existing and not force:
                raise _not_empty(target, existing, source.schema)
    for source in sources:
        if source.store != STATE_SCHEMA:
            continue
        with source.acting():
            if not source.path.is_file():
                continue
            with SqliteDatabase.open(source.path) as db:
                verified = audit.AuditLog(db, public_key=source.home.public_key()).verify()
            if verified.problem is not None:
                raise _unverified(source.path, verified.problem.message)


def _check_tenant(source: _Source, shown: str) -> None:
    tenant = source.home
    try:
        own_knowledge = tenant.own_knowledge_db.is_file()
        state = tenant.state_db
        readable = not state.exists() or os.access(state, os.R_OK | os.W_OK)
        setting = tenant.settings().get(DATABASE_URL_SETTING)
    except PermissionError as e:
        raise MigrateError(
            f"{tenant.root}: cannot read the directory of tenant {tenant.tenant!r} ({e.strerror})",
            hint="run stella migrate as the user that owns every tenant's directory",
        ) from e
    if not readable:
        raise MigrateError(
            f"{state}: cannot read and write the state of tenant {tenant.tenant!r}",
            hint="run stella migrate as the user that owns every tenant's directory",
        )
    if own_knowledge:
        raise MigrateError(
            f"{tenant.own_knowledge_db}: tenant {tenant.tenant!r} has knowledge of its own; on "
            "PostgreSQL every tenant reads the shared knowledge",
            hint="import the tenant's bundles as the home's administrator, then move its "
            "knowledge.db out of the tenant's directory (it then reads the shared knowledge) "
            "and migrate again",
        )
    if setting is not None and setting != shown:
        raise MigrateError(
            f"{tenant.config}: tenant {tenant.tenant!r} already uses the database {setting}",
            hint="remove its databaseUrl setting if its state.db is the state to move",
        )


# -- tenant roles -------------------------------------------------------------------------

ROLE_PREFIX: Final = "stella_"


def tenant_role(name: str) -> str:
    """The PostgreSQL role a tenant's processes connect as: ``stella_tenant_<name>`` (its
    schema's name, prefixed so that the roles of the cluster say whose they are)."""
    return ROLE_PREFIX + tenancy.pg_schema(name)


def tenant_url(url: str, name: str) -> str:
    """``url`` (without its password) with tenant ``name``'s role as the user."""
    parts = urlsplit(redact(url))
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{tenant_role(name)}@{host}"))


def _owned_by(schema: str, role: str) -> str:
    """The statements that make ``role`` the owner of ``schema`` (made when missing) and of
    everything already in it: tables (their indexes, and the sequences of their serial and
    identity columns, go with them), other sequences, functions and procedures, and types
    (enums, composite types, domains, ranges: procrastinate makes enums and a composite)."""
    q = tenancy.quote_identifier
    # names checked by tenancy.check_name: letters, digits and '_', safe as SQL literals
    role_literal, schema_literal = f"'{role}'", f"'{schema}'"
    return f"""\
CREATE SCHEMA IF NOT EXISTS {q(schema)};
ALTER SCHEMA {q(schema)} OWNER TO {q(role)};
DO $$ DECLARE item record; BEGIN
  FOR item IN SELECT c.oid::regclass AS name FROM pg_class c
      WHERE c.relnamespace = {schema_literal}::regnamespace
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f') LOOP
    EXECUTE format('ALTER TABLE %s OWNER TO %I', item.name, {role_literal});
  END LOOP;
  FOR item IN SELECT c.oid::regclass AS name FROM pg_class c
      WHERE c.relnamespace = {schema_literal}::regnamespace AND c.relkind = 'S'
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                      AND d.objid = c.oid AND d.deptype IN ('a', 'i')) LOOP
    EXECUTE format('ALTER SEQUENCE %s OWNER TO %I', item.name, {role_literal});
  END LOOP;
  FOR item IN SELECT p.oid::regprocedure AS name FROM pg_proc p
      WHERE p.pronamespace = {schema_literal}::regnamespace LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO %I', item.name, {role_literal});
  END LOOP;
  FOR item IN SELECT t.oid::regtype AS name FROM pg_type t
      WHERE t.typnamespace = {schema_literal}::regnamespace
      AND (t.typtype IN ('e', 'd', 'r')
           OR (t.typtype = 'c' AND EXISTS (SELECT FROM pg_class c
                                           WHERE c.oid = t.typrelid AND c.relkind = 'c'))) LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO %I', item.name, {role_literal});
  END LOOP;
END $$;
"""  # noqa: S608 - identifiers checked and quoted; no input reaches it otherwise


def tenant_role_sql(name: str, knowledge: str = KNOWLEDGE_SCHEMA) -> str:
    """The statements that give tenant ``name`` a role of its own: a login role (its password
    or certificate is the operator's to set) that owns the tenant's schema and its job
    queue's schema (:func:`appliance.tenancy.queue_schema`) and everything in them, may read
    the shared knowledge and nothing else of the database (no other tenant's schemas, no
    other queue). Run by the role that owns the stores (it is made a member of the tenant's
    role so as to hand the schemas over, and keeps reaching them); re-running it changes
    nothing."""
    schema, queue, role = tenancy.pg_schema(name), tenancy.queue_schema(name), tenant_role(name)
    q = tenancy.quote_identifier
    role_literal = f"'{role}'"  # a name checked by tenancy.check_name
    return f"""\
-- tenant {name}: role {role}, schema {schema}, queue {queue}
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {role_literal}) THEN
    CREATE ROLE {q(role)} LOGIN;
  END IF;
END $$;
GRANT {q(role)} TO CURRENT_USER;
{_owned_by(schema, role)}{_owned_by(queue, role)}CREATE SCHEMA IF NOT EXISTS {q(knowledge)};
GRANT USAGE ON SCHEMA {q(knowledge)} TO {q(role)};
GRANT SELECT ON ALL TABLES IN SCHEMA {q(knowledge)} TO {q(role)};
ALTER DEFAULT PRIVILEGES IN SCHEMA {q(knowledge)} GRANT SELECT ON TABLES TO {q(role)};
"""


@dataclass(frozen=True, slots=True)
class TenantRole:
    tenant: str
    schema: str
    queue_schema: str
    role: str
    url: str  # what the tenant's processes connect with (no password)
    sql: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "schema": self.schema,
            "queueSchema": self.queue_schema,
            "role": self.role,
            "url": self.url,
            "sql": self.sql,
        }


def tenant_roles(url: str, names: Sequence[str]) -> list[TenantRole]:
    """The role of each tenant of ``names``, in the database at ``url``."""
    return [
        TenantRole(
            n,
            tenancy.pg_schema(n),
            tenancy.queue_schema(n),
            tenant_role(n),
            tenant_url(url, n),
            tenant_role_sql(n),
        )
        for n in names
    ]


def apply_tenant_roles(home: Home, url: str, roles: Sequence[TenantRole]) -> None:
    """Run the roles' statements in the database at ``url`` (one transaction: every tenant's
    rights or none), then record each tenant's own URL as its ``databaseUrl``, so its
    processes connect as its role."""
    with (
        PostgresDatabase.connect(url, schema=KNOWLEDGE_SCHEMA) as db,
        db.transaction("give the tenants roles of their own") as conn,
    ):
        for role in roles:
            try:
                with db.transaction(f"give tenant {role.tenant} its role"):
                    conn.execute(role.sql)
            except StellaError as e:
                raise MigrateError(
                    f"tenant {role.tenant!r}: {e.message}",
                    hint="the database role of the URL must be allowed to create roles "
                    "(CREATEROLE) and own the stores; or print the statements (without "
                    "--apply) for the database's administrator to run; nothing was changed",
                ) from e
    for role in roles:
        tenant = Home.of(home.base, role.tenant)
        with tenancy.confined(tenant.boundary):
            tenant.write_settings({**tenant.settings(), DATABASE_URL_SETTING: role.url})
