"""Log entries in the Rekor v2 form Sigstore bundles carry (``tlogEntries[]``).

An entry's leaf is its canonicalized body: for a DSSE envelope, the ``dsse`` ``0.0.2`` body
(the SHA-256 of the payload and each signature with its verifier's public key), in RFC 8785
canonical JSON. The bundle carries the body, the log index, the log's id (the C2SP key hash of
the log key in full: ``SHA-256(origin || "\\n" || 0x01 || key)``), and the inclusion proof
with the signed checkpoint it leads to. ``integratedTime`` is 0, as in Rekor v2 bundles: the
time an entry was logged is the log's signed timestamp on the checkpoint of the append that
added it (``stella-log-timestamp/v1``, :meth:`bundles.tlog.note.SignedCheckpoint.timestamp`),
which :func:`check_entry` reads once the checkpoint verifies.

:func:`check_entry` is what a verifier runs: the body must be about the envelope, the proof
must lead from the body's leaf hash to the root, and the checkpoint must carry that root and
a valid signature by a log key the verifier trusts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from bundles import canonical, dsse, rfc3339
from bundles.errors import CanonicalJSONError
from bundles.keys import KeyType, PublicKey
from bundles.tlog import TlogError
from bundles.tlog.merkle import ProofError, leaf_hash, verify_inclusion
from bundles.tlog.note import NoteError, SignedCheckpoint, Verifier

KIND: Final = "dsse"
VERSION: Final = "0.0.2"
BODY_LIMIT: Final = 0xFFFF


class EntryError(TlogError):
    """A transparency-log entry is malformed, or does not verify."""


def log_id(log: Verifier) -> bytes:
    return hashlib.sha256(log.name.encode() + b"\n" + bytes([log.kind]) + log.public).digest()


def key_details(key: PublicKey) -> str:
    match key.key_type:
        case KeyType.ECDSA_P256:
            return "PKIX_ECDSA_P256_SHA_256"
        case KeyType.ED25519:
            return "PKIX_ED25519"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def dsse_body(envelope: dsse.Envelope, keys: Mapping[str, PublicKey]) -> bytes:
    """The canonical ``dsse`` 0.0.2 body of ``envelope``; ``keys`` maps each signature's
    keyid to its public key."""
    signatures = []
    for s in envelope.signatures:
        key = keys.get(s.keyid)
        if key is None:
            raise EntryError(f"no public key for the envelope's signature by {s.keyid[:16]}")
        signatures.append(
            {
                "content": _b64(s.sig),
                "verifier": {
                    "keyDetails": key_details(key),
                    "publicKey": {"rawBytes": _b64(key.der)},
                },
            }
        )
    body = {
        "apiVersion": VERSION,
        "kind": KIND,
        "spec": {
            "dsseV002": {
                "payloadHash": {
                    "algorithm": "SHA2_256",
                    "digest": _b64(hashlib.sha256(envelope.payload).digest()),
                },
                "signatures": signatures,
            }
        },
    }
    return canonical.dumps(body)


def tlog_entry(
    log: Verifier, index: int, body: bytes, proof: Sequence[bytes], checkpoint: SignedCheckpoint
) -> dict[str, Any]:
    """The bundle JSON form of one entry (integers as strings, as protobuf JSON writes)."""
    return {
        "logIndex": str(index),
        "logId": {"keyId": _b64(log_id(log))},
        "kindVersion": {"kind": KIND, "version": VERSION},
        "integratedTime": "0",
        "inclusionProof": {
            "logIndex": str(index),
            "rootHash": _b64(checkpoint.checkpoint.root),
            "treeSize": str(checkpoint.checkpoint.size),
            "hashes": [_b64(h) for h in proof],
            "checkpoint": {"envelope": checkpoint.to_text()},
        },
        "canonicalizedBody": _b64(body),
    }


@dataclass(frozen=True, slots=True)
class EntryCheck:
    """A verified entry: where it is in which log, the signed head it was proven under, and
    the time the log key signed for that head (POSIX seconds; None for a head without a
    timestamp, as heads written before logs timestamped them are)."""

    origin: str
    log_index: int
    tree_size: int
    checkpoint: SignedCheckpoint
    body: bytes
    logged_at: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "log": self.origin,
            "logIndex": self.log_index,
            "treeSize": self.tree_size,
            "rootHash": self.checkpoint.checkpoint.root.hex(),
        }
        if self.logged_at is not None:
            out["loggedAt"] = rfc3339.format_time(datetime.fromtimestamp(self.logged_at, UTC))
        return out


def _decode(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise EntryError(f"transparency-log entry: {what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as e:
        raise EntryError(f"transparency-log entry: {what} is not base64") from e


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise EntryError(f"transparency-log entry: {what} is not an integer")
    try:
        number = int(value)
    except ValueError as e:
        raise EntryError(f"transparency-log entry: {what} {value!r} is not an integer") from e
    if number < 0:
        raise EntryError(f"transparency-log entry: {what} is negative")
    return number


def _binding(body: bytes, envelope: dsse.Envelope) -> None:
    try:
        doc = canonical.loads(body, limit=BODY_LIMIT, source="tlog entry body")
    except CanonicalJSONError as e:
        raise EntryError(f"transparency-log entry: the body is not JSON: {e.message}") from e
    spec = doc.get("spec", {}).get("dsseV002") if isinstance(doc, dict) else None
    if not isinstance(spec, dict) or doc.get("kind") != KIND:
        raise EntryError("transparency-log entry: the body is not a dsse 0.0.2 entry")
    digest = spec.get("payloadHash", {}).get("digest")
    payload = _b64(hashlib.sha256(envelope.payload).digest())
    signed = {s.get("content") for s in spec.get("signatures", []) if isinstance(s, dict)}
    if digest != payload or not any(_b64(s.sig) in signed for s in envelope.signatures):
        raise EntryError(
            "transparency-log entry is about another envelope than the bundle's",
            hint="the entry was moved from another attestation, or the envelope was changed",
        )


def check_entry(
    entry: Any, logs: Sequence[Verifier], envelope: dsse.Envelope | None = None
) -> EntryCheck:
    """Verify one ``tlogEntries`` item against the trusted ``logs`` (see the module
    docstring); raises :class:`EntryError` naming what failed."""
    if not isinstance(entry, Mapping):
        raise EntryError("transparency-log entry is not a JSON object")
    body = _decode(entry.get("canonicalizedBody"), "canonicalizedBody")
    index = _int(entry.get("logIndex"), "logIndex")
    wanted = _decode((entry.get("logId") or {}).get("keyId"), "logId.keyId")
    log = next((v for v in logs if log_id(v) == wanted), None)
    if log is None:
        raise EntryError(
            f"transparency-log entry {index} is from log {wanted.hex()[:16]}, which is not "
            "trusted here",
            hint="trust that log's key (its trusted root) or check the entry where it was made",
        )
    proof = entry.get("inclusionProof")
    if not isinstance(proof, Mapping):
        raise EntryError(f"transparency-log entry {index} carries no inclusion proof")
    if _int(proof.get("logIndex"), "inclusionProof.logIndex") != index:
        raise EntryError(f"transparency-log entry {index}: the proof is for another index")
    size = _int(proof.get("treeSize"), "inclusionProof.treeSize")
    root = _decode(proof.get("rootHash"), "inclusionProof.rootHash")
    hashes = proof.get("hashes") or []
    if not isinstance(hashes, list) or len(hashes) > 64:
        raise EntryError(f"transparency-log entry {index}: inclusionProof.hashes is malformed")
    path = [_decode(h, "inclusionProof.hashes") for h in hashes]
    note = (proof.get("checkpoint") or {}).get("envelope")
    if not isinstance(note, str):
        raise EntryError(f"transparency-log entry {index} carries no signed checkpoint")
    if envelope is not None:
        _binding(body, envelope)
    try:
        verify_inclusion(index, size, leaf_hash(body), path, root)
        signed = SignedCheckpoint.parse(note, source=f"checkpoint of entry {index}")
        head = signed.verify(log, source=f"checkpoint of entry {index}")
    except (ProofError, NoteError) as e:
        raise EntryError(f"transparency-log entry {index}: {e.message}", hint=e.hint) from e
    if (head.size, head.root) != (size, root):
        raise EntryError(
            f"transparency-log entry {index}: the signed checkpoint is of size {head.size}, the "
            f"proof of size {size} (or their root hashes differ)"
        )
    return EntryCheck(log.name, index, size, signed, body, signed.timestamp(log))
