"""The tile log on disk, its checkpoints and witness cosignatures."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sigstore._internal.rekor.checkpoint import SignedCheckpoint as SigstoreCheckpoint

from bundles.keys import KeyType, PrivateKey
from bundles.tlog import merkle as m
from bundles.tlog.entry import log_id
from bundles.tlog.log import LogStateError, TileLog, open_log
from bundles.tlog.note import (
    COSIGNATURE_V1,
    Checkpoint,
    NoteError,
    NoteSigner,
    SignedCheckpoint,
    Verifier,
    require_witnesses,
)
from bundles.tlog.tiles import TileError, entries_path, index_path, tile_path

ORIGIN = "example.test/log"


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner(ORIGIN, PrivateKey.generate(KeyType.ED25519))


def _entries(n: int, start: int = 0) -> list[bytes]:
    return [f"entry {i}".encode() for i in range(start, start + n)]


def test_tile_paths_follow_c2sp() -> None:
    assert index_path(1234067) == "x001/x234/067"
    assert index_path(0) == "000"
    assert tile_path(1, 0) == "tile/1/000"
    assert tile_path(0, 1234067, 3) == "tile/0/x001/x234/067.p/3"
    assert entries_path(5, 1) == "tile/entries/005.p/1"
    with pytest.raises(TileError, match="width 0"):
        tile_path(0, 0, 0)


def test_appends_prove_against_an_in_memory_tree(tmp_path: Path, signer: NoteSigner) -> None:
    log = TileLog(tmp_path, signer.verifier, signer)
    data = _entries(600)
    assert log.append(data[:1])[0] == 0
    assert log.append(data[1:300])[0] == 1
    assert log.append(data[300:])[0] == 300
    leaves = [m.leaf_hash(d) for d in data]
    reader = TileLog(tmp_path, signer.verifier)
    assert reader.size == 600
    assert reader.pending == 0
    assert reader.verify().root == m.tree_root(600, m.nodes_of(leaves))
    assert (tmp_path / "tile/0/001").is_file()
    assert (tmp_path / "tile/0/002.p/88").is_file()
    assert not (tmp_path / "tile/0/000.p").exists()  # partials of a full tile are dropped
    for size in (1, 256, 257, 600):
        root = m.tree_root(size, m.nodes_of(leaves[:size]))
        assert reader.root_at(size) == root
        for index in (0, size // 2, size - 1):
            m.verify_inclusion(
                index, size, leaves[index], reader.prove_inclusion(index, size), root
            )
        old = min(5, size)
        proof = reader.prove_consistency(old, size)
        m.verify_consistency(old, size, reader.root_at(old), root, proof)
    assert reader.entry(299) == data[299]
    assert reader.find(data[512]) == 512


def test_checkpoint_is_a_signed_note_sigstore_reads(tmp_path: Path, signer: NoteSigner) -> None:
    log = TileLog(tmp_path, signer.verifier, signer)
    log.append(_entries(3))
    text = (tmp_path / "checkpoint").read_text()
    theirs = SigstoreCheckpoint.from_text(text)
    assert theirs.checkpoint.origin == ORIGIN
    assert theirs.checkpoint.log_size == 3
    assert theirs.checkpoint.log_hash == log.root_at(3).hex()
    assert theirs.signed_note.signatures[0].sig_hash == signer.verifier.hash
    parsed = SignedCheckpoint.parse(text)
    assert parsed.verify(signer.verifier).size == 3
    vkey = signer.verifier.vkey()
    assert Verifier.from_vkey(vkey) == signer.verifier


def test_an_altered_or_foreign_checkpoint_is_refused(tmp_path: Path, signer: NoteSigner) -> None:
    TileLog(tmp_path, signer.verifier, signer).append(_entries(3))
    text = (tmp_path / "checkpoint").read_text()
    (tmp_path / "checkpoint").write_text(text.replace("\n3\n", "\n2\n", 1))
    with pytest.raises(LogStateError, match="no valid signature by the log key"):
        open_log(tmp_path, signer.verifier)
    other = NoteSigner("other.test/log", PrivateKey.generate(KeyType.ED25519))
    with pytest.raises(NoteError, match="is not the log 'other.test/log'"):
        SignedCheckpoint.parse(text).verify(other.verifier)


def test_a_tampered_tile_is_found_by_verify(tmp_path: Path, signer: NoteSigner) -> None:
    TileLog(tmp_path, signer.verifier, signer).append(_entries(700))
    tile = tmp_path / "tile/0/001"
    data = bytearray(tile.read_bytes())
    data[40] ^= 1
    tile.write_bytes(bytes(data))
    with pytest.raises(LogStateError, match=r"tile/0/001: hash 1 does not match .* altered"):
        TileLog(tmp_path, signer.verifier).verify()


def test_a_tampered_edge_tile_is_refused_at_open(tmp_path: Path, signer: NoteSigner) -> None:
    TileLog(tmp_path, signer.verifier, signer).append(_entries(5))
    tile = tmp_path / "tile/0/000.p/5"
    tile.write_bytes(tile.read_bytes()[:-1] + b"\x00")
    with pytest.raises(LogStateError, match="do not hash to the root of the checkpoint of size 5"):
        TileLog(tmp_path, signer.verifier)


def test_torn_append_is_reported_then_reintegrated(tmp_path: Path, signer: NoteSigner) -> None:
    log = TileLog(tmp_path, signer.verifier, signer)
    log.append(_entries(10))
    kept = (tmp_path / "checkpoint").read_bytes()
    log.append(_entries(300, 10))  # then the checkpoint is "lost": as if the crash came first
    (tmp_path / "checkpoint").write_bytes(kept)
    reader = TileLog(tmp_path, signer.verifier)
    assert (reader.size, reader.pending) == (10, 300)
    writer = TileLog(tmp_path, signer.verifier, signer)
    first, repair = writer.append(_entries(1, 310))
    assert (first, repair.entries, writer.size) == (310, 300, 311)
    leaves = [m.leaf_hash(d) for d in _entries(311)]
    assert TileLog(tmp_path, signer.verifier).verify().root == m.tree_root(311, m.nodes_of(leaves))


def test_an_entry_bundle_past_the_checkpoint_that_rewrites_history_is_refused(
    tmp_path: Path, signer: NoteSigner
) -> None:
    TileLog(tmp_path, signer.verifier, signer).append(_entries(3))
    bundle = tmp_path / "tile/entries/000.p/4"
    bundle.write_bytes(b"".join(len(e).to_bytes(2, "big") + e for e in _entries(4, 1)))
    with pytest.raises(LogStateError, match="disagrees with the entries under it"):
        TileLog(tmp_path, signer.verifier)


def test_a_missing_tile_is_named(tmp_path: Path, signer: NoteSigner) -> None:
    TileLog(tmp_path, signer.verifier, signer).append(_entries(300))
    shutil.rmtree(tmp_path / "tile/0")
    with pytest.raises(LogStateError, match=r"tile/0/001.p/44: missing tile"):
        TileLog(tmp_path, signer.verifier)


def test_witness_cosignatures_are_counted_and_missing_ones_named() -> None:
    log_key = NoteSigner(ORIGIN, PrivateKey.generate(KeyType.ED25519))
    w1 = NoteSigner("w1.test", PrivateKey.generate(KeyType.ED25519), COSIGNATURE_V1)
    w2 = NoteSigner("w2.test", PrivateKey.generate(KeyType.ED25519), COSIGNATURE_V1)
    head = SignedCheckpoint.sign(Checkpoint(ORIGIN, 4, m.EMPTY_ROOT), log_key)
    cosigned = head.cosign(w1, 1_700_000_000)
    again = SignedCheckpoint.parse(cosigned.to_text())
    assert again.verify(log_key.verifier).size == 4
    assert again.cosignatures([w1.verifier, w2.verifier]) == {"w1.test": 1_700_000_000}
    with pytest.raises(
        NoteError, match="has 1 of the 2 witness cosignatures required; missing: w2"
    ):
        require_witnesses(again, [w1.verifier, w2.verifier], 2)
    forged = again.to_text().replace("\n4\n", "\n5\n", 1)
    assert SignedCheckpoint.parse(forged).cosignatures([w1.verifier]) == {}
    line = next(ln for ln in again.to_text().splitlines() if ln.startswith("\u2014 w1.test"))
    assert len(line.split(" ")[2]) == 104  # base64 of 4 + 8 + 64 bytes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("o\n1\nAAAA\n", "no blank line"),
        ("o\n1\n\n\u2014 o AAAA\n", "too short"),
        ("o\n1\n\n- o AAAAAAAA\n", "does not start with an em dash"),
        ("o\nx\n" + "A" * 43 + "=\n\n\u2014 o AAAAAAAA\n", "tree size 'x' is not a decimal"),
        ("o\n1\nAAAA\n\n\u2014 o AAAAAAAA\n", "root hash is 3 bytes"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        SignedCheckpoint.parse(text)


SIGSTORE_DATA = Path(__file__).parents[2] / "data" / "sigstore"


def test_a_real_rekor_v2_entry_verifies_with_this_code() -> None:
    """A Sigstore staging Rekor v2 (tile log) entry: its inclusion proof in a tree of four
    million entries and its checkpoint, signed by the log and cosigned by three witnesses."""
    bundle = json.loads((SIGSTORE_DATA / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_text())
    (entry,) = bundle["verificationMaterial"]["tlogEntries"]
    root_doc = json.loads((SIGSTORE_DATA / "staging-trusted-root.json").read_text())
    logs = []
    for t in root_doc["tlogs"]:
        if t["publicKey"]["keyDetails"] == "PKIX_ED25519":
            raw = base64.b64decode(t["publicKey"]["rawBytes"])[-32:]
            logs.append(Verifier(t["baseUrl"].removeprefix("https://"), raw))
    (log,) = [v for v in logs if base64.b64encode(log_id(v)).decode() == entry["logId"]["keyId"]]
    proof = entry["inclusionProof"]
    leaf = m.leaf_hash(base64.b64decode(entry["canonicalizedBody"]))
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    root = base64.b64decode(proof["rootHash"])
    m.verify_inclusion(int(proof["logIndex"]), int(proof["treeSize"]), leaf, hashes, root)
    signed = SignedCheckpoint.parse(proof["checkpoint"]["envelope"])
    head = signed.verify(log)
    assert (head.size, head.root) == (int(proof["treeSize"]), root)
    assert len(signed.note.signatures) == 4  # the log's and three witnesses'
    bad = [hashes[0], bytes([hashes[1][0] ^ 1]) + hashes[1][1:], *hashes[2:]]
    with pytest.raises(m.ProofError, match="does not lead to the root hash"):
        m.verify_inclusion(int(proof["logIndex"]), int(proof["treeSize"]), leaf, bad, root)


_KILLER = """
import os, signal, sys
from pathlib import Path
from bundles.keys import PrivateKey
from bundles.tlog import log as tl
from bundles.tlog.note import NoteSigner

real = tl.write_durably
def write(path, data, *, sync_dir=True):
    if str(path).endswith(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # as a power cut would, mid-append
    real(path, data, sync_dir=sync_dir)
tl.write_durably = write
signer = NoteSigner("example.test/log", PrivateKey.load(Path(sys.argv[2])))
log = tl.TileLog(Path(sys.argv[1]), signer.verifier, signer)
log.append([b"entry %d" % i for i in range(log.size, log.size + 300)])
"""


@pytest.mark.parametrize(
    ("at", "pending"),
    [("/checkpoint", 300), ("tile/0/000", 300), ("tile/entries/000", 0)],
    ids=["before the checkpoint", "amid the hash tiles", "amid the entry bundles"],
)
def test_kill_9_during_an_append(tmp_path: Path, at: str, pending: int) -> None:
    key = PrivateKey.generate(KeyType.ED25519)
    key.save(tmp_path / "log.key")
    signer = NoteSigner(ORIGIN, key)
    root = tmp_path / "log"
    TileLog(root, signer.verifier, signer).append([b"entry %d" % i for i in range(20)])
    run = subprocess.run(
        [sys.executable, "-c", _KILLER, str(root), str(tmp_path / "log.key"), at],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])},
        capture_output=True,
        check=False,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    (root / ".checkpoint.x.tmp").write_bytes(b"half")  # what a kill mid-write leaves
    reader = TileLog(root, signer.verifier)
    assert reader.size == 20  # the head that was acknowledged
    reader.verify()
    # what reached the disk past it is reported, then taken in by the next append
    assert reader.pending == pending
    writer = TileLog(root, signer.verifier, signer)
    writer.append([b"after"])
    assert writer.size == 20 + reader.pending + 1
    assert TileLog(root, signer.verifier).verify().size == writer.size
    assert list(root.rglob("*.tmp")) == []
