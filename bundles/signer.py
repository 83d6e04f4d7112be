"""Signers: the one interface behind every signature Stella Ops makes.

A :class:`Signer` knows its key's identity (``keyid``, the hex SHA-256 of the public key's
SubjectPublicKeyInfo DER) and its public key (which names the algorithm), and signs bytes:
ECDSA P-256 over SHA-256 with a DER signature, or plain Ed25519, the forms DSSE, TUF and
cosign verify. Nothing else about a signer is assumed, so every signature (RVAs, SBOM and
VEX attestations, the audit log head, bundle statements, trust roots) is made the same way
whether the private key is a file or lives in a hardware token.

Two backends:

- a key file: :class:`bundles.keys.PrivateKey`, loaded from a PEM file (today's form);
- a PKCS#11 token (:mod:`bundles.pkcs11`), named by an RFC 7512 ``pkcs11:`` URI such as
  ``pkcs11:token=stella;object=appliance?module-path=/usr/lib/softhsm/libsofthsm2.so``.
  The private key is generated inside the token as sensitive and never extractable; only
  signatures leave it.

A signer *reference* is the text that names one: a ``pkcs11:`` URI, or a key file's path.
:func:`load_signer` opens it. A token's PIN is never part of a reference: it comes from the
file the URI's ``pin-source`` names, or from ``$STELLA_PKCS11_PIN`` (:func:`token_pin`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol, runtime_checkable

from bundles.errors import SignerError
from bundles.keys import KeyType, Passphrase, PrivateKey, PublicKey
from bundles.pkcs11_uri import (
    Pkcs11UriError,
    is_pkcs11_uri,
    parse_pkcs11_uri,
    read_uri_file,
    token_pin,
)


@runtime_checkable
class Signer(Protocol):
    """Anything that signs with one key. :class:`bundles.keys.PrivateKey` is one."""

    @property
    def keyid(self) -> str:
        """Hex SHA-256 of the public key's SubjectPublicKeyInfo DER."""
        ...

    @property
    def public_key(self) -> PublicKey:
        """The public key that verifies this signer's signatures."""
        ...

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``: ECDSA over SHA-256 (DER signature) or plain Ed25519 (64 bytes)."""
        ...


def close_signer(signer: Signer) -> None:
    """Give up what a signer holds open (a token session); a key file holds nothing."""
    close = getattr(signer, "close", None)
    if callable(close):
        close()


def load_signer(
    reference: str | Path,
    *,
    passphrase: Passphrase | None = None,
    environ: Mapping[str, str] | None = None,
) -> Signer:
    """Open the signer ``reference`` names: a ``pkcs11:`` URI opens the key in its token
    (the PIN from pin-source or ``$STELLA_PKCS11_PIN``); a file named ``*.uri`` holds such a
    URI; anything else is a PEM key file (decrypted with ``passphrase`` when encrypted)."""
    if isinstance(reference, Path) and reference.suffix == ".uri":
        reference = read_uri_file(reference)
    if is_pkcs11_uri(reference):
        from bundles import pkcs11  # the token's library is loaded only when a URI asks for it

        uri = parse_pkcs11_uri(str(reference))
        return pkcs11.open_signer(uri, token_pin(uri, environ))
    return PrivateKey.load(Path(reference), passphrase)


def generate_signer(
    reference: str | Path,
    key_type: KeyType = KeyType.ECDSA_P256,
    *,
    passphrase: Passphrase | None = None,
    environ: Mapping[str, str] | None = None,
) -> Signer:
    """Create a new key where ``reference`` says: inside the token (ECDSA P-256, sensitive,
    never extractable) for a ``pkcs11:`` URI, else a PEM key file (mode 0600) with its
    ``.pub`` beside it. Refuses to replace a key that is already there."""
    if is_pkcs11_uri(reference):
        from bundles import pkcs11

        uri = parse_pkcs11_uri(str(reference))
        if key_type is not KeyType.ECDSA_P256:
            raise Pkcs11UriError(
                f"{uri}: a token key is ECDSA P-256; {key_type} is not generated in a token",
                hint="leave the key type at its default (ecdsa-p256)",
            )
        return pkcs11.generate_signer(uri, token_pin(uri, environ))
    path = Path(reference)
    for target in (path, path.with_suffix(".pub")):
        if target.exists():
            raise SignerError(
                f"{target}: a key file already exists there",
                hint="move it away first, or choose another path",
            )
    key = PrivateKey.generate(key_type)
    key.save(path, passphrase)
    key.public_key.save(path.with_suffix(".pub"), overwrite=False)
    return key
