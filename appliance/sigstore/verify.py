"""Verify standard Sigstore bundles (v0.1 to v0.3; DSSE or message signature) fully offline.

Keyless bundles (a Fulcio certificate; ``--certificate-identity`` and
``--certificate-oidc-issuer``) are verified by sigstore-python's :class:`Verifier` against a
trusted root read from a file: the Sigstore public-good root shipped in ``appliance/data`` or
one given with ``--trusted-root``. That covers the certificate chain at the signing time, the
SCT, the transparency-log entry's inclusion proof and signed checkpoint, and the identity.

Bundles signed with a plain key are refused by sigstore-python ("expected certificate"), so
they are checked here: the bundle is parsed with ``sigstore_models``; the DSSE signature over
the PAE, or the message signature over the artifact's SHA-256, is checked with the given key;
and every transparency-log entry is checked against the trusted root's log keys: the Merkle
inclusion proof (RFC 9162 §2.1.3.2) up to the root hash of a checkpoint signed by the log
(a signed note), the signed entry timestamp (inclusion promise), and that the entry's body
is about this very signature and artifact. The results are evidence for import.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from appliance.sigstore.bundle import ACCEPTED
from appliance.tlog import is_appliance_entry
from bundles import canonical, dsse, limits
from bundles.bounded import read_open_file
from bundles.canonical import kind_of
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, StellaError
from bundles.intoto import Statement
from bundles.keys import PublicKey
from bundles.limits import Unit

if TYPE_CHECKING:  # sigstore-python takes a second to import: only the checks that need it do
    from sigstore.models import TrustedRoot


class SigstoreVerifyError(StellaError):
    """A standard Sigstore bundle does not verify."""


DEFAULT_TRUSTED_ROOT: Final = (
    Path(__file__).resolve().parent.parent / "data" / "sigstore-public-good-trusted-root.json"
)
BUNDLE_BYTES: Final = limits.cap(
    "sigstore.bundle_bytes",
    32 << 20,
    Unit.BYTES,
    "a Sigstore bundle or RVA file given to verify, explain or replay",
)
#: Every Sigstore bundle media type starts so (v0.1 and v0.2 add ``+json;version=0.N``).
MEDIA_TYPE_PREFIX: Final = "application/vnd.dev.sigstore.bundle"
_NOTE_DASH: Final = "\u2014 "


class BundleForm(StrEnum):
    """What a file given to ``stella verify`` is, once it is known to be a Sigstore bundle."""

    APPLIANCE = "appliance"  # key-hinted DSSE, logged in an appliance log only: what it signs
    STANDARD = "standard"  # any other Sigstore bundle (keyless, logged, message signature)


_EXPECTED: Final = "expected a Sigstore bundle (JSON), such as 'stella gate --out' writes"


def read_bundle_file(path: Path) -> bytes:
    """The bytes of a bundle file, refused past the ``sigstore.bundle_bytes`` cap before they
    are read."""
    try:
        with open(path, "rb") as fh:
            return read_open_file(fh, BUNDLE_BYTES, str(path))
    except OSError as e:
        raise SigstoreVerifyError(f"{path}: cannot read: {e.strerror}") from e


def classify(data: bytes, source: str) -> BundleForm:
    """Which kind of Sigstore bundle ``data`` is; anything that is not one at all is refused
    with what it is instead (not JSON, not an object, no Sigstore media type, no verification
    material), never taken for a bundle of another kind."""
    try:
        doc = canonical.loads(data, limit=BUNDLE_BYTES.value(), source=source)
    except CanonicalJSONError as e:
        raise SigstoreVerifyError(
            f"{e.message}, so it is not a Sigstore bundle", hint=_EXPECTED
        ) from e
    if not isinstance(doc, dict):
        raise SigstoreVerifyError(
            f"{source}: is {kind_of(doc)}, not a Sigstore bundle (a JSON object)", hint=_EXPECTED
        )
    media_type = doc.get("mediaType")
    if not isinstance(media_type, str) or not media_type.startswith(MEDIA_TYPE_PREFIX):
        shown = (
            "missing"
            if media_type is None
            else repr(media_type[:80])
            if isinstance(media_type, str)
            else kind_of(media_type)
        )
        raise SigstoreVerifyError(
            f"{source}: mediaType is {shown}, so it is not a Sigstore bundle", hint=_EXPECTED
        )
    material = doc.get("verificationMaterial")
    if not isinstance(material, dict):
        raise SigstoreVerifyError(
            f"{source}: verificationMaterial is "
            + ("missing" if material is None else kind_of(material))
            + ", so it is not a Sigstore bundle",
            hint=_EXPECTED,
        )
    if (
        media_type in ACCEPTED
        and "dsseEnvelope" in doc
        and "publicKey" in material
        and all(is_appliance_entry(e) for e in material.get("tlogEntries") or [])
    ):  # RFC 3161 timestamps a site added over its signature keep it the appliance's form
        return BundleForm.APPLIANCE
    return BundleForm.STANDARD


class SignatureKind(StrEnum):
    DSSE = "dsse"
    MESSAGE = "message"


@dataclass(frozen=True, slots=True)
class Artifact:
    """What was signed: its SHA-256, and its bytes when given as a file."""

    digest: Digest
    data: bytes | None = None

    @classmethod
    def parse(cls, text: str) -> Artifact:
        """``sha256:HEX`` or a file path."""
        if text.startswith("sha256:"):
            return cls(Digest.parse(text))
        path = Path(text)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise SigstoreVerifyError(f"--artifact {path}: cannot read: {e.strerror}") from e
        return cls(Digest.of_bytes(data), data)


@dataclass(frozen=True, slots=True)
class TlogCheck:
    """One transparency-log entry, verified."""

    log_index: int
    integrated_time: int
    kind: str
    inclusion_proof: bool
    checkpoint: bool
    signed_entry_timestamp: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "logIndex": self.log_index,
            "integratedTime": self.integrated_time,
            "kind": self.kind,
            "inclusionProof": self.inclusion_proof,
            "checkpoint": self.checkpoint,
            "signedEntryTimestamp": self.signed_entry_timestamp,
        }


@dataclass(frozen=True, slots=True)
class SigstoreResult:
    media_type: str
    kind: SignatureKind
    signer: str  # "identity (issuer)" or "key <keyid>"
    artifact: str | None
    statement: Statement | None
    tlog: tuple[TlogCheck, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": True,
            "mediaType": self.media_type,
            "kind": self.kind.value,
            "signer": self.signer,
            "artifact": self.artifact,
            "predicateType": self.statement.predicate_type if self.statement else None,
            "subjects": [{"name": s.name, "digest": str(s.sha256)} for s in self.statement.subjects]
            if self.statement
            else [],
            "transparencyLog": [t.to_dict() for t in self.tlog],
        }


# ---------------------------------------------------------------- trusted root and log keys


@dataclass(frozen=True, slots=True)
class LogKey:
    log_id: bytes
    key: Any  # a cryptography public key


def read_trusted_root(path: Path | None) -> tuple[TrustedRoot, tuple[LogKey, ...]]:
    """The trusted root at ``path`` (default: the public-good root shipped with the
    appliance) and its transparency logs' keys."""
    from pydantic import ValidationError
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot

    path = path or DEFAULT_TRUSTED_ROOT
    try:
        raw = read_bundle_file(path)
        root = TrustedRoot.from_file(str(path))
    except OSError as e:
        raise SigstoreVerifyError(f"{path}: cannot read trusted root: {e.strerror}") from e
    except (SigstoreError, ValueError, ValidationError) as e:
        raise SigstoreVerifyError(
            f"{path}: not a Sigstore trusted root: {e}",
            hint="expected application/vnd.dev.sigstore.trustedroot+json",
        ) from e
    doc = canonical.loads(raw, limit=BUNDLE_BYTES.value(), source=str(path))
    tlogs = doc.get("tlogs", []) if isinstance(doc, dict) else None
    if not isinstance(tlogs, list):
        raise SigstoreVerifyError(f"{path}: tlogs is not an array of transparency logs")
    keys = []
    for i, tlog in enumerate(tlogs):
        try:
            log_id = base64.b64decode(tlog["logId"]["keyId"], validate=True)
            der = base64.b64decode(tlog["publicKey"]["rawBytes"], validate=True)
            keys.append(LogKey(log_id, serialization.load_der_public_key(der)))
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise SigstoreVerifyError(f"{path}: tlogs[{i}] has no usable log key") from e
    return root, tuple(keys)


def _verify_with(key: Any, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True


# ---------------------------------------------------------------- transparency log


def _hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def inclusion_root(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The Merkle tree root implied by an inclusion proof (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < size:
        raise SigstoreVerifyError(f"inclusion proof: leaf index {index} outside tree size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise SigstoreVerifyError("inclusion proof: more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            r = _hash_children(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = _hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise SigstoreVerifyError("inclusion proof: fewer hashes than the tree has levels")
    return r


def verify_checkpoint(envelope: str, keys: Sequence[LogKey]) -> tuple[int, bytes]:
    """A checkpoint (signed note) signed by one of the log keys: its tree size and root."""
    text, sep, signatures = envelope.partition("\n\n")
    if not sep:
        raise SigstoreVerifyError("checkpoint: no blank line between the note and signatures")
    body = (text + "\n").encode("utf-8")
    lines = text.split("\n")
    if len(lines) < 3:
        raise SigstoreVerifyError("checkpoint: expected origin, tree size and root hash lines")
    try:
        size = int(lines[1])
        root = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error) as e:
        raise SigstoreVerifyError("checkpoint: tree size or root hash is malformed") from e
    for line in signatures.splitlines():
        if not line.startswith(_NOTE_DASH):
            continue
        _, _, b64 = line[len(_NOTE_DASH) :].rpartition(" ")
        try:
            raw = base64.b64decode(b64, validate=True)
        except binascii.Error:
            continue
        hint, sig = raw[:4], raw[4:]
        for k in keys:
            if k.log_id[:4] == hint and _verify_with(k.key, sig, body):
                return size, root
    raise SigstoreVerifyError(
        "checkpoint: no signature by a transparency log of the trusted root verifies",
        hint="the entry was not logged by a log this trusted root knows",
    )


def _b64(entry: Mapping[str, Any], *path: str) -> bytes:
    value: Any = entry
    for name in path:
        value = value[name]
    return base64.b64decode(value, validate=True)


def _binding(body: Mapping[str, Any], signature: bytes, digest: Digest) -> None:
    """The entry's body must be about this signature and this signed digest."""
    kind, spec = body.get("kind"), body.get("spec", {})
    if kind == "hashedrekord":
        sig = base64.b64decode(spec["signature"]["content"])
        value = spec["data"]["hash"]["value"]
        if sig != signature or value != digest.hex:
            raise SigstoreVerifyError(
                "transparency-log entry is about another signature or artifact than the bundle's"
            )
        return
    if kind == "dsse" and "dsseV002" in spec:  # Rekor v2 (and the appliance's own logs)
        v2 = spec["dsseV002"]
        sigs = {base64.b64decode(s["content"]) for s in v2.get("signatures", [])}
        payload_hash = base64.b64decode(v2.get("payloadHash", {}).get("digest", "")).hex()
        if signature not in sigs or payload_hash != digest.hex:
            raise SigstoreVerifyError(
                "transparency-log entry is about another envelope than the bundle's"
            )
        return
    if kind == "dsse":
        sigs = {base64.b64decode(s["signature"]) for s in spec.get("signatures", [])}
        payload_hash = spec.get("payloadHash", {}).get("value")
        if signature not in sigs or payload_hash != digest.hex:
            raise SigstoreVerifyError(
                "transparency-log entry is about another envelope than the bundle's"
            )
        return
    raise SigstoreVerifyError(
        f"transparency-log entry kind {kind!r} is not checked for key-signed bundles",
        hint="expected a hashedrekord or dsse entry",
    )


def verify_tlog_entry(
    entry: Mapping[str, Any], keys: Sequence[LogKey], signature: bytes, digest: Digest
) -> TlogCheck:
    """Check one ``tlogEntries`` item (bundle JSON form): body binding, inclusion proof up to
    a signed checkpoint, and the signed entry timestamp when present. At least one of the
    proof and the timestamp must be there."""
    try:
        body_bytes = _b64(entry, "canonicalizedBody")
        log_id = _b64(entry, "logId", "keyId")
        log_index = int(entry["logIndex"])
        integrated = int(entry.get("integratedTime", 0))
        kind = str(entry.get("kindVersion", {}).get("kind", ""))
    except (KeyError, TypeError, ValueError, binascii.Error) as e:
        raise SigstoreVerifyError(f"transparency-log entry is malformed: {e}") from e
    log = [k for k in keys if k.log_id == log_id]
    if not log:
        raise SigstoreVerifyError(
            f"transparency-log entry {log_index} is from log {log_id.hex()}, which the "
            "trusted root does not list",
            hint="pass the trusted root of that log with --trusted-root",
        )
    _binding(canonical.loads(body_bytes, source="tlog entry body"), signature, digest)
    proof, checkpoint = entry.get("inclusionProof"), False
    if proof:
        try:
            index, size = int(proof["logIndex"]), int(proof["treeSize"])
            root = base64.b64decode(proof["rootHash"], validate=True)
            path = [base64.b64decode(h, validate=True) for h in proof.get("hashes", [])]
            note = str(proof["checkpoint"]["envelope"])
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise SigstoreVerifyError(f"inclusion proof of entry {log_index} is malformed") from e
        leaf = hashlib.sha256(b"\x00" + body_bytes).digest()
        if inclusion_root(index, size, leaf, path) != root:
            raise SigstoreVerifyError(
                f"inclusion proof of entry {log_index} does not lead to its root hash",
                hint="the entry or the proof was altered",
            )
        cp_size, cp_root = verify_checkpoint(note, log)
        if (cp_size, cp_root) != (size, root):
            raise SigstoreVerifyError(
                f"entry {log_index}: the signed checkpoint is for tree size {cp_size}, the "
                f"proof for {size} (or the root hashes differ)"
            )
        checkpoint = True
    promise = entry.get("inclusionPromise")
    if promise:
        payload = canonical.dumps(
            {
                "body": base64.b64encode(body_bytes).decode("ascii"),
                "integratedTime": integrated,
                "logID": log_id.hex(),
                "logIndex": log_index,
            }
        )
        set_sig = base64.b64decode(promise["signedEntryTimestamp"])
        if not any(_verify_with(k.key, set_sig, payload) for k in log):
            raise SigstoreVerifyError(
                f"the signed entry timestamp of entry {log_index} does not verify",
                hint="the entry's time, index or body was altered",
            )
    if not proof and not promise:
        raise SigstoreVerifyError(
            f"transparency-log entry {log_index} carries neither an inclusion proof nor a "
            "signed entry timestamp"
        )
    return TlogCheck(log_index, integrated, kind, bool(proof), checkpoint, bool(promise))


# ---------------------------------------------------------------- bundles


def _parse(data: bytes, source: str) -> dict[str, Any]:
    from pydantic import ValidationError
    from sigstore_models.bundle.v1 import Bundle as ModelBundle

    limits.check(BUNDLE_BYTES, len(data), source)
    doc = canonical.loads(data, limit=BUNDLE_BYTES.value(), source=source)
    if not isinstance(doc, dict):
        raise SigstoreVerifyError(f"{source}: a Sigstore bundle must be a JSON object")
    try:
        ModelBundle.from_json(data)
    except (ValidationError, ValueError) as e:
        first = str(e).splitlines()[0]
        raise SigstoreVerifyError(f"{source}: not a valid Sigstore bundle: {first}") from e
    return doc


def _statement_subject(statement: Statement, artifact: Artifact | None, source: str) -> None:
    if artifact is not None and not any(s.sha256 == artifact.digest for s in statement.subjects):
        named = ", ".join(str(s.sha256) for s in statement.subjects)
        raise SigstoreVerifyError(
            f"{source}: the statement is about {named}, not the artifact {artifact.digest}"
        )


def verify_keyless(
    data: bytes,
    *,
    identity: str,
    issuer: str,
    artifact: Artifact | None,
    trusted_root: Path | None = None,
    source: str = "bundle",
) -> SigstoreResult:
    """A certificate-signed bundle, by sigstore-python against the trusted root, offline."""
    from pydantic import ValidationError
    from sigstore.errors import Error as SigstoreError
    from sigstore.hashes import Hashed
    from sigstore.models import Bundle as KeylessBundle
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity
    from sigstore_models.common.v1 import HashAlgorithm

    doc = _parse(data, source)
    root, _ = read_trusted_root(trusted_root)
    try:
        bundle = KeylessBundle.from_json(data)
    except (SigstoreError, ValueError, ValidationError) as e:
        raise SigstoreVerifyError(f"{source}: {e}") from e
    verifier = Verifier(trusted_root=root)
    policy = Identity(identity=identity, issuer=issuer)
    statement = None
    try:
        if "dsseEnvelope" in doc:
            _, payload = verifier.verify_dsse(bundle, policy)
            statement = Statement.from_bytes(payload, source=f"{source} statement")
            _statement_subject(statement, artifact, source)
            kind = SignatureKind.DSSE
        else:
            if artifact is None:
                raise SigstoreVerifyError(
                    f"{source}: a message-signature bundle needs --artifact FILE|sha256:DIGEST"
                )
            target: bytes | Hashed = (
                artifact.data
                if artifact.data is not None
                else Hashed(
                    algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(artifact.digest.hex)
                )
            )
            verifier.verify_artifact(target, bundle, policy)
            kind = SignatureKind.MESSAGE
    except SigstoreError as e:
        raise SigstoreVerifyError(
            f"{source}: keyless verification failed: {e}",
            hint="check the identity, the issuer, the artifact and the trusted root",
        ) from e
    entries = doc["verificationMaterial"].get("tlogEntries", [])
    tlog = tuple(
        TlogCheck(
            int(e["logIndex"]),
            int(e.get("integratedTime", 0)),
            str(e.get("kindVersion", {}).get("kind", "")),
            "inclusionProof" in e,
            "inclusionProof" in e,
            "inclusionPromise" in e,
        )
        for e in entries
    )
    return SigstoreResult(
        str(doc.get("mediaType")),
        kind,
        f"{identity} ({issuer})",
        str(artifact.digest) if artifact else None,
        statement,
        tlog,
    )


def verify_with_key(
    data: bytes,
    key: PublicKey,
    *,
    artifact: Artifact | None,
    trusted_root: Path | None = None,
    require_tlog: bool = False,
    source: str = "bundle",
) -> SigstoreResult:
    """A bundle signed with a plain key (see the module docstring)."""
    doc = _parse(data, source)
    material = doc["verificationMaterial"]
    if "publicKey" not in material:
        raise SigstoreVerifyError(
            f"{source}: the bundle is signed with a certificate, not a key",
            hint="verify it with --certificate-identity and --certificate-oidc-issuer",
        )
    statement = None
    if "dsseEnvelope" in doc:
        try:
            envelope = dsse.Envelope.from_dict(doc["dsseEnvelope"], source=f"{source} envelope")
            verified = dsse.verify(envelope, {s.keyid: key for s in envelope.signatures})
        except StellaError as e:
            raise SigstoreVerifyError(f"{source}: {e.message}", hint=e.hint) from e
        statement = Statement.from_bytes(verified.payload, source=f"{source} statement")
        _statement_subject(statement, artifact, source)
        kind, signature = SignatureKind.DSSE, envelope.signatures[0].sig
        signed = Digest.of_bytes(envelope.payload)
    else:
        message = doc["messageSignature"]
        signature = base64.b64decode(message["signature"])
        pinned = message.get("messageDigest", {})
        if pinned.get("algorithm") != "SHA2_256":
            raise SigstoreVerifyError(f"{source}: message digest is not SHA2_256")
        signed = Digest.parse("sha256:" + base64.b64decode(pinned["digest"]).hex())
        if artifact is None:
            raise SigstoreVerifyError(
                f"{source}: a message-signature bundle needs --artifact FILE|sha256:DIGEST"
            )
        if artifact.digest != signed:
            raise SigstoreVerifyError(
                f"{source}: the bundle signs {signed}, not the artifact {artifact.digest}"
            )
        crypto = key.crypto
        if isinstance(crypto, ec.EllipticCurvePublicKey):
            try:
                crypto.verify(
                    signature, bytes.fromhex(signed.hex), ec.ECDSA(Prehashed(hashes.SHA256()))
                )
                ok = True
            except InvalidSignature:
                ok = False
        elif artifact.data is not None:
            ok = key.verify(signature, artifact.data)
        else:
            raise SigstoreVerifyError(
                f"{source}: an Ed25519 message signature needs the artifact file, not a digest"
            )
        if not ok:
            raise SigstoreVerifyError(
                f"{source}: the message signature does not verify with key {key.keyid}",
                hint="the artifact or the signature was changed, or another key signed it",
            )
        kind = SignatureKind.MESSAGE
    entries = material.get("tlogEntries") or []
    if trusted_root is None:  # an appliance's own log is checked against its trusted root only
        entries = [e for e in entries if not is_appliance_entry(e)]
    if require_tlog and not entries:
        raise SigstoreVerifyError(f"{source}: the bundle carries no transparency-log entry")
    tlog: tuple[TlogCheck, ...] = ()
    if entries:
        _, keys = read_trusted_root(trusted_root)
        tlog = tuple(verify_tlog_entry(e, keys, signature, signed) for e in entries)
    return SigstoreResult(
        str(doc.get("mediaType")),
        kind,
        f"key {key.keyid}",
        str(artifact.digest) if artifact else None,
        statement,
        tlog,
    )
