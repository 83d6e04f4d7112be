"""``stella doctor``: a healthy home passes; each kind of damage is found and named, with a fix."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from appliance.doctor import Check, Doctor, Limits, Status
from appliance.home import Home
from appliance.intake.trust_store import TrustStore
from appliance.store.db import SqliteDatabase
from bundles.oci.layout import OCILayout
from tests.flow.conftest import Appliance, Mirror, appliance, mirror  # noqa: F401

PLENTY = 1 << 40


@pytest.fixture(scope="module")
def bundle(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    path = tmp_path_factory.mktemp("doctor") / "full0.stella.tar.zst"
    mirror.export(path, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    return path


@pytest.fixture
def healthy(appliance: Appliance, bundle: Path) -> Home:  # noqa: F811
    """A home with a trusted mirror, an imported snapshot and an image store."""
    appliance.run("import", str(bundle))
    layout = OCILayout.init(appliance.home / "oci")
    layout.put_blob(b"a layer")
    layout.put_blob(b"another layer")
    return Home(appliance.home)


def _doctor(home: Home, now: datetime | None = None, **limits: Any) -> dict[str, Check]:
    diagnosis = Doctor(
        home,
        now=now or datetime.now(UTC),
        limits=Limits(**limits),
        free_space=lambda _: PLENTY,
    ).run()
    return {c.name: c for c in diagnosis.checks}


def _statuses(checks: dict[str, Check]) -> dict[str, str]:
    return {name: str(c.status) for name, c in checks.items()}


def _created(home: Home) -> datetime:
    db = SqliteDatabase.open(home.knowledge_db)
    try:
        text = db.query("SELECT created FROM snapshots")[0][0]
    finally:
        db.close()
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


def test_a_healthy_home_passes_every_check(healthy: Home) -> None:
    checks = _doctor(healthy)
    assert _statuses(checks) == {
        "home": "ok",
        "disk": "ok",
        "knowledge.db": "ok",
        "state.db": "ok",
        "oci": "ok",
        "leftovers": "ok",
        "trust": "ok",
        "snapshot": "ok",
        "audit": "ok",
        "tlog": "ok",
        "keys": "ok",
        "inbox": "ok",
    }
    assert checks["oci"].detail.startswith("2 of 2 blobs re-hashed")
    assert all(c.fix is None for c in checks.values())
    result = CliRunner().invoke(
        stella, ["--home", str(healthy.root), "--json", "doctor", "--min-free", "1K"]
    )
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["status"] == "ok"


def test_a_missing_home_fails_and_says_how_to_create_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(stella, ["--home", str(tmp_path / "none"), "doctor"])
    assert result.exit_code == 1
    assert f"FAIL  home         {tmp_path / 'none'} does not exist" in result.stdout
    assert f"fix: run 'stella --home {tmp_path / 'none'} init'" in result.stdout
    assert result.stdout.rstrip().endswith("overall: fail")


def test_loose_permissions_fail(healthy: Home) -> None:
    os.chmod(healthy.root, 0o755)  # noqa: S103 - the damage under test
    os.chmod(healthy.appliance_key, 0o644)
    check = _doctor(healthy)["home"]
    assert check.status is Status.FAIL
    assert f"{healthy.root} has mode 0755, not 0700" in check.detail
    assert f"appliance key {healthy.appliance_key} has mode 0644" in check.detail
    assert check.fix is not None
    assert f"chmod 0700 {healthy.root}" in check.fix


def test_a_home_owned_by_another_user_fails(healthy: Home) -> None:
    check = Doctor(healthy, now=datetime.now(UTC), uid=os.geteuid() + 4242).check_home()
    assert check.status is Status.FAIL
    assert "not the running uid" in check.detail


def test_a_missing_directory_fails(healthy: Home) -> None:
    healthy.quarantine.rmdir()
    check = _doctor(healthy)["home"]
    assert (check.status, check.detail) == (Status.FAIL, "missing directories: quarantine")


def test_low_disk_warns(healthy: Home) -> None:
    doctor = Doctor(healthy, now=datetime.now(UTC), free_space=lambda _: 500 << 20)
    check = doctor.check_disk()
    assert check.status is Status.WARN
    assert check.detail == "500.0 MiB free, below 1.0 GiB (the minimum)"
    # A big file in the inbox raises the bar to twice its size.
    with open(healthy.inbox / "big.stella.tar.zst", "wb") as fh:
        fh.truncate(2 << 30)
    big = Doctor(healthy, now=datetime.now(UTC), free_space=lambda _: 3 << 30).check_disk()
    assert big.detail == (
        "3.0 GiB free, below 4.0 GiB (twice the largest file in the inbox (2.0 GiB))"
    )


def test_a_corrupt_database_fails(healthy: Home) -> None:
    data = bytearray(healthy.knowledge_db.read_bytes())
    data[:16] = b"garbage garbage!"
    healthy.knowledge_db.write_bytes(bytes(data))
    checks = _doctor(healthy)
    assert checks["knowledge.db"].status is Status.FAIL
    assert "is not an SQLite database" in checks["knowledge.db"].detail
    assert checks["snapshot"].status is Status.FAIL  # it cannot be read either
    assert checks["state.db"].status is Status.OK  # the other store is still checked


def test_a_damaged_page_fails_the_integrity_check(healthy: Home) -> None:
    conn = sqlite3.connect(healthy.knowledge_db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'records'").fetchone()[0]
    conn.close()
    data = bytearray(healthy.knowledge_db.read_bytes())
    start = (root - 1) * page_size
    data[start : start + 12] = b"\x0d" + b"\xff" * 11  # the root page's b-tree header
    healthy.knowledge_db.write_bytes(bytes(data))
    check = _doctor(healthy)["knowledge.db"]
    assert check.status is Status.FAIL
    assert check.fix == "stop the appliance services and restore the database from a backup"


def test_an_unchecked_write_ahead_log_warns(healthy: Home) -> None:
    db = SqliteDatabase.open(healthy.state_db)  # a reader that keeps the log open, as the TUI would
    try:
        with db.transaction() as conn:
            conn.execute("CREATE TABLE doctor_probe (x)")
        check = _doctor(healthy, wal_warn=0)["state.db"]
    finally:
        db.close()
    assert check.status is Status.WARN
    assert check.detail.startswith("integrity ok; write-ahead log is ")


def test_an_image_store_index_near_its_limit_warns(healthy: Home) -> None:
    index = healthy.oci / "index.json"
    size = index.stat().st_size
    assert f"index.json {size} B of 64.0 MiB" in _doctor(healthy)["oci"].detail
    check = _doctor(healthy, index_warn=size - 1)["oci"]
    assert check.status is Status.WARN
    entries = len(OCILayout.open(healthy.oci).entries())
    assert check.detail == (
        f"index.json is {size} B of the 64.0 MiB the image store accepts ({entries:,} entries; "
        "each gate adds three or four)"
    )
    assert check.fix is not None
    assert "move images to a tenant or home of their own" in check.fix
    assert _doctor(healthy, index_warn=size)["oci"].status is Status.OK


def test_a_corrupt_image_blob_fails(healthy: Home) -> None:
    blob = next((healthy.oci / "blobs" / "sha256").iterdir())
    blob.write_bytes(b"tampered")
    for full in (False, True):
        check = _doctor(healthy, full_oci=full)["oci"]
        assert check.status is Status.FAIL
        assert f"{blob.name}: content hashes to sha256:" in check.detail


def test_trust_roots_expiring_warn_then_fail(healthy: Home) -> None:
    (root,) = TrustStore(healthy.trust).all()
    soon = _doctor(healthy, now=root.expires - timedelta(days=10))["trust"]
    assert soon.status is Status.WARN
    assert soon.detail == f"trust root expires soon: {root.channel} in 10 days"
    gone = _doctor(healthy, now=root.expires + timedelta(days=1))["trust"]
    assert gone.status is Status.FAIL
    assert gone.detail == (f"trust root expired: {root.channel} (expired {root.expires:%Y-%m-%d})")
    assert gone.fix is not None
    assert "stella trust rotate" in gone.fix


def test_no_trusted_mirror_warns(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    checks = _doctor(home)
    assert checks["trust"].status is Status.WARN
    assert checks["snapshot"].status is Status.WARN
    assert checks["snapshot"].detail == "no knowledge snapshot imported yet"


def test_an_old_snapshot_warns_then_fails(healthy: Home) -> None:
    created = _created(healthy)
    assert _doctor(healthy, now=created + timedelta(days=6))["snapshot"].status is Status.OK
    old = _doctor(healthy, now=created + timedelta(days=8))["snapshot"]
    assert old.status is Status.WARN
    assert old.detail.endswith("is 8 days old")
    stale = _doctor(healthy, now=created + timedelta(days=31))["snapshot"]
    assert stale.status is Status.FAIL
    custom = _doctor(healthy, now=created + timedelta(days=8), snapshot_warn=timedelta(days=9))
    assert custom["snapshot"].status is Status.OK


def test_a_tampered_audit_log_fails(healthy: Home) -> None:
    conn = sqlite3.connect(healthy.state_db)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET subject = 'edited' WHERE seq = 1")
    conn.commit()
    conn.close()
    check = _doctor(healthy)["audit"]
    assert check.status is Status.FAIL
    assert check.detail.startswith("record 1: hash mismatch (edited)")
    result = CliRunner().invoke(
        stella, ["--home", str(healthy.root), "--json", "doctor", "--min-free", "1K"]
    )
    assert result.exit_code == 1
    out = json.loads(result.stdout)
    assert out["status"] == "fail"
    assert [c["name"] for c in out["checks"] if c["status"] == "fail"] == ["audit"]


def test_a_waiting_inbox_warns(healthy: Home) -> None:
    (healthy.inbox / "notes.txt").write_text("stray")
    check = _doctor(healthy)["inbox"]
    assert check.status is Status.WARN
    assert check.detail == "not bundles, left alone: notes.txt"


def test_a_check_that_cannot_read_its_input_fails_alone(healthy: Home) -> None:
    (healthy.trust / "default" / "root.json").write_text("{not json")
    checks = _doctor(healthy)
    assert checks["trust"].status is Status.FAIL
    assert "root.json" in checks["trust"].detail
    assert checks["audit"].status is Status.OK


def test_temporary_files_of_a_killed_writer_are_reported(healthy: Home) -> None:
    code = (
        "import os, signal, sys\n"
        "from bundles.oci import OCILayout\n"
        "fd, _ = OCILayout.open(sys.argv[1]).new_blob_file()\n"
        "os.write(fd, b'x' * 5000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(healthy.oci)], check=False)
    check = _doctor(healthy)["leftovers"]
    assert check.status is Status.WARN
    assert check.detail.startswith("1 temporary file(s) (4.9 KiB) left in ")
    assert check.fix == "run 'stella gc' (the next import or load also removes them)"
    assert OCILayout.open(healthy.oci).leftovers()  # reported, not removed
