"""The Sigstore bundle v0.3 form of a signed statement, as cosign v3 writes attestations.

A key-signed bundle names its key by hint (``verificationMaterial.publicKey.hint``, the same
keyid the DSSE signature carries) and holds the DSSE envelope. The appliance logs what it
signs in its own transparency log and carries the entry in ``tlogEntries`` (Rekor v2 form,
see appliance/tlog). RFC 3161 timestamp tokens over the signature a site obtained from a
time-stamping authority travel in ``timestampVerificationData.rfc3161Timestamps`` and are
kept as read (appliance/sigstore/tsa.py checks them). Reading is strict and keeps the
envelope's exact payload; verification checks the signature over those bytes and then
parses them.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from bundles import canonical, dsse
from bundles.errors import CanonicalJSONError, SignatureError
from bundles.intoto import Statement, verify_statement
from bundles.signer import Signer

MEDIA_TYPE: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"
ACCEPTED: Final = frozenset(
    {
        MEDIA_TYPE,
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)
LIMIT: Final = 32 << 20
MAX_TIMESTAMPS: Final = 32  # as sigstore-python: more is a denial of service, not evidence


class SigstoreBundleError(SignatureError):
    """A file is not a Sigstore bundle this appliance can read."""


@dataclass(frozen=True, slots=True)
class SigstoreBundle:
    envelope: dsse.Envelope
    key_hint: str
    tlog_entries: int
    inclusion_proof: bool
    entries: tuple[Any, ...] = ()  # the tlogEntries items as read (or as logged)
    timestamps: tuple[bytes, ...] = ()  # RFC 3161 TimeStampResp DER, as read

    def to_dict(self) -> dict[str, Any]:
        material: dict[str, Any] = {
            "publicKey": {"hint": self.key_hint},
            "tlogEntries": list(self.entries),
        }
        if self.timestamps:
            material["timestampVerificationData"] = {
                "rfc3161Timestamps": [
                    {"signedTimestamp": base64.b64encode(t).decode("ascii")}
                    for t in self.timestamps
                ]
            }
        return {
            "mediaType": MEDIA_TYPE,
            "verificationMaterial": material,
            "dsseEnvelope": self.envelope.to_dict(),
        }

    def to_json(self) -> bytes:
        return canonical.dumps(self.to_dict())


def with_entry(bundle: SigstoreBundle, entry: Mapping[str, Any]) -> SigstoreBundle:
    """The bundle carrying one more transparency-log entry (with its inclusion proof)."""
    entries = (*bundle.entries, entry)
    return SigstoreBundle(
        bundle.envelope, bundle.key_hint, len(entries), True, entries, bundle.timestamps
    )


def with_timestamp(bundle: SigstoreBundle, response: bytes) -> SigstoreBundle:
    """The bundle carrying one more RFC 3161 timestamp response (DER) over its signature."""
    return replace(bundle, timestamps=(*bundle.timestamps, response))


def _timestamps(material: Mapping[str, Any], source: str) -> tuple[bytes, ...]:
    data = material.get("timestampVerificationData")
    if data is None:
        return ()
    items = data.get("rfc3161Timestamps", []) if isinstance(data, Mapping) else None
    if not isinstance(items, list) or len(items) > MAX_TIMESTAMPS:
        raise SigstoreBundleError(
            f"{source}: verificationMaterial.timestampVerificationData.rfc3161Timestamps must "
            f"be an array of at most {MAX_TIMESTAMPS}"
        )
    out = []
    for n, item in enumerate(items):
        value = item.get("signedTimestamp") if isinstance(item, Mapping) else None
        try:
            out.append(base64.b64decode(value, validate=True) if isinstance(value, str) else b"")
        except binascii.Error:
            out.append(b"")
        if not out[-1]:
            raise SigstoreBundleError(
                f"{source}: rfc3161Timestamps[{n}].signedTimestamp is not base64 DER",
                hint="the timestamp was altered; obtain it again from the time-stamping authority",
            )
    if len(set(out)) != len(out):
        raise SigstoreBundleError(f"{source}: rfc3161Timestamps holds a timestamp twice")
    return tuple(out)


def sign(statement: Statement, key: Signer) -> SigstoreBundle:
    envelope = dsse.sign(statement.to_bytes(), "application/vnd.in-toto+json", key)
    return SigstoreBundle(envelope, key.keyid, 0, False)


def key_hint(data: bytes) -> str:
    """The key hint (``verificationMaterial.publicKey.hint``) a bundle's JSON names, read
    without checking anything else ("" when it names none or is not JSON): enough to pass
    over the appliance's own bundles unparsed, never a reason to trust one."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return ""
    material = doc.get("verificationMaterial") if isinstance(doc, dict) else None
    key = material.get("publicKey") if isinstance(material, dict) else None
    hint = key.get("hint") if isinstance(key, dict) else None
    return hint if isinstance(hint, str) else ""


def read(data: bytes, *, source: str = "bundle") -> SigstoreBundle:
    """Parse a Sigstore bundle (v0.3, DSSE content) strictly."""
    try:
        doc = canonical.loads(data, limit=LIMIT, source=source)
    except CanonicalJSONError as e:
        raise SigstoreBundleError(e.message, hint="expected a Sigstore bundle (JSON)") from e
    if not isinstance(doc, Mapping):
        raise SigstoreBundleError(f"{source}: a Sigstore bundle must be a JSON object")
    media_type = doc.get("mediaType")
    if media_type not in ACCEPTED:
        raise SigstoreBundleError(
            f"{source}: mediaType is {media_type!r}", hint=f"expected {MEDIA_TYPE}"
        )
    material = doc.get("verificationMaterial")
    if not isinstance(material, Mapping):
        raise SigstoreBundleError(f"{source}: verificationMaterial is missing")
    key = material.get("publicKey")
    hint = key.get("hint", "") if isinstance(key, Mapping) else ""
    if not isinstance(hint, str):
        raise SigstoreBundleError(f"{source}: verificationMaterial.publicKey.hint is not a string")
    entries = material.get("tlogEntries") or []
    if not isinstance(entries, list):
        raise SigstoreBundleError(f"{source}: verificationMaterial.tlogEntries is not an array")
    proof = any(
        isinstance(e, Mapping) and isinstance(e.get("inclusionProof"), Mapping) for e in entries
    )
    raw_env = doc.get("dsseEnvelope")
    if raw_env is None:
        raise SigstoreBundleError(
            f"{source}: the bundle holds no dsseEnvelope",
            hint="only DSSE attestations are read here (not message signatures)",
        )
    envelope = dsse.Envelope.from_dict(raw_env, source=f"{source}: dsseEnvelope")
    timestamps = _timestamps(material, source)
    return SigstoreBundle(envelope, hint, len(entries), proof, tuple(entries), timestamps)


def verify(bundle: SigstoreBundle, keys: dsse.TrustedKeys, *, predicate_type: str) -> Statement:
    """The statement the bundle's envelope carries, once a trusted key's signature verifies
    over its exact payload."""
    return verify_statement(bundle.envelope, keys, predicate_type=predicate_type)


def payload_statement(bundle: SigstoreBundle) -> Statement:
    """The statement parsed without verification, for listing what is attached only."""
    return Statement.from_bytes(bundle.envelope.payload, source="attestation payload")
