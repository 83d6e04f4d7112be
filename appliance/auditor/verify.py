"""Verify a signed verdict (or any attestation the appliance signed) against a trust policy.

Checks, in order, each failing with its own error: the DSSE signature over the exact payload
bytes by a key the policy knows; that this key may sign the statement's predicate type; that
the statement was signed inside the key's validity window and before any revocation of it
(:func:`check_signing_time`: the time a trusted transparency log proves, else the time the
statement claims, see docs/keys.md "Signing time");
for a risk verdict, the predicate against ``rva-v1.json`` and its subject against the
statement's; the subject digest against the artifact the caller names; every evidence digest
the predicate cites against bytes from a blob source (the OCI store, an audit package); and,
with an appliance home, the gate's record in the audit log and the log's chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final, Protocol

from appliance import tlog
from appliance.auditor.errors import (
    AuditorError,
    AuditRecordError,
    EvidenceError,
    SubjectBindingError,
    TrustPolicyError,
)
from appliance.auditor.trust_policy import KeyRule, TrustPolicy
from appliance.home import Home
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.scanner.image import ImageRef, open_image
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import ANNOTATION_PREDICATE, attestations
from appliance.sigstore.tsa import (
    TimestampAuthority,
    TimestampError,
    TimestampProof,
    check_timestamps,
)
from appliance.store import known_logs, open_state
from appliance.store.audit import AuditAction, AuditLog, AuditRecord
from bundles import canonical, dsse, schemas
from bundles.digest import Digest
from bundles.errors import SignatureError
from bundles.intoto import PAYLOAD_TYPE, Statement
from bundles.keys import (
    KeyRevokedError,
    KeyRingError,
    KeyWindowError,
    format_instant,
    parse_instant,
)
from bundles.oci import OCILayout
from bundles.oci.mediatypes import ANNOTATION_CREATED
from bundles.tlog import TlogError
from bundles.tlog.entry import EntryCheck
from bundles.tlog.note import Verifier

EVIDENCE_ROLES = ("sbom", "vexBundle", "vulnData", "reachability", "unknowns", "policyInput")


class BlobSource(Protocol):
    """Where evidence bytes come from: by the role the predicate gives them, or by digest.
    ``read`` returns None for a blob it does not hold."""

    @property
    def where(self) -> str: ...

    def read(self, role: str, digest: Digest) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class LayoutBlobs:
    """Evidence in an OCI layout (the appliance store). Bytes are read as stored, so a
    swapped blob is reported by the verifier, not hidden by the store."""

    layout: OCILayout

    @property
    def where(self) -> str:
        return f"OCI store {self.layout.path}"

    def read(self, role: str, digest: Digest) -> bytes | None:
        path = self.layout.blob_path(digest)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise EvidenceError(f"{path}: cannot read evidence blob: {e.strerror}") from e


@dataclass(frozen=True, slots=True)
class MappingBlobs:
    """Evidence already in memory (an audit package), by role: a swapped file is reported
    as a mismatch of that role, not as a missing digest."""

    blobs: Mapping[str, bytes]
    label: str

    @property
    def where(self) -> str:
        return self.label

    def read(self, role: str, digest: Digest) -> bytes | None:
        return self.blobs.get(role)


@dataclass(frozen=True, slots=True)
class EvidenceCheck:
    role: str
    digest: str
    media_type: str
    size: int
    checked: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "digest": self.digest,
            "mediaType": self.media_type,
            "size": self.size,
            "checked": self.checked,
        }


@dataclass(frozen=True, slots=True)
class AuditInfo:
    seq: int
    time: str
    hash: str
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "time": self.time, "hash": self.hash, "actor": self.actor}


CLOCK_SKEW: Final = timedelta(minutes=5)
"""How far the time a statement claims may run ahead of the time the log proves, and how
long after a window's end a signature claimed before it may reach the log (docs/keys.md)."""


class TimeBasis(StrEnum):
    """What a signature's time rests on."""

    LOG = "transparency-log"  # a checkpoint timestamp signed by a trusted log key
    TSA = "timestamp-authority"  # an RFC 3161 token by a trusted time-stamping authority
    CLAIMED = "claimed"  # only what the signed statement says of itself
    NONE = "none"  # the statement records no time and no trusted log proves one


@dataclass(frozen=True, slots=True)
class SignedAt:
    """When a verified signature was made: the time its statement claims, and the time a
    trusted transparency log proves it existed by (the earliest timestamped checkpoint whose
    tree holds its entry, with the entry that proves it)."""

    claimed: datetime | None
    proven: datetime | None = None
    entry: EntryCheck | None = None
    timestamp: TimestampProof | None = None

    @property
    def basis(self) -> TimeBasis:
        if self.proven is not None:
            return TimeBasis.TSA if self.timestamp is not None else TimeBasis.LOG
        return TimeBasis.CLAIMED if self.claimed is not None else TimeBasis.NONE

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "basis": self.basis.value,
            "claimed": format_instant(self.claimed) if self.claimed else None,
            "proven": format_instant(self.proven) if self.proven else None,
        }
        if self.entry is not None:
            out["log"] = self.entry.to_dict()
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp.to_dict()
        return out

    def describe(self) -> str:
        claimed = format_instant(self.claimed) if self.claimed else "no time"
        if self.proven is not None and self.timestamp is not None:
            return (
                f"signing time proven: timestamped by {format_instant(self.proven)} (RFC 3161, "
                f"time-stamping authority {self.timestamp.authority}, serial "
                f"{self.timestamp.serial}); the statement claims {claimed}"
            )
        if self.proven is None or self.entry is None:
            return (
                f"signing time {claimed}, as the statement claims: unproven (no entry of a "
                "transparency log, nor a timestamp, trusted here)"
            )
        return (
            f"signing time proven: logged by {format_instant(self.proven)} (entry "
            f"{self.entry.log_index} of {self.entry.origin}, timestamped checkpoint of size "
            f"{self.entry.tree_size}); the statement claims {claimed}"
        )


@dataclass(frozen=True, slots=True)
class RvaVerification:
    """What was proven about one signed statement."""

    source: str
    bundle_digest: Digest
    statement: Statement
    signer: str
    keyid: str
    evidence: tuple[EvidenceCheck, ...]
    audit: AuditInfo | None
    signed_at: SignedAt | None = None

    @property
    def statement_digest(self) -> Digest:
        return self.statement.digest()

    @property
    def predicate(self) -> Mapping[str, Any]:
        return self.statement.predicate

    @property
    def is_verdict(self) -> bool:
        return self.statement.predicate_type == PREDICATE_TYPE

    def to_dict(self) -> dict[str, Any]:
        p = self.predicate
        return {
            "ok": True,
            "source": self.source,
            "bundle": str(self.bundle_digest),
            "statement": str(self.statement_digest),
            "predicateType": self.statement.predicate_type,
            "subjects": [
                {"name": s.name, "digest": str(s.sha256)} for s in self.statement.subjects
            ],
            "signer": {"name": self.signer, "keyid": self.keyid},
            "verdict": p.get("verdict") if self.is_verdict else None,
            "evaluationTime": p.get("evaluationTime") if self.is_verdict else None,
            "evidence": [e.to_dict() for e in self.evidence],
            "audit": self.audit.to_dict() if self.audit else None,
            "signingTime": self.signed_at.to_dict() if self.signed_at else None,
        }


OPENVEX_PREFIX = "https://openvex.dev/ns"


def signing_time(statement: Statement, *, source: str = "statement") -> datetime | None:
    """When a verified statement was signed, as far as this appliance can tell; None when
    the statement records no time.

    This is the time the signed statement itself records, as its signer claims it: a
    risk verdict's ``evaluationTime`` (the gate signs with the key in service at that time
    and refuses one outside it), an OpenVEX document's ``timestamp``, a CycloneDX BOM's
    ``metadata.timestamp``. A stolen key can claim any time: :func:`check_signing_time`
    trusts the claim alone only where no transparency log proves the time, and never for a
    revoked key.
    """
    predicate = statement.predicate
    if statement.predicate_type == PREDICATE_TYPE:
        claimed = predicate.get("evaluationTime")
    elif statement.predicate_type.startswith(OPENVEX_PREFIX):
        claimed = predicate.get("timestamp")
    else:
        metadata = predicate.get("metadata")
        claimed = metadata.get("timestamp") if isinstance(metadata, Mapping) else None
    if claimed is None:
        return None
    try:
        return parse_instant(claimed, where=f"{source} signing time")
    except KeyRingError as e:
        raise AuditorError(e.message, hint="the statement's time is not RFC 3339") from e


def _instant(value: datetime | None) -> str:
    return format_instant(value) if value is not None else "no time"


def check_signing_time(
    rule: KeyRule,
    claimed: datetime | None,
    entry: EntryCheck | None,
    *,
    source: str,
    timestamp: TimestampProof | None = None,
) -> SignedAt:
    """Decide whether a signature by ``rule``'s key was made while the key could sign
    (docs/keys.md "Signing time", rule v1). ``entry`` is the verified entry of a trusted
    log whose checkpoint carries the earliest signed timestamp, if any; ``timestamp`` the
    earliest verified RFC 3161 token over the signature by a trusted authority, if any. The
    proven time is the earlier of the two.

    - Proven: the proven time must be before the key's revocation (strictly: a theft at T
      makes everything first seen from T on suspect) and inside its window (a signature
      whose claim is before the window's end may be seen up to :data:`CLOCK_SKEW` after it:
      the log's clock counts whole seconds and logs just after signing); the claim still
      obeys the old rule, and may not be later than the proven time by more than
      :data:`CLOCK_SKEW` (a statement cannot be signed after the log already held it). A
      claim earlier than the proof is allowed: ``gate --at`` pins evaluation times in the
      past, and the proof, not the claim, decides.
    - Unproven: the claim decides as before, except that a revoked key's unproven
      signature is refused whatever it claims: after a theft the claim is the thief's word.
    """
    short = rule.key.keyid[:16]
    proofs: list[tuple[datetime, str, EntryCheck | None, TimestampProof | None]] = []
    if entry is not None and entry.logged_at is not None:
        at = datetime.fromtimestamp(entry.logged_at, UTC)
        where = f"entry {entry.log_index} of {entry.origin}, checkpoint of size {entry.tree_size}"
        proofs.append((at, f"logged at {format_instant(at)} ({where})", entry, None))
    if timestamp is not None:
        by = f"time-stamping authority {timestamp.authority}, serial {timestamp.serial}"
        at = timestamp.time
        proofs.append(
            (at, f"timestamped at {format_instant(at)} (RFC 3161, {by})", None, timestamp)
        )
    if not proofs:
        if rule.revoked is not None:
            raise KeyRevokedError(
                f"{source}: signed by key {short}, revoked at "
                f"{format_instant(rule.revoked.at)} ({rule.revoked.reason}), and no "
                "transparency-log entry or timestamp trusted here proves when: the time it "
                f"claims ({_instant(claimed)}) is the signer's word",
                hint="verify with the appliance's log key (--trusted-root from 'stella log "
                "trusted-root'), or re-evaluate with the appliance's current key",
            )
        rule.check_signed_at(claimed, source=source)
        return SignedAt(claimed)
    proven, logged, used_entry, used_timestamp = min(proofs, key=lambda p: p[0])
    if rule.revoked is not None and proven >= rule.revoked.at:
        earlier = (
            f"; the earlier time it claims ({format_instant(claimed)}) is the signer's word"
            if claimed is not None and claimed < rule.revoked.at
            else ""
        )
        raise KeyRevokedError(
            f"{source}: signed by key {short}, revoked at {format_instant(rule.revoked.at)} "
            f"({rule.revoked.reason}), and {logged}, after the revocation{earlier}",
            hint="a signature first proven to exist after its key was revoked is not trusted; "
            "re-evaluate with the appliance's current key",
        )
    window = rule.valid_for
    end = window.end
    if end is not None:
        lag = CLOCK_SKEW if claimed is not None and claimed < end else timedelta(0)
        if proven >= end + lag:
            raise KeyWindowError(
                f"{source}: {logged}, signed by key {short}, after its validity window "
                f"{window.describe()} ended",
                hint="the key was retired then, so the signature is refused",
            )
    if window.start is not None and proven < window.start:
        raise KeyWindowError(
            f"{source}: {logged}, signed by key {short}, before its validity window "
            f"{window.describe()} began",
            hint="the key was not in service yet, so the signature is refused",
        )
    if claimed is not None:
        rule.check_signed_at(claimed, source=source)
        if claimed > proven + CLOCK_SKEW:
            raise KeyWindowError(
                f"{source}: claims to be signed at {format_instant(claimed)}, but it was "
                f"{logged}, more than {int(CLOCK_SKEW.total_seconds())} s earlier: the claimed "
                "time is not credible",
                hint="a statement cannot be evaluated after its signature was logged or "
                "timestamped; obtain the verdict again from the appliance",
            )
    return SignedAt(claimed, proven, used_entry, used_timestamp)


def _proof(
    bundle: sigstore.SigstoreBundle, logs: Sequence[Verifier], source: str
) -> EntryCheck | None:
    if not logs:
        return None
    try:
        return tlog.earliest_logged(bundle.entries, bundle.envelope, logs)
    except TlogError as e:
        raise AuditorError(
            f"{source}: its transparency-log entry does not verify: {e.message}",
            hint=e.hint or "the entry or its checkpoint was altered",
        ) from e


def _timestamp(
    bundle: sigstore.SigstoreBundle,
    keyid: str,
    authorities: Sequence[TimestampAuthority],
    source: str,
) -> TimestampProof | None:
    if not authorities or not bundle.timestamps:
        return None
    signature = next(
        (s.sig for s in bundle.envelope.signatures if s.keyid == keyid),
        bundle.envelope.signatures[0].sig,
    )
    try:
        return check_timestamps(bundle.timestamps, signature, authorities, source=source)
    except TimestampError as e:
        raise AuditorError(e.message, hint=e.hint) from e


def _signature(
    bundle: sigstore.SigstoreBundle,
    policy: TrustPolicy,
    source: str,
    logs: Sequence[Verifier],
    authorities: Sequence[TimestampAuthority] = (),
) -> tuple[Statement, str, SignedAt]:
    try:
        verified = dsse.verify(bundle.envelope, policy.keys(), payload_type=PAYLOAD_TYPE)
    except dsse.UntrustedKeyError as e:
        signers = ", ".join(s.keyid or "(no keyid)" for s in bundle.envelope.signatures)
        trusted = ", ".join(f"{r.name} {r.key.keyid}" for r in policy.rules)
        raise TrustPolicyError(
            f"{source}: signed by key {signers}, which the trust policy does not trust "
            f"(trusted: {trusted})",
            hint="the verdict was signed by another key than the appliance's; pass the "
            "signer's public key with --key only if you trust it",
        ) from e
    except dsse.InvalidSignatureError as e:
        raise AuditorError(
            f"{source}: the signature does not verify over the DSSE payload: the statement "
            "or predicate was changed after signing",
            hint="obtain the verdict again from the appliance that signed it",
        ) from e
    except SignatureError as e:
        raise AuditorError(f"{source}: {e.message}", hint=e.hint) from e
    statement = Statement.from_bytes(verified.payload, source=f"{source} statement")
    rule = policy.check(verified.keyids, statement.predicate_type, source=source)
    claimed = signing_time(statement, source=source)
    try:  # the signature was made while its key was in service, and before any revocation
        signed_at = check_signing_time(
            rule,
            claimed,
            _proof(bundle, logs, source),
            source=source,
            timestamp=_timestamp(bundle, rule.key.keyid, authorities, source),
        )
    except KeyWindowError as e:
        raise AuditorError(e.message, hint=e.hint) from e
    return statement, rule.name, signed_at


def _rva_predicate(statement: Statement, source: str) -> None:
    predicate = canonical.loads(canonical.dumps(dict(statement.to_dict()["predicate"])))
    schemas.validate(schemas.RVA_V1, predicate, source=f"{source} predicate")
    digest = predicate["subject"]["digest"]
    if not any(str(s.sha256) == digest for s in statement.subjects):
        raise SubjectBindingError(
            f"{source}: predicate subject {digest} is not a subject of the signed statement",
            hint="the verdict is about another image than it claims",
        )


def _subject(statement: Statement, expected: Digest, source: str) -> None:
    if not any(s.sha256 == expected for s in statement.subjects):
        named = ", ".join(str(s.sha256) for s in statement.subjects)
        raise SubjectBindingError(
            f"{source}: the statement is about {named}, not {expected}",
            hint="this verdict belongs to another artifact (its subject digest differs)",
        )


def check_evidence(
    predicate: Mapping[str, Any], blobs: BlobSource | None, source: str
) -> tuple[EvidenceCheck, ...]:
    """Every evidence reference of a verdict, checked against ``blobs`` when given: each
    must be present, of the pinned size and digest."""
    out = []
    evidence = predicate.get("evidence") or {}
    for role in EVIDENCE_ROLES:
        ref = evidence.get(role)
        if ref is None:
            continue
        digest = Digest.parse(ref["digest"])
        if blobs is not None:
            data = blobs.read(role, digest)
            if data is None:
                raise EvidenceError(
                    f"{source}: evidence {role} {digest} is not in {blobs.where}",
                    hint="the evidence was removed; restore it from an audit package",
                )
            actual = Digest.of_bytes(data)
            if actual != digest or len(data) != ref["size"]:
                raise EvidenceError(
                    f"{source}: evidence {role} in {blobs.where} has digest {actual} "
                    f"({len(data)} bytes), but the signed verdict pins {digest} "
                    f"({ref['size']} bytes)",
                    hint="the evidence file was swapped or edited after the verdict",
                )
        out.append(
            EvidenceCheck(role, str(digest), ref["mediaType"], ref["size"], blobs is not None)
        )
    return tuple(out)


def verify_rva(
    data: bytes,
    policy: TrustPolicy,
    *,
    source: str = "RVA",
    subject: Digest | None = None,
    blobs: BlobSource | None = None,
    logs: Sequence[Verifier] = (),
    authorities: Sequence[TimestampAuthority] = (),
) -> RvaVerification:
    """Verify one Sigstore bundle the appliance signed (see the module docstring); raises an
    :class:`~appliance.auditor.errors.AuditorError` (or a schema error) naming what failed.
    ``logs`` are the transparency logs, ``authorities`` the RFC 3161 time-stamping
    authorities, trusted to prove when it was signed."""
    bundle = sigstore.read(data, source=source)
    statement, signer, signed_at = _signature(bundle, policy, source, logs, authorities)
    keyid = next(
        (s.keyid for s in bundle.envelope.signatures if policy.rule_for(s.keyid)), bundle.key_hint
    )
    evidence: tuple[EvidenceCheck, ...] = ()
    if statement.predicate_type == PREDICATE_TYPE:
        _rva_predicate(statement, source)
        evidence = check_evidence(statement.predicate, blobs, source)
    if subject is not None:
        _subject(statement, subject, source)
    return RvaVerification(
        source=source,
        bundle_digest=Digest.of_bytes(data),
        statement=statement,
        signer=signer,
        keyid=keyid,
        evidence=evidence,
        audit=None,
        signed_at=signed_at,
    )


def gate_record(home: Home, statement_digest: Digest) -> AuditRecord:
    """The audit record of the gate that signed the statement, after checking the whole
    audit chain and its signed head."""
    with open_state(home) as db:
        log = AuditLog(db, public_key=home.public_key())
        check = log.verify()
        if not check.ok:
            assert check.problem is not None
            raise AuditRecordError(
                f"the audit log of {home.root} does not verify: {check.problem.message}",
                hint="the log was edited; compare it with an exported head checkpoint "
                "('stella audit verify')",
            )
        records = log.records(action=AuditAction.GATE.value)
    for record in reversed(records):
        if record.result.get("statement") == str(statement_digest):
            return record
    raise AuditRecordError(
        f"no gate record in the audit log of {home.root} names statement {statement_digest}",
        hint="the verdict was not made on this appliance, or its record was removed",
    )


def verify_in_home(
    home: Home,
    data: bytes,
    policy: TrustPolicy,
    *,
    source: str = "RVA",
    subject: Digest | None = None,
    require_audit: bool = True,
    logs: Sequence[Verifier] | None = None,
    authorities: Sequence[TimestampAuthority] = (),
) -> RvaVerification:
    """:func:`verify_rva` with the evidence from the home's OCI store and the gate's audit
    record (for a verdict); the signing time is proven by ``logs``, by default the
    transparency logs the home knows (its own, and on a shared state the other homes'), or
    by ``authorities``."""
    layout = OCILayout.open(home.oci)
    trusted = known_logs(home) if logs is None else logs
    result = verify_rva(
        data,
        policy,
        source=source,
        subject=subject,
        blobs=LayoutBlobs(layout),
        logs=trusted,
        authorities=authorities,
    )
    if not result.is_verdict or not require_audit:
        return result
    record = gate_record(home, result.statement_digest)
    return replace(result, audit=AuditInfo(record.seq, record.time, record.hash, record.actor))


def attached_verdicts(home: Home, image: str) -> tuple[Digest, list[tuple[str, bytes]]]:
    """The image's manifest digest and every RVA bundle attached to it in the store, newest
    evaluation first (referrer digest, bundle bytes). IMAGE takes the forms ``scan`` and
    ``gate`` take, resolved the same way (:func:`open_image`): a store name, ``oci:DIR[:TAG]``,
    ``docker-archive:FILE``; a verdict gated from an ``oci:`` layout is kept in the store."""
    opened = open_image(ImageRef.parse(image), store=home.oci)
    digests = [d for d in (opened.manifest_digest, opened.index_digest) if d is not None]
    if not digests:
        raise AuditorError(
            f"image {image} has no manifest (a root file system or a docker-archive): a verdict "
            "binds to a manifest digest",
            hint="load it with 'stella images load', gate it by name, and name it so here",
        )
    layout = OCILayout.open(home.oci)
    for digest in digests:
        found = [
            (ref.annotations.get(ANNOTATION_CREATED, ""), str(ref.digest), data)
            for ref, data in attestations(layout, digest)
            if ref.annotations.get(ANNOTATION_PREDICATE) == PREDICATE_TYPE
        ]
        if found:
            found.sort(reverse=True)
            return digest, [(ref, data) for _, ref, data in found]
    raise AuditorError(
        f"image {image} ({digests[0]}) has no risk verdict attached",
        hint="run 'stella gate' on it first",
    )
