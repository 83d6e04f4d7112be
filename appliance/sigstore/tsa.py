"""RFC 3161 timestamps over a bundle's signature, from time-stamping authorities a Sigstore
trusted root lists (``timestampAuthorities``), checked offline.

A timestamp token says a time-stamping authority (TSA) saw the signature at ``genTime``: the
signature existed by then, whoever holds the signing key now. It is the second way, beside
the transparency log's timestamped checkpoint, to prove when a signature was made
(docs/keys.md, "Signing time"). The check is the one sigstore-python makes
(``Verifier._verify_signed_timestamp``), with the same library (``rfc3161-client``): the
authority's chain is the leaf, any intermediates and the root, in that order; the response's
PKCS#7 signature verifies up to the root at ``genTime``; the signer is the chain's leaf, with
the critical ``timeStamping`` extended key usage; the message imprint is the hash of the
signature bytes; and ``genTime`` falls in the authority's ``validFor``.

A token no listed authority made is not evidence and is left aside; a token whose signer
is a listed authority's certificate and that still does not verify is refused: that is
tampering, not absence.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from rfc3161_client import (
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from bundles import canonical, rfc3339
from bundles.errors import CanonicalJSONError, StellaError

TRUSTED_ROOT_LIMIT: Final = 1 << 20
MAX_CHAIN: Final = 8


class TimestampError(StellaError):
    """A trusted root's time-stamping authority is malformed, or a timestamp token by a
    listed authority does not verify."""


@dataclass(frozen=True, slots=True)
class TimestampAuthority:
    """One ``timestampAuthorities`` item: its name, its chain (leaf first, root last) and
    the period its timestamps are trusted for."""

    name: str
    chain: tuple[x509.Certificate, ...]
    start: datetime
    end: datetime | None = None

    def covers(self, when: datetime) -> bool:
        return self.start <= when and (self.end is None or when < self.end)


@dataclass(frozen=True, slots=True)
class TimestampProof:
    """A verified token: the authority that made it, and the time it vouches for."""

    authority: str
    time: datetime
    serial: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "authority": self.authority,
            "genTime": rfc3339.format_time(self.time),
            "serialNumber": str(self.serial),
        }


def _instant(value: Any, where: str) -> datetime:
    try:
        return rfc3339.parse_time(value, where=where)
    except rfc3339.TimeFormatError as e:
        raise TimestampError(e.message, hint=e.hint) from e


def authorities_from_doc(doc: Any, *, source: str) -> list[TimestampAuthority]:
    """The time-stamping authorities of a trusted root document (none when it lists none)."""
    items = doc.get("timestampAuthorities", []) if isinstance(doc, Mapping) else []
    if not isinstance(items, list):
        raise TimestampError(f"{source}: timestampAuthorities must be an array")
    out = []
    for i, item in enumerate(items):
        where = f"{source}: timestampAuthorities[{i}]"
        try:
            raw = [c["rawBytes"] for c in item["certChain"]["certificates"]]
            chain = tuple(
                x509.load_der_x509_certificate(base64.b64decode(r, validate=True)) for r in raw
            )
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise TimestampError(
                f"{where}.certChain is not a list of base64 DER certificates",
                hint="expected a Sigstore trusted_root.json",
            ) from e
        if not 2 <= len(chain) <= MAX_CHAIN:
            raise TimestampError(
                f"{where}.certChain has {len(chain)} certificates; a timestamp authority needs "
                f"its signing certificate and its root (2 to {MAX_CHAIN})"
            )
        valid = item.get("validFor") if isinstance(item, Mapping) else None
        if not isinstance(valid, Mapping) or "start" not in valid:
            raise TimestampError(f"{where}.validFor.start is missing")
        end = valid.get("end")
        subject = item.get("subject") if isinstance(item, Mapping) else None
        name = (subject.get("commonName") if isinstance(subject, Mapping) else None) or chain[
            0
        ].subject.rfc4514_string()
        out.append(
            TimestampAuthority(
                str(name),
                chain,
                _instant(valid["start"], f"{where}.validFor.start"),
                _instant(end, f"{where}.validFor.end") if end is not None else None,
            )
        )
    return out


def authorities_of_trusted_root(path: Path) -> list[TimestampAuthority]:
    try:
        doc = canonical.load_file(path, limit=TRUSTED_ROOT_LIMIT)
    except CanonicalJSONError as e:
        raise TimestampError(e.message, hint="expected a Sigstore trusted_root.json") from e
    return authorities_from_doc(doc, source=str(path))


def _signer_is(response: TimeStampResponse, authority: TimestampAuthority) -> bool:
    """True when the token's signer is the authority's leaf (so a failure is tampering)."""
    leaf = authority.chain[0]
    infos = response.signed_data.signer_infos
    return any(si.issuer == leaf.issuer and si.serial_number == leaf.serial_number for si in infos)


def _verify_one(
    response: TimeStampResponse, authority: TimestampAuthority, signature: bytes
) -> None:
    builder = VerifierBuilder().tsa_certificate(authority.chain[0])
    builder = builder.add_root_certificate(authority.chain[-1])
    for intermediate in authority.chain[1:-1]:
        builder = builder.add_intermediate_certificate(intermediate)
    builder.build().verify_message(response, signature)


def check_timestamps(
    tokens: Sequence[bytes],
    signature: bytes,
    authorities: Sequence[TimestampAuthority],
    *,
    source: str,
) -> TimestampProof | None:
    """The earliest token over ``signature`` that a listed authority made and that verifies
    (see the module docstring); None when there is none."""
    best: TimestampProof | None = None
    for n, token in enumerate(tokens):
        where = f"{source}: RFC 3161 timestamp {n}"
        try:
            response = decode_timestamp_response(token)
        except ValueError as e:
            raise TimestampError(
                f"{where} is not a DER TimeStampResp: {e}",
                hint="the timestamp was altered; obtain it again from the time-stamping authority",
            ) from e
        for authority in authorities:
            try:
                _verify_one(response, authority, signature)
            except (VerificationError, ValueError) as e:
                if _signer_is(response, authority):
                    raise TimestampError(
                        f"{where} is signed by the time-stamping authority {authority.name} "
                        f"but does not verify over this signature: {e}",
                        hint="the timestamp belongs to another signature, or was altered",
                    ) from e
                continue
            when = response.tst_info.gen_time
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
            if not authority.covers(when):
                raise TimestampError(
                    f"{where}: time-stamping authority {authority.name} timestamped at "
                    f"{rfc3339.format_time(when)}, outside the period the trusted root trusts "
                    "it for",
                    hint="the authority's key was not in service then",
                )
            proof = TimestampProof(authority.name, when, response.tst_info.serial_number)
            if best is None or proof.time < best.time:
                best = proof
            break
    return best
