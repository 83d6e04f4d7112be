"""The log's signed timestamp on its checkpoints (stella-log-timestamp/v1): a cosignature/v1
line by the log's own key, read back only when that key made it over that very text."""

from __future__ import annotations

import base64
import hashlib
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from bundles.keys import KeyType, PrivateKey
from bundles.tlog.log import TileLog
from bundles.tlog.note import (
    COSIGNATURE_V1,
    NoteSigner,
    Signature,
    SignedCheckpoint,
    timestamp_verifier,
)

ORIGIN = "example.test/log"
NOW = datetime(2027, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, PrivateKey.generate(KeyType.ED25519))


def test_every_append_timestamps_its_checkpoint(tmp_path: Path, signer: NoteSigner) -> None:
    log = TileLog(tmp_path, signer.verifier, signer)
    log.append([b"one"], now=NOW)
    assert log.head is not None
    assert log.head.timestamp(signer.verifier) == 1804136767  # whole seconds, rounded down
    assert datetime.fromtimestamp(1804136767, UTC) == NOW.replace(microsecond=0)
    # The checkpoint text is the three lines it always was; the log's signature comes first.
    text = log.head.note.text
    assert len(text.splitlines()) == 3
    assert log.head.note.signatures[0].hash == signer.verifier.hash
    # Read back from disk, the time is still there and still the log's.
    reopened = TileLog(tmp_path, signer.verifier)
    assert reopened.head is not None
    assert reopened.head.timestamp(signer.verifier) == 1804136767


def test_the_timestamp_verifies_by_the_documented_bytes(tmp_path: Path, signer: NoteSigner) -> None:
    """Checked with the cryptography primitives from the format alone, as an auditor would."""
    log = TileLog(tmp_path, signer.verifier, signer)
    log.append([b"one"], now=NOW)
    assert log.head is not None
    raw_key = signer.verifier.public
    key_hash = hashlib.sha256(ORIGIN.encode() + b"\n" + b"\x04" + raw_key).digest()[:4]
    lines = log.head.to_text().split("\n\n", 1)[1].splitlines()
    (line,) = [ln for ln in lines if base64.b64decode(ln.rsplit(" ", 1)[1])[:4] == key_hash]
    assert line.startswith("\u2014 " + ORIGIN + " ")
    blob = base64.b64decode(line.rsplit(" ", 1)[1])
    (stamp,) = struct.unpack(">Q", blob[4:12])
    message = f"cosignature/v1\ntime {stamp}\n".encode() + log.head.note.text.encode()
    ed25519.Ed25519PublicKey.from_public_bytes(raw_key).verify(blob[12:], message)
    assert stamp == 1804136767


def _with_line(signed: SignedCheckpoint, signature: Signature) -> SignedCheckpoint:
    kept = tuple(s for s in signed.note.signatures if s.hash != signature.hash)
    note = type(signed.note)(signed.note.text, (*kept, signature))
    return SignedCheckpoint(signed.checkpoint, note)


def test_a_moved_or_foreign_timestamp_is_not_the_logs(tmp_path: Path, signer: NoteSigner) -> None:
    log = TileLog(tmp_path, signer.verifier, signer)
    log.append([b"one"], now=NOW)
    head = log.head
    assert head is not None
    stamp = timestamp_verifier(signer.verifier)
    (line,) = [s for s in head.note.signatures if s.hash == stamp.hash]
    # The time edited (an earlier one): the signature no longer covers it.
    earlier = struct.pack(">Q", 1700000000) + line.signature[8:]
    assert (
        _with_line(head, Signature(line.name, line.hash, earlier)).timestamp(signer.verifier)
        is None
    )
    # Another key timestamping under the log's name (a thief's key): not the log's.
    thief = NoteSigner(ORIGIN, PrivateKey.generate(KeyType.ED25519), COSIGNATURE_V1)
    forged = SignedCheckpoint(head.checkpoint, type(head.note)(head.note.text, ())).cosign(
        thief, 1700000000
    )
    signed = SignedCheckpoint(
        head.checkpoint, type(head.note)(head.note.text, (head.note.signatures[0],))
    )
    assert signed.timestamp(signer.verifier) is None  # no timestamp line at all
    mixed = _with_line(signed, forged.note.signatures[0])
    assert mixed.timestamp(signer.verifier) is None
    # The same time over another checkpoint's text does not verify either.
    log.append([b"two"], now=NOW)
    assert log.head is not None
    moved = _with_line(log.head, line)
    assert moved.timestamp(signer.verifier) is None


def test_a_witness_cosignature_keeps_the_logs_timestamp(tmp_path: Path, signer: NoteSigner) -> None:
    log = TileLog(tmp_path, signer.verifier, signer)
    log.append([b"one"], now=NOW)
    assert log.head is not None
    witness = NoteSigner("witness.test", PrivateKey.generate(KeyType.ED25519), COSIGNATURE_V1)
    cosigned = log.head.cosign(witness, 1804136800)
    assert cosigned.timestamp(signer.verifier) == 1804136767
    assert cosigned.cosignatures([witness.verifier]) == {"witness.test": 1804136800}
    reparsed = SignedCheckpoint.parse(cosigned.to_text())
    assert reparsed.verify(signer.verifier) == log.head.checkpoint
    assert reparsed.timestamp(signer.verifier) == 1804136767
