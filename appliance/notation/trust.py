"""Notation's trust store and trust policy, and verifying a signature against them
(notaryproject/specifications ``specs/trust-store-trust-policy.md``).

Trust store: a directory whose ``x509/ca/NAME/`` folders each hold root certificates
(``.pem``, ``.crt``, ``.cer``; PEM or DER); sub-folders are ignored, symlinks refused.
Trust policy (``trustpolicy.json``, version ``1.0``): named policies, each with
``registryScopes`` (repository names, or the one global ``*``), ``signatureVerification``
(``level`` strict | permissive | audit | skip, optional ``override``), ``trustStores``
(``ca:NAME``) and ``trustedIdentities`` (``*`` or ``x509.subject: C=…, ST=…, O=…``).

Verification follows the specification's steps: integrity (always enforced), authenticity
(the chain meets the certificate requirements, ends in a root of a named store, and the
leaf's subject is a trusted identity), expiry, authentic timestamp (without a timestamp
authority: every certificate valid now) and revocation (offline: a certificate that names
an OCSP responder or a CRL cannot be checked here, which is a failure where revocation is
enforced). Each is enforced or logged as the level (and its override) says.

The repository an image is scoped by is its name in the appliance's store without tag or
digest (``stella images list``); an image only known by digest matches the global scope only.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from appliance.notation.envelope import (
    Envelope,
    NotationError,
    check_chain,
    check_validity,
    parse,
    verify_integrity,
)

POLICY_LIMIT: Final = 1 << 20
CERT_FILE_LIMIT: Final = 1 << 20
CERT_SUFFIXES: Final = (".pem", ".crt", ".cer")
_SHORT_NAMES: Final = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
}


class Check(StrEnum):
    INTEGRITY = "integrity"
    AUTHENTICITY = "authenticity"
    AUTHENTIC_TIMESTAMP = "authenticTimestamp"
    EXPIRY = "expiry"
    REVOCATION = "revocation"


class Action(StrEnum):
    ENFORCE = "enforce"
    LOG = "log"
    SKIP = "skip"


_LEVELS: Final[dict[str, dict[Check, Action]]] = {
    "strict": {c: Action.ENFORCE for c in Check},
    "permissive": {
        Check.INTEGRITY: Action.ENFORCE,
        Check.AUTHENTICITY: Action.ENFORCE,
        Check.AUTHENTIC_TIMESTAMP: Action.LOG,
        Check.EXPIRY: Action.LOG,
        Check.REVOCATION: Action.LOG,
    },
    "audit": {c: Action.ENFORCE if c is Check.INTEGRITY else Action.LOG for c in Check},
}


def parse_dn(text: str, *, where: str) -> dict[str, str]:
    """``C=US, ST=WA, O=acme`` as a map of attribute to value (``S`` is ``ST``); ``\\,``
    ``\\;`` ``\\\\`` and ``\\ `` escapes are honoured, a repeated attribute is refused."""
    out: dict[str, str] = {}
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    for part in parts:
        name, sep, value = part.strip().partition("=")
        name = name.strip().upper()
        if not sep or not name or not value.strip():
            raise NotationError(f"{where}: {part.strip()!r} is not an ATTRIBUTE=value pair")
        name = "ST" if name == "S" else name
        if name in out:
            raise NotationError(f"{where}: attribute {name} appears twice")
        out[name] = value.strip()
    return out


def subject_of(cert: x509.Certificate) -> dict[str, str]:
    """The certificate subject's attributes by their short names."""
    out: dict[str, str] = {}
    for attribute in cert.subject:
        name = _SHORT_NAMES.get(attribute.oid, attribute.oid.dotted_string)
        out[name] = str(attribute.value)
    return out


def format_dn(attributes: Mapping[str, str]) -> str:
    def escape(value: str) -> str:
        return value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")

    return ", ".join(f"{k}={escape(v)}" for k, v in attributes.items())


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Named collections of trusted root certificates (type ``ca``)."""

    root: Path
    stores: Mapping[str, tuple[x509.Certificate, ...]]

    @classmethod
    def load(cls, root: Path) -> TrustStore:
        base = root / "x509" / "ca"
        if not base.is_dir():
            raise NotationError(
                f"{root}: no x509/ca directory: not a Notation trust store",
                hint="the layout is DIR/x509/ca/NAME/*.pem",
            )
        stores: dict[str, tuple[x509.Certificate, ...]] = {}
        for named in sorted(base.iterdir()):
            if named.is_symlink():
                raise NotationError(f"{named}: a named store must not be a symlink")
            if not named.is_dir():
                continue
            certs: list[x509.Certificate] = []
            for path in sorted(named.iterdir()):
                if path.is_symlink():
                    raise NotationError(f"{path}: a trust store certificate must not be a symlink")
                if path.is_dir() or path.suffix.lower() not in CERT_SUFFIXES:
                    continue  # sub-directories are ignored, as the specification says
                certs.extend(_certificates(path))
            stores[named.name] = tuple(certs)
        return cls(root, stores)


def _certificates(path: Path) -> list[x509.Certificate]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as e:
        raise NotationError(f"{path}: cannot read: {e.strerror}") from e
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise NotationError(f"{path}: not a regular file")
        data = fh.read(CERT_FILE_LIMIT + 1)
    if len(data) > CERT_FILE_LIMIT:
        raise NotationError(f"{path}: larger than {CERT_FILE_LIMIT} bytes, not a certificate")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return list(x509.load_pem_x509_certificates(data))
        return [x509.load_der_x509_certificate(data)]
    except ValueError as e:
        raise NotationError(f"{path}: not a PEM or DER certificate: {e}") from e


@dataclass(frozen=True, slots=True)
class PolicyStatement:
    name: str
    scopes: tuple[str, ...]
    level: str
    actions: Mapping[Check, Action]
    trust_stores: tuple[str, ...] = ()
    identities: tuple[str, ...] = ()
    subjects: tuple[Mapping[str, str], ...] = field(default=())

    def applies_to(self, repository: str | None) -> bool:
        return "*" in self.scopes or (repository is not None and repository in self.scopes)


def _strings(value: Any, where: str, *, required: bool = True) -> tuple[str, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise NotationError(f"{where} must be an array of non-empty strings")
    return tuple(value)


def _statement(doc: Any, i: int, source: str) -> PolicyStatement:
    where = f"{source}: trustPolicies[{i}]"
    if not isinstance(doc, Mapping):
        raise NotationError(f"{where} must be an object")
    name = doc.get("name")
    if not isinstance(name, str) or not name:
        raise NotationError(f"{where}.name must be a non-empty string")
    where = f"{source}: trust policy {name!r}"
    scopes = _strings(doc.get("registryScopes"), f"{where}: registryScopes")
    if not scopes:
        raise NotationError(f"{where}: registryScopes needs at least one value")
    if "*" in scopes and len(scopes) > 1:
        raise NotationError(f"{where}: the global scope '*' must be the only scope")
    if any("*" in s for s in scopes if s != "*"):
        raise NotationError(f"{where}: a repository scope must not contain '*'")
    verification = doc.get("signatureVerification")
    if not isinstance(verification, Mapping):
        raise NotationError(f"{where}: signatureVerification must be an object with a level")
    level = verification.get("level")
    if level == "skip":
        if "*" in scopes:
            raise NotationError(f"{where}: level skip cannot be used with the global scope")
        if verification.get("override"):
            raise NotationError(f"{where}: a skip level cannot be overridden")
        return PolicyStatement(name, scopes, "skip", {})
    if level not in _LEVELS:
        raise NotationError(
            f"{where}: signatureVerification.level {level!r} is not strict, permissive, audit "
            "or skip"
        )
    actions = dict(_LEVELS[str(level)])
    override = verification.get("override") or {}
    if not isinstance(override, Mapping):
        raise NotationError(f"{where}: signatureVerification.override must be an object")
    for key, value in override.items():
        try:
            check = Check(key)
            action = Action(value)
        except ValueError as e:
            raise NotationError(f"{where}: override {key!r}: {value!r} is not allowed") from e
        if check is Check.INTEGRITY or (action is Action.SKIP and check is not Check.REVOCATION):
            raise NotationError(f"{where}: override {key!r}: {value!r} is not allowed")
        actions[check] = action
    if verification.get("verifyTimestamp") not in (None, "always", "afterCertExpiry"):
        raise NotationError(f"{where}: verifyTimestamp must be always or afterCertExpiry")
    stores = _strings(doc.get("trustStores"), f"{where}: trustStores")
    for store in stores:
        kind, sep, named = store.partition(":")
        if not sep or not named or kind not in ("ca", "signingAuthority", "tsa"):
            raise NotationError(f"{where}: trust store {store!r} is not TYPE:NAME")
        if kind == "signingAuthority":
            raise NotationError(
                f"{where}: trust store {store!r}: signing authorities are not supported here",
                hint="use ca:NAME trust stores",
            )
    identities = _strings(doc.get("trustedIdentities"), f"{where}: trustedIdentities")
    subjects: list[dict[str, str]] = []
    if identities != ("*",):
        for identity in identities:
            prefix, sep, dn = identity.partition(":")
            if not sep or prefix.strip() != "x509.subject":
                raise NotationError(
                    f"{where}: trusted identity {identity!r} is neither '*' nor x509.subject: …"
                )
            attributes = parse_dn(dn, where=f"{where}: trusted identity {identity!r}")
            missing = [a for a in ("C", "ST", "O") if a not in attributes]
            if missing:
                raise NotationError(
                    f"{where}: trusted identity {identity!r} lacks {', '.join(missing)}",
                    hint="an identity names at least C, ST and O",
                )
            subjects.append(attributes)
        for a, one in enumerate(subjects):
            for b, other in enumerate(subjects):
                if a != b and one.items() <= other.items():
                    raise NotationError(
                        f"{where}: trusted identities {identities[a]!r} and {identities[b]!r} "
                        "overlap"
                    )
    return PolicyStatement(name, scopes, str(level), actions, stores, identities, tuple(subjects))


@dataclass(frozen=True, slots=True)
class TrustPolicyDocument:
    statements: tuple[PolicyStatement, ...]
    source: str

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> TrustPolicyDocument:
        if len(data) > POLICY_LIMIT:
            raise NotationError(f"{source}: larger than {POLICY_LIMIT} bytes")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise NotationError(f"{source}: not JSON: {e}") from e
        if not isinstance(doc, Mapping) or doc.get("version") != "1.0":
            raise NotationError(
                f"{source}: not a Notation trust policy version 1.0",
                hint='write {"version": "1.0", "trustPolicies": [...]}',
            )
        raw = doc.get("trustPolicies")
        if not isinstance(raw, list) or not raw:
            raise NotationError(f"{source}: trustPolicies must be a non-empty array")
        statements = tuple(_statement(item, i, source) for i, item in enumerate(raw))
        names = [s.name for s in statements]
        for name in names:
            if names.count(name) > 1:
                raise NotationError(f"{source}: trust policy name {name!r} is used twice")
        if sum(1 for s in statements if "*" in s.scopes) > 1:
            raise NotationError(f"{source}: only one trust policy may use the global scope '*'")
        scoped = [scope for s in statements for scope in s.scopes if scope != "*"]
        for scope in scoped:
            if scoped.count(scope) > 1:
                raise NotationError(f"{source}: repository {scope!r} is in two trust policies")
        return cls(statements, source)

    @classmethod
    def load(cls, path: Path) -> TrustPolicyDocument:
        try:
            with open(path, "rb") as fh:
                data = fh.read(POLICY_LIMIT + 1)
        except OSError as e:
            raise NotationError(f"{path}: cannot read trust policy: {e.strerror}") from e
        return cls.from_bytes(data, source=str(path))

    def select(self, repository: str | None) -> PolicyStatement:
        """The exact-scope policy for ``repository``, else the global one."""
        exact = [s for s in self.statements if repository is not None and repository in s.scopes]
        chosen = exact[0] if exact else next((s for s in self.statements if "*" in s.scopes), None)
        if chosen is None:
            raise NotationError(
                f"{self.source}: no trust policy applies to {repository or 'this artifact'}",
                hint="add its repository to a policy's registryScopes, or a global '*' policy",
            )
        return chosen


@dataclass(frozen=True, slots=True)
class NotationVerification:
    """What verifying one signature found: the policy used and each validation's outcome."""

    policy: str
    level: str
    envelope: Envelope | None
    logged: tuple[str, ...]

    @property
    def signer(self) -> str:
        if self.envelope is None:
            return "(not verified: level skip)"
        return self.envelope.chain[0].subject.rfc4514_string()

    def to_dict(self) -> dict[str, Any]:
        envelope = self.envelope
        return {
            "trustPolicy": self.policy,
            "level": self.level,
            "signer": self.signer,
            "signingTime": envelope.headers.get("io.cncf.notary.signingTime") if envelope else None,
            "certificates": [c.subject.rfc4514_string() for c in envelope.chain]
            if envelope
            else [],
            "logged": list(self.logged),
        }


def _trusted_root(
    chain: Sequence[x509.Certificate], statement: PolicyStatement, store: TrustStore, source: str
) -> None:
    root = chain[-1]
    names = [s.partition(":")[2] for s in statement.trust_stores if s.startswith("ca:")]
    for name in names:
        if name not in store.stores:
            raise NotationError(
                f"{source}: trust policy {statement.name!r} names trust store ca:{name}, which "
                f"{store.root} does not hold",
                hint=f"create {store.root}/x509/ca/{name}/ with the signer's root certificate",
            )
        for trusted in store.stores[name]:
            if trusted == root or trusted == chain[0]:
                return
    raise NotationError(
        f"{source}: the certificate chain ends at {root.subject.rfc4514_string()}, which is in "
        f"none of the trust stores {', '.join('ca:' + n for n in names)}",
        hint="the signature was made under a root this verifier does not trust",
    )


def _identity(leaf: x509.Certificate, statement: PolicyStatement, source: str) -> None:
    if statement.identities == ("*",):
        return
    actual = subject_of(leaf)
    if any(wanted.items() <= actual.items() for wanted in statement.subjects):
        return
    raise NotationError(
        f"{source}: the signing certificate's subject {format_dn(actual)} is not a trusted "
        f"identity of trust policy {statement.name!r}",
        hint="add it to trustedIdentities, or the signer is not who the policy trusts",
    )


def _revocation(chain: Sequence[x509.Certificate], source: str) -> None:
    for cert in chain:
        for oid in (
            ExtensionOID.AUTHORITY_INFORMATION_ACCESS,
            ExtensionOID.CRL_DISTRIBUTION_POINTS,
        ):
            try:
                cert.extensions.get_extension_for_oid(oid)
            except x509.ExtensionNotFound:
                continue
            raise NotationError(
                f"{source}: certificate {cert.subject.rfc4514_string()} names an OCSP or CRL "
                "source, which cannot be consulted offline: its revocation status is unknown",
                hint="set override revocation to log or skip for this offline verifier",
            )


def verify(
    data: bytes,
    *,
    policy: TrustPolicyDocument,
    store: TrustStore,
    repository: str | None,
    target: Mapping[str, Any],
    now: datetime,
    source: str = "Notation signature",
) -> NotationVerification:
    """Verify one envelope for the artifact ``target`` (its descriptor: mediaType, digest,
    size) under the policy that applies to ``repository``. Raises :class:`NotationError`
    for the first enforced failure; logged failures are returned."""
    statement = policy.select(repository)
    if statement.level == "skip":
        return NotationVerification(statement.name, "skip", None, ())
    logged: list[str] = []

    def run(check: Check, step: Any) -> None:
        action = statement.actions[check]
        if action is Action.SKIP:
            return
        try:
            step()
        except NotationError as e:
            if action is Action.ENFORCE:
                raise
            logged.append(f"{check.value}: {e.message}")

    # Integrity: always enforced.
    envelope = parse(data, source=source)
    verify_integrity(envelope, source=source)
    signed = envelope.target()
    for key in ("mediaType", "digest", "size"):
        if signed.get(key) != target.get(key):
            raise NotationError(
                f"{source}: the signature is for {key} {signed.get(key)!r}, the artifact has "
                f"{target.get(key)!r}",
                hint="the signature belongs to another artifact",
            )

    def authenticity() -> None:
        check_chain(envelope.chain, source=source)
        _trusted_root(envelope.chain, statement, store, source)
        _identity(envelope.chain[0], statement, source)

    def expiry() -> None:
        if envelope.expiry is not None and now >= envelope.expiry:
            stamp = envelope.headers["io.cncf.notary.expiry"]
            raise NotationError(f"{source}: the signature expired at {stamp}")

    def authentic_timestamp() -> None:
        if any(s.startswith("tsa:") for s in statement.trust_stores):
            raise NotationError(
                f"{source}: trust policy {statement.name!r} asks for timestamp countersignature "
                "verification, which this verifier does not implement",
                hint="remove the tsa: trust store, or verify with the notation CLI",
            )
        check_validity(envelope.chain, now, source=source)

    run(Check.AUTHENTICITY, authenticity)
    run(Check.EXPIRY, expiry)
    run(Check.AUTHENTIC_TIMESTAMP, authentic_timestamp)
    run(Check.REVOCATION, lambda: _revocation(envelope.chain, source))
    return NotationVerification(statement.name, statement.level, envelope, tuple(logged))
