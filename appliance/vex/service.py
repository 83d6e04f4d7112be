"""Author, revoke, import and collect VEX statements: each authored or imported document is
signed with the appliance key (DSSE, in-toto Statement), stored in ``state.db`` and recorded
in the audit log, in that order, so no statement is in force without its audit record's
inputs being kept.

The signed predicate (type :data:`PREDICATE_TYPE`) carries the OpenVEX document unchanged
plus what OpenVEX has no field for: who made it (``origin``), an exception's expiry and the
statement a revocation supersedes.

After a change is recorded, every image in the store that one of its statements names by
digest gets a new OCI referrer: the OpenVEX document of the statements in force for that
image at the change's time, DSSE-signed with the appliance key as cosign attaches
``cosign attest --type openvex`` (:mod:`appliance.vex.export`), so it travels with
``stella push`` and ``stella serve`` answers it (docs/vex.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from appliance import tlog
from appliance.faults import fault
from appliance.home import Home
from appliance.store import open_state
from appliance.store.audit import AuditAction, AuditLog, os_actor
from appliance.store.knowledge import KnowledgeStore
from appliance.store.vex import StatementRow, StoredDocument, VexStore
from appliance.vex import csaf, cyclonedx, export
from appliance.vex.csaf import is_csaf
from appliance.vex.cyclonedx import is_cyclonedx
from appliance.vex.model import (
    Justification,
    Origin,
    Product,
    VexError,
    VexStatement,
    VexStatus,
    format_time,
)
from appliance.vex.openvex import authored_document, statements_of
from appliance.vex.products import ImageIdentity
from bundles import __version__, canonical, limits
from bundles.bounded import read_open_file
from bundles.canonical import kind_of
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError
from bundles.intoto import Statement, Subject, sign_statement
from bundles.limits import Unit
from bundles.oci import OCILayout
from bundles.signer import Signer
from bundles.snapshot import DatasetType

PREDICATE_TYPE: Final = "https://stella-ops.org/attestations/vex/v1"
DOCUMENT_BYTES: Final = limits.cap(
    "vex.document_bytes", 16 << 20, Unit.BYTES, "a VEX document given to 'stella vex import'"
)


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one ``vex add``/``revoke``/``import`` stored: the document digest, its
    statements, the signed envelope, the audit sequence number, and the OpenVEX referrers
    attached to images in the store."""

    document: str
    statements: tuple[VexStatement, ...]
    envelope: bytes
    audit_seq: int
    new: bool
    attached: tuple[export.Attached, ...] = ()


@dataclass(frozen=True, slots=True)
class ImageTarget:
    """The image a statement is about: manifest digest and a purl naming it by digest."""

    digest: Digest
    name: str

    @property
    def purl(self) -> str:
        base = self.name.rsplit("/", 1)[-1].split(":", 1)[0] or "image"
        repository = self.name.split("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        purl = f"pkg:oci/{base.lower()}@{self.digest}"
        if "/" in repository:
            purl += f"?repository_url={repository.lower()}"
        return purl.replace("@sha256:", "@sha256%3A")


def _predicate(
    document: dict[str, Any], origin: Origin, expires: datetime | None, revokes: str
) -> dict[str, Any]:
    return {
        "origin": origin.value,
        "expires": format_time(expires) if expires else None,
        "revokes": revokes,
        "document": document,
    }


def _store(
    home: Home,
    *,
    document: dict[str, Any],
    subject: Subject,
    origin: Origin,
    expires: datetime | None,
    revokes: str,
    action: AuditAction,
    command: str,
    at: datetime,
    source: str,
) -> Recorded:
    statements = statements_of(
        document,
        origin=origin,
        source=source,
        expires={i: expires for i in range(len(document["statements"]))} if expires else None,
        revokes={0: revokes} if revokes else None,
    )
    statement = Statement(
        subjects=(subject,),
        predicate_type=PREDICATE_TYPE,
        predicate=_predicate(document, origin, expires, revokes),
    )
    key = home.signing_key()
    signed = sign_statement(statement, key)
    entry = tlog.log_envelope(home, signed, {key.keyid: key.public_key})  # before it is stored
    envelope = signed.to_json()
    fault("vex.after-sign")
    digest = str(canonical.digest(document))
    with open_state(home) as db:
        store, log = VexStore(db), AuditLog(db, key=key)
        with db.transaction("record a VEX document"):  # the statement and its audit record
            new = store.add(
                StoredDocument(
                    digest=digest,
                    doc_id=str(document["@id"]),
                    origin=origin.value,
                    subject=str(subject.sha256),
                    envelope=envelope,
                    added=format_time(at),
                    actor=os_actor(command),
                ),
                [_row(s) for s in statements],
            )
            fault("vex.before-commit")
            record = log.append(
                action,
                str(subject.sha256),
                actor=os_actor(command),
                time=at,
                inputs={
                    "document": digest,
                    "envelope": str(Digest.of_bytes(envelope)),
                    "tlog": {"logIndex": int(entry["logIndex"]), "log": entry["logId"]["keyId"]},
                },
                versions={"stella": __version__},
                result={
                    "statements": [s.key for s in statements],
                    "status": sorted({s.status.value for s in statements}),
                    "new": new,
                    **({"revokes": revokes} if revokes else {}),
                    **({"expires": format_time(expires)} if expires else {}),
                },
            )
    fault("vex.after-commit")
    attached = attach_openvex(home, statements, at=at, key=key) if new else ()
    return Recorded(digest, statements, envelope, record.seq, new, attached)


def author(home: Home) -> str:
    """The author of the OpenVEX documents this appliance exports."""
    return f"stella-ops appliance (key {home.public_key().keyid[:16]})"


def _image_name(layout: OCILayout, digest: Digest) -> str:
    for tag, descriptor in layout.tags().items():
        if descriptor.digest == digest:
            return tag
    return "image"


def in_force_for(home: Home, image: ImageIdentity | None, at: datetime) -> list[VexStatement]:
    """The statements authored or imported here that are in force at ``at``; with
    ``image``, only those that may apply to it (:func:`export.about_image`)."""
    statements = export.in_force(stored_statements(home), at)
    return export.about_image(statements, image) if image is not None else statements


def attach_openvex(
    home: Home, changed: Sequence[VexStatement], *, at: datetime, key: Signer | None = None
) -> tuple[export.Attached, ...]:
    """Attach the OpenVEX attestation of the statements in force at ``at`` to every image in
    the store that ``changed`` names by digest; images not in the store are left alone."""
    if not (home.oci / "oci-layout").is_file():
        return ()
    layout = OCILayout.open(home.oci)
    out = []
    for digest in export.image_digests(changed):
        subject = export.stored_subject(layout, digest)
        if subject is None:
            continue
        name = _image_name(layout, digest)
        statements = in_force_for(home, ImageIdentity.of(str(digest), names=(name,)), at)
        if not statements:
            continue
        signer = key if key is not None else home.signing_key()
        out.append(
            export.attach(
                layout, subject, name, statements, author=author(home), key=signer, created=at
            )
        )
    return tuple(out)


def add(
    home: Home,
    *,
    vulnerability: str,
    image: ImageTarget,
    components: Sequence[str],
    status: VexStatus,
    justification: Justification | None,
    impact: str,
    action: str,
    expires: datetime | None,
    at: datetime,
    author: str | None = None,
) -> Recorded:
    """Author one operator statement (``stella vex add``). Only OpenVEX's statuses and
    justifications exist; ``expires`` makes it an exception, which must lie after ``at``."""
    if not vulnerability.strip():
        raise VexError("the vulnerability id is empty", hint="name it, e.g. CVE-2024-1234")
    if status is VexStatus.NOT_AFFECTED and justification is None and not impact:
        raise VexError(
            "status not_affected needs --justification or --impact",
            hint=f"justifications: {', '.join(j.value for j in Justification)}",
        )
    if status is not VexStatus.NOT_AFFECTED and justification is not None:
        raise VexError(f"--justification is only for not_affected, not {status.value}")
    if status is VexStatus.AFFECTED and not action:
        raise VexError("status affected needs --action (what to do about it)")
    if expires is not None and expires <= at:
        raise VexError(
            f"--expires {format_time(expires)} is not after the statement time {format_time(at)}",
            hint="an exception must expire in the future",
        )
    notes = f"exception; expires {format_time(expires)}" if expires else ""
    who = author or os_actor("vex add")
    document = authored_document(
        vulnerability=vulnerability.strip(),
        products=(Product(image.purl, tuple(sorted(set(components)))),),
        status=status,
        justification=justification,
        impact=impact,
        action=action,
        notes=notes,
        author=who,
        timestamp=at,
    )
    return _store(
        home,
        document=document,
        subject=Subject.of(image.name, image.digest),
        origin=Origin.OPERATOR,
        expires=expires,
        revokes="",
        action=AuditAction.VEX_ADD,
        command="vex add",
        at=at,
        source="authored statement",
    )


def revoke(home: Home, key: str, *, reason: str, at: datetime) -> Recorded:
    """Supersede statement ``key`` with a new signed ``under_investigation`` statement for
    the same vulnerability and products. Nothing is deleted: the old statement stays stored
    and in the audit log, and the merge ignores it from ``at`` on."""
    with open_state(home) as db:
        store = VexStore(db)
        found = store.statement(key)
        old = VexStatement.from_dict(found) if found is not None else None
        if old is None:
            raise VexError(
                f"no VEX statement {key!r} on this appliance",
                hint="see 'stella vex list' for statement keys",
            )
        document_row = store.document(old.document)
        already = store.revoked_by(key)
    if already:
        raise VexError(f"VEX statement {key} is already revoked by {already[0]}")
    if at <= old.timestamp:
        raise VexError(
            f"revocation time {format_time(at)} is not after the statement's "
            f"{format_time(old.timestamp)}"
        )
    subject_digest = Digest.parse(document_row.subject) if document_row else None
    document = authored_document(
        vulnerability=old.vulnerability,
        products=old.products,
        status=VexStatus.UNDER_INVESTIGATION,
        justification=None,
        impact="",
        action="",
        notes=f"revokes {key}" + (f": {reason}" if reason else ""),
        author=os_actor("vex revoke"),
        timestamp=at,
    )
    subject = (
        Subject.of("vex-statement", subject_digest)
        if subject_digest is not None
        else Subject.of("vex-statement", Digest.parse(old.document))
    )
    return _store(
        home,
        document=document,
        subject=subject,
        origin=Origin.OPERATOR,
        expires=None,
        revokes=key,
        action=AuditAction.VEX_REVOKE,
        command="vex revoke",
        at=at,
        source="revocation",
    )


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, refused past the ``vex.document_bytes`` cap before they are read."""
    try:
        with open(path, "rb") as fh:
            return read_open_file(fh, DOCUMENT_BYTES, str(path))
    except FileNotFoundError as e:
        raise VexError(f"{path}: no such file", hint="check the path") from e
    except IsADirectoryError as e:
        raise VexError(f"{path}: is a directory, not a VEX document") from e
    except OSError as e:
        raise VexError(f"{path}: cannot read: {e.strerror}") from e


def read_document(path: Path) -> dict[str, Any]:
    """An OpenVEX document from a file: the plain JSON document, an in-toto Statement
    (DSSE-wrapped or not) whose predicate is one, as ``vexctl attest`` writes, or a CycloneDX
    VEX or CSAF VEX document (converted by :mod:`appliance.vex.cyclonedx` or
    :mod:`appliance.vex.csaf`)."""
    data = _read_bytes(path)
    try:
        doc = canonical.loads(data, source=str(path))
        if isinstance(doc, dict) and "payload" in doc and "payloadType" in doc:
            from bundles.dsse import Envelope

            envelope = Envelope.from_dict(doc, source=str(path))
            doc = canonical.loads(envelope.payload, source=f"{path} payload")
    except CanonicalJSONError as e:
        raise VexError(e.message, hint="expected an OpenVEX v0.2.0 JSON document") from e
    kind = doc.get("_type") if isinstance(doc, dict) else None
    if isinstance(kind, str) and kind.startswith("https://in-toto.io/Statement"):
        doc = doc.get("predicate")
    if is_cyclonedx(doc):
        doc = cyclonedx.to_openvex(doc, source=str(path))
    elif is_csaf(doc):
        doc = csaf.to_openvex(doc, source=str(path))
    if not isinstance(doc, dict):
        raise VexError(f"{path}: not an OpenVEX document (a JSON object), but {kind_of(doc)}")
    return doc


def import_file(home: Home, path: Path, *, at: datetime) -> Recorded:
    """Import a vendor's OpenVEX document: validated, then signed by the appliance (the
    operator vouches for having imported it), stored and audited. Its statements keep the
    vendor origin."""
    return import_files(home, [path], at=at)[0]


def import_files(home: Home, paths: Sequence[Path], *, at: datetime) -> list[Recorded]:
    """Import several documents: every one is read and validated before any is stored, so a
    bad file among them stores nothing."""
    documents = []
    for path in paths:
        document = read_document(path)
        statements_of(document, origin=Origin.VENDOR, source=str(path))  # refuse before signing
        documents.append((path, document))
    return [
        _store(
            home,
            document=document,
            subject=Subject.of(path.name, canonical.digest(document)),
            origin=Origin.VENDOR,
            expires=None,
            revokes="",
            action=AuditAction.VEX_IMPORT,
            command="vex import",
            at=at,
            source=str(path),
        )
        for path, document in documents
    ]


def _row(statement: VexStatement) -> StatementRow:
    """A statement as the store keeps it."""
    return StatementRow(
        key=statement.key,
        vulnerability=statement.vulnerability,
        status=statement.status.value,
        timestamp=format_time(statement.timestamp),
        expires=format_time(statement.expires) if statement.expires else None,
        revokes=statement.revokes,
        body=statement.to_dict(),
    )


def stored_statements(home: Home) -> list[VexStatement]:
    """Every statement authored or imported on this appliance."""
    with open_state(home) as db:
        return [VexStatement.from_dict(body) for body in VexStore(db).statements()]


def snapshot_statements(
    store: KnowledgeStore, snapshot: Digest
) -> tuple[list[VexStatement], list[tuple[str, str]]]:
    """Vendor statements carried in a knowledge snapshot's OpenVEX datasets, and the
    documents that could not be read (id, reason), which are reported as unknowns."""
    statements: list[VexStatement] = []
    problems: list[tuple[str, str]] = []
    manifest = store.manifest(snapshot)
    for entry in manifest.datasets:
        if entry.type is not DatasetType.OPENVEX:
            continue
        for line in store.dataset_lines(entry.digest):
            record = canonical.loads(line, source=f"dataset {entry.name}")
            if not isinstance(record, dict):
                problems.append(("?", f"dataset {entry.name}: a record is {kind_of(record)}"))
                continue
            rid = str(record.get("id", "?"))
            try:
                statements.extend(
                    statements_of(
                        record.get("document"),
                        origin=Origin.VENDOR,
                        source=f"snapshot dataset {entry.name} record {rid}",
                    )
                )
            except VexError as e:
                problems.append((rid, e.message))
    return statements, problems
