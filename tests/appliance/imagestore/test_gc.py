"""``stella gc``: unreferenced blobs go; whatever a tag, a referrer, a verdict (and the
evidence its signed statement cites) or an audit record references stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.imagestore import gc
from appliance.imagestore.catalog import remove
from appliance.rva.gate import GateResult
from appliance.store import open_state, record_decision
from appliance.store.audit import AuditAction, AuditLog
from bundles import canonical
from bundles.digest import Digest
from bundles.oci import OCILayout
from tests.appliance.registry.homes import gated_home

OLD = time.time() - 7200


def _orphan(layout: OCILayout, data: bytes, *, old: bool = True) -> Digest:
    digest = layout.put_blob(data).digest
    if old:
        os.utime(layout.blob_path(digest), (OLD, OLD))
    return digest


def _age_everything(layout: OCILayout) -> None:
    for path in (layout.path / "blobs" / "sha256").iterdir():
        os.utime(path, (OLD, OLD))


@pytest.fixture
def gated(tmp_path: Path) -> tuple[Home, GateResult]:
    return gated_home(tmp_path / "home")


def test_collects_unreferenced_keeps_tags_referrers_verdicts_and_audit(
    gated: tuple[Home, GateResult],
) -> None:
    home, result = gated
    layout = OCILayout.open(home.oci)
    image = layout.resolve("app:1")
    _age_everything(layout)
    garbage = _orphan(layout, b"nobody references me")
    audited = _orphan(layout, b"an audit record cites me")
    young = _orphan(layout, b"an upload whose manifest is on its way", old=False)
    record_decision(
        home,
        AuditAction.SCAN,
        str(audited),
        command="scan",
        time=datetime(2026, 11, 23, tzinfo=UTC),
        inputs={},
        result={},
    )
    before = {p.name for p in (layout.path / "blobs" / "sha256").iterdir()}

    dry = gc.collect(home, dry_run=True)
    assert [c.digest for c in dry.removed] == [garbage]
    assert dry.young == 1
    assert layout.has_blob(garbage)  # a dry run deletes nothing

    report = gc.collect(home, now=datetime(2026, 11, 23, 1, tzinfo=UTC))
    assert [c.digest for c in report.removed] == [garbage]
    assert report.bytes_freed == len(b"nobody references me")
    after = {p.name for p in (layout.path / "blobs" / "sha256").iterdir()}
    assert before - after == {garbage.encoded}
    assert layout.has_blob(audited)
    assert layout.has_blob(young)
    assert layout.has_blob(image.digest)
    assert layout.has_blob(result.referrer.digest)
    assert layout.verify().ok  # nothing reachable went missing
    with open_state(home) as db:
        last = AuditLog(db).records()[-1]
    assert last.action == "gc"
    assert last.result["removed"] == [str(garbage)]


def test_untagged_image_kept_by_its_verdict_and_evidence_by_the_statement(
    gated: tuple[Home, GateResult],
) -> None:
    home, result = gated
    layout = OCILayout.open(home.oci)
    image = layout.resolve("app:1")
    sbom = Digest.parse(result.verdict.predicate["evidence"]["sbom"]["digest"])
    remove(home, "app:1")
    # Another tool rewrote index.json and dropped the evidence referrer's entry: the SBOM is
    # then only referenced by the verdict's signed statement.
    index = json.loads((layout.path / "index.json").read_bytes())
    index["manifests"] = [
        e for e in index["manifests"] if e["digest"] != str(result.evidence.digest)
    ]
    (layout.path / "index.json").write_bytes(canonical.dumps(index))
    assert sbom in gc.pinned(home, layout)
    assert sbom in gc._statement_digests(layout, Digest.of_bytes(result.bundle))
    _age_everything(layout)
    gc.collect(home)
    for kept in (image.digest, result.referrer.digest, sbom):
        assert layout.has_blob(kept), kept


def test_nothing_to_do_records_nothing_and_cli_lists(
    gated: tuple[Home, GateResult],
) -> None:
    home, _ = gated
    layout = OCILayout.open(home.oci)
    with open_state(home) as db:
        count = len(AuditLog(db).records())
    assert gc.collect(home).removed == ()
    with open_state(home) as db:
        assert len(AuditLog(db).records()) == count
    garbage = _orphan(layout, b"left over")
    runner = CliRunner()
    dry = runner.invoke(cli, ["--home", str(home.root), "gc", "--dry-run"])
    assert dry.exit_code == 0, dry.stderr
    assert f"would remove {garbage} (9 bytes)" in dry.stdout
    real = runner.invoke(cli, ["--home", str(home.root), "--json", "gc", "--grace", "0"])
    doc = json.loads(real.stdout)
    assert doc["removed"] == [{"digest": str(garbage), "size": 9}]
    assert not layout.has_blob(garbage)


def test_stale_temporary_files_are_removed(gated: tuple[Home, GateResult]) -> None:
    home, _ = gated
    tmp = home.oci / ".stella" / "tmp"
    stale, fresh = tmp / "blob-1.tmp", tmp / "blob-2.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (OLD, OLD))
    assert gc.collect(home).temporary_files == 1
    assert not stale.exists()
    assert fresh.exists()


def test_a_killed_writers_files_go_at_once_a_live_ones_stay(gated: tuple[Home, GateResult]) -> None:
    home, _ = gated
    live_fd, live = OCILayout.open(home.oci).new_blob_file()  # a concurrent import's blob
    code = (
        "import os, signal, sys\n"
        "from bundles.oci import OCILayout\n"
        "fd, _ = OCILayout.open(sys.argv[1]).new_blob_file()\n"
        "os.write(fd, b'x' * 100)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(home.oci)], check=False)
    tmp = home.oci / ".stella" / "tmp"
    killed = [p for p in tmp.iterdir() if p != live]
    assert len(killed) == 1
    try:
        assert gc.collect(home).temporary_files == 1  # the blob (its writer's lock goes too)
        assert sorted(tmp.iterdir()) == [live]
    finally:
        os.close(live_fd)
        live.unlink()
