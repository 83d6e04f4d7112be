"""The transparency proof a bundle carries (statement.tlog.json): made by the mirror's log,
parsed strictly, verified against the statement, and a fork or rollback of the log named."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from bundles import dsse
from bundles.archive import ArchiveReader, MemberRefusedError, MemberSource, write_archive
from bundles.keys import KeyType, PrivateKey
from bundles.tlog.carried import (
    MEMBER,
    BundleProofError,
    CarriedProof,
    check_extends,
    check_proof,
    make_proof,
    parse_proof,
)
from bundles.tlog.entry import dsse_body
from bundles.tlog.log import TileLog
from bundles.tlog.note import NoteSigner, SignedCheckpoint

KEY = PrivateKey.generate(KeyType.ED25519)  # deterministic signatures: one envelope per n
LOG = NoteSigner("stella-mirror.test/log", PrivateKey.generate(KeyType.ED25519))


def _envelope(n: int) -> dsse.Envelope:
    return dsse.sign(f'{{"n":{n}}}'.encode(), "application/vnd.in-toto+json", KEY)


def _logged(log: TileLog, envelope: dsse.Envelope) -> bytes:
    body = dsse_body(envelope, {KEY.keyid: KEY.public_key})
    index, _ = log.append([body])
    assert log.head is not None
    earlier = {m: log.prove_consistency(m) for m in range(1, log.size)}
    return make_proof(log.verifier, index, body, log.prove_inclusion(index), log.head, earlier)


@pytest.fixture
def log(tmp_path: Path) -> TileLog:
    return TileLog(tmp_path / "log", LOG.verifier, LOG)


def test_a_proof_verifies_and_extends_every_earlier_head(log: TileLog) -> None:
    heads: list[SignedCheckpoint] = []
    for n in range(5):
        data = _logged(log, _envelope(n))
        assert log.head is not None
        proof, check = check_proof(data, _envelope(n), [LOG.verifier], source="b")
        assert (check.log_index, check.tree_size) == (n, n + 1)
        for old in heads:
            check_extends(proof, check, old, source="b")
        heads.append(log.head)


def test_a_proof_of_another_statement_is_refused(log: TileLog) -> None:
    data = _logged(log, _envelope(1))
    with pytest.raises(BundleProofError, match="about another envelope"):
        check_proof(data, _envelope(2), [LOG.verifier], source="b")


def test_a_proof_of_an_untrusted_log_is_refused(log: TileLog) -> None:
    data = _logged(log, _envelope(1))
    other = NoteSigner("stella-mirror.other/log", PrivateKey.generate(KeyType.ED25519))
    with pytest.raises(BundleProofError, match="which is not trusted here"):
        check_proof(data, _envelope(1), [other.verifier], source="b")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(extra=1), "exactly the keys entry and consistency"),
        (lambda d: d["entry"].update(note="hello"), "entry must have exactly the keys"),
        (lambda d: d["consistency"].append({"treeSize": "9", "hashes": []}), "is not between"),
        (lambda d: d["consistency"][0].update(hashes=["AAAA"]), "other than SHA-256 hashes"),
        (lambda d: d["consistency"][0].update(treeSize=2), "is not a decimal string"),
    ],
)
def test_anything_but_a_proof_is_refused(log: TileLog, edit: Any, message: str) -> None:
    _logged(log, _envelope(0))
    doc = json.loads(_logged(log, _envelope(1)))
    edit(doc)
    with pytest.raises(BundleProofError, match=message):
        parse_proof(json.dumps(doc).encode(), source="b")
    with pytest.raises(BundleProofError, match="over the"):
        parse_proof(b" " * (2 << 20), source="b")


def test_a_fork_a_rewrite_and_a_rollback_are_named(tmp_path: Path, log: TileLog) -> None:
    _logged(log, _envelope(0))
    assert log.head is not None
    seen = log.head
    data = _logged(log, _envelope(1))
    proof, check = check_proof(data, _envelope(1), [LOG.verifier], source="b")
    # the same log key signs another tree of size 1: a fork
    other = TileLog(tmp_path / "other", LOG.verifier, LOG)
    _logged(other, _envelope(9))
    assert other.head is not None
    with pytest.raises(BundleProofError, match="does not extend the head of size 1"):
        check_extends(proof, check, other.head, source="b")
    forked = _logged(other, _envelope(8))
    fproof, fcheck = check_proof(forked, _envelope(8), [LOG.verifier], source="b")
    with pytest.raises(BundleProofError, match="two heads of size 2 with different roots"):
        check_extends(fproof, fcheck, log.head, source="b")
    # a head older than one seen: rolled back
    _logged(log, _envelope(2))
    with pytest.raises(BundleProofError, match="the log was rolled back"):
        check_extends(proof, check, log.head, source="b")
    # no consistency proof from the head seen
    bare = CarriedProof(proof.entry, {})
    with pytest.raises(BundleProofError, match="carries no consistency proof from"):
        check_extends(bare, check, seen, source="b")


def test_the_archive_hands_out_the_proof_second_and_only_there(log: TileLog) -> None:
    data = _logged(log, _envelope(0))
    first = MemberSource.from_bytes("statement.dsse.json", b"{}")
    other = MemberSource.from_bytes("a.json", b"[]")
    out = io.BytesIO()
    write_archive(out, first, [other], second=MemberSource.from_bytes(MEMBER, data))
    reader = ArchiveReader(io.BytesIO(out.getvalue()))
    reader.read_first("statement.dsse.json")
    assert reader.read_second(MEMBER, limit=1 << 20) == data
    assert [m.read_all() for m in reader.members({"a.json": other.spec})] == [b"[]"]
    # without reading it, the proof is an unlisted member like any other
    reader = ArchiveReader(io.BytesIO(out.getvalue()))
    reader.read_first("statement.dsse.json")
    with pytest.raises(MemberRefusedError, match="not listed in the signed statement"):
        list(reader.members({"a.json": other.spec}))
    # a bundle without a proof: the second member goes to members() as usual
    plain = io.BytesIO()
    write_archive(plain, first, [other])
    reader = ArchiveReader(io.BytesIO(plain.getvalue()))
    reader.read_first("statement.dsse.json")
    assert reader.read_second(MEMBER, limit=1 << 20) is None
    assert [m.read_all() for m in reader.members({"a.json": other.spec})] == [b"[]"]
    reader = ArchiveReader(io.BytesIO(out.getvalue()))
    reader.read_first("statement.dsse.json")
    with pytest.raises(MemberRefusedError, match="over the 10 a transparency proof may have"):
        reader.read_second(MEMBER, limit=10)
