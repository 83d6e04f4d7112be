"""``state.db`` tables for VEX: every signed VEX document the appliance holds, and its
statements indexed by vulnerability.

Documents arrive three ways: authored by an operator (``stella vex add``/``revoke``),
imported from a file (``stella vex import``), or carried in the active knowledge snapshot (read
from ``knowledge.db`` at gate time, not copied here). Each stored document keeps the exact DSSE
envelope that signed it. Nothing is ever updated or deleted (triggers refuse it): a revocation
is a new statement that supersedes the old one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from appliance.store.db import Database, Schema, StoreError
from bundles import canonical

SCHEMA: Final = Schema(
    "vex",
    (
        """
        CREATE TABLE vex_documents (
            digest TEXT PRIMARY KEY,          -- sha256 of the canonical OpenVEX document
            doc_id TEXT NOT NULL,
            origin TEXT NOT NULL,
            subject TEXT NOT NULL,            -- image manifest digest, '' when none
            envelope BLOB NOT NULL,           -- the DSSE envelope that signed it, as written
            added TEXT NOT NULL,
            actor TEXT NOT NULL
        ) STRICT;
        CREATE TABLE vex_statements (
            key TEXT PRIMARY KEY,             -- document @id '#' statement index
            document TEXT NOT NULL REFERENCES vex_documents(digest),
            vulnerability TEXT NOT NULL,      -- upper case
            status TEXT NOT NULL,
            timestamp TEXT NOT NULL,
            expires TEXT,
            revokes TEXT NOT NULL,
            body TEXT NOT NULL                -- canonical JSON of the statement
        ) STRICT;
        CREATE INDEX vex_statements_vulnerability ON vex_statements (vulnerability);
        CREATE TRIGGER vex_documents_no_update BEFORE UPDATE ON vex_documents
        BEGIN SELECT RAISE(ABORT, 'VEX documents are never changed; add a new statement'); END;
        CREATE TRIGGER vex_documents_no_delete BEFORE DELETE ON vex_documents
        BEGIN SELECT RAISE(ABORT, 'VEX documents are never deleted; revoke instead'); END;
        CREATE TRIGGER vex_statements_no_update BEFORE UPDATE ON vex_statements
        BEGIN SELECT RAISE(ABORT, 'VEX statements are never changed; add a new statement'); END;
        CREATE TRIGGER vex_statements_no_delete BEFORE DELETE ON vex_statements
        BEGIN SELECT RAISE(ABORT, 'VEX statements are never deleted; revoke instead'); END;
        """,
    ),
    postgres=(
        """
        CREATE TABLE vex_documents (
            digest TEXT COLLATE "C" PRIMARY KEY,
            doc_id TEXT COLLATE "C" NOT NULL,
            origin TEXT COLLATE "C" NOT NULL,
            subject TEXT COLLATE "C" NOT NULL,
            envelope BYTEA NOT NULL,
            added TEXT COLLATE "C" NOT NULL,
            actor TEXT COLLATE "C" NOT NULL
        );
        CREATE TABLE vex_statements (
            key TEXT COLLATE "C" PRIMARY KEY,
            document TEXT COLLATE "C" NOT NULL REFERENCES vex_documents(digest),
            vulnerability TEXT COLLATE "C" NOT NULL,
            status TEXT COLLATE "C" NOT NULL,
            timestamp TEXT COLLATE "C" NOT NULL,
            expires TEXT COLLATE "C",
            revokes TEXT COLLATE "C" NOT NULL,
            body TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX vex_statements_vulnerability ON vex_statements (vulnerability);
        CREATE FUNCTION vex_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$;
        CREATE TRIGGER vex_documents_no_update BEFORE UPDATE ON vex_documents FOR EACH ROW
        EXECUTE FUNCTION vex_refuse('VEX documents are never changed; add a new statement');
        CREATE TRIGGER vex_documents_no_delete BEFORE DELETE ON vex_documents FOR EACH ROW
        EXECUTE FUNCTION vex_refuse('VEX documents are never deleted; revoke instead');
        CREATE TRIGGER vex_statements_no_update BEFORE UPDATE ON vex_statements FOR EACH ROW
        EXECUTE FUNCTION vex_refuse('VEX statements are never changed; add a new statement');
        CREATE TRIGGER vex_statements_no_delete BEFORE DELETE ON vex_statements FOR EACH ROW
        EXECUTE FUNCTION vex_refuse('VEX statements are never deleted; revoke instead');
        CREATE TRIGGER vex_documents_no_truncate BEFORE TRUNCATE ON vex_documents
        EXECUTE FUNCTION vex_refuse('VEX documents are never deleted; revoke instead');
        CREATE TRIGGER vex_statements_no_truncate BEFORE TRUNCATE ON vex_statements
        EXECUTE FUNCTION vex_refuse('VEX statements are never deleted; revoke instead');
        """,
    ),
)


class VexStoreError(StoreError):
    """A VEX document cannot be stored or read."""


@dataclass(frozen=True, slots=True)
class StoredDocument:
    digest: str
    doc_id: str
    origin: str
    subject: str
    envelope: bytes
    added: str
    actor: str


@dataclass(frozen=True, slots=True)
class StatementRow:
    """One statement as stored: the columns it is found by, and its canonical JSON body (what
    :meth:`appliance.vex.model.VexStatement.to_dict` gives; the store never reads it)."""

    key: str
    vulnerability: str
    status: str
    timestamp: str
    expires: str | None
    revokes: str | None
    body: dict[str, Any]


class VexStore:
    """The VEX tables of one open ``state.db``."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure(SCHEMA)

    def add(
        self,
        document: StoredDocument,
        statements: Iterable[StatementRow],
    ) -> bool:
        """Store a document and its statements in one transaction; False when the same
        document (by digest) is already stored."""
        rows = [
            (
                s.key,
                document.digest,
                s.vulnerability.upper(),
                s.status,
                s.timestamp,
                s.expires,
                s.revokes,
                canonical.dumps(s.body).decode("utf-8"),
            )
            for s in statements
        ]
        with self.db.transaction("store a VEX document") as conn:
            found = conn.execute(
                "SELECT 1 FROM vex_documents WHERE digest = ?", (document.digest,)
            ).fetchone()
            if found is not None:
                return False
            clash = [
                r[0]
                for r in rows
                if conn.execute("SELECT 1 FROM vex_statements WHERE key = ?", (r[0],)).fetchone()
            ]
            if clash:
                raise VexStoreError(
                    f"VEX statement {clash[0]} is already stored from another document",
                    hint="give the document a new @id",
                )
            conn.execute(
                "INSERT INTO vex_documents VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    document.digest,
                    document.doc_id,
                    document.origin,
                    document.subject,
                    document.envelope,
                    document.added,
                    document.actor,
                ),
            )
            conn.executemany("INSERT INTO vex_statements VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return True

    def statements(self) -> list[dict[str, Any]]:
        """The body of every stored statement, in key order."""
        rows = self.db.query("SELECT body FROM vex_statements ORDER BY key")
        return [canonical.loads(r[0]) for r in rows]

    def statement(self, key: str) -> dict[str, Any] | None:
        """The body of statement ``key``, if stored."""
        rows = self.db.query("SELECT body FROM vex_statements WHERE key = ?", (key,))
        return canonical.loads(rows[0][0]) if rows else None

    def revoked_by(self, key: str) -> list[str]:
        rows = self.db.query(
            "SELECT key FROM vex_statements WHERE revokes = ? ORDER BY key", (key,)
        )
        return [str(r[0]) for r in rows]

    def document(self, digest: str) -> StoredDocument | None:
        rows = self.db.query("SELECT * FROM vex_documents WHERE digest = ?", (digest,))
        return _document(rows[0]) if rows else None

    def documents(self) -> list[StoredDocument]:
        rows = self.db.query("SELECT * FROM vex_documents ORDER BY added, digest")
        return [_document(r) for r in rows]


def _document(row: Any) -> StoredDocument:
    return StoredDocument(
        digest=str(row["digest"]),
        doc_id=str(row["doc_id"]),
        origin=str(row["origin"]),
        subject=str(row["subject"]),
        envelope=bytes(row["envelope"]),
        added=str(row["added"]),
        actor=str(row["actor"]),
    )
