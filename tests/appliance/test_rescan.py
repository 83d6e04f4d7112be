"""``stella rescan`` and ``stella snapshot activate`` on real (small) images and snapshots in
an appliance home: every image gated once per digest, failures reported without stopping the
run, the rollback keeping the channel's sequence, and the marker the rescan path unit
watches."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from appliance.cli import cli
from appliance.home import Home
from appliance.rescan import (
    ACTIVATED_MARKER,
    ImageOutcome,
    Outcome,
    RescanError,
    mark_activated,
    rescan,
    targets,
)
from appliance.rva.gate import GateResult
from appliance.store import open_knowledge, open_state
from appliance.store.audit import AuditLog, AuditRecord
from appliance.store.verdicts import VerdictStore
from bundles import canonical
from bundles.digest import Digest
from bundles.errors import StellaError
from tests.appliance.homes import KEV, SITE, install_knowledge
from tests.appliance.homes import OSV_UNRATED as OSV
from tests.appliance.rva.factories import AT, t
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.systemd.analyze import UNIT_DIR, Unit


def snapshot(home: Home, sequence: int, *, kev: bool) -> Digest:
    return install_knowledge(
        home,
        osv=(OSV,),
        kev=(KEV,) if kev else (),
        sequence=sequence,
        created=f"2026-11-{10 + sequence}T00:00:00Z",
        bundle=Digest.of_bytes(b"bundle %d" % sequence),
    )


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """Three names for two images: app:1 and app:latest are the same manifest."""
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:latest")
    build_image(h.oci, [dist_info("requests", "2.31.0", SITE)], tag="web:2")
    return h


def stella(home: Home, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home.root), *args])


def stella_json(home: Home, *args: str) -> tuple[int, dict[str, object]]:
    result = stella(home, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def audit(home: Home) -> list[AuditRecord]:
    with open_state(home) as db:
        return AuditLog(db).records()


# ----------------------------------------------------------------- rescan


def test_targets_are_one_per_digest_by_first_name_or_as_named(home: Home) -> None:
    found = targets(home)
    assert [(x.image, x.aliases) for x in found] == [("app:1", ("app:latest",)), ("web:2", ())]
    named = targets(home, ["web:2", "app:1", "web:2"])
    assert [(x.image, x.digest) for x in named] == [("web:2", None), ("app:1", None)]


def test_rescan_gates_every_image_once_and_fail_verdicts_still_exit_0(home: Home) -> None:
    snap = snapshot(home, 1, kev=True)
    code, out = stella_json(home, "rescan", "--at", "2026-11-23T06:00:00Z")
    assert code == 0
    assert out["snapshot"] == str(snap)
    assert out["evaluationTime"] == "2026-11-23T06:00:00Z"
    assert (out["gated"], out["failed"]) == (2, 0)
    assert out["verdicts"] == {"FAIL": 1, "PASS": 1}
    images = out["images"]
    assert isinstance(images, list)
    assert [(i["image"], i["verdict"]) for i in images] == [("app:1", "FAIL"), ("web:2", "PASS")]
    assert images[0]["aliases"] == ["app:latest"]
    # one gate record and one verdict per image, then the run's own record
    records = audit(home)
    gates = [r for r in records if r.action == "gate"]
    assert [r.seq for r in gates] == [i["auditSeq"] for i in images]
    last = records[-1]
    assert (last.action, last.seq, last.subject) == ("rescan", out["auditSeq"], "2 images")
    assert last.inputs["snapshot"] == str(snap)
    assert [i["outcome"] for i in last.result["images"]] == ["gated", "gated"]
    with open_state(home) as db:
        history = VerdictStore(db).history(str(images[0]["digest"]))
    assert [row.verdict for row in history] == ["FAIL"]


def test_a_failure_is_reported_and_the_others_are_still_gated(home: Home) -> None:
    snapshot(home, 1, kev=False)
    result = stella(home, "rescan", "--image", "gone:1", "--image", "web:2", "--at", "2026-11-23")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "NOT GATED             gone:1: image gone:1 is not in the local store "
        "(see 'stella images list', or load it with 'stella images load')"
    )
    assert lines[1].startswith("PASS                  web:2  sha256:")
    assert lines[2].startswith("rescanned 2 images at 2026-11-23T00:00:00Z against snapshot ")
    assert lines[2].endswith(": 1 PASS; 1 could not be gated")
    last = audit(home)[-1]
    assert last.action == "rescan"
    assert last.result["failed"] == 1
    assert last.inputs["images"] == ["gone:1", "web:2"]
    failed = last.result["images"][0]
    assert failed["outcome"] == "failed"
    assert failed["error"].startswith("image gone:1 is not in the local store")


def test_an_unexpected_kind_of_error_is_not_swallowed(home: Home) -> None:
    def broken(*_: object, **__: object) -> GateResult:
        raise ZeroDivisionError("a bug")

    with pytest.raises(ZeroDivisionError):
        rescan(home, at=AT, gate_fn=broken)


def test_progress_is_reported_per_image_and_the_gate_gets_one_time(home: Home) -> None:
    seen: list[ImageOutcome] = []
    times: list[datetime] = []

    def failing(_: Home, image: str, *, at: datetime, now: object) -> GateResult:
        times.append(at)
        raise StellaError(f"cannot read {image}", hint="load it again")

    report = rescan(home, at=AT, gate_fn=failing, on_image=seen.append)
    assert [o.image for o in seen] == ["app:1", "web:2"]
    assert all(o.outcome is Outcome.FAILED for o in seen)
    assert seen[0].error == "cannot read app:1 (load it again)"
    assert times == [AT, AT]
    assert report.exit_code == 1
    assert report.snapshot is None


def test_an_empty_store_is_a_successful_rescan(tmp_path: Path) -> None:
    h = Home(tmp_path / "empty")
    h.init()
    result = stella(h, "rescan")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "no images in the local store"
    assert audit(h)[-1].subject == "0 images"


def never(*_: object, **__: object) -> GateResult:
    raise AssertionError("the gate must not run")


def test_bad_at_is_a_usage_error_and_naive_times_are_refused(home: Home) -> None:
    result = stella(home, "rescan", "--at", "yesterday")
    assert result.exit_code == 2
    assert "--at" in result.stderr
    with pytest.raises(RescanError, match="has no time zone"):
        rescan(home, at=datetime(2026, 11, 23), gate_fn=never)
    assert not [r for r in audit(home) if r.action == "rescan"]


# ----------------------------------------------------------------- snapshot activate


def test_activate_rolls_back_keeps_the_sequence_audits_and_marks(home: Home) -> None:
    good = snapshot(home, 1, kev=False)
    bad = snapshot(home, 2, kev=True)
    code, out = stella_json(home, "snapshot", "activate", good.hex[:12])
    assert code == 0
    assert out == {
        "active": str(good),
        "previous": str(bad),
        "changed": True,
        "channel": "stable",
        "sequence": 1,
        "lastSequence": 2,
    }
    store = open_knowledge(home)
    try:
        assert store.active() == good
        assert store.last_sequence("stable") == 2  # bundle 2 cannot come back, 3 still imports
    finally:
        store.close()
    record = audit(home)[-1]
    assert (record.action, record.subject) == ("snapshot.activate", str(good))
    assert record.inputs == {"ref": good.hex[:12], "previous": str(bad)}
    marker = json.loads((home.root / ACTIVATED_MARKER).read_bytes())
    assert marker["snapshot"] == str(good)
    # the rescan that the marker starts gates against the rolled-back snapshot
    _, rescanned = stella_json(home, "rescan", "--image", "app:1")
    assert rescanned["snapshot"] == str(good)
    assert rescanned["verdicts"] == {"PASS": 1}


def test_activating_the_active_snapshot_changes_nothing(home: Home) -> None:
    snap = snapshot(home, 1, kev=False)
    before = len(audit(home))
    result = stella(home, "snapshot", "activate", f"sha256:{snap.hex}")
    assert result.exit_code == 0
    assert result.stdout == f"snapshot {snap} is already active; nothing changed\n"
    assert len(audit(home)) == before
    assert not (home.root / ACTIVATED_MARKER).exists()


@pytest.mark.parametrize("ref", ["0000", "", "sha256:"])
def test_activate_refuses_unknown_or_empty_references(home: Home, ref: str) -> None:
    snapshot(home, 1, kev=False)
    newest = snapshot(home, 2, kev=True)
    result = stella(home, "snapshot", "activate", ref)
    assert result.exit_code == 2
    assert f"no snapshot matches {ref!r}; nothing was changed" in result.stderr
    assert "stella snapshot list" in result.stderr
    store = open_knowledge(home)
    try:
        assert store.active() == newest  # still the newest
    finally:
        store.close()


@pytest.mark.parametrize("ref", ["", "sha256:", "0000"])
def test_show_refuses_an_empty_or_unknown_reference(home: Home, ref: str) -> None:
    """Even with a single snapshot, an empty prefix names nothing (as for activate)."""
    snapshot(home, 1, kev=False)
    result = stella(home, "snapshot", "show", ref)
    assert result.exit_code == 2
    assert f"no snapshot matches {ref!r}" in result.stderr
    assert "stella snapshot list" in result.stderr


def test_show_and_activate_resolve_references_alike(home: Home) -> None:
    # 17 snapshots of different content: two of them share their first hex digit
    snaps = [
        install_knowledge(
            home, osv=({**OSV, "modified": f"2026-01-{n:02d}T00:00:00Z"},), sequence=n
        )
        for n in range(1, 18)
    ]
    assert len(set(snaps)) == 17
    first = snaps[0]
    for ref in (first.hex[:12].upper(), f"SHA256:{first.hex[:12]}", str(first)):
        code, shown = stella_json(home, "snapshot", "show", ref)
        assert (code, shown["digest"]) == (0, str(first))
    digit = next(d for d in "0123456789abcdef" if sum(s.hex[0] == d for s in snaps) > 1)
    for command in ("show", "activate"):
        result = stella(home, "snapshot", command, digit)
        assert result.exit_code == 2
        assert f"several snapshots match {digit!r}" in result.stderr
    code, shown = stella_json(home, "snapshot", "show", "active")
    assert (code, shown["digest"]) == (0, str(snaps[-1]))


def test_mark_activated_replaces_the_marker_atomically(tmp_path: Path) -> None:
    h = Home(tmp_path)
    first = mark_activated(h, Digest.of_bytes(b"1"), t("2026-11-23T06:00:00Z"))
    second = mark_activated(h, Digest.of_bytes(b"2"), t("2026-11-23T07:00:00Z"))
    assert first == second == tmp_path / ACTIVATED_MARKER
    assert second.read_bytes() == canonical.dumps(
        {"snapshot": str(Digest.of_bytes(b"2")), "time": "2026-11-23T07:00:00Z"}
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [ACTIVATED_MARKER]
    images_only = mark_activated(h, None, t("2026-11-23T08:00:00Z"))
    assert json.loads(images_only.read_bytes()) == {
        "snapshot": None,
        "time": "2026-11-23T08:00:00Z",
    }


def test_the_units_watch_the_marker_and_run_after_imports() -> None:
    path = Unit.load(UNIT_DIR / "stella-rescan.path")
    assert path.values("Path", "PathChanged") == [f"/var/lib/stella/{ACTIVATED_MARKER}"]
    assert path.value("Path", "Unit") == "stella-rescan.service"
    service = Unit.load(UNIT_DIR / "stella-rescan.service")
    assert "stella-inbox.service" in (service.value("Unit", "After") or "").split()
    assert service.value("Service", "ExecStart") == "/usr/bin/stella --home /var/lib/stella rescan"
    timer = Unit.load(UNIT_DIR / "stella-rescan.timer")
    assert timer.value("Timer", "OnCalendar") == "*-*-* 02:30:00"
    assert timer.value("Timer", "Persistent") == "true"
