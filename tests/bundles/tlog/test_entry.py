"""Rekor v2 form entries: made from a DSSE envelope, and each way one can be wrong named."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bundles import dsse
from bundles.keys import KeyType, PrivateKey
from bundles.tlog.entry import EntryError, check_entry, dsse_body, tlog_entry
from bundles.tlog.log import TileLog
from bundles.tlog.note import NoteSigner

Entry = dict[str, Any]


@pytest.fixture
def made(tmp_path: Path) -> tuple[Entry, dsse.Envelope, NoteSigner]:
    log_key = NoteSigner("example.test/log", PrivateKey.generate(KeyType.ED25519))
    key = PrivateKey.generate(KeyType.ECDSA_P256)
    envelopes = [
        dsse.sign(f'{{"n":{i}}}'.encode(), "application/vnd.in-toto+json", key) for i in range(3)
    ]
    bodies = [dsse_body(e, {key.keyid: key.public_key}) for e in envelopes]
    log = TileLog(tmp_path, log_key.verifier, log_key)
    log.append(bodies)
    assert log.head is not None
    entry = tlog_entry(log_key.verifier, 1, bodies[1], log.prove_inclusion(1), log.head)
    return entry, envelopes[1], log_key


def test_a_made_entry_verifies(made: tuple[Entry, dsse.Envelope, NoteSigner]) -> None:
    entry, envelope, log_key = made
    check = check_entry(entry, [log_key.verifier], envelope)
    assert (check.log_index, check.tree_size, check.origin) == (1, 3, "example.test/log")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


CASES: list[tuple[str, Callable[[Entry], object], str]] = [
    ("index moved", lambda e: e.update(logIndex="2"), "the proof is for another index"),
    (
        "proof index moved",
        lambda e: (e.update(logIndex="0"), e["inclusionProof"].update(logIndex="0")),
        "does not lead to the root hash",
    ),
    (
        "other log",
        lambda e: e["logId"].update(keyId=_b64(b"\x05" * 32)),
        "is from log 0505050505050505, which is not trusted here",
    ),
    (
        "other body",
        lambda e: e.update(canonicalizedBody=_b64(b'{"kind":"dsse"}')),
        "the body is not a dsse 0.0.2 entry",
    ),
    (
        "root altered",
        lambda e: e["inclusionProof"].update(rootHash=_b64(b"\x06" * 32)),
        "does not lead to the root hash",
    ),
    (
        "no checkpoint",
        lambda e: e["inclusionProof"].pop("checkpoint"),
        "carries no signed checkpoint",
    ),
    (
        "checkpoint of another size",
        lambda e: e["inclusionProof"]["checkpoint"].update(
            envelope=e["inclusionProof"]["checkpoint"]["envelope"].replace("\n3\n", "\n4\n")
        ),
        "no valid signature by the log key",
    ),
    ("not base64", lambda e: e.update(canonicalizedBody="%%"), "canonicalizedBody is not base64"),
    ("bad index", lambda e: e.update(logIndex="-1"), "logIndex is negative"),
    ("no proof", lambda e: e.pop("inclusionProof"), "carries no inclusion proof"),
]


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for _, c, m in CASES], ids=[n for n, _, _ in CASES]
)
def test_bad_entries_are_named(
    made: tuple[Entry, dsse.Envelope, NoteSigner], change: Callable[[Entry], object], message: str
) -> None:
    entry, envelope, log_key = made
    bad = copy.deepcopy(entry)
    change(bad)
    with pytest.raises(EntryError, match=message):
        check_entry(bad, [log_key.verifier], envelope)


def test_an_entry_moved_to_another_envelope_is_refused(
    made: tuple[Entry, dsse.Envelope, NoteSigner],
) -> None:
    entry, envelope, log_key = made
    other = dsse.Envelope(b'{"n":9}', envelope.payload_type, envelope.signatures)
    with pytest.raises(EntryError, match="is about another envelope than the bundle's"):
        check_entry(entry, [log_key.verifier], other)
