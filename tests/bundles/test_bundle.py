"""The signed bundle statement, alone and as the first member of a real archive."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bundles import dsse
from bundles.archive import ArchiveReader, MemberSource, write_archive
from bundles.bundle import (
    STATEMENT_MEMBER,
    BundleExpiredError,
    BundleKind,
    BundlePredicate,
    BundleRefusedError,
    BundleRollbackError,
    make_statement,
    sign_statement,
    verify_statement,
)
from bundles.digest import Digest
from bundles.errors import BundleError
from bundles.intoto import PAYLOAD_TYPE, Statement
from bundles.keys import PrivateKey
from bundles.trust import TrustRoot

NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
SNAP = Digest.of_bytes(b"snapshot manifest")


@pytest.fixture(scope="module")
def signer() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture(scope="module")
def trust(signer: PrivateKey) -> TrustRoot:
    return TrustRoot.create([PrivateKey.generate()], [signer.public_key], now=NOW, channel="lab")


def predicate(**changes: object) -> BundlePredicate:
    fields: dict[str, Any] = {
        "kind": BundleKind.FULL,
        "sequence": 7,
        "created": NOW,
        "expires": NOW + timedelta(days=30),
        "channel": "lab",
        "snapshot": SNAP,
    }
    fields.update(changes)
    return BundlePredicate(**fields)


MEMBERS = [MemberSource.from_bytes(f"datasets/{n}.jsonl", n.encode() * 100) for n in ("a", "b")]


def signed(signer: PrivateKey, **changes: object) -> bytes:
    return sign_statement(make_statement(predicate(**changes), [m.spec for m in MEMBERS]), signer)


def test_sign_and_verify(signer: PrivateKey, trust: TrustRoot) -> None:
    bs = verify_statement(signed(signer), trust, now=NOW, last_sequence=6)
    assert bs.predicate == predicate()
    assert bs.members == {m.spec.name: m.spec for m in MEMBERS}
    assert bs.keyids == (signer.keyid,)
    assert bs.total_size == 200


def test_statement_bytes_are_deterministic(signer: PrivateKey) -> None:
    a = make_statement(predicate(), [m.spec for m in MEMBERS]).to_bytes()
    b = make_statement(predicate(), [m.spec for m in reversed(MEMBERS)]).to_bytes()
    assert a == b
    assert b'"created":"2026-11-23T06:00:00Z"' in a
    assert b'"sizes":{"datasets/a.jsonl":100,"datasets/b.jsonl":100}' in a


def test_untrusted_signer_is_refused_naming_the_accepted_keys(
    trust: TrustRoot, signer: PrivateKey
) -> None:
    with pytest.raises(BundleRefusedError) as info:
        verify_statement(signed(PrivateKey.generate()), trust, now=NOW, source="b.stella.tar.zst")
    text = info.value.diagnostics()
    assert text.startswith("b.stella.tar.zst: ")
    assert "not trusted" in text or "untrusted" in text
    assert f"accepts bundles signed by 1 of: {signer.keyid[:12]}" in text


def test_other_channel_is_refused(signer: PrivateKey, trust: TrustRoot) -> None:
    with pytest.raises(
        BundleRefusedError, match="is for channel 'prod', this appliance accepts channel 'lab'"
    ):
        verify_statement(signed(signer, channel="prod"), trust, now=NOW)


def test_expired_bundle_is_refused(signer: PrivateKey, trust: TrustRoot) -> None:
    with pytest.raises(BundleExpiredError, match="sequence 7 expired at 2026-12-23T06:00:00Z"):
        verify_statement(signed(signer), trust, now=NOW + timedelta(days=31))


@pytest.mark.parametrize("last", [7, 9])
def test_rollback_is_refused(signer: PrivateKey, trust: TrustRoot, last: int) -> None:
    with pytest.raises(BundleRollbackError) as info:
        verify_statement(signed(signer), trust, now=NOW, last_sequence=last)
    assert info.value.diagnostics() == (
        f"bundle: bundle sequence 7 is not newer than the last imported sequence {last} "
        f"(import a bundle with sequence {last + 1} or higher)"
    )


def test_tampered_statement_is_refused(signer: PrivateKey, trust: TrustRoot) -> None:
    envelope = dsse.Envelope.from_json(signed(signer))
    forged = envelope.payload.replace(b'"sequence":7', b'"sequence":8')
    tampered = dsse.Envelope(forged, envelope.payload_type, envelope.signatures).to_json()
    with pytest.raises(BundleRefusedError, match="does not verify"):
        verify_statement(tampered, trust, now=NOW)


def test_unknown_predicate_fields_are_kept(signer: PrivateKey, trust: TrustRoot) -> None:
    bs = verify_statement(signed(signer, extra={"images": [{"ref": "x"}]}), trust, now=NOW)
    assert bs.predicate.extra == {"images": [{"ref": "x"}]}


def _sign_raw(signer: PrivateKey, predicate_doc: dict[str, object]) -> bytes:
    base = make_statement(predicate(), [m.spec for m in MEMBERS])
    statement = Statement(base.subjects, base.predicate_type, predicate_doc)
    return dsse.sign(statement.to_bytes(), PAYLOAD_TYPE, signer).to_json()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "partial"}, "predicate.kind is 'partial', expected full or delta"),
        ({"sequence": "7"}, "predicate.sequence must be an integer"),
        ({"created": "yesterday"}, "predicate.created: 'yesterday' is not an RFC 3339 time"),
        (
            {"expires": "2026-12-01T00:00:00"},
            "predicate.expires: '2026-12-01T00:00:00' has no time zone",
        ),
        ({"snapshot": "md5:abc"}, "predicate.snapshot: unsupported digest algorithm"),
        ({"sizes": {"datasets/a.jsonl": 100}}, "no valid size for 'datasets/b.jsonl'"),
        ({"kind": "delta"}, "a delta bundle names its base snapshot"),
    ],
)
def test_malformed_predicates(
    signer: PrivateKey, trust: TrustRoot, change: dict[str, object], message: str
) -> None:
    doc = predicate().to_dict({m.spec.name: m.spec.size for m in MEMBERS})
    doc.update(change)
    with pytest.raises(BundleError, match=message):
        verify_statement(_sign_raw(signer, doc), trust, now=NOW)


def test_full_archive_round_trip(signer: PrivateKey, trust: TrustRoot) -> None:
    statement = make_statement(predicate(), [m.spec for m in MEMBERS])
    out = io.BytesIO()
    write_archive(
        out, MemberSource.from_bytes(STATEMENT_MEMBER, sign_statement(statement, signer)), MEMBERS
    )
    reader = ArchiveReader(io.BytesIO(out.getvalue()), source="lab.stella.tar.zst")
    bs = verify_statement(reader.read_first(STATEMENT_MEMBER), trust, now=NOW)
    got = {m.name: m.read_all() for m in reader.members(bs.members)}
    assert got == {m.spec.name: m.data for m in MEMBERS}
