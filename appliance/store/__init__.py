"""The appliance's SQLite stores (shared/DESIGN.md §5).

``state.db`` holds what the appliance decided and about what: images, scans, findings, VEX,
verdicts and the audit log; ``knowledge.db`` holds the imported knowledge snapshots. Each store
is a module here that owns its tables through a :class:`~appliance.store.db.Schema`; only these
modules import ``sqlite3`` (``scripts/check_layers.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from appliance import tlog
from appliance.home import Home
from appliance.store.audit import AuditAction, AuditLog, AuditRecord, os_actor
from appliance.store.db import Database
from bundles import __version__


def open_state(home: Home) -> Database:
    """Open the home's ``state.db`` (the home must have been created by ``stella init``)."""
    return Database.open(home.require().state_db)


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
