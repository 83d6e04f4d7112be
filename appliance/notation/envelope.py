"""The Notary Project JWS signature envelope (notaryproject/specifications,
``specs/signature-envelope-jws.md`` and ``specs/signature-specification.md``).

An envelope is one flattened JWS JSON object with exactly ``payload``, ``protected``,
``header`` and ``signature``. The protected header carries ``alg``, ``cty``
(``application/vnd.cncf.notary.payload.v1+json``), ``io.cncf.notary.signingScheme``
(``notary.x509``, critical), ``io.cncf.notary.signingTime`` and optionally
``io.cncf.notary.expiry`` (critical); the unprotected header carries the certificate chain in
``x5c`` (leaf first, root last, standard base64 DER) and the signing agent. The signature is
over ``BASE64URL(protected) '.' BASE64URL(payload)``; ECDSA signatures are the raw ``r‖s``
pair JWS uses (RFC 7518 §3.4), so a signer's DER signature is converted.

The protected header is written as compact JSON with sorted keys, and ``crit`` lists the
signing scheme, then extended critical attributes, then the expiry: the byte form of the
Notary Project's JWS conformance vector (notation-core-go ``signature/jws/testdata``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from bundles import __version__, canonical
from bundles.errors import SignatureError
from bundles.keys import KeyRingError, format_instant, parse_instant
from bundles.signer import Signer

MEDIA_TYPE: Final = "application/jose+json"
ARTIFACT_TYPE: Final = "application/vnd.cncf.notary.signature"
PAYLOAD_TYPE: Final = "application/vnd.cncf.notary.payload.v1+json"
SCHEME: Final = "notary.x509"
SIGNING_AGENT: Final = f"stella/{__version__}"
H_SCHEME: Final = "io.cncf.notary.signingScheme"
H_TIME: Final = "io.cncf.notary.signingTime"
H_AUTHENTIC_TIME: Final = "io.cncf.notary.authenticSigningTime"
H_EXPIRY: Final = "io.cncf.notary.expiry"
H_AGENT: Final = "io.cncf.notary.signingAgent"
H_TIMESTAMP: Final = "io.cncf.notary.timestampSignature"
THUMBPRINTS: Final = "io.cncf.notary.x509chain.thumbprint#S256"
ENVELOPE_LIMIT: Final = 1 << 20
CHAIN_LIMIT: Final = 10
_UNPROTECTED: Final = frozenset({"x5c", H_AGENT, H_TIMESTAMP})
_UNDERSTOOD_CRITICAL: Final = frozenset({H_SCHEME, H_EXPIRY})
_URLSAFE: Final = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

# alg -> (key kind, size, hash) per the specification's algorithm selection table.
_ALGORITHMS: Final[dict[str, tuple[str, int, type[hashes.HashAlgorithm]]]] = {
    "ES256": ("ec", 256, hashes.SHA256),
    "ES384": ("ec", 384, hashes.SHA384),
    "ES512": ("ec", 521, hashes.SHA512),
    "PS256": ("rsa", 2048, hashes.SHA256),
    "PS384": ("rsa", 3072, hashes.SHA384),
    "PS512": ("rsa", 4096, hashes.SHA512),
}
_SHA1: Final = frozenset(
    {SignatureAlgorithmOID.RSA_WITH_SHA1, SignatureAlgorithmOID.ECDSA_WITH_SHA1}
)


class NotationError(SignatureError):
    """A Notary Project signature is malformed, does not verify, or is not trusted."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: object, where: str) -> bytes:
    """Strict base64url without padding (RFC 7515 §2): anything else is refused."""
    if (
        not isinstance(text, str)
        or not text
        or not set(text.encode("ascii", "replace")) <= _URLSAFE
    ):
        raise NotationError(f"{where} is not base64url text without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise NotationError(f"{where} is not valid base64url: {e}") from e


def expected_alg(key: Any) -> str:
    """The JWS ``alg`` a certificate's public key signs with (algorithm selection table)."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        for alg, (kind, size, _) in _ALGORITHMS.items():
            if kind == "ec" and key.curve.key_size == size:
                return alg
    if isinstance(key, rsa.RSAPublicKey):
        for alg, (kind, size, _) in _ALGORITHMS.items():
            if kind == "rsa" and key.key_size == size:
                return alg
    raise NotationError(
        f"the signing certificate's key ({type(key).__name__}) has no Notary Project algorithm",
        hint="Notary Project signatures use ECDSA P-256/384/521 or RSA 2048/3072/4096 keys",
    )


def protected_header(
    signing_time: datetime,
    *,
    alg: str = "ES256",
    expiry: datetime | None = None,
    extended: Mapping[str, str] | None = None,
    critical: Sequence[str] = (),
) -> bytes:
    """The protected header's exact bytes (see the module docstring for their form)."""
    doc: dict[str, Any] = {
        "alg": alg,
        "cty": PAYLOAD_TYPE,
        H_SCHEME: SCHEME,
        H_TIME: format_instant(signing_time),
        **(extended or {}),
    }
    crit = [H_SCHEME, *critical]
    if expiry is not None:
        doc[H_EXPIRY] = format_instant(expiry)
        crit.append(H_EXPIRY)
    doc["crit"] = crit
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload_for(descriptor: Mapping[str, Any]) -> bytes:
    """The Notary Project payload: ``{"targetArtifact": descriptor}`` as canonical JSON."""
    return canonical.dumps({"targetArtifact": dict(descriptor)})


def thumbprints(chain: Sequence[x509.Certificate]) -> list[str]:
    """SHA-256 fingerprints of the chain's DER certificates, leaf first (lowercase hex)."""
    return [hashlib.sha256(c.public_bytes(_DER)).hexdigest() for c in chain]


def sign(
    payload: bytes,
    chain: Sequence[x509.Certificate],
    signer: Signer,
    *,
    signing_time: datetime,
    expiry: datetime | None = None,
) -> bytes:
    """The envelope JSON of ``payload`` signed by ``signer``, whose public key must be the
    leaf certificate's (ECDSA P-256: ES256)."""
    leaf_key = chain[0].public_key()
    if signer.public_key.der != leaf_key.public_bytes(_DER, _SPKI):
        raise NotationError(
            f"the signing key {signer.keyid[:16]} is not the key of the signing certificate",
            hint="issue a signing certificate for the current appliance key",
        )
    alg = expected_alg(leaf_key)
    if alg != "ES256":
        raise NotationError(f"the appliance signs Notary Project envelopes with ES256, not {alg}")
    protected = protected_header(signing_time, alg=alg, expiry=expiry)
    signing_input = f"{b64url(protected)}.{b64url(payload)}".encode("ascii")
    r, s = decode_dss_signature(signer.sign(signing_input))
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    envelope = {
        "payload": b64url(payload),
        "protected": b64url(protected),
        "header": {
            "x5c": [base64.b64encode(c.public_bytes(_DER)).decode("ascii") for c in chain],
            H_AGENT: SIGNING_AGENT,
        },
        "signature": b64url(raw),
    }
    return canonical.dumps(envelope)


@dataclass(frozen=True, slots=True)
class Envelope:
    """A parsed envelope: the exact bytes it signs, its headers and its chain."""

    payload: bytes
    protected: bytes
    headers: Mapping[str, Any]
    chain: tuple[x509.Certificate, ...]
    signature: bytes
    signing_input: bytes
    agent: str | None
    has_timestamp: bool

    @property
    def alg(self) -> str:
        return str(self.headers["alg"])

    @property
    def signing_time(self) -> datetime:
        return parse_instant(self.headers[H_TIME], where=H_TIME)

    @property
    def expiry(self) -> datetime | None:
        value = self.headers.get(H_EXPIRY)
        return parse_instant(value, where=H_EXPIRY) if value is not None else None

    def target(self) -> Mapping[str, Any]:
        """The signed ``targetArtifact`` descriptor."""
        doc = canonical.loads(self.payload, limit=ENVELOPE_LIMIT, source="notation payload")
        target = doc.get("targetArtifact") if isinstance(doc, Mapping) else None
        if not isinstance(target, Mapping) or not all(
            k in target for k in ("mediaType", "digest", "size")
        ):
            raise NotationError(
                "the signed payload has no targetArtifact descriptor with mediaType, digest "
                "and size"
            )
        return target


def parse(data: bytes, *, source: str = "signature envelope") -> Envelope:
    """Read an envelope strictly: exactly the four members, a protected header with the
    required Notary Project attributes, every critical attribute understood, and a chain of
    X.509 certificates in ``x5c``."""
    if len(data) > ENVELOPE_LIMIT:
        raise NotationError(f"{source}: larger than {ENVELOPE_LIMIT} bytes")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise NotationError(f"{source}: not JSON: {e}", hint="expected a JWS JSON envelope") from e
    if not isinstance(doc, dict) or set(doc) != {"payload", "protected", "header", "signature"}:
        members = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise NotationError(
            f"{source}: a flattened JWS JSON envelope has exactly payload, protected, header "
            f"and signature; this one has {members}"
        )
    payload = b64url_decode(doc["payload"], f"{source}: payload")
    protected = b64url_decode(doc["protected"], f"{source}: protected")
    signature = b64url_decode(doc["signature"], f"{source}: signature")
    try:
        headers = json.loads(protected)
    except (ValueError, UnicodeDecodeError) as e:
        raise NotationError(f"{source}: the protected header is not JSON: {e}") from e
    if not isinstance(headers, dict):
        raise NotationError(f"{source}: the protected header is not a JSON object")
    alg = headers.get("alg")
    if alg not in _ALGORITHMS:
        raise NotationError(
            f"{source}: protected header alg {alg!r} is not a Notary Project algorithm",
            hint=f"one of {', '.join(_ALGORITHMS)}",
        )
    if headers.get("cty") != PAYLOAD_TYPE:
        raise NotationError(
            f"{source}: protected header cty is {headers.get('cty')!r}, not {PAYLOAD_TYPE}"
        )
    crit = headers.get("crit")
    if not isinstance(crit, list) or H_SCHEME not in crit:
        raise NotationError(f"{source}: protected header crit must list {H_SCHEME}")
    for name in crit:
        if name not in _UNDERSTOOD_CRITICAL:
            raise NotationError(
                f"{source}: critical attribute {name!r} is not understood here",
                hint="a signature needing a verification plugin cannot be verified offline",
            )
        if name not in headers:
            raise NotationError(f"{source}: critical attribute {name!r} is missing")
    if headers.get(H_EXPIRY) is not None and H_EXPIRY not in crit:
        raise NotationError(f"{source}: {H_EXPIRY} must be listed in crit")
    scheme = headers.get(H_SCHEME)
    if scheme != SCHEME:
        raise NotationError(
            f"{source}: signing scheme {scheme!r} is not supported",
            hint=f"only {SCHEME} (a signing authority's scheme needs its authentic time source)",
        )
    if H_TIME not in headers:
        raise NotationError(f"{source}: protected header {H_TIME} is required for {SCHEME}")
    for name in (H_TIME, H_EXPIRY):
        if name in headers:
            try:
                parse_instant(headers[name], where=f"{source}: protected header {name}")
            except KeyRingError as e:
                raise NotationError(e.message, hint=e.hint) from e
    header = doc["header"]
    if not isinstance(header, dict):
        raise NotationError(f"{source}: header must be a JSON object")
    unknown = set(header) - _UNPROTECTED
    if unknown:
        raise NotationError(f"{source}: unprotected header {sorted(unknown)[0]!r} is not allowed")
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c or len(x5c) > CHAIN_LIMIT:
        raise NotationError(
            f"{source}: header x5c must hold the certificate chain "
            f"(1 to {CHAIN_LIMIT} certificates)"
        )
    chain = []
    for i, item in enumerate(x5c):
        try:
            der = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
            chain.append(x509.load_der_x509_certificate(der))
        except (binascii.Error, ValueError) as e:
            raise NotationError(f"{source}: x5c[{i}] is not a base64 DER certificate") from e
    agent = header.get(H_AGENT)
    return Envelope(
        payload=payload,
        protected=protected,
        headers=headers,
        chain=tuple(chain),
        signature=signature,
        signing_input=f"{doc['protected']}.{doc['payload']}".encode("ascii"),
        agent=agent if isinstance(agent, str) else None,
        has_timestamp=H_TIMESTAMP in header,
    )


def verify_integrity(envelope: Envelope, *, source: str = "signature envelope") -> None:
    """The signature over the signing input by the leaf certificate's key, with ``alg`` the
    one that key dictates (no algorithm substitution)."""
    key = envelope.chain[0].public_key()
    wanted = expected_alg(key)
    if envelope.alg != wanted:
        raise NotationError(
            f"{source}: alg {envelope.alg} does not match the signing certificate's key ({wanted})",
            hint="the envelope's algorithm was substituted",
        )
    _, size, digest = _ALGORITHMS[wanted]
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            n = (size + 7) // 8
            if len(envelope.signature) != 2 * n:
                raise InvalidSignature
            r = int.from_bytes(envelope.signature[:n], "big")
            s = int.from_bytes(envelope.signature[n:], "big")
            key.verify(encode_dss_signature(r, s), envelope.signing_input, ec.ECDSA(digest()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(
                envelope.signature,
                envelope.signing_input,
                padding.PSS(padding.MGF1(digest()), digest().digest_size),
                digest(),
            )
    except InvalidSignature as e:
        raise NotationError(
            f"{source}: the signature does not verify over the protected header and payload",
            hint="the payload or a signed attribute was changed after signing",
        ) from e


def _extension(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[Any] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


def _check_leaf(cert: x509.Certificate, where: str) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        raise NotationError(f"{where}: the signing certificate is a CA (basicConstraints cA true)")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.critical or not usage.value.digital_signature:
        raise NotationError(
            f"{where}: the signing certificate needs a critical keyUsage with digitalSignature"
        )
    ku = usage.value
    forbidden = [
        name
        for name, on in (
            ("keyEncipherment", ku.key_encipherment),
            ("dataEncipherment", ku.data_encipherment),
            ("keyAgreement", ku.key_agreement),
            ("keyCertSign", ku.key_cert_sign),
            ("cRLSign", ku.crl_sign),
        )
        if on
    ]
    if forbidden:
        raise NotationError(f"{where}: the signing certificate's keyUsage has {forbidden[0]}")
    eku = _extension(cert, x509.ExtendedKeyUsage)
    if eku is not None:
        bad = {
            ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
            ExtendedKeyUsageOID.SERVER_AUTH,
            ExtendedKeyUsageOID.CLIENT_AUTH,
            ExtendedKeyUsageOID.EMAIL_PROTECTION,
            ExtendedKeyUsageOID.TIME_STAMPING,
        }
        if any(oid in bad for oid in eku.value):
            raise NotationError(
                f"{where}: the signing certificate's extendedKeyUsage is not code signing"
            )
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise NotationError(f"{where}: RSA key of {key.key_size} bits (2048 at least)")
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < 256:
        raise NotationError(f"{where}: EC key of {key.curve.key_size} bits (256 at least)")


def _check_ca(cert: x509.Certificate, depth: int, where: str) -> None:
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.critical or not constraints.value.ca:
        raise NotationError(f"{where}: a CA certificate needs a critical basicConstraints cA true")
    limit = constraints.value.path_length
    if limit is not None and depth > limit:
        raise NotationError(f"{where}: pathLenConstraint {limit} is exceeded by the chain below it")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.critical or not usage.value.key_cert_sign:
        raise NotationError(f"{where}: a CA certificate needs a critical keyUsage with keyCertSign")


def check_chain(chain: Sequence[x509.Certificate], *, source: str = "certificate chain") -> None:
    """The specification's certificate requirements: a leaf fit for code signing, CA
    certificates that may sign certificates, each certificate issued by the next, a
    self-signed root last, and no SHA-1 signature anywhere."""
    for i, cert in enumerate(chain):
        where = f"{source} [{i}] {cert.subject.rfc4514_string()}"
        if cert.signature_algorithm_oid in _SHA1:
            raise NotationError(f"{where}: signed with SHA-1")
        if i == 0:
            _check_leaf(cert, where)
        else:
            _check_ca(cert, i - 1, where)
        issuer = chain[i + 1] if i + 1 < len(chain) else cert
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as e:
            what = (
                "is not self-signed (the chain ends without its root)"
                if issuer is cert
                else (f"is not issued by {issuer.subject.rfc4514_string()}")
            )
            raise NotationError(f"{where} {what}") from e


def check_validity(chain: Sequence[x509.Certificate], when: datetime, *, source: str) -> None:
    """Every certificate of the chain valid at ``when``."""
    for cert in chain:
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if not start <= when <= end:
            raise NotationError(
                f"{source}: certificate {cert.subject.rfc4514_string()} is valid from "
                f"{format_instant(start)} to {format_instant(end)}, not at {format_instant(when)}",
                hint="the certificate has expired or is not yet valid",
            )


_DER: Final = Encoding.DER
_SPKI: Final = PublicFormat.SubjectPublicKeyInfo
