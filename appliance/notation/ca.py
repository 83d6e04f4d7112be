"""The appliance as its own small certificate authority, for Notary Project signatures.

``stella keys notation init`` makes a root: an ECDSA P-256 key (``keys/notation/ca.key``, mode
0600, encrypted with ``$STELLA_KEY_PASSPHRASE`` when set) and a self-signed CA certificate
(``keys/notation/ca.pem``, ten years). For each appliance signing key the CA issues a
code-signing leaf certificate (``keys/notation/leaf-<keyid>.pem``, one year) for that key's
public key, so the appliance key itself (a file or a token key) makes the signatures; a
rotation gets its new leaf on the first signature by the new key. The subject of the leaves
is ``notation.subject`` in config.json (default :data:`DEFAULT_SUBJECT`), the identity a
trust policy names.

Signing is on once ``config.json`` has ``"notation": {"enabled": true, …}``, which
``stella keys notation init`` writes: every verdict the gate signs then also gets a Notary
Project signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.home import Home
from appliance.notation.envelope import NotationError
from appliance.notation.trust import format_dn, parse_dn
from bundles import canonical
from bundles.keys import KeyType, PrivateKey, passphrase_from_env
from bundles.signer import Signer

DEFAULT_SUBJECT: Final = "C=ZZ, ST=Enclave, O=Stella Ops, OU=appliance, CN=stella-appliance"
ROOT_LIFETIME: Final = timedelta(days=3650)
LEAF_LIFETIME: Final = timedelta(days=365)
LEAF_RENEW: Final = timedelta(days=30)
STORE_NAME: Final = "stella-appliance"
_NAMES: Final = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
}


def _dir(home: Home) -> Path:
    return home.keys / "notation"


def settings(home: Home) -> Mapping[str, Any]:
    value = home.settings().get("notation") or {}
    if not isinstance(value, Mapping):
        raise NotationError(f"{home.config}: field 'notation' must be an object")
    return value


def enabled(home: Home) -> bool:
    """True when the gate also signs verdicts the Notary Project way."""
    return settings(home).get("enabled") is True


def subject(home: Home) -> dict[str, str]:
    text = settings(home).get("subject", DEFAULT_SUBJECT)
    if not isinstance(text, str):
        raise NotationError(f"{home.config}: notation.subject must be a string")
    return check_subject(text, where=f"{home.config}: notation.subject")


def check_subject(text: str, *, where: str) -> dict[str, str]:
    """The attributes of a signing certificate subject: C (two letters), ST and O required;
    L, OU and CN allowed."""
    attributes = parse_dn(text, where=where)
    unknown = [a for a in attributes if a not in _NAMES]
    if unknown or not all(a in attributes for a in ("C", "ST", "O")):
        raise NotationError(
            f"{where} {text!r} must name C, ST and O (and may name L, OU, CN only)",
            hint=f"for example {DEFAULT_SUBJECT!r}",
        )
    if len(attributes["C"]) != 2:
        raise NotationError(f"{where}: C must be a two-letter country code")
    return attributes


def _name(attributes: Mapping[str, str]) -> x509.Name:
    return x509.Name([x509.NameAttribute(_NAMES[k], v) for k, v in attributes.items()])


def init_ca(home: Home, *, now: datetime, subject_text: str | None = None) -> x509.Certificate:
    """Create the root (when there is none) and turn Notary Project signing on."""
    current = dict(home.settings())
    notation = dict(settings(home))
    if subject_text is not None:
        check_subject(subject_text, where="--subject")
        notation["subject"] = subject_text
    notation["enabled"] = True
    current["notation"] = notation
    home.write_settings(current)
    directory = _dir(home)
    directory.mkdir(mode=0o700, exist_ok=True)
    cert_path = directory / "ca.pem"
    if cert_path.exists():
        return root_certificate(home)
    key = PrivateKey.generate(KeyType.ECDSA_P256)
    key.save(directory / "ca.key", passphrase_from_env())
    cert = make_root(_crypto(key), subject(home), now=now)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


def _crypto(key: PrivateKey) -> ec.EllipticCurvePrivateKey:
    crypto = serialization.load_pem_private_key(key.pem(), None)
    assert isinstance(crypto, ec.EllipticCurvePrivateKey)
    return crypto


def make_root(
    key: ec.EllipticCurvePrivateKey, attributes: Mapping[str, str], *, now: datetime
) -> x509.Certificate:
    """A self-signed CA certificate (ten years, path length 0) for ``attributes`` (its CN
    replaced by the root's name)."""
    names = {k: v for k, v in attributes.items() if k != "OU"}
    names["CN"] = "Stella Ops appliance root"
    name = _name(names)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def make_leaf(
    ca_key: ec.EllipticCurvePrivateKey,
    root: x509.Certificate,
    public: ec.EllipticCurvePublicKey,
    attributes: Mapping[str, str],
    *,
    now: datetime,
) -> x509.Certificate:
    """A code-signing leaf certificate for ``public`` (one year, within the root's life)."""
    return (
        x509.CertificateBuilder()
        .subject_name(_name(attributes))
        .issuer_name(root.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + LEAF_LIFETIME, root.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def root_certificate(home: Home) -> x509.Certificate:
    path = _dir(home) / "ca.pem"
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except FileNotFoundError as e:
        raise NotationError(
            f"{path}: the appliance has no Notation CA yet", hint="run 'stella keys notation init'"
        ) from e
    except ValueError as e:
        raise NotationError(f"{path}: not a PEM certificate: {e}") from e


def require_ecdsa(signer: Signer) -> None:
    """Notary Project signatures have no EdDSA: the appliance key must be ECDSA P-256."""
    if signer.public_key.key_type is not KeyType.ECDSA_P256:
        raise NotationError(
            f"the appliance key {signer.keyid[:16]} is {signer.public_key.key_type}; Notary "
            "Project signatures need an ECDSA P-256 key",
            hint="rotate to an ECDSA P-256 key ('stella keys rotate --key-type ecdsa-p256')",
        )


def chain_for(home: Home, signer: Signer, *, now: datetime) -> list[x509.Certificate]:
    """The leaf certificate for ``signer``'s key (issued now when there is none, or it is
    within 30 days of expiring) and the root: the ``x5c`` of an envelope."""
    require_ecdsa(signer)
    root = root_certificate(home)
    path = _dir(home) / f"leaf-{signer.keyid[:16]}.pem"
    if path.exists():
        leaf = x509.load_pem_x509_certificate(path.read_bytes())
        wanted = _name(subject(home))
        if leaf.not_valid_after_utc - LEAF_RENEW > now and leaf.subject == wanted:
            return [leaf, root]
    leaf = _issue(home, root, signer, now)
    path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return [leaf, root]


def _issue(home: Home, root: x509.Certificate, signer: Signer, now: datetime) -> x509.Certificate:
    ca_key = _crypto(PrivateKey.load(_dir(home) / "ca.key", passphrase_from_env()))
    public = signer.public_key.crypto
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return make_leaf(ca_key, root, public, subject(home), now=now)


def trust_files(home: Home) -> dict[str, bytes]:
    """A Notation trust store and trust policy trusting this appliance's signatures:
    relative path -> bytes (``truststore/x509/ca/stella-appliance/root.pem``,
    ``trustpolicy.json``)."""
    root = root_certificate(home)
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "stella-appliance-verdicts",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": [f"ca:{STORE_NAME}"],
                "trustedIdentities": [f"x509.subject: {format_dn(subject(home))}"],
            }
        ],
    }
    return {
        f"truststore/x509/ca/{STORE_NAME}/root.pem": root.public_bytes(serialization.Encoding.PEM),
        "trustpolicy.json": canonical.dumps(policy) + b"\n",
    }


def fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
