"""Verify a signed verdict (or any attestation the appliance signed) against a trust policy.

Checks, in order, each failing with its own error: the DSSE signature over the exact payload
bytes by a key the policy knows; that this key may sign the statement's predicate type; that
the statement was signed inside the key's validity window and before any revocation of it
(:func:`signing_time` says when it was signed);
for a risk verdict, the predicate against ``rva-v1.json`` and its subject against the
statement's; the subject digest against the artifact the caller names; every evidence digest
the predicate cites against bytes from a blob source (the OCI store, an audit package); and,
with an appliance home, the gate's record in the audit log and the log's chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from appliance.auditor.errors import (
    AuditorError,
    AuditRecordError,
    EvidenceError,
    SubjectBindingError,
    TrustPolicyError,
)
from appliance.auditor.trust_policy import TrustPolicy
from appliance.home import Home
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.scanner.image import ImageRef, open_image
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import ANNOTATION_PREDICATE, attestations
from appliance.store import open_state
from appliance.store.audit import AuditAction, AuditLog, AuditRecord
from bundles import canonical, dsse, schemas
from bundles.digest import Digest
from bundles.errors import SignatureError
from bundles.intoto import PAYLOAD_TYPE, Statement
from bundles.keys import KeyRingError, KeyWindowError, parse_instant
from bundles.oci import OCILayout
from bundles.oci.mediatypes import ANNOTATION_CREATED

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
        }


OPENVEX_PREFIX = "https://openvex.dev/ns"


def signing_time(statement: Statement, *, source: str = "statement") -> datetime | None:
    """When a verified statement was signed, as far as this appliance can tell; None when
    the statement records no time.

    Today that is the time the signed statement itself records, as its signer claims it: a
    risk verdict's ``evaluationTime`` (the gate signs with the key in service at that time
    and refuses one outside it), an OpenVEX document's ``timestamp``, a CycloneDX BOM's
    ``metadata.timestamp``. A stolen key can claim any time, which is why a revocation
    refuses only what claims to be later. This is the one place that decides; a
    transparency-log entry whose checkpoint proves the statement was logged before a time
    is to strengthen it here (the earlier of the claim and the proof is the signing time).
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


def _signature(
    bundle: sigstore.SigstoreBundle, policy: TrustPolicy, source: str
) -> tuple[Statement, str]:
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
    try:  # the signature was made while its key was in service, and before any revocation
        rule.check_signed_at(signing_time(statement, source=source), source=source)
    except KeyWindowError as e:
        raise AuditorError(e.message, hint=e.hint) from e
    return statement, rule.name


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
) -> RvaVerification:
    """Verify one Sigstore bundle the appliance signed (see the module docstring); raises an
    :class:`~appliance.auditor.errors.AuditorError` (or a schema error) naming what failed."""
    bundle = sigstore.read(data, source=source)
    statement, signer = _signature(bundle, policy, source)
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
) -> RvaVerification:
    """:func:`verify_rva` with the evidence from the home's OCI store and the gate's audit
    record (for a verdict)."""
    layout = OCILayout.open(home.oci)
    result = verify_rva(data, policy, source=source, subject=subject, blobs=LayoutBlobs(layout))
    if not result.is_verdict or not require_audit:
        return result
    record = gate_record(home, result.statement_digest)
    info = AuditInfo(record.seq, record.time, record.hash, record.actor)
    return RvaVerification(
        result.source,
        result.bundle_digest,
        result.statement,
        result.signer,
        result.keyid,
        result.evidence,
        info,
    )


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
