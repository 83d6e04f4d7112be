"""The inbox processor through the real flow: bundles exported by the mirror are dropped into
the appliance's inbox and ``stella inbox process`` imports them, unattended."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from appliance.home import Home
from appliance.intake.inbox import ImportLock, InboxProcessor, scan_inbox
from tests.conftest import require_tools
from tests.flow.conftest import Appliance, Mirror, appliance, mirror  # noqa: F401


@pytest.fixture(scope="module")
def exported(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:  # noqa: F811
    """full0 (sequence 1), delta1 (2, on full0), delta2 (3, on delta1), and full0 in parts."""
    out = tmp_path_factory.mktemp("exported")
    s0, s1, s2 = mirror.snapshots
    paths = {
        "full0": out / "full0.stella.tar.zst",
        "delta1": out / "delta1.stella.tar.zst",
        "delta2": out / "delta2.stella.tar.zst",
    }
    mirror.export(paths["full0"], "--snapshot", s0, "--sequence", "1")
    mirror.export(paths["delta1"], "--snapshot", s1, "--base", s0, "--sequence", "2")
    mirror.export(paths["delta2"], "--snapshot", s2, "--base", s1, "--sequence", "3")
    split = out / "split" / "split.stella.tar.zst"
    split.parent.mkdir()
    mirror.export(split, "--snapshot", s0, "--sequence", "1", "--split", "256K")
    return paths


def _parts(exported: dict[str, Path]) -> list[Path]:
    return sorted((exported["full0"].parent / "split").glob("split.stella.tar.zst.part-*"))


def _drop(appliance: Appliance, *paths: Path) -> None:  # noqa: F811
    for path in paths:
        shutil.copy(path, appliance.home / "inbox" / path.name)


def _process(appliance: Appliance, *args: str, code: int = 0) -> dict[str, Any]:  # noqa: F811
    result = CliRunner().invoke(
        stella,
        ["--home", str(appliance.home), "--json", "inbox", "process", "--settle", "0", *args],
    )
    assert result.exit_code == code, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _inbox(appliance: Appliance) -> list[str]:  # noqa: F811
    return sorted(p.name for p in (appliance.home / "inbox").iterdir())


def test_a_dropped_bundle_is_imported_and_leaves_the_inbox(
    appliance: Appliance,  # noqa: F811
    mirror: Mirror,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    _drop(appliance, exported["full0"])
    out = _process(appliance)
    assert [(i["bundle"], i["sequence"], i["disposal"]) for i in out["imported"]] == [
        ("full0.stella.tar.zst", 1, "deleted")
    ]
    assert out["refused"] == out["waiting"] == []
    assert _inbox(appliance) == []
    assert appliance.active() == mirror.snapshots[0]
    assert [r["action"] for r in appliance.run("audit", "list")["records"]][-1] == "import"
    # A second pass over the empty inbox does nothing.
    assert _process(appliance)["imported"] == []


def test_bundles_dropped_together_import_in_sequence_order(
    appliance: Appliance,  # noqa: F811
    mirror: Mirror,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    _drop(appliance, exported["delta2"], exported["delta1"], exported["full0"])
    inbox = appliance.home / "inbox"
    # The deltas look older than the full bundle: sequence decides, not file age.
    os.utime(inbox / "delta2.stella.tar.zst", (1_000_000, 1_000_000))
    os.utime(inbox / "delta1.stella.tar.zst", (2_000_000, 2_000_000))
    out = _process(appliance, "--keep-imported")
    assert [i["sequence"] for i in out["imported"]] == [1, 2, 3]
    assert appliance.active() == mirror.snapshots[2]
    assert _inbox(appliance) == []
    kept = sorted(p.name for p in (appliance.home / "imported").iterdir())
    assert kept == ["delta1.stella.tar.zst", "delta2.stella.tar.zst", "full0.stella.tar.zst"]


def test_an_incomplete_set_of_parts_waits_and_names_what_is_missing(
    appliance: Appliance,  # noqa: F811
    mirror: Mirror,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    parts = _parts(exported)
    assert len(parts) >= 3
    count = f"{len(parts):03d}"
    manifest = exported["full0"].parent / "split" / "split.stella.tar.zst.parts.json"
    _drop(appliance, *parts[:1], *parts[2:], manifest)
    out = _process(appliance)
    missing = f"split.stella.tar.zst.part-002-of-{count}"
    assert out["imported"] == out["refused"] == []
    assert [(w["bundle"], w["missing"]) for w in out["waiting"]] == [
        ("split.stella.tar.zst", [missing])
    ]
    waiting = appliance.home / "inbox" / "split.stella.tar.zst.waiting"
    assert waiting.read_text() == (
        f"split.stella.tar.zst: {len(parts) - 1} of {len(parts)} parts here, waiting for 1: "
        f"{missing}\n"
    )
    assert list((appliance.home / "quarantine").iterdir()) == []
    assert appliance.active() is None
    # Another pass does not rewrite the status file (each write would wake the path unit).
    written = waiting.stat().st_mtime_ns
    _process(appliance)
    assert waiting.stat().st_mtime_ns == written
    status = appliance.run("inbox", "status", "--settle", "0")
    assert [w["missing"] for w in status["waiting"]] == [[missing]]
    assert status["busy"] is False
    # The last part arrives: the set imports and the inbox empties, manifest and status too.
    _drop(appliance, parts[1])
    out = _process(appliance)
    assert [(i["bundle"], i["sequence"]) for i in out["imported"]] == [("split.stella.tar.zst", 1)]
    assert out["waiting"] == []
    assert _inbox(appliance) == []
    assert appliance.active() == mirror.snapshots[0]


def test_a_refused_bundle_is_quarantined_with_its_reason(
    appliance: Appliance,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    (appliance.home / "inbox" / "junk.stella.tar.zst").write_bytes(b"not a bundle at all")
    _drop(appliance, exported["delta1"])  # its base snapshot was never imported
    out = _process(appliance, code=1)
    assert out["imported"] == []
    refused = {r["bundle"]: r for r in out["refused"]}
    assert sorted(refused) == ["delta1.stella.tar.zst", "junk.stella.tar.zst"]
    assert "not a zstd-compressed tar stream" in refused["junk.stella.tar.zst"]["reason"]
    assert "which this appliance has not imported" in refused["delta1.stella.tar.zst"]["reason"]
    assert _inbox(appliance) == []
    quarantine = sorted(p.name for p in (appliance.home / "quarantine").iterdir())
    assert len(quarantine) == 4
    assert sum(n.endswith(".reason") for n in quarantine) == 2
    reason = Path(refused["junk.stella.tar.zst"]["quarantine"])
    assert json.loads(reason.read_bytes())["bundle"] == "junk.stella.tar.zst"
    audit = appliance.run("audit", "list", "--action", "import.refused")["records"]
    assert sorted(r["subject"] for r in audit) == ["delta1.stella.tar.zst", "junk.stella.tar.zst"]
    # The human output names each refusal.
    (appliance.home / "inbox" / "again.stella.tar.zst").write_bytes(b"junk")
    result = CliRunner().invoke(
        stella, ["--home", str(appliance.home), "inbox", "process", "--settle", "0"]
    )
    assert result.exit_code == 1
    assert "refused again.stella.tar.zst: again.stella.tar.zst: not a zstd" in result.stdout


def test_a_refused_set_of_parts_takes_its_manifest_to_quarantine(
    appliance: Appliance,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    appliance.run("import", str(exported["delta1"].parent / "full0.stella.tar.zst"))
    split = exported["full0"].parent / "split"
    # Sequence 1 again: refused by the anti-rollback rule.
    _drop(appliance, *_parts(exported), split / "split.stella.tar.zst.parts.json")
    out = _process(appliance, code=1)
    assert "is not newer than the last imported sequence 1" in out["refused"][0]["reason"]
    assert _inbox(appliance) == []
    names = [p.name for p in (appliance.home / "quarantine").iterdir()]
    assert any(n.endswith("-split.stella.tar.zst.parts.json") for n in names)


def test_temp_files_are_ignored_and_strangers_left_alone(
    appliance: Appliance,  # noqa: F811
) -> None:
    inbox = appliance.home / "inbox"
    (inbox / ".full0.stella.tar.zst.XYZ").write_bytes(b"rsync temp")
    (inbox / "copy.tmp").write_bytes(b"temp")
    (inbox / "notes.txt").write_text("carried with the bundles")
    out = _process(appliance)
    assert out["other"] == ["notes.txt"]
    assert out["imported"] == out["refused"] == out["settling"] == []
    assert _inbox(appliance) == [".full0.stella.tar.zst.XYZ", "copy.tmp", "notes.txt"]


def test_a_file_still_being_copied_is_left_for_later(
    appliance: Appliance,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    _drop(appliance, exported["full0"])
    out = _process(appliance, "--settle", "3600")
    assert out["settling"] == ["full0.stella.tar.zst"]
    assert out["imported"] == []
    assert _inbox(appliance) == ["full0.stella.tar.zst"]
    status = appliance.run("inbox", "status")
    assert status["settling"] == ["full0.stella.tar.zst"]


def test_wait_complete_waits_for_a_copy_to_settle_then_imports(
    appliance: Appliance,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    _drop(appliance, exported["full0"])
    changed = (appliance.home / "inbox" / "full0.stella.tar.zst").stat().st_ctime
    clock = [changed + 1.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    processor = InboxProcessor(
        Home(appliance.home), settle=12.0, clock=lambda: clock[0], sleep=sleep
    )
    report = processor.process(wait_complete=True)
    assert [i.bundle.name for i in report.imported] == ["full0.stella.tar.zst"]
    assert report.settling == ()
    assert sum(slept) >= 11.0
    # Without --wait-complete the same file would have been left for the next pass.
    _drop(appliance, exported["delta1"])
    clock[0] = (appliance.home / "inbox" / "delta1.stella.tar.zst").stat().st_ctime + 1.0
    assert [p.name for p in processor.process().settling] == ["delta1.stella.tar.zst"]


def test_a_second_pass_waits_for_the_first_or_leaves_at_once(
    appliance: Appliance,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    _drop(appliance, exported["full0"])
    home = Home(appliance.home)
    with ImportLock(home).hold(wait=False) as held:
        assert held
        out = _process(appliance, "--no-wait")
        assert out["busy"] is True
        assert out["imported"] == []
        assert appliance.run("inbox", "status", "--settle", "0")["busy"] is True
        assert _inbox(appliance) == ["full0.stella.tar.zst"]
        done: list[int] = []
        waiter = threading.Thread(
            target=lambda: done.append(
                len(InboxProcessor(home, settle=0).process(wait_lock=True).imported)
            )
        )
        waiter.start()
        waiter.join(timeout=1.0)
        assert waiter.is_alive(), "the second pass imported while the lock was held"
        assert _inbox(appliance) == ["full0.stella.tar.zst"]
    waiter.join(timeout=60)
    assert done == [1]
    assert _inbox(appliance) == []


def test_two_processes_at_once_never_import_twice(
    appliance: Appliance,  # noqa: F811
    mirror: Mirror,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    _drop(appliance, exported["full0"], exported["delta1"], exported["delta2"])
    stella_bin = Path(sys.executable).parent / "stella"
    command = [str(stella_bin), "--home", str(appliance.home), "--json"]
    command += ["inbox", "process", "--settle", "0"]
    env = {k: v for k, v in os.environ.items() if k != "STELLA_HOME"}
    runs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    outputs = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr.decode()
        outputs.append(json.loads(stdout))
    imported = sorted(i["sequence"] for out in outputs for i in out["imported"])
    assert imported == [1, 2, 3]
    assert all(out["refused"] == [] for out in outputs)
    audit = appliance.run("audit", "list")["records"]
    assert [r["action"] for r in audit].count("import") == 3
    assert "import.refused" not in [r["action"] for r in audit]
    assert appliance.run("audit", "verify")["ok"] is True
    assert appliance.active() == mirror.snapshots[2]


def test_scan_of_a_missing_inbox_is_empty(tmp_path: Path) -> None:
    scan = scan_inbox(tmp_path / "nowhere", now=0.0)
    assert scan.to_dict() == {
        "ready": [],
        "waiting": [],
        "settling": [],
        "other": [],
        "unreadable": [],
    }


def test_an_unreadable_file_is_named_and_does_not_block_the_others(
    appliance: Appliance,  # noqa: F811
    exported: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bundle copied in by root with mode 0600 cannot be read by the stella user. (The
    tests run as root, who can read anything, so the permission check answers as it would
    for the appliance user.)"""
    _drop(appliance, exported["full0"], exported["delta1"])
    locked = appliance.home / "inbox" / "delta1.stella.tar.zst"
    locked.chmod(0o600)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
    result = CliRunner().invoke(
        stella, ["--home", str(appliance.home), "inbox", "process", "--settle", "0"]
    )
    assert result.exit_code == 0, result.stderr
    assert "imported full0.stella.tar.zst: sequence 1" in result.stdout
    assert (
        "delta1.stella.tar.zst: the appliance user cannot read it (owner uid 0, mode 0600); "
        "left in the inbox." in result.stdout
    )
    assert _inbox(appliance) == ["delta1.stella.tar.zst"]


def test_a_pass_runs_without_a_network_as_the_unit_runs_it(
    appliance: Appliance,  # noqa: F811
    mirror: Mirror,  # noqa: F811
    exported: dict[str, Path],
) -> None:
    """PrivateNetwork=yes gives the service a namespace with no network; so does unshare."""
    require_tools("unshare")
    _drop(appliance, exported["full0"])
    stella_bin = Path(sys.executable).parent / "stella"
    command = ["unshare", "--net", str(stella_bin), "--home", str(appliance.home), "--json"]
    command += ["inbox", "process", "--wait-complete", "--settle", "0"]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert [i["sequence"] for i in json.loads(run.stdout)["imported"]] == [1]
    assert appliance.active() == mirror.snapshots[0]
