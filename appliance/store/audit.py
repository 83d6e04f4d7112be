"""The appliance's tamper-evident audit log (shared/DESIGN.md invariant 5).

Every decision (an import or a refused import, a scan, a VEX statement or its revocation, a
gate verdict, a trust change, a snapshot activation) is appended as one :class:`AuditRecord`:
who (actor), when (time, always handed in by the caller, never read from a clock here), what
(action, subject), from what (inputs by digest, engine versions, rule digest) and with what
outcome (result). Each record carries the hash of the one before it, so editing, removing or
reordering a record breaks the chain at that record. Removing records from the *end* leaves a
valid shorter chain, so every append also replaces a head checkpoint, ``{seq, hash, time}``
signed by the appliance key in a DSSE envelope, in the same transaction. The threat model
(what this detects, and what it cannot) is in ``docs/audit-log.md``.

Records live in ``state.db`` (tables ``audit_log`` and ``audit_head``). Triggers refuse UPDATE
and DELETE on ``audit_log`` so no code path can rewrite history by mistake; they are no defence
against someone editing the file, which is what :meth:`AuditLog.verify` is for.
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from appliance import tenancy
from appliance.store.db import Connection, Database, Schema, StoreError
from bundles import canonical, dsse, rfc3339
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, DigestError, SignatureError, StellaError
from bundles.keys import PublicKey
from bundles.signer import Signer

LOG_NAME: Final = "stella-ops audit log v1"
GENESIS: Final = str(Digest.of_bytes(LOG_NAME.encode("utf-8")))
"""The ``prev`` of record 1: the SHA-256 of the log's name, so a chain cannot be passed off
as the continuation of another kind of log."""

HEAD_PAYLOAD_TYPE: Final = "application/vnd.stella-ops.audit-head.v1+json"
HEAD_LIMIT: Final = 64 << 10
"""Size limit for a head checkpoint read from a file (64 KiB; a real one is under 1 KiB)."""

_ACTION_FILTER = re.compile(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*")

SCHEMA: Final = Schema(
    "audit",
    (
        """
        CREATE TABLE audit_log (
            pos INTEGER PRIMARY KEY,          -- storage order; the chain is walked in it
            seq INTEGER NOT NULL UNIQUE,      -- 1..n, hashed; must equal pos in an intact log
            time TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            subject TEXT NOT NULL,
            inputs TEXT NOT NULL,             -- canonical JSON object
            versions TEXT NOT NULL,           -- canonical JSON object
            rule_digest TEXT,
            result TEXT NOT NULL,             -- canonical JSON object
            prev TEXT NOT NULL,
            hash TEXT NOT NULL
        ) STRICT;
        CREATE INDEX audit_log_action ON audit_log (action);
        CREATE INDEX audit_log_time ON audit_log (time);
        CREATE INDEX audit_log_subject ON audit_log (subject);
        CREATE TABLE audit_head (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            envelope BLOB NOT NULL            -- DSSE envelope over {log, seq, hash, time}
        ) STRICT;
        CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """,
    ),
    postgres=(
        """
        CREATE TABLE audit_log (
            pos BIGINT PRIMARY KEY,
            seq BIGINT NOT NULL UNIQUE,
            time TEXT COLLATE "C" NOT NULL,
            actor TEXT COLLATE "C" NOT NULL,
            action TEXT COLLATE "C" NOT NULL,
            subject TEXT COLLATE "C" NOT NULL,
            inputs TEXT COLLATE "C" NOT NULL,
            versions TEXT COLLATE "C" NOT NULL,
            rule_digest TEXT COLLATE "C",
            result TEXT COLLATE "C" NOT NULL,
            prev TEXT COLLATE "C" NOT NULL,
            hash TEXT COLLATE "C" NOT NULL
        );
        CREATE INDEX audit_log_action ON audit_log (action);
        CREATE INDEX audit_log_time ON audit_log (time);
        CREATE INDEX audit_log_subject ON audit_log (subject);
        CREATE TABLE audit_head (
            id BIGINT PRIMARY KEY CHECK (id = 1),
            envelope BYTEA NOT NULL
        );
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
        CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
        """,
    ),
)


class AuditAction(StrEnum):
    """What a record is about. New actions are added here; records with actions this
    version does not know (written by a newer one) are still listed and verified."""

    IMPORT = "import"
    IMPORT_REFUSED = "import.refused"
    SNAPSHOT_ACTIVATE = "snapshot.activate"
    SNAPSHOT_PRUNE = "snapshot.prune"
    IMAGE_LOAD = "image.load"
    IMAGE_REMOVE = "image.remove"
    SCAN = "scan"
    VEX_ADD = "vex.add"
    VEX_REVOKE = "vex.revoke"
    VEX_IMPORT = "vex.import"
    GATE = "gate"
    RESCAN = "rescan"
    TRUST_ADD = "trust.add"
    TRUST_ROTATE = "trust.rotate"
    TRUST_REMOVE = "trust.remove"
    PUSH = "push"
    GC = "gc"
    KEY_ROTATE = "key.rotate"
    KEY_SWITCH = "key.switch"
    KEY_REVOKE = "key.revoke"


class AuditError(StoreError):
    """The audit log cannot be written or read as asked."""


class AuditKeyError(AuditError):
    """An append was attempted without the appliance signing key."""


class AuditTamperedError(AuditError):
    """Verification found the log or its head checkpoint altered."""


class ProblemKind(StrEnum):
    """Why verification failed, one value per distinct cause."""

    MALFORMED = "malformed"  # a stored field is not what the writer stores
    SEQUENCE = "sequence"  # a record was removed or reordered
    LINK = "link"  # prev does not match the record before
    HASH = "hash"  # a record's content was edited
    HEAD_MISSING = "head-missing"
    HEAD_MALFORMED = "head-malformed"
    HEAD_SIGNATURE = "head-signature"  # the checkpoint was edited
    HEAD_KEY = "head-key"  # the checkpoint was signed by another key
    TRUNCATED = "truncated"  # records removed from the end
    UNANCHORED = "unanchored"  # records appended without re-signing the head
    HEAD_HASH = "head-hash"  # the last record was replaced
    ANCHOR = "anchor"  # the log no longer contains an exported checkpoint


def format_time(time: datetime) -> str:
    """RFC 3339 UTC to the second (``2026-11-23T06:24:29Z``): one fixed width, so stored
    times sort as text. Order within a second is given by ``seq``."""
    if time.tzinfo is None or time.utcoffset() is None:
        raise AuditError(
            f"audit time {time.isoformat()} has no time zone",
            hint="pass an aware datetime, e.g. datetime.now(UTC)",
        )
    return rfc3339.format_time(time)


def parse_time(text: str, *, where: str = "time") -> datetime:
    """Parse an RFC 3339 time by :mod:`bundles.rfc3339`'s rules, as given on a command line."""
    try:
        return rfc3339.parse_time(text, where=where)
    except rfc3339.TimeFormatError as e:
        raise AuditError(e.message, hint=e.hint) from e


def os_actor(command: str) -> str:
    """The actor of a command run from a shell: the OS user and the command, e.g.
    ``alice (stella gate)``, or ``alice (stella --tenant acme gate)`` in a process acting for
    tenant ``acme``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no passwd entry and no LOGNAME, as in some containers
        user = f"uid {os.getuid()}"
    tenant = tenancy.current_tenant()  # the tenant this process acts for, named in every record
    if tenant is not None:
        return f"{user} (stella --tenant {tenant} {command})"
    return f"{user} (stella {command})"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the log. ``hash`` is the SHA-256 of the canonical JSON of :meth:`body`."""

    seq: int
    time: str
    actor: str
    action: str
    subject: str
    inputs: Mapping[str, Any]
    versions: Mapping[str, Any]
    rule_digest: str | None
    result: Mapping[str, Any]
    prev: str
    hash: str

    def body(self) -> dict[str, Any]:
        """Every field but ``hash``: what the hash covers."""
        return {
            "seq": self.seq,
            "time": self.time,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "inputs": dict(self.inputs),
            "versions": dict(self.versions),
            "ruleDigest": self.rule_digest,
            "result": dict(self.result),
            "prev": self.prev,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.body(), "hash": self.hash}

    @staticmethod
    def hash_of(body: Mapping[str, Any]) -> str:
        return str(canonical.digest(dict(body)))


@dataclass(frozen=True, slots=True)
class AuditHead:
    """A verified head checkpoint: the log had ``seq`` records, the last one hashing to
    ``hash``, at ``time``. ``envelope`` is what was signed, kept byte for byte for export."""

    seq: int
    hash: str
    time: str
    keyids: tuple[str, ...]
    envelope: dsse.Envelope = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "time": self.time, "keyids": list(self.keyids)}

    def to_json(self) -> bytes:
        """The DSSE envelope, for export to an auditor (``stella audit head --out``)."""
        return self.envelope.to_json()

    @classmethod
    def from_envelope(
        cls, envelope: dsse.Envelope, key: PublicKey, *, source: str = "head checkpoint"
    ) -> AuditHead:
        """Verify ``envelope`` with the appliance key and read its checkpoint; raises
        :class:`HeadError` naming the kind of failure."""
        try:
            verified = dsse.verify(envelope, [key], payload_type=HEAD_PAYLOAD_TYPE)
        except dsse.UntrustedKeyError as e:
            signers = ", ".join(s.keyid[:16] or "(no keyid)" for s in envelope.signatures)
            raise HeadError(
                ProblemKind.HEAD_KEY,
                f"{source} is signed by key {signers}, not the appliance key {key.keyid[:16]} "
                "(it was re-signed by another key)",
            ) from e
        except dsse.InvalidSignatureError as e:
            raise HeadError(
                ProblemKind.HEAD_SIGNATURE,
                f"{source} signature is invalid (the checkpoint was edited after signing)",
            ) from e
        except SignatureError as e:
            raise HeadError(ProblemKind.HEAD_MALFORMED, f"{source}: {e.message}") from e
        try:
            payload = canonical.loads(verified.payload, limit=HEAD_LIMIT, source=source)
        except StellaError as e:
            raise HeadError(ProblemKind.HEAD_MALFORMED, e.message) from e
        if not isinstance(payload, dict) or payload.get("log") != LOG_NAME:
            raise HeadError(
                ProblemKind.HEAD_MALFORMED, f"{source} is not a checkpoint of the {LOG_NAME}"
            )
        seq, digest, time = payload.get("seq"), payload.get("hash"), payload.get("time")
        if not (
            isinstance(seq, int)
            and not isinstance(seq, bool)
            and seq >= 1
            and isinstance(digest, str)
            and isinstance(time, str)
        ):
            raise HeadError(
                ProblemKind.HEAD_MALFORMED,
                f"{source}: fields seq (integer >= 1), hash and time (strings) are required",
            )
        return cls(seq=seq, hash=digest, time=time, keyids=verified.keyids, envelope=envelope)

    @classmethod
    def load(cls, path: Path, key: PublicKey) -> AuditHead:
        """Read and verify an exported head checkpoint file."""
        try:
            data = path.read_bytes()
        except OSError as e:
            raise AuditError(f"{path}: cannot read head checkpoint: {e.strerror}") from e
        try:
            envelope = dsse.Envelope.from_json(data, limit=HEAD_LIMIT, source=str(path))
        except SignatureError as e:
            raise HeadError(ProblemKind.HEAD_MALFORMED, e.message) from e
        return cls.from_envelope(envelope, key, source=str(path))


class HeadError(AuditTamperedError):
    """A head checkpoint does not verify; ``kind`` says how."""

    def __init__(self, kind: ProblemKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """The first thing verification found wrong; ``seq`` is the bad record, when one is."""

    kind: ProblemKind
    seq: int | None
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": str(self.kind), "seq": self.seq, "message": self.message}


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """The outcome of :meth:`AuditLog.verify`.

    ``records`` is how many records the log holds; ``verified`` how many, from the first,
    chained correctly before the first problem (all of them when ``ok``).
    """

    records: int
    verified: int
    head: AuditHead | None
    anchor: AuditHead | None
    problem: AuditProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "records": self.records,
            "verified": self.verified,
            "head": self.head.to_dict() if self.head else None,
            "anchor": self.anchor.to_dict() if self.anchor else None,
            "problem": self.problem.to_dict() if self.problem else None,
        }


def _json_object(value: Mapping[str, Any] | None, name: str) -> str:
    if value is None:
        value = {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise AuditError(f"audit field {name!r} must be a JSON object with string keys")
    try:
        return canonical.dumps(dict(value)).decode("utf-8")
    except CanonicalJSONError as e:
        raise AuditError(f"audit field {name!r}: {e.message}") from e


def _required_text(value: str, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AuditError(f"audit field {name!r} must be a non-empty string, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class AuditPage:
    """One page of the log by sequence number, oldest first, and where it lies: how many
    records the log holds and how many are newer and older than the page."""

    records: tuple[AuditRecord, ...]
    total: int
    newer: int
    older: int


class AuditLog:
    """The audit log in one database.

    ``key`` (the appliance's private key) is needed to append; ``public_key`` (defaulting to
    ``key``'s) to verify the head checkpoint. Opening creates the tables when missing.
    """

    __slots__ = ("db", "key", "public_key")

    def __init__(
        self, db: Database, *, key: Signer | None = None, public_key: PublicKey | None = None
    ) -> None:
        self.db = db
        self.key = key
        self.public_key = public_key or (key.public_key if key is not None else None)
        db.ensure(SCHEMA)

    def append(
        self,
        action: AuditAction,
        subject: str,
        *,
        actor: str,
        time: datetime,
        inputs: Mapping[str, Any],
        versions: Mapping[str, Any],
        result: Mapping[str, Any],
        rule_digest: Digest | str | None = None,
    ) -> AuditRecord:
        """Append one record and re-sign the head checkpoint, atomically.

        Safe under concurrent processes (the write lock is taken before the last record is
        read). Called inside :meth:`Database.transaction`, the record commits or rolls back
        with the caller's own change.
        """
        if self.key is None:
            raise AuditKeyError(
                "cannot append to the audit log without the appliance signing key",
                hint="open the audit log with key=Home.signing_key()",
            )
        if not isinstance(action, AuditAction):
            raise AuditError(
                f"audit action {action!r} is not an AuditAction",
                hint=f"use one of: {', '.join(a.value for a in AuditAction)}",
            )
        if rule_digest is not None:
            try:
                rule_digest = str(
                    rule_digest if isinstance(rule_digest, Digest) else Digest.parse(rule_digest)
                )
            except DigestError as e:
                raise AuditError(f"audit field 'rule_digest': {e.message}") from e
        stamp = format_time(time)
        columns = {
            "actor": _required_text(actor, "actor"),
            "subject": _required_text(subject, "subject"),
            "inputs": _json_object(inputs, "inputs"),
            "versions": _json_object(versions, "versions"),
            "result": _json_object(result, "result"),
        }
        with self.db.transaction("append to the audit log") as conn:
            last = conn.execute(
                "SELECT seq, hash FROM audit_log ORDER BY pos DESC LIMIT 1"
            ).fetchone()
            seq, prev = (int(last["seq"]) + 1, str(last["hash"])) if last else (1, GENESIS)
            record = AuditRecord(
                seq=seq,
                time=stamp,
                actor=columns["actor"],
                action=action.value,
                subject=columns["subject"],
                inputs=canonical.loads(columns["inputs"]),
                versions=canonical.loads(columns["versions"]),
                rule_digest=rule_digest,
                result=canonical.loads(columns["result"]),
                prev=prev,
                hash="",
            )
            digest = AuditRecord.hash_of(record.body())
            conn.execute(
                "INSERT INTO audit_log (pos, seq, time, actor, action, subject, inputs, versions,"
                " rule_digest, result, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    seq,
                    seq,
                    stamp,
                    record.actor,
                    record.action,
                    record.subject,
                    columns["inputs"],
                    columns["versions"],
                    rule_digest,
                    columns["result"],
                    prev,
                    digest,
                ),
            )
            payload = {"log": LOG_NAME, "seq": seq, "hash": digest, "time": stamp}
            envelope = dsse.sign(canonical.dumps(payload), HEAD_PAYLOAD_TYPE, self.key)
            conn.execute(
                "INSERT INTO audit_head (id, envelope) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET envelope = excluded.envelope",
                (envelope.to_json(),),
            )
        return replace(record, hash=digest)

    def count(self) -> int:
        return int(self.db.query("SELECT COUNT(*) FROM audit_log")[0][0])

    def records(
        self,
        *,
        action: str | None = None,
        since: datetime | None = None,
        subject: str | None = None,
        limit: int | None = None,
    ) -> list[AuditRecord]:
        """Records oldest first. ``action`` matches that action and its sub-actions
        (``vex`` matches ``vex.add`` and ``vex.revoke``); ``since`` keeps records at or after
        that time; ``limit`` keeps the newest ``limit`` of what matches.

        Records are returned as stored; only :meth:`verify` says whether they are genuine.
        """
        where: list[str] = []
        params: list[Any] = []
        if action is not None:
            if not _ACTION_FILTER.fullmatch(action):
                raise AuditError(
                    f"action filter {action!r} is not an action name",
                    hint=f"use one of: {', '.join(a.value for a in AuditAction)}",
                )
            where.append("(action = ? OR action LIKE ?)")
            params += [action, action + ".%"]
        if since is not None:
            where.append("time >= ?")
            params.append(format_time(since))
        if subject is not None:
            where.append("subject = ?")
            params.append(subject)
        if limit is not None and limit < 0:
            raise AuditError(f"limit must not be negative, got {limit}")
        bound = ""
        if limit is not None:
            bound = " LIMIT ?"
            params.append(limit)
        conditions = " AND ".join(where) or "TRUE"
        # Only the constant fragments above are joined into the statement; values are bound.
        sql = (
            "SELECT * FROM (SELECT * FROM audit_log WHERE "  # noqa: S608
            + conditions
            + " ORDER BY pos DESC"
            + bound
            + ") AS newest ORDER BY pos"
        )
        return [self._record(row) for row in self.db.query(sql, params, what="read the audit log")]

    def page(self, *, before: int | None = None, after: int | None = None, limit: int) -> AuditPage:
        """Up to ``limit`` records, keyset-paged on ``seq`` so a page deep in a long log costs
        what the first does: the newest records before sequence number ``before``, or the
        oldest after ``after``, or (neither) the newest of all. A page after ``after`` that
        would come up short is the newest page instead, so paging back towards the head
        always shows a full page. Read in one snapshot, so the counts match the records."""
        if before is not None and after is not None:
            raise AuditError("page: give 'before' or 'after', not both")
        if limit < 1:
            raise AuditError(f"page: limit must be at least 1, got {limit}")
        newest = "SELECT * FROM audit_log ORDER BY seq DESC LIMIT ?"
        with self.db.snapshot("read a page of the audit log") as conn:
            if before is not None:
                rows = conn.execute(
                    "SELECT * FROM audit_log WHERE seq < ? ORDER BY seq DESC LIMIT ?",
                    (before, limit),
                ).fetchall()[::-1]
            elif after is not None:
                rows = conn.execute(
                    "SELECT * FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
                ).fetchall()
                if len(rows) < limit:
                    rows = conn.execute(newest, (limit,)).fetchall()[::-1]
            else:
                rows = conn.execute(newest, (limit,)).fetchall()[::-1]
            total = int(conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])
            if rows:
                low, high = int(rows[0]["seq"]), int(rows[-1]["seq"])
                count = "SELECT COUNT(*) FROM audit_log WHERE seq "
                newer = int(conn.execute(count + "> ?", (high,)).fetchone()[0])
                older = int(conn.execute(count + "< ?", (low,)).fetchone()[0])
            else:
                newer, older = total, 0
        return AuditPage(tuple(self._record(row) for row in rows), total, newer, older)

    def _record(self, row: Any) -> AuditRecord:
        fields: dict[str, Any] = {}
        for name in ("inputs", "versions", "result"):
            try:
                value = canonical.loads(row[name], source=f"record {row['seq']} field {name}")
            except StellaError as e:
                raise AuditError(e.message, hint="run 'stella audit verify'") from e
            fields[name] = value
        return AuditRecord(
            seq=row["seq"],
            time=row["time"],
            actor=row["actor"],
            action=row["action"],
            subject=row["subject"],
            inputs=fields["inputs"],
            versions=fields["versions"],
            rule_digest=row["rule_digest"],
            result=fields["result"],
            prev=row["prev"],
            hash=row["hash"],
        )

    def _require_public_key(self) -> PublicKey:
        if self.public_key is None:
            raise AuditKeyError(
                "cannot check the audit head checkpoint without the appliance public key",
                hint="open the audit log with public_key=Home.public_key()",
            )
        return self.public_key

    def head(self) -> AuditHead | None:
        """The verified head checkpoint, or None for an empty log that never had one.
        Raises :class:`HeadError` when it does not verify."""
        key = self._require_public_key()
        rows = self.db.query("SELECT envelope FROM audit_head WHERE id = 1")
        return self._head(rows[0]["envelope"], key) if rows else None

    def _head(self, data: Any, key: PublicKey) -> AuditHead:
        source = "head checkpoint"
        if not isinstance(data, bytes):
            raise HeadError(ProblemKind.HEAD_MALFORMED, f"{source} is not stored as bytes")
        try:
            envelope = dsse.Envelope.from_json(data, limit=HEAD_LIMIT, source=source)
        except SignatureError as e:
            raise HeadError(ProblemKind.HEAD_MALFORMED, e.message) from e
        return AuditHead.from_envelope(envelope, key, source=source)

    def verify(self, *, anchor: AuditHead | None = None) -> AuditVerification:
        """Walk the chain in storage order and check it against the signed head checkpoint
        (and, when given, a checkpoint exported earlier): the first problem is reported, with
        the record it concerns. Reads one consistent snapshot of the database."""
        key = self._require_public_key()
        with self.db.snapshot("verify the audit log") as conn:
            count = int(conn.execute("SELECT COUNT(*) FROM audit_log").fetchone()[0])
            head_row = conn.execute("SELECT envelope FROM audit_head WHERE id = 1").fetchone()
            verified, hashes, problem = self._walk(conn, anchor)

        def result(
            problem: AuditProblem | None, head: AuditHead | None = None
        ) -> AuditVerification:
            return AuditVerification(
                records=count, verified=verified, head=head, anchor=anchor, problem=problem
            )

        if problem is not None:
            return result(problem)
        if head_row is None:
            if count == 0:
                return result(_anchor_problem(anchor, count, hashes))
            return result(
                AuditProblem(
                    ProblemKind.HEAD_MISSING,
                    None,
                    f"head checkpoint is missing, log has {count} records "
                    "(the checkpoint was deleted)",
                )
            )
        try:
            head = self._head(head_row["envelope"], key)
        except HeadError as e:
            return result(AuditProblem(e.kind, None, e.message))
        if head.seq > count:
            return result(
                AuditProblem(
                    ProblemKind.TRUNCATED,
                    count + 1,
                    f"head checkpoint says {head.seq} records, log has {count} "
                    "(records removed from the end)",
                ),
                head,
            )
        if head.seq < count:
            return result(
                AuditProblem(
                    ProblemKind.UNANCHORED,
                    head.seq + 1,
                    f"log has {count} records, head checkpoint says {head.seq} "
                    "(records added without the appliance key)",
                ),
                head,
            )
        if hashes.get(head.seq) != head.hash:
            return result(
                AuditProblem(
                    ProblemKind.HEAD_HASH,
                    head.seq,
                    f"record {head.seq}: hash differs from the head checkpoint "
                    "(the last record was replaced)",
                ),
                head,
            )
        return result(_anchor_problem(anchor, count, hashes), head)

    def _walk(
        self, conn: Connection, anchor: AuditHead | None
    ) -> tuple[int, dict[int, str], AuditProblem | None]:
        """Check every record in storage order; returns how many chained correctly, the
        hashes the head and anchor checks need, and the first problem."""
        keep: set[int] = {anchor.seq} if anchor is not None else set()
        hashes: dict[int, str] = {}
        prev = GENESIS
        expected = 0
        for row in conn.execute("SELECT * FROM audit_log ORDER BY pos"):
            expected += 1
            found = row["seq"]
            if found != expected:
                return (
                    expected - 1,
                    hashes,
                    AuditProblem(
                        ProblemKind.SEQUENCE,
                        expected,
                        f"record {expected}: seq {found} found (a record was removed or reordered)",
                    ),
                )
            body: dict[str, Any] = {
                "seq": found,
                "time": row["time"],
                "actor": row["actor"],
                "action": row["action"],
                "subject": row["subject"],
                "ruleDigest": row["rule_digest"],
                "prev": row["prev"],
            }
            for name in ("inputs", "versions", "result"):
                text = row[name]
                parsed = _canonical_object(text)
                if parsed is None:
                    return (
                        expected - 1,
                        hashes,
                        AuditProblem(
                            ProblemKind.MALFORMED,
                            expected,
                            f"record {expected}: field {name} is not a canonical JSON object "
                            "(edited)",
                        ),
                    )
                body[name] = parsed
            if row["prev"] != prev:
                before = "the log's genesis" if expected == 1 else f"record {expected - 1}"
                return (
                    expected - 1,
                    hashes,
                    AuditProblem(
                        ProblemKind.LINK,
                        expected,
                        f"record {expected}: prev does not match the hash of {before} "
                        "(a record before it was edited or replaced)",
                    ),
                )
            try:
                digest = AuditRecord.hash_of(body)
            except CanonicalJSONError:
                digest = ""
            if digest != row["hash"]:
                return (
                    expected - 1,
                    hashes,
                    AuditProblem(
                        ProblemKind.HASH, expected, f"record {expected}: hash mismatch (edited)"
                    ),
                )
            prev = digest
            if expected in keep:
                hashes[expected] = digest
        if expected:
            hashes[expected] = prev
        return expected, hashes, None


def _anchor_problem(
    anchor: AuditHead | None, count: int, hashes: Mapping[int, str]
) -> AuditProblem | None:
    """Whether the log still holds the state an exported checkpoint vouched for."""
    if anchor is None:
        return None
    if anchor.seq > count:
        return AuditProblem(
            ProblemKind.ANCHOR,
            count + 1,
            f"exported checkpoint of {anchor.time} says {anchor.seq} records, "
            f"log has {count} (records removed since it was exported)",
        )
    if hashes.get(anchor.seq) != anchor.hash:
        return AuditProblem(
            ProblemKind.ANCHOR,
            anchor.seq,
            f"record {anchor.seq}: hash differs from the exported checkpoint of "
            f"{anchor.time} (the log was rewritten since it was exported)",
        )
    return None


def _canonical_object(text: Any) -> dict[str, Any] | None:
    """The object ``text`` encodes, when it is exactly the canonical JSON of an object."""
    if not isinstance(text, str):
        return None
    data = text.encode("utf-8")
    try:
        value = canonical.loads(data)
    except StellaError:
        return None
    if not isinstance(value, dict) or canonical.dumps(value) != data:
        return None
    return value
