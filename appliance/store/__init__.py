"""The appliance's stores (shared/DESIGN.md §5) and the one place they are opened.

The state store holds what the appliance decided and about what: images, scans, findings, VEX,
verdicts and the audit log; the knowledge store holds the imported knowledge snapshots. Each
store is a module here that owns its tables through a :class:`~appliance.store.db.Schema`;
only these modules import ``sqlite3`` or ``psycopg`` (``scripts/check_layers.py``).

Where they live is decided here and nowhere else (:func:`open_state`, :func:`open_knowledge`):
by default in the home, as the SQLite files ``state.db`` and ``knowledge.db`` (the embedded
mode); with a PostgreSQL URL in ``STELLA_DATABASE_URL`` (or, failing that, the home's
``databaseUrl`` setting, which ``stella migrate`` records), in the schemas ``state`` and
``knowledge`` of that database (docs/scale-out.md). Keys, the OCI layout, trust roots and the
transparency log files stay in the home either way; a shared state records every home's log
key (:mod:`appliance.store.logs`), so each home knows the others' logs (:func:`known_logs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from appliance import tlog
from appliance.home import Home
from appliance.home import database_url as database_url  # re-exported: the stores open by it
from appliance.store.audit import AuditAction, AuditLog, AuditRecord, os_actor
from appliance.store.db import Database, DatabaseError, SqliteDatabase
from appliance.store.logs import LogTable, RecordedLog
from bundles import __version__
from bundles.tlog.entry import log_id
from bundles.tlog.note import Verifier

if TYPE_CHECKING:
    from appliance.store.knowledge import KnowledgeStore

STATE_SCHEMA: Final = "state"
KNOWLEDGE_SCHEMA: Final = "knowledge"


def _postgres(url: str, schema: str) -> Database:
    from appliance.store.postgres import PostgresDatabase  # only a scale-out home needs psycopg

    return PostgresDatabase.connect(url, schema=schema)


def open_state(home: Home, schema: str | None = None) -> Database:
    """Open the home's state store (the home must have been created by ``stella init``).

    ``schema`` names the PostgreSQL schema the state lives in: by default the tenant's own
    (``tenant_<name>``, :attr:`Home.pg_schema`), or ``state`` for the home itself, so that
    the state stores of every tenant share one database; it is ignored in the embedded mode,
    where the state is the file ``state.db`` of ``home`` (a tenant's own directory)."""
    home = home.require()
    url = database_url(home)
    if url is None:
        return SqliteDatabase.open(home.state_db)
    return _postgres(url, schema or home.pg_schema or STATE_SCHEMA)


def open_knowledge(home: Home, *, own: bool = False) -> KnowledgeStore:
    """Open the knowledge store the home reads (creating its tables when new), or with
    ``own`` the one it writes when it imports a bundle.

    A tenant reads the shared store (read only) until it imports a bundle of its own
    (docs/scale-out.md, "Tenants"). On PostgreSQL every tenant reads the shared ``knowledge``
    schema, and only the home itself imports into it."""
    from appliance.store.knowledge import KnowledgeStore

    home = home.require()
    url = database_url(home)
    db: Database
    if url is None:
        db = SqliteDatabase.open(home.own_knowledge_db if own else home.knowledge_db)
    elif own and home.tenant is not None:
        raise DatabaseError(
            f"tenant {home.tenant}: on PostgreSQL the knowledge is shared; a tenant cannot "
            f"import a bundle of its own",
            hint="import it as the home's administrator (without --tenant); every tenant "
            "then reads it",
        )
    else:
        db = _postgres(url, KNOWLEDGE_SCHEMA)
    try:
        return KnowledgeStore(db)
    except BaseException:
        db.close()
        raise


def has_knowledge(home: Home) -> bool:
    """Whether the knowledge store may hold anything: in the embedded mode, whether
    ``knowledge.db`` exists (a read-only command does not create it); a PostgreSQL store
    always answers (empty when nothing was imported)."""
    return database_url(home) is not None or home.knowledge_db.is_file()


def has_own_knowledge(home: Home) -> bool:
    """Whether the home (or tenant) has a knowledge store of its own: a tenant on the shared
    knowledge has none until its first import (never, on PostgreSQL)."""
    if database_url(home) is not None:
        return home.tenant is None
    return home.own_knowledge_db.is_file()


def has_state(home: Home) -> bool:
    """Whether the state store may hold anything (see :func:`has_knowledge`)."""
    return database_url(home) is not None or home.state_db.is_file()


def open_knowledge_if_any(home: Home) -> KnowledgeStore | None:
    """The knowledge store, or None when :func:`has_knowledge` says there is none."""
    return open_knowledge(home) if has_knowledge(home) else None


_LOGGED: Final = frozenset({AuditAction.IMPORT, AuditAction.IMPORT_REFUSED})


def record_decision(
    home: Home,
    action: AuditAction,
    subject: str,
    *,
    command: str,
    time: datetime,
    inputs: Mapping[str, Any],
    result: Mapping[str, Any],
    rule_digest: str | None = None,
) -> AuditRecord:
    """Append one record to the home's audit log, signed with the appliance key. An import
    decision (accepted or refused) also puts the signed audit head it produced into the
    transparency log, so it is tamper-evident beyond the appliance's own database."""
    key = home.signing_key()
    with open_state(home) as db:
        log = AuditLog(db, key=key)
        record = log.append(
            action,
            subject,
            actor=os_actor(command),
            time=time,
            inputs=inputs,
            versions={"stella": __version__},
            result=result,
            rule_digest=rule_digest,
        )
        head = log.head()
    if action in _LOGGED and head is not None and head.seq == record.seq:
        tlog.log_envelope(home, head.envelope, {key.keyid: key.public_key})
    return record


class _HomeLogs:
    """:class:`appliance.tlog.SharedLogs` on the state stores: a home whose state is in
    PostgreSQL records its log there (once per process and log)."""

    def __init__(self) -> None:
        self._recorded: set[tuple[str, str, str]] = set()

    def record(self, home: Home, url: str, log: Verifier, started: str) -> None:
        done = (url, home.pg_schema or STATE_SCHEMA, log.vkey())
        if done in self._recorded:
            return
        with open_state(home) as db:
            LogTable(db).record(log, started)
        self._recorded.add(done)


tlog.share_logs_with(_HomeLogs())


def recorded_logs(home: Home) -> list[RecordedLog]:
    """The logs the home's shared state records (every home's on it); none when embedded."""
    if database_url(home) is None:
        return []
    with open_state(home) as db:
        return LogTable(db).logs()


def known_logs(home: Home) -> list[Verifier]:
    """The transparency logs a home trusts: its own (current and frozen shards), and on a
    shared state every log the state records (the other homes', docs/scale-out.md)."""
    own = tlog.trusted_logs(home)
    ids = {log_id(v) for v in own}
    return own + [r.log for r in recorded_logs(home) if log_id(r.log) not in ids]
