"""``state.db`` table of gate verdicts: one row per signed RVA, for ``explain``, the TUI and
audits to find the latest verdict of an image without walking the OCI store.

The signed bundle itself lives in the OCI store (by digest); this table is an index of it.
Rows are never changed or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from appliance.store.db import Database, Schema
from bundles import canonical

SCHEMA: Final = Schema(
    "verdicts",
    (
        """
        CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY,
            subject TEXT NOT NULL,            -- image manifest digest
            name TEXT NOT NULL,
            verdict TEXT NOT NULL,
            evaluation_time TEXT NOT NULL,
            policy TEXT NOT NULL,             -- policy bundle digest
            snapshot TEXT,                    -- knowledge snapshot digest
            predicate TEXT NOT NULL,          -- sha256 of the canonical predicate
            bundle TEXT NOT NULL,             -- sha256 of the Sigstore bundle JSON
            referrer TEXT NOT NULL,           -- digest of the OCI referrer manifest
            reason_codes TEXT NOT NULL,       -- canonical JSON array
            audit_seq INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX verdicts_subject ON verdicts (subject, id);
        CREATE TRIGGER verdicts_no_update BEFORE UPDATE ON verdicts
        BEGIN SELECT RAISE(ABORT, 'verdicts are never changed'); END;
        CREATE TRIGGER verdicts_no_delete BEFORE DELETE ON verdicts
        BEGIN SELECT RAISE(ABORT, 'verdicts are never deleted'); END;
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class VerdictRow:
    subject: str
    name: str
    verdict: str
    evaluation_time: str
    policy: str
    snapshot: str | None
    predicate: str
    bundle: str
    referrer: str
    reason_codes: tuple[str, ...]
    audit_seq: int


class VerdictStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure(SCHEMA)

    def add(self, row: VerdictRow) -> int:
        with self.db.transaction("record a verdict") as conn:
            cursor = conn.execute(
                "INSERT INTO verdicts (subject, name, verdict, evaluation_time, policy, snapshot,"
                " predicate, bundle, referrer, reason_codes, audit_seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.subject,
                    row.name,
                    row.verdict,
                    row.evaluation_time,
                    row.policy,
                    row.snapshot,
                    row.predicate,
                    row.bundle,
                    row.referrer,
                    canonical.dumps(list(row.reason_codes)).decode("utf-8"),
                    row.audit_seq,
                ),
            )
            return int(cursor.lastrowid or 0)

    def history(self, subject: str | None = None) -> list[VerdictRow]:
        """Verdicts in the order they were made, of one image or of all."""
        if subject is None:
            rows = self.db.query("SELECT * FROM verdicts ORDER BY id")
        else:
            rows = self.db.query("SELECT * FROM verdicts WHERE subject = ? ORDER BY id", (subject,))
        return [_row(r) for r in rows]

    def latest(self, subject: str) -> VerdictRow | None:
        found = self.history(subject)
        return found[-1] if found else None


def _row(r: Any) -> VerdictRow:
    return VerdictRow(
        subject=str(r["subject"]),
        name=str(r["name"]),
        verdict=str(r["verdict"]),
        evaluation_time=str(r["evaluation_time"]),
        policy=str(r["policy"]),
        snapshot=str(r["snapshot"]) if r["snapshot"] is not None else None,
        predicate=str(r["predicate"]),
        bundle=str(r["bundle"]),
        referrer=str(r["referrer"]),
        reason_codes=tuple(canonical.loads(r["reason_codes"])),
        audit_seq=int(r["audit_seq"]),
    )
