"""DSSE v1 envelopes: sign bytes of a declared type, verify them against trusted keys.

Spec: https://github.com/secure-systems-lab/dsse (``envelope.md``, ``protocol.md``). What is
signed is the pre-authentication encoding :func:`pae` of the payload type and the payload
bytes, so the signed bytes are never re-serialized to be checked: an :class:`Envelope` keeps
its payload exactly as it arrived, and :func:`verify` hands back those same bytes.

Parsing follows the spec's rules: ``payload``, ``payloadType``, ``signatures`` and each
``sig`` are required; ``keyid`` is optional (unset means empty); unknown fields are ignored;
base64 may be standard or URL-safe. Envelopes are written with standard base64 and always
carry a ``keyid`` (some readers fail on a signature without one).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from bundles import canonical
from bundles.errors import CanonicalJSONError, SignatureError, SizeLimitError
from bundles.keys import PublicKey
from bundles.signer import Signer

ENVELOPE_LIMIT: Final = 16 << 20
"""Default size limit for an envelope read from outside (16 MiB)."""


class EnvelopeFormatError(SignatureError):
    """An envelope is not a well-formed DSSE JSON envelope."""


class EnvelopeTooLargeError(EnvelopeFormatError, SizeLimitError):
    """An envelope is larger than the size limit it was read under."""


class NoSignaturesError(SignatureError):
    """An envelope carries no signatures at all."""


class UntrustedKeyError(SignatureError):
    """Every signature in an envelope names a key that is not trusted."""


class InvalidSignatureError(SignatureError):
    """A signature by a trusted key does not verify over the payload and payload type."""


class ThresholdError(SignatureError):
    """Fewer distinct trusted keys signed than the threshold requires."""


class PayloadTypeMismatchError(SignatureError):
    """The envelope verifies but carries a different payload type than the caller expects."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the exact bytes that are signed.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, where LEN is the decimal byte
    length and the type is UTF-8 encoded.
    """
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature; ``keyid`` is ``""`` when the envelope did not name the key."""

    keyid: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Envelope:
    """A DSSE envelope. ``payload`` holds the exact signed bytes."""

    payload: bytes
    payload_type: str
    signatures: tuple[Signature, ...] = ()

    def pae(self) -> bytes:
        return pae(self.payload_type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        return {
            "payload": base64.b64encode(self.payload).decode("ascii"),
            "payloadType": self.payload_type,
            "signatures": [
                {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")}
                for s in self.signatures
            ],
        }

    def to_json(self) -> bytes:
        """Canonical JSON (RFC 8785) bytes of :meth:`to_dict`."""
        return canonical.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "envelope") -> Envelope:
        """Build an envelope from parsed JSON, naming ``source`` and the field in errors.

        ``data`` is only read, never modified.
        """
        if not isinstance(data, Mapping):
            raise EnvelopeFormatError(
                f"{source}: a DSSE envelope must be a JSON object, got {canonical.kind_of(data)}"
            )
        payload = _b64_field(data, "payload", source)
        payload_type = _require(data, "payloadType", str, source)
        raw_sigs = _require(data, "signatures", list, source)
        signatures = []
        for i, raw in enumerate(raw_sigs):
            where = f"signatures[{i}]"
            if not isinstance(raw, Mapping):
                raise EnvelopeFormatError(
                    f"{source}: field {where!r} must be an object, got {canonical.kind_of(raw)}"
                )
            keyid = raw.get("keyid")
            if keyid is None:
                keyid = ""
            elif not isinstance(keyid, str):
                raise EnvelopeFormatError(
                    f"{source}: field '{where}.keyid' must be a string, "
                    f"got {canonical.kind_of(keyid)}"
                )
            signatures.append(Signature(keyid=keyid, sig=_b64_field(raw, "sig", source, where)))
        return cls(payload=payload, payload_type=payload_type, signatures=tuple(signatures))

    @classmethod
    def from_json(
        cls, data: bytes | str, *, limit: int = ENVELOPE_LIMIT, source: str = "envelope"
    ) -> Envelope:
        """Parse an envelope strictly: under ``limit`` bytes, no duplicate keys, every
        required field present and of the right type, base64 that decodes."""
        if len(data) > limit:
            raise EnvelopeTooLargeError(
                f"{source}: {len(data)} bytes exceeds the envelope size limit of {limit} bytes",
                hint="the file is not the envelope expected, or the limit is too small",
            )
        try:
            parsed = canonical.loads(data, limit=limit, source=source)
        except CanonicalJSONError as e:
            raise EnvelopeFormatError(e.message, hint="expected a DSSE JSON envelope") from e
        return cls.from_dict(parsed, source=source)


@dataclass(frozen=True, slots=True)
class Verified:
    """What a successful verification vouches for: these exact bytes, this type, these keys."""

    payload: bytes
    payload_type: str
    keyids: tuple[str, ...]


def _require(data: Mapping[str, Any], name: str, kind: type, source: str, where: str = "") -> Any:
    label = f"{where}.{name}" if where else name
    if name not in data:
        raise EnvelopeFormatError(f"{source}: required field {label!r} is missing")
    value = data[name]
    if not isinstance(value, kind):
        expected = "a string" if kind is str else "an array" if kind is list else kind.__name__
        raise EnvelopeFormatError(
            f"{source}: field {label!r} must be {expected}, got {canonical.kind_of(value)}"
        )
    return value


def _b64_field(data: Mapping[str, Any], name: str, source: str, where: str = "") -> bytes:
    text: str = _require(data, name, str, source, where)
    label = f"{where}.{name}" if where else name
    try:
        return _b64decode(text)
    except ValueError as e:
        raise EnvelopeFormatError(
            f"{source}: field {label!r} is not valid base64: {e}",
            hint="DSSE fields are standard or URL-safe base64 with padding",
        ) from e


def _b64decode(text: str) -> bytes:
    """Standard or URL-safe base64 with padding; any other character is an error."""
    if not text.isascii():
        raise ValueError("contains non-ASCII characters")
    if "-" in text or "_" in text:
        if "+" in text or "/" in text:
            raise ValueError("mixes standard and URL-safe alphabets")
        text = text.translate(str.maketrans("-_", "+/"))
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as e:
        raise ValueError(str(e)) from e


def sign(payload: bytes, payload_type: str, keys: Signer | Iterable[Signer]) -> Envelope:
    """Sign ``payload`` as ``payload_type`` with one signer or several (each signs once)."""
    envelope = Envelope(payload=bytes(payload), payload_type=payload_type)
    key_list = [keys] if isinstance(keys, Signer) else list(keys)
    if not key_list:
        raise ValueError("sign() needs at least one private key (signer)")
    for key in key_list:
        envelope = add_signature(envelope, key)
    return envelope


def add_signature(envelope: Envelope, key: Signer) -> Envelope:
    """A copy of ``envelope`` with ``key``'s signature added, for signers who sign one after
    another. A key that already signed is not added twice."""
    if any(s.keyid == key.keyid for s in envelope.signatures):
        return envelope
    signature = Signature(keyid=key.keyid, sig=key.sign(envelope.pae()))
    return Envelope(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        signatures=(*envelope.signatures, signature),
    )


TrustedKeys = Mapping[str, PublicKey] | Iterable[PublicKey]
"""Keys to verify with: public keys (trusted under their own keyid), or a mapping from the
keyid a signer uses to the key, for signers that name keys their own way."""


def _trusted_map(keys: TrustedKeys) -> dict[str, PublicKey]:
    if isinstance(keys, Mapping):
        return dict(keys)
    return {key.keyid: key for key in keys}


def _short(keyid: str) -> str:
    return keyid[:16] + "…" if len(keyid) > 20 else keyid


def _keyid_list(keyids: Iterable[str]) -> str:
    names = sorted(keyids)
    if not names:
        return "none"
    shown = ", ".join(_short(k) for k in names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def verify(
    envelope: Envelope,
    keys: TrustedKeys,
    *,
    threshold: int = 1,
    payload_type: str | None = None,
) -> Verified:
    """Check that at least ``threshold`` distinct trusted keys signed ``envelope``.

    A signature without a keyid is tried against every trusted key. A key that signed twice
    counts once. Signatures that do not count (untrusted or invalid) are tolerated when the
    threshold is met anyway, as in TUF. When ``payload_type`` is given, the verified envelope
    must carry exactly that type. Raises a :class:`SignatureError` subclass saying why not.
    """
    if threshold < 1:
        raise ValueError(f"threshold must be at least 1, got {threshold}")
    if not envelope.signatures:
        raise NoSignaturesError(
            "envelope has no signatures", hint="the file was never signed, or was stripped"
        )
    trusted = _trusted_map(keys)
    message = envelope.pae()
    verified: set[str] = set()  # canonical keyids of keys that verified
    untrusted: list[str] = []
    invalid: list[str] = []
    for signature in envelope.signatures:
        if signature.keyid:
            key = trusted.get(signature.keyid)
            if key is None:
                untrusted.append(signature.keyid)
            elif key.verify(signature.sig, message):
                verified.add(key.keyid)
            else:
                invalid.append(signature.keyid)
        else:
            match = next((k for k in trusted.values() if k.verify(signature.sig, message)), None)
            if match is None:
                invalid.append("")
            else:
                verified.add(match.keyid)

    if len(verified) < threshold:
        raise _failure(verified, untrusted, invalid, threshold, trusted)
    if payload_type is not None and envelope.payload_type != payload_type:
        raise PayloadTypeMismatchError(
            f"envelope payload type is {envelope.payload_type!r}, expected {payload_type!r}",
            hint="this file is not the kind of signed document expected here",
        )
    return Verified(
        payload=envelope.payload,
        payload_type=envelope.payload_type,
        keyids=tuple(sorted(verified)),
    )


def _failure(
    verified: set[str],
    untrusted: list[str],
    invalid: list[str],
    threshold: int,
    trusted: Mapping[str, PublicKey],
) -> SignatureError:
    """The most telling error for a verification that fell short of the threshold."""
    if verified:
        others = []
        if invalid:
            others.append(f"not verifying: {_keyid_list(k or '(no keyid)' for k in invalid)}")
        if untrusted:
            others.append(f"untrusted: {_keyid_list(untrusted)}")
        detail = f" ({'; '.join(others)})" if others else ""
        return ThresholdError(
            f"only {len(verified)} of {threshold} required distinct trusted keys signed "
            f"the envelope: {_keyid_list(verified)}{detail}",
            hint="more of the trusted keys must sign it",
        )
    if invalid:
        keyid = invalid[0]
        if keyid:
            text = f"signature by key {keyid} does not verify over the payload"
        else:
            text = "signature without keyid does not verify over the payload with any trusted key"
        return InvalidSignatureError(
            text, hint="the payload, its type or the signature was changed after signing"
        )
    return UntrustedKeyError(
        f"envelope is signed only by keys that are not trusted: {', '.join(untrusted)}; "
        f"trusted keys: {_keyid_list(trusted)}",
        hint="trust the signer's public key, or check that the right key signed it",
    )
