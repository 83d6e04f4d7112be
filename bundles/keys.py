"""Signing keys: ECDSA P-256 (the default, what cosign uses) and Ed25519, kept as PEM files.

Only these two key types are accepted anywhere, so every verifier in the system (ours,
securesystemslib, cosign, sigstore-js) agrees on what a signature means. A key's identity, its
*keyid*, is the lowercase hex SHA-256 of its SubjectPublicKeyInfo DER: computable by anyone
from the public key alone, with no registry of names.

Private keys are PKCS#8 PEM, optionally encrypted with a passphrase (the best encryption the
``cryptography`` library offers). Private key files are written atomically with mode 0600, so a
crash never leaves half a key and other users never see one.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from bundles.errors import KeyError_
from bundles.files import atomic_write

PASSPHRASE_ENV: Final = "STELLA_KEY_PASSPHRASE"  # noqa: S105 - a variable name, not a secret
"""Environment variable the command-line programs read a private key's passphrase from."""

PRIVATE_KEY_MODE: Final = 0o600
PUBLIC_KEY_MODE: Final = 0o644
KEY_FILE_LIMIT: Final = 64 << 10  # a PEM key is a few hundred bytes; anything huge is not a key

_PRIVATE_MARKERS: Final = (b"PRIVATE KEY-----",)
_COSIGN_MARKERS: Final = (b"ENCRYPTED COSIGN PRIVATE KEY", b"ENCRYPTED SIGSTORE PRIVATE KEY")

_PublicCrypto = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
_PrivateCrypto = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


class KeyFileError(KeyError_):
    """A key file cannot be read or written."""


class KeyFormatError(KeyError_):
    """A key file is not a PEM key of the expected kind (public or private)."""


class UnsupportedKeyTypeError(KeyError_):
    """A key is RSA, DSA, an elliptic curve other than P-256, or another unsupported type."""


class PassphraseError(KeyError_):
    """A private key needs a passphrase that was not given, or was given wrongly."""


class PassphraseRequiredError(PassphraseError):
    """A private key is encrypted and no passphrase was given."""


class WrongPassphraseError(PassphraseError):
    """A private key is encrypted and the given passphrase does not decrypt it."""


class KeyType(StrEnum):
    """The key types Stella Ops signs and verifies with."""

    ECDSA_P256 = "ecdsa-p256"
    ED25519 = "ed25519"

    @property
    def scheme(self) -> str:
        """The signing scheme name securesystemslib and TUF metadata use for this key type."""
        match self:
            case KeyType.ECDSA_P256:
                return "ecdsa-sha2-nistp256"
            case KeyType.ED25519:
                return "ed25519"


Passphrase = str | bytes


def passphrase_from_env(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The passphrase in ``$STELLA_KEY_PASSPHRASE``, or ``None`` when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(PASSPHRASE_ENV, "")
    return value.encode() if value else None


def _passphrase_bytes(passphrase: Passphrase | None) -> bytes | None:
    if passphrase is None:
        return None
    data = passphrase.encode() if isinstance(passphrase, str) else bytes(passphrase)
    return data or None


def _describe(key: PublicKeyTypes | PrivateKeyTypes) -> str:
    """A short human name for a key's type, for refusals."""
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"ECDSA on curve {key.curve.name}"
    return type(key).__name__.lstrip("_").removesuffix("PublicKey").removesuffix("PrivateKey")


def _unsupported(source: str, key: PublicKeyTypes | PrivateKeyTypes) -> UnsupportedKeyTypeError:
    return UnsupportedKeyTypeError(
        f"{source}: unsupported key type {_describe(key)}",
        hint="use an ECDSA P-256 or Ed25519 key (stella-mirror keys generate makes one)",
    )


def _check_public(key: PublicKeyTypes, source: str) -> tuple[KeyType, _PublicCrypto]:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return KeyType.ED25519, key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return KeyType.ECDSA_P256, key
    raise _unsupported(source, key)


def _check_private(key: PrivateKeyTypes, source: str) -> tuple[KeyType, _PrivateCrypto]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return KeyType.ED25519, key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return KeyType.ECDSA_P256, key
    raise _unsupported(source, key)


def _read_key_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(KEY_FILE_LIMIT + 1)
    except FileNotFoundError as e:
        raise KeyFileError(f"{path}: no such key file", hint="check the path") from e
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read key file: {e.strerror}") from e
    if len(data) > KEY_FILE_LIMIT:
        raise KeyFormatError(
            f"{path}: larger than {KEY_FILE_LIMIT} bytes, so not a PEM key file",
            hint="check that the path names a key file",
        )
    return data


def _write_atomically(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Write ``data`` to a temporary file beside ``path`` with ``mode``, then rename it in place.

    The file is created with its final mode, so its content is never readable by others.
    """
    if not overwrite and path.exists():
        raise KeyFileError(
            f"{path}: a key file already exists there",
            hint="move it away first, or choose another path",
        )
    try:
        atomic_write(path, data, mode=mode)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot write key file: {e.strerror}") from e


@dataclass(frozen=True, slots=True)
class PublicKey:
    """A public key we can verify signatures with.

    Built from SubjectPublicKeyInfo DER (``der``); ``key_type`` and ``keyid`` follow from it.
    ``source`` names where the key came from, for error messages only.
    """

    der: bytes = field(repr=False)
    source: str = field(default="public key", compare=False)
    key_type: KeyType = field(init=False)
    keyid: str = field(init=False)
    _crypto: _PublicCrypto = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            loaded = serialization.load_der_public_key(self.der)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise KeyFormatError(
                f"{self.source}: not a SubjectPublicKeyInfo public key: {e}"
            ) from e
        key_type, crypto = _check_public(loaded, self.source)
        # Re-encode, so that the keyid does not depend on how the input happened to be encoded.
        der = crypto.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        object.__setattr__(self, "der", der)
        object.__setattr__(self, "key_type", key_type)
        object.__setattr__(self, "keyid", hashlib.sha256(der).hexdigest())
        object.__setattr__(self, "_crypto", crypto)

    @classmethod
    def from_crypto(cls, key: PublicKeyTypes, *, source: str = "public key") -> PublicKey:
        """Wrap a ``cryptography`` public key; other key types are refused."""
        _check_public(key, source)
        der = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(der, source=source)

    @classmethod
    def from_pem(cls, data: bytes, *, source: str = "public key") -> PublicKey:
        """Parse a ``BEGIN PUBLIC KEY`` PEM block. ``source`` names the file in errors."""
        if any(marker in data for marker in _PRIVATE_MARKERS):
            raise KeyFormatError(
                f"{source}: is a private key, expected a public key",
                hint="pass the .pub file, never the private key",
            )
        try:
            loaded = serialization.load_pem_public_key(data)
        except (ValueError, UnsupportedAlgorithm) as e:
            raise KeyFormatError(
                f"{source}: not a PEM public key", hint="expected a BEGIN PUBLIC KEY block"
            ) from e
        return cls.from_crypto(loaded, source=source)

    @classmethod
    def load(cls, path: Path) -> PublicKey:
        return cls.from_pem(_read_key_file(path), source=str(path))

    @property
    def scheme(self) -> str:
        return self.key_type.scheme

    @property
    def crypto(self) -> _PublicCrypto:
        """The ``cryptography`` key object, for callers that need to hand it to a library."""
        return self._crypto

    def pem(self) -> bytes:
        return self._crypto.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def save(self, path: Path, *, overwrite: bool = True) -> None:
        """Write the PEM atomically with mode 0644."""
        _write_atomically(path, self.pem(), PUBLIC_KEY_MODE, overwrite=overwrite)

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when ``signature`` is this key's signature over ``data``.

        ECDSA signatures are DER-encoded over SHA-256; Ed25519 signatures are raw 64 bytes.
        """
        try:
            if isinstance(self._crypto, ec.EllipticCurvePublicKey):
                self._crypto.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            else:
                self._crypto.verify(signature, data)
        except InvalidSignature:
            return False
        return True


class PrivateKey:
    """A private signing key. Its ``repr`` names the keyid only, never key material."""

    __slots__ = ("_crypto", "_public", "key_type", "source")

    def __init__(self, key: PrivateKeyTypes, *, source: str = "private key") -> None:
        self.key_type, self._crypto = _check_private(key, source)
        self.source = source
        self._public = PublicKey.from_crypto(self._crypto.public_key(), source=source)

    @classmethod
    def generate(cls, key_type: KeyType = KeyType.ECDSA_P256) -> PrivateKey:
        match key_type:
            case KeyType.ECDSA_P256:
                return cls(ec.generate_private_key(ec.SECP256R1()), source="generated key")
            case KeyType.ED25519:
                return cls(ed25519.Ed25519PrivateKey.generate(), source="generated key")

    @classmethod
    def from_pem(
        cls, data: bytes, passphrase: Passphrase | None = None, *, source: str = "private key"
    ) -> PrivateKey:
        """Parse a PEM private key (PKCS#8, or SEC1 for EC), decrypting it when encrypted.

        A passphrase given for a key that is not encrypted is ignored, so one passphrase in
        the environment does not break unencrypted keys.
        """
        if any(marker in data for marker in _COSIGN_MARKERS):
            raise KeyFormatError(
                f"{source}: cosign's encrypted key format is not supported",
                hint="convert the key to a PKCS#8 PEM private key",
            )
        password = _passphrase_bytes(passphrase)
        try:
            try:
                loaded = serialization.load_pem_private_key(data, password)
            except TypeError as e:
                if password is None:
                    raise PassphraseRequiredError(
                        f"{source}: private key is encrypted and no passphrase was given",
                        hint=f"pass its passphrase, e.g. in the environment variable "
                        f"{PASSPHRASE_ENV}",
                    ) from e
                loaded = serialization.load_pem_private_key(data, None)
        except ValueError as e:
            if password is not None and b"ENCRYPTED" in data:
                raise WrongPassphraseError(
                    f"{source}: the passphrase does not decrypt this private key",
                    hint=f"pass the right passphrase, e.g. in the environment variable "
                    f"{PASSPHRASE_ENV}",
                ) from e
            raise KeyFormatError(
                f"{source}: not a PEM private key",
                hint="expected a BEGIN PRIVATE KEY or BEGIN ENCRYPTED PRIVATE KEY block",
            ) from e
        except UnsupportedAlgorithm as e:
            raise KeyFormatError(f"{source}: private key uses an unsupported algorithm") from e
        return cls(loaded, source=source)

    @classmethod
    def load(cls, path: Path, passphrase: Passphrase | None = None) -> PrivateKey:
        return cls.from_pem(_read_key_file(path), passphrase, source=str(path))

    @property
    def public_key(self) -> PublicKey:
        return self._public

    @property
    def keyid(self) -> str:
        return self._public.keyid

    @property
    def scheme(self) -> str:
        return self.key_type.scheme

    def pem(self, passphrase: Passphrase | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with the best available algorithm when a passphrase is given."""
        password = _passphrase_bytes(passphrase)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password is not None
            else serialization.NoEncryption()
        )
        return self._crypto.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def save(
        self, path: Path, passphrase: Passphrase | None = None, *, overwrite: bool = False
    ) -> None:
        """Write the key atomically with mode 0600. An existing file is kept (and
        :class:`KeyFileError` raised) unless ``overwrite`` is true: losing a signing key
        by accident would orphan every appliance that trusts it."""
        _write_atomically(path, self.pem(passphrase), PRIVATE_KEY_MODE, overwrite=overwrite)

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``: ECDSA over SHA-256 with a DER signature, or plain Ed25519."""
        if isinstance(self._crypto, ec.EllipticCurvePrivateKey):
            return self._crypto.sign(data, ec.ECDSA(hashes.SHA256()))
        return self._crypto.sign(data)

    def __repr__(self) -> str:
        return f"PrivateKey(key_type={self.key_type.value!r}, keyid={self.keyid!r})"
