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
from dataclasses import dataclass, field, replace
from datetime import datetime
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

from bundles import rfc3339
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


# ------------------------------------------------------------------ validity windows and rings


class KeyWindowError(KeyError_):
    """A signature was made outside its key's validity window."""


class KeyRevokedError(KeyWindowError):
    """A signature was made at or after its key's revocation."""


class KeyRingError(KeyError_):
    """A key ring file is malformed, or a change to it is not allowed."""


def format_instant(value: datetime) -> str:
    """RFC 3339 UTC to the second (:func:`bundles.rfc3339.format_time`)."""
    return rfc3339.format_time(value)


def parse_instant(text: object, *, where: str) -> datetime:
    """An RFC 3339 time as aware UTC (:func:`bundles.rfc3339.parse_time`), refused as a
    :class:`KeyRingError` naming ``where``."""
    try:
        return rfc3339.parse_time(text, where=where)
    except rfc3339.TimeFormatError as e:
        raise KeyRingError(e.message, hint=e.hint) from e


@dataclass(frozen=True, slots=True)
class ValidFor:
    """A key's validity window, half open: ``start <= t < end``. ``start`` None means from
    the beginning (a home's first key, so verdicts may pin evaluation times before the home
    was made); ``end`` None means until it is rotated away."""

    start: datetime | None = None
    end: datetime | None = None

    def contains(self, when: datetime) -> bool:
        return (self.start is None or self.start <= when) and (self.end is None or when < self.end)

    def describe(self) -> str:
        start = format_instant(self.start) if self.start else "the beginning"
        end = format_instant(self.end) if self.end else "open"
        return f"[{start}, {end})"

    def to_dict(self) -> dict[str, str]:
        out = {}
        if self.start is not None:
            out["start"] = format_instant(self.start)
        if self.end is not None:
            out["end"] = format_instant(self.end)
        return out

    @classmethod
    def from_dict(cls, doc: object, *, where: str) -> ValidFor:
        if not isinstance(doc, Mapping):
            raise KeyRingError(f"{where}.validFor must be an object with start and end")
        unknown = set(doc) - {"start", "end"}
        if unknown:
            raise KeyRingError(f"{where}.validFor has unknown field {sorted(unknown)[0]!r}")
        start = doc.get("start")
        end = doc.get("end")
        window = cls(
            parse_instant(start, where=f"{where}.validFor.start") if start is not None else None,
            parse_instant(end, where=f"{where}.validFor.end") if end is not None else None,
        )
        if window.start is not None and window.end is not None and window.end <= window.start:
            raise KeyRingError(f"{where}.validFor ends before it starts: {window.describe()}")
        return window


@dataclass(frozen=True, slots=True)
class Revocation:
    """A key reported compromised: signatures made at or after ``at`` are refused."""

    at: datetime
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"at": format_instant(self.at), "reason": self.reason}

    @classmethod
    def from_dict(cls, doc: object, *, where: str) -> Revocation:
        if not isinstance(doc, Mapping) or not isinstance(doc.get("reason"), str):
            raise KeyRingError(f"{where}.revoked must be an object with 'at' and 'reason'")
        return cls(parse_instant(doc.get("at"), where=f"{where}.revoked.at"), doc["reason"])


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One key of a ring: its public key, its window, where its private half is (``signer``:
    a ``pkcs11:`` URI or a file name in the ring's directory; None once retired for good),
    when it was made, and its revocation if it was reported compromised."""

    key: PublicKey
    valid_for: ValidFor
    created: datetime
    signer: str | None = None
    revoked: Revocation | None = None

    @property
    def keyid(self) -> str:
        return self.key.keyid

    def usable_at(self, when: datetime) -> bool:
        return self.valid_for.contains(when) and (self.revoked is None or when < self.revoked.at)

    def check_signed_at(self, when: datetime | None, *, source: str) -> None:
        """Refuse a signature of this key made at ``when`` outside its window or after its
        revocation (see :func:`check_window`)."""
        check_window(self.keyid, self.valid_for, self.revoked, when, source=source)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "keyid": self.keyid,
            "keyType": str(self.key.key_type),
            "publicKey": self.key.pem().decode("ascii"),
            "validFor": self.valid_for.to_dict(),
            "created": format_instant(self.created),
        }
        if self.signer is not None:
            out["signer"] = self.signer
        if self.revoked is not None:
            out["revoked"] = self.revoked.to_dict()
        return out

    def public_dict(self) -> dict[str, object]:
        """What auditors take out: everything but where the private half is."""
        out = self.to_dict()
        out.pop("signer", None)
        return out

    @classmethod
    def from_dict(cls, doc: object, *, where: str) -> KeyEntry:
        if not isinstance(doc, Mapping):
            raise KeyRingError(f"{where} must be an object")
        pem = doc.get("publicKey")
        if not isinstance(pem, str):
            raise KeyRingError(f"{where}.publicKey must be a PEM public key string")
        key = PublicKey.from_pem(pem.encode("ascii", "replace"), source=f"{where}.publicKey")
        if doc.get("keyid", key.keyid) != key.keyid:
            raise KeyRingError(
                f"{where}.keyid {doc.get('keyid')!r} is not the keyid of its publicKey "
                f"({key.keyid})"
            )
        signer = doc.get("signer")
        if signer is not None and not isinstance(signer, str):
            raise KeyRingError(f"{where}.signer must be a string")
        revoked = doc.get("revoked")
        return cls(
            key=key,
            valid_for=ValidFor.from_dict(doc.get("validFor", {}), where=where),
            created=parse_instant(doc.get("created"), where=f"{where}.created"),
            signer=signer,
            revoked=Revocation.from_dict(revoked, where=where) if revoked is not None else None,
        )


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Every key a signer has used or will use, oldest first. Windows follow one another:
    each key's window ends where the next one's starts, so at any time one key signs."""

    entries: tuple[KeyEntry, ...]
    source: str = field(default="key ring", compare=False)

    def __post_init__(self) -> None:
        if not self.entries:
            raise KeyRingError(f"{self.source}: holds no key")
        seen: set[str] = set()
        for before, after in zip(self.entries, self.entries[1:], strict=False):
            if after.valid_for.start is None or before.valid_for.end != after.valid_for.start:
                raise KeyRingError(
                    f"{self.source}: key {after.keyid[:16]}'s window "
                    f"{after.valid_for.describe()} does not start where key "
                    f"{before.keyid[:16]}'s {before.valid_for.describe()} ends",
                    hint="restore the key ring from a backup",
                )
        for entry in self.entries:
            if entry.keyid in seen:
                raise KeyRingError(f"{self.source}: key {entry.keyid[:16]} is listed twice")
            seen.add(entry.keyid)

    @property
    def latest(self) -> KeyEntry:
        return self.entries[-1]

    def get(self, keyid: str) -> KeyEntry | None:
        return next((e for e in self.entries if e.keyid == keyid), None)

    def at(self, when: datetime) -> KeyEntry | None:
        """The key whose window holds ``when`` (revoked or not)."""
        return next((e for e in self.entries if e.valid_for.contains(when)), None)

    def rotated(self, new: PublicKey, *, at: datetime, created: datetime, signer: str) -> KeyRing:
        """The ring with ``new`` taking over at ``at``: the current last key's window ends
        there. Refused when a next key is already waiting, or ``at`` is not inside the last
        key's window."""
        last = self.latest
        if last.valid_for.end is not None:
            raise KeyRingError(
                f"{self.source}: key {last.keyid[:16]} already ends at "
                f"{format_instant(last.valid_for.end)}",
                hint="a rotation is already planned; wait for it before planning the next",
            )
        if self.get(new.keyid) is not None:
            raise KeyRingError(
                f"key {new.keyid[:16]} is already in the key ring",
                hint="rotate to a new key: a retired key never comes back",
            )
        if last.valid_for.start is not None and at <= last.valid_for.start:
            raise KeyRingError(
                f"--at {format_instant(at)} is not after the current key's start "
                f"{format_instant(last.valid_for.start)}",
                hint="choose a later switch time",
            )
        ended = replace(last, valid_for=ValidFor(last.valid_for.start, at))
        entry = KeyEntry(new, ValidFor(at, None), created, signer)
        return replace(self, entries=(*self.entries[:-1], ended, entry))

    def revoked(self, keyid: str, revocation: Revocation) -> KeyRing:
        entry = self.get(keyid)
        if entry is None:
            known = ", ".join(e.keyid[:16] for e in self.entries)
            raise KeyRingError(f"no key {keyid} in the key ring", hint=f"known keys: {known}")
        if entry.revoked is not None and entry.revoked.at <= revocation.at:
            raise KeyRingError(
                f"key {entry.keyid[:16]} is already revoked at "
                f"{format_instant(entry.revoked.at)} ({entry.revoked.reason})",
                hint="a revocation can only move earlier",
            )
        changed = replace(entry, revoked=revocation)
        return replace(
            self, entries=tuple(changed if e.keyid == entry.keyid else e for e in self.entries)
        )

    def find(self, prefix: str) -> KeyEntry:
        """The key whose keyid starts with ``prefix`` (at least 8 hex digits)."""
        text = prefix.lower().removeprefix("sha256:")
        matches = [e for e in self.entries if len(text) >= 8 and e.keyid.startswith(text)]
        if len(matches) != 1:
            known = ", ".join(e.keyid[:16] for e in self.entries)
            raise KeyRingError(
                f"{prefix!r} names {'no' if not matches else 'more than one'} key of the ring",
                hint=f"give at least 8 hex digits of a keyid; known keys: {known}",
            )
        return matches[0]

    def to_dict(self) -> dict[str, object]:
        return {"version": 1, "keys": [e.to_dict() for e in self.entries]}

    @classmethod
    def from_dict(cls, doc: object, *, source: str) -> KeyRing:
        if not isinstance(doc, Mapping) or doc.get("version") != 1:
            raise KeyRingError(
                f"{source}: not a key ring (expected an object with version 1)",
                hint="restore the key ring from a backup",
            )
        raw = doc.get("keys")
        if not isinstance(raw, list):
            raise KeyRingError(f"{source}: field 'keys' must be an array")
        entries = tuple(
            KeyEntry.from_dict(item, where=f"{source}: keys[{i}]") for i, item in enumerate(raw)
        )
        return cls(entries, source=source)


def check_window(
    keyid: str,
    valid_for: ValidFor,
    revoked: Revocation | None,
    when: datetime | None,
    *,
    source: str,
) -> None:
    """Refuse a signature by key ``keyid`` made at ``when`` outside ``valid_for`` or at or
    after ``revoked``, naming the key and its window. ``when`` None (the statement records
    no signing time) passes only for a key that was never revoked."""
    short = keyid[:16]
    if when is None:
        if revoked is not None:
            raise KeyRevokedError(
                f"{source}: signed by key {short}, revoked at {format_instant(revoked.at)} "
                f"({revoked.reason}), and the statement records no signing time to show it "
                "was made before",
                hint="obtain a signature by a key that is not revoked",
            )
        return
    stamp = format_instant(when)
    if revoked is not None and when >= revoked.at:
        raise KeyRevokedError(
            f"{source}: signed at {stamp} by key {short}, revoked at "
            f"{format_instant(revoked.at)} ({revoked.reason})",
            hint="a signature made after its key was revoked is not trusted; re-evaluate "
            "with the appliance's current key",
        )
    if not valid_for.contains(when):
        raise KeyWindowError(
            f"{source}: signed at {stamp} by key {short}, outside its validity window "
            f"{valid_for.describe()}",
            hint="the key was not in service then, so the signature is refused",
        )
