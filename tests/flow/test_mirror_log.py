"""The mirror logs every bundle statement; an appliance whose trust root names the mirror's log
key refuses a bundle that is not logged, or logged on a forked or rolled-back log."""

from __future__ import annotations

import json
import shutil
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundles.keys import KeyType
from bundles.tlog.note import SignedCheckpoint
from bundles.trust import TrustRoot
from mirror.cli import cli as stella_mirror
from mirror.keys import generate
from tests.flow.conftest import Appliance, Mirror, copy_home, rewrite_bundle

TLOG_MEMBER = "statement.tlog.json"


def _proof(bundle: Path) -> dict[str, object]:
    found: dict[str, object] = {}

    def keep(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo | None, bytes]:
        if info.name == TLOG_MEMBER:
            found.update(json.loads(data))
        return info, data

    rewrite_bundle(bundle, bundle.with_suffix(".copy"), keep)
    return found


def _drop_proof(src: Path, dst: Path) -> None:
    def drop(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo | None, bytes]:
        return (None, b"") if info.name == TLOG_MEMBER else (info, data)

    rewrite_bundle(src, dst, drop)


def _reason(appliance: Appliance) -> dict[str, str]:
    (reason,) = (appliance.home / "quarantine").glob("*.reason")
    doc: dict[str, str] = json.loads(reason.read_text())
    return doc


@pytest.fixture
def forks(mirror: Mirror, tmp_path: Path) -> tuple[Mirror, Mirror]:
    """Two copies of the mirror workspace, each with its own copy of the one log (and key):
    what an attacker holding a copy of the mirror's keys and log could make."""
    out = []
    for name in ("a", "b"):
        home = tmp_path / f"fork-{name}"
        copy_home(mirror.home, home)
        (home / "mirror" / "tlog").unlink()
        shutil.copytree(mirror.home / "mirror" / "tlog", home / "mirror" / "tlog")
        out.append(Mirror(home, mirror.keys, mirror.feeds, list(mirror.snapshots)))
    return out[0], out[1]


def test_a_logged_bundle_imports_and_its_head_is_kept(
    mirror: Mirror, appliance: Appliance, tmp_path: Path
) -> None:
    trust = TrustRoot.load(mirror.keys / "trust-root.json")
    (log_key,) = trust.log_keys
    first, second = tmp_path / "1.stella.tar.zst", tmp_path / "2.stella.tar.zst"
    one = mirror.export(first, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    two = mirror.export(
        second, "--snapshot", mirror.snapshots[1], "--base", mirror.snapshots[0], "--sequence", "2"
    )
    assert one["log"] == log_key.name
    assert two["logIndex"] == one["logIndex"] + 1
    verified = mirror.run(
        "verify", str(first), "--trust-root", str(mirror.keys / "trust-root.json")
    )
    assert verified["verified"] is True
    assert (verified["log"]["log"], verified["log"]["logIndex"]) == (log_key.name, one["logIndex"])
    appliance.run("import", str(first))
    appliance.run("import", str(second))
    records = appliance.run("audit", "list", "--action", "import")["records"]
    logged = [r["result"]["mirrorLog"] for r in records]
    assert [(m["log"], m["logIndex"]) for m in logged] == [
        (log_key.name, one["logIndex"]),
        (log_key.name, two["logIndex"]),
    ]
    (kept,) = (appliance.home / "tlog" / "mirrors").glob("*.checkpoint")
    head = SignedCheckpoint.parse(kept.read_bytes()).verify(log_key)
    assert head.size == two["logIndex"] + 1


def test_a_signed_but_unlogged_bundle_is_refused_and_quarantined(
    mirror: Mirror, appliance: Appliance, tmp_path: Path
) -> None:
    logged = tmp_path / "logged.stella.tar.zst"
    mirror.export(logged, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    inbox = appliance.home / "inbox"
    inbox.mkdir(exist_ok=True)
    unlogged = inbox / "unlogged.stella.tar.zst"
    _drop_proof(logged, unlogged)
    code, err = appliance.fail("import", str(unlogged))
    assert code == 1
    assert "is not in the mirror's transparency log" in err
    assert appliance.active() is None
    assert not unlogged.exists()  # moved to quarantine, with the reason beside it
    assert "not in the mirror's transparency log" in _reason(appliance)["reason"]
    refused = appliance.run("audit", "list", "--action", "import.refused")["records"]
    assert "transparency log" in refused[-1]["result"]["reason"]
    assert appliance.run("import", str(logged))["sequence"] == 1


def test_a_proof_moved_from_another_bundle_is_refused(
    mirror: Mirror, appliance: Appliance, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.stella.tar.zst", tmp_path / "b.stella.tar.zst"
    mirror.export(a, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    mirror.export(b, "--snapshot", mirror.snapshots[0], "--sequence", "2")
    other = json.dumps(_proof(a)).encode()

    def swap(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo | None, bytes]:
        if info.name == TLOG_MEMBER:
            info.size = len(other)
            return info, other
        return info, data

    moved = tmp_path / "moved.stella.tar.zst"
    rewrite_bundle(b, moved, swap)
    _code, err = appliance.fail("import", str(moved))
    assert "is about another envelope than the bundle's" in err


def test_a_forked_log_is_refused(
    forks: tuple[Mirror, Mirror], appliance: Appliance, tmp_path: Path
) -> None:
    fork_a, fork_b = forks
    a, b = tmp_path / "a.stella.tar.zst", tmp_path / "b.stella.tar.zst"
    one = fork_a.export(a, "--snapshot", fork_a.snapshots[0], "--sequence", "1")
    two = fork_b.export(b, "--snapshot", fork_b.snapshots[1], "--sequence", "2")
    assert one["logIndex"] == two["logIndex"]  # two heads of the same size
    appliance.run("import", str(a))
    code, err = appliance.fail("import", str(b))
    assert code == 1
    assert "two heads of size" in err
    assert "the log forked" in err
    assert "the log forked" in _reason(appliance)["reason"]
    assert appliance.active() == fork_a.snapshots[0]


def test_a_fork_that_grew_further_is_refused(
    forks: tuple[Mirror, Mirror], appliance: Appliance, tmp_path: Path
) -> None:
    fork_a, fork_b = forks
    a, b = tmp_path / "a.stella.tar.zst", tmp_path / "b.stella.tar.zst"
    fork_a.export(a, "--snapshot", fork_a.snapshots[0], "--sequence", "1")
    fork_b.export(tmp_path / "x.stella.tar.zst", "--snapshot", fork_b.snapshots[0])
    fork_b.export(b, "--snapshot", fork_b.snapshots[1], "--sequence", "2")
    appliance.run("import", str(a))
    _code, err = appliance.fail("import", str(b))
    assert "does not extend the head of size" in err


def test_a_rolled_back_log_head_is_refused(
    mirror: Mirror, appliance: Appliance, tmp_path: Path
) -> None:
    older, newer = tmp_path / "older.stella.tar.zst", tmp_path / "newer.stella.tar.zst"
    # The bundle with the higher sequence has the older log head: what a mirror whose log was
    # restored from a backup (or an attacker replaying an old head) would hand over.
    mirror.export(older, "--snapshot", mirror.snapshots[1], "--sequence", "3")
    mirror.export(newer, "--snapshot", mirror.snapshots[0], "--sequence", "2")
    appliance.run("import", str(newer))
    code, err = appliance.fail("import", str(older))
    assert code == 1
    assert "the log was rolled back" in err


def test_a_trust_root_without_a_log_key_imports_old_style_bundles(
    mirror: Mirror, tmp_path: Path
) -> None:
    keys = tmp_path / "old-keys"
    generate(
        keys,
        key_type=KeyType.ECDSA_P256,
        channel="default",
        validity=timedelta(days=30),
        now=datetime.now(UTC),
        passphrase=None,
    )
    assert TrustRoot.load(keys / "trust-root.json").log_keys == []
    bundle = tmp_path / "b.stella.tar.zst"
    mirror.run(
        "export", "--out", str(bundle), "--key", str(keys / "signing.key"),
        "--snapshot", mirror.snapshots[0], "--sequence", "1",
    )  # fmt: skip
    old_style = tmp_path / "old.stella.tar.zst"
    _drop_proof(bundle, old_style)
    appliance = Appliance(tmp_path / "appliance")
    appliance.run("init")
    appliance.run("trust", "add", str(keys / "trust-root.json"))
    result = appliance.run("import", str(old_style))
    assert result["snapshot"] == mirror.snapshots[0]
    (record,) = appliance.run("audit", "list", "--action", "import")["records"]
    assert record["result"]["mirrorLog"] is None


def test_a_rotation_that_names_the_log_turns_the_check_on(mirror: Mirror, tmp_path: Path) -> None:
    keys = tmp_path / "old-keys"
    generate(
        keys,
        key_type=KeyType.ECDSA_P256,
        channel="default",
        validity=timedelta(days=30),
        now=datetime.now(UTC),
        passphrase=None,
    )
    appliance = Appliance(tmp_path / "appliance")
    appliance.run("init")
    appliance.run("trust", "add", str(keys / "trust-root.json"))
    rotated = mirror.run("keys", "rotate", "--keys", str(keys), "--log")
    (vkey,) = rotated["logKeys"]
    assert vkey == TrustRoot.load(mirror.keys / "trust-root.json").log_keys[0].vkey()
    # The bundle carries trust root v2, which names the log: the appliance walks to it, and
    # from then on a bundle must be logged.
    bundle = tmp_path / "b.stella.tar.zst"
    mirror.run(
        "export", "--out", str(bundle), "--key", str(keys / "signing.key"),
        "--snapshot", mirror.snapshots[0], "--sequence", "1",
    )  # fmt: skip
    unlogged = tmp_path / "unlogged.stella.tar.zst"
    _drop_proof(bundle, unlogged)
    _code, err = appliance.fail("import", str(unlogged))
    assert "is not in the mirror's transparency log" in err
    result = appliance.run("import", str(bundle))
    assert result["trustRotatedTo"] == 2


def test_a_garbled_proof_is_refused_by_import_and_by_verify(
    mirror: Mirror, appliance: Appliance, tmp_path: Path
) -> None:
    bundle = tmp_path / "b.stella.tar.zst"
    mirror.export(bundle, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    junk = b'{"entry": {}, "consistency": [], "note": "anything else"}'

    def garble(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo | None, bytes]:
        if info.name == TLOG_MEMBER:
            info.size = len(junk)
            return info, junk
        return info, data

    garbled = tmp_path / "garbled.stella.tar.zst"
    rewrite_bundle(bundle, garbled, garble)
    _code, err = appliance.fail("import", str(garbled))
    assert "statement.tlog.json: expected exactly the keys entry and consistency" in err
    root = str(mirror.keys / "trust-root.json")
    result = CliRunner().invoke(
        stella_mirror, ["--home", str(mirror.home), "verify", str(garbled), "--trust-root", root]
    )
    assert result.exit_code == 1
    assert "expected exactly the keys entry and consistency" in result.stderr
