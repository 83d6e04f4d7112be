"""The TUI's service facade over a real home: each answer, and that reading records nothing."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.console.backend import HomeConsole
from appliance.console.views import (
    AUDIT_PAGE,
    ConsoleError,
    ImportStep,
    RevokeRequest,
    TriageRequest,
)
from appliance.home import Home
from appliance.imagestore.catalog import list_images
from appliance.rva.gate import gate
from appliance.store import open_state
from appliance.store.audit import AuditLog
from appliance.vex import service as vex_service
from appliance.vex.model import VexError, VexStatus
from bundles import canonical
from bundles.errors import StellaError
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import build_image, build_index, dist_info
from tests.flow.conftest import Appliance, Mirror, appliance, mirror  # noqa: F401
from tests.tui.homes import (
    CVE,
    EXCEPTED_AT,
    GATED_AT,
    IMAGE,
    NOW,
    add_audit_records,
    add_snapshot,
    excepted_home,
    gated_home,
)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return gated_home(tmp_path / "home")


@pytest.fixture
def service(home: Home) -> HomeConsole:
    return HomeConsole(home, clock=lambda: NOW, settle=0)


def _records(home: Home) -> int:
    with open_state(home) as db:
        return AuditLog(db).count()


def test_reading_changes_nothing(home: Home, service: HomeConsole) -> None:
    before = _records(home)
    service.dashboard()
    service.images()
    service.findings(IMAGE)
    service.verdict(IMAGE)
    service.audit()
    service.audit(before=2)
    service.verify_audit()
    assert _records(home) == before


def test_dashboard_and_images(service: HomeConsole) -> None:
    d = service.dashboard()
    assert d.snapshot is not None
    assert (d.snapshot.id, d.snapshot.age_days, d.snapshot.stale) == ("stable/1", 3, False)
    assert d.snapshot.counts == (("kev", 1), ("osv", 1))
    assert d.verdicts == (("FAIL", 1),)
    assert dict(d.severities)["critical"] == 1
    assert (d.under_investigation, d.kev) == (0, 1)
    (row,) = service.images()
    assert (row.name, row.verdict, row.snapshot) == (IMAGE, "FAIL", "stable/1")
    assert row.last_gate == row.last_scan == "2026-11-23T06:00:00Z"


def test_a_verdict_stays_with_its_image_when_the_tag_moves(
    home: Home, service: HomeConsole
) -> None:
    """The newest verdict under ``app:1`` is about the image the tag named then; once the tag
    names another (ungated) image, the screens show that one as not gated."""
    assert service.verdict(IMAGE) is not None
    build_image(home.oci, [dist_info("requests", "2.31.0", SITE)], tag=IMAGE)
    assert service.verdict(IMAGE) is None
    (row,) = service.images()
    assert (row.name, row.verdict, row.snapshot) == (IMAGE, None, None)
    assert service.dashboard().verdicts == (("not gated", 1),)


def test_an_index_shows_the_verdict_of_the_manifest_it_was_gated_through(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "home")
    home.init()
    layers = [dist_info("requests", "2.19.0", SITE)]
    build_index(home.oci, {"amd64": layers, "arm64": layers}, tag="multi:1")
    add_snapshot(home)
    gated = gate(home, "multi:1", at=GATED_AT, now=lambda: GATED_AT)
    service = HomeConsole(home, clock=lambda: NOW, settle=0)
    (row,) = service.images()
    assert (row.name, row.verdict) == ("multi:1", gated.kind.value)
    view = service.verdict("multi:1")
    assert view is not None
    assert view.digest == gated.verdict.predicate["subject"]["digest"]
    (stored,) = list_images(home)
    assert str(stored.digest) != view.digest  # the tag names the index, the verdict a manifest


def test_stale_snapshot_is_flagged(home: Home) -> None:
    later = HomeConsole(home, clock=lambda: NOW.replace(month=12, day=31))
    snapshot = later.dashboard().snapshot
    assert snapshot is not None
    assert snapshot.age_days == 41
    assert snapshot.stale


def test_findings_carry_the_evidence_chain(service: HomeConsole) -> None:
    view = service.findings(IMAGE)
    (row,) = view.rows
    assert (row.id, row.package, row.version, row.status) == (
        CVE,
        "requests",
        "2.19.0",
        VexStatus.AFFECTED,
    )
    assert row.kev == "2026-01-02"
    assert row.fixed_versions == ("2.20.0",)
    (path, layer) = row.files[0]
    assert path.endswith("requests-2.19.0.dist-info/METADATA")
    assert layer is not None
    assert layer.startswith("sha256:")
    assert "PYSEC-2018-0001 PyPI/requests: 2.19.0 in [" in row.explanations[0]


def test_triage_then_history_and_verdict(home: Home, service: HomeConsole) -> None:
    view = service.findings(IMAGE)
    row = view.rows[0]
    result = service.triage(
        TriageRequest(
            image=IMAGE,
            digest=view.digest,
            vulnerability=row.id,
            purl=row.purl,
            status=VexStatus.AFFECTED,
            justification=None,
            text="upgrade requests to 2.20.0",
            expires=None,
        )
    )
    assert (result.before, result.after) == ("FAIL", "FAIL")  # still affected, still in KEV
    (entry,) = service.vex_history(row)
    assert (entry.status, entry.text, entry.origin) == (
        "affected",
        "upgrade requests to 2.20.0",
        "operator",
    )
    verdict = service.verdict(IMAGE)
    assert verdict is not None
    assert verdict.audit_seq > 2
    assert service.verify_audit().ok


def test_quarantined_bundles_and_refusals_are_listed(home: Home, service: HomeConsole) -> None:
    bad = home.inbox / "junk.stella.tar.zst"
    bad.write_bytes(b"junk")
    outcome = service.import_bundle("junk.stella.tar.zst", lambda _: None)
    assert not outcome.accepted
    assert outcome.quarantined is not None
    reason = canonical.loads(Path(outcome.quarantined).read_bytes())["reason"]
    assert outcome.reason == reason
    d = service.dashboard()
    (q,) = d.quarantined
    assert q.name == "junk.stella.tar.zst"
    assert q.reason == reason.splitlines()[0]
    # newest first: the refusal, then the import record the importer recovered for the
    # snapshot this test home loaded without one
    assert (d.imports[0].bundle, d.imports[0].accepted) == ("junk.stella.tar.zst", False)
    assert d.imports[1].accepted


def test_unknown_bundle_is_an_error(service: HomeConsole) -> None:
    with pytest.raises(ConsoleError, match="no bundle 'nope.stella.tar.zst' in "):
        service.import_bundle("nope.stella.tar.zst", lambda _: None)


def test_tampered_audit_log_is_reported(home: Home, service: HomeConsole) -> None:
    with open_state(home) as db, db.transaction("tamper") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    check = service.verify_audit()
    assert not check.ok
    assert check.problem == "record 1: hash mismatch (edited)"
    assert (check.records, check.verified) == (2, 0)


def test_audit_pages_by_sequence_number(home: Home, service: HomeConsole) -> None:
    add_audit_records(home, 2 * AUDIT_PAGE + 8)  # + scan and gate: 110 records
    newest = service.audit()
    assert [e.seq for e in newest.entries] == list(range(110, 60, -1))
    assert (newest.total, newest.newer, newest.older, newest.first, newest.last) == (
        110,
        0,
        60,
        1,
        50,
    )
    middle = service.audit(before=61)
    assert [e.seq for e in middle.entries] == list(range(60, 10, -1))
    assert (middle.first, middle.last, middle.older) == (51, 100, 10)
    oldest = service.audit(before=11)
    assert [e.seq for e in oldest.entries] == list(range(10, 0, -1))
    assert (oldest.first, oldest.last, oldest.older) == (101, 110, 0)
    assert [e.action for e in oldest.entries[-2:]] == ["gate", "scan"]
    assert service.audit(after=10) == middle
    assert service.audit(after=60) == newest


def _revoke(service: HomeConsole, key: str | None, reason: str = "now reachable") -> None:
    service.revoke(RevokeRequest(IMAGE, service.findings(IMAGE).digest, key, reason))


def test_revoke_supersedes_the_exception_and_regates(tmp_path: Path) -> None:
    home, key = excepted_home(tmp_path / "home")
    service = HomeConsole(home, clock=lambda: NOW, settle=0)
    view = service.findings(IMAGE)
    (row,) = view.rows
    assert (row.status, row.vex_statement) == (VexStatus.NOT_AFFECTED, key)
    result = service.revoke(
        RevokeRequest(IMAGE, view.digest, key, "  the redirect path\n is used since 2.3 ")
    )
    assert (result.before, result.after) == ("PASS_WITH_EXCEPTIONS", "FAIL")
    assert "RISK.CVE.KEV" in result.reason_codes
    # the revocation is what `stella vex revoke` makes: signed, stored, audited
    old, revocation = service.vex_history(row)
    assert (old.key, old.status) == (key, "not_affected")
    assert (revocation.key, revocation.revokes, revocation.status) == (
        result.statement,
        key,
        "under_investigation",
    )
    assert revocation.text == f"revokes {key}: the redirect path is used since 2.3"
    with open_state(home) as db:
        records = AuditLog(db).records()
    assert [r.action for r in records[-3:]] == ["vex.revoke", "scan", "gate"]
    assert records[-3].seq == result.vex_audit_seq
    assert records[-3].result["revokes"] == key
    assert service.verify_audit().ok
    (after,) = service.findings(IMAGE).rows
    assert (after.status, after.vex_statement) == (VexStatus.UNDER_INVESTIGATION, result.statement)
    verdict = service.verdict(IMAGE)
    assert verdict is not None
    assert verdict.verdict == "FAIL"


@pytest.mark.parametrize(
    ("statement", "reason", "message"),
    [
        (None, "x", "no VEX statement is in force for this finding: nothing to revoke"),
        ("KEY", " \n ", "revoking KEY needs a reason"),
        ("urn:vendor:vex#0", "x", "urn:vendor:vex#0 is not stored on this appliance"),
    ],
)
def test_revoke_refusals_change_nothing(
    tmp_path: Path, statement: str | None, reason: str, message: str
) -> None:
    home, key = excepted_home(tmp_path / "home")
    service = HomeConsole(home, clock=lambda: NOW, settle=0)
    before = _records(home)
    with pytest.raises(ConsoleError) as caught:
        _revoke(service, key if statement == "KEY" else statement, reason)
    assert message.replace("KEY", key) in caught.value.message
    assert _records(home) == before


def test_a_revocation_and_a_revoked_statement_cannot_be_revoked(tmp_path: Path) -> None:
    home, key = excepted_home(tmp_path / "home")
    service = HomeConsole(home, clock=lambda: NOW, settle=0)
    revocation = vex_service.revoke(home, key, reason="by the CLI", at=NOW).statements[0].key
    before = _records(home)
    with pytest.raises(VexError, match=f"VEX statement {key} is already revoked by"):
        _revoke(service, key)  # a finding read before the CLI revoked it
    with pytest.raises(ConsoleError, match=f"{revocation} is itself the revocation of {key}"):
        _revoke(service, revocation)
    assert _records(home) == before


def test_revoke_without_the_signing_key_is_an_error(tmp_path: Path) -> None:
    home, key = excepted_home(tmp_path / "home")
    service = HomeConsole(home, clock=lambda: NOW, settle=0)
    home.appliance_key.rename(tmp_path / "elsewhere.key")
    with pytest.raises(StellaError) as caught:
        _revoke(service, key)
    assert str(home.appliance_key) in caught.value.diagnostics()
    assert [s.key for s in vex_service.stored_statements(home)] == [key]


def test_revoke_in_the_same_second_as_the_statement_is_refused(tmp_path: Path) -> None:
    home, key = excepted_home(tmp_path / "home")
    service = HomeConsole(home, clock=lambda: EXCEPTED_AT, settle=0)
    with pytest.raises(VexError, match="is not after the statement's"):
        _revoke(service, key)


def test_an_imported_bundle_leaves_the_inbox_even_if_reporting_fails(
    mirror: Mirror,  # noqa: F811
    appliance: Appliance,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The bundle is imported once the importer returns: a progress report failing after
    that (the UI gone) must not leave it in the inbox, to be quarantined later as a
    rollback."""
    bundle = tmp_path / "full.stella.tar.zst"
    mirror.export(bundle, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    shutil.copy(bundle, appliance.home / "inbox" / bundle.name)
    service = HomeConsole(Home(appliance.home), settle=0)

    def progress(step: ImportStep) -> None:
        if step.done > 1:
            raise RuntimeError("the screen is gone")

    with pytest.raises(RuntimeError, match="the screen is gone"):
        service.import_bundle(bundle.name, progress)
    assert list((appliance.home / "inbox").iterdir()) == []
    assert appliance.active() == mirror.snapshots[0]


def test_the_advisory_is_read_whole_from_the_snapshot(service: HomeConsole) -> None:
    (row,) = service.findings(IMAGE).rows
    advisory = service.advisory(row)
    assert advisory is not None
    assert advisory.id == "PYSEC-2018-0001"  # by the finding's alias
    assert advisory.summary == "requests sends credentials on redirect"
    assert advisory.modified == "2026-01-01T00:00:00Z"
    assert advisory.references == ()


def test_dashboard_counts_open_and_waived_and_knows_each_feeds_date(tmp_path: Path) -> None:
    home, key = excepted_home(tmp_path / "home")
    soon = datetime(2026, 12, 25, tzinfo=UTC)
    d = HomeConsole(home, clock=lambda: soon, settle=0).dashboard()
    counts = {c.severity: (c.open, c.waived) for c in d.by_severity}
    assert counts["critical"] == (0, 1)
    (expiring,) = d.expiring
    assert (expiring.vulnerability, expiring.days, expiring.statement) == (CVE, 6, key)
    assert d.audit is not None
    assert d.audit.ok
    feeds = {f.name: (f.type, f.newest) for f in d.feeds}
    assert feeds["osv-pypi"] == ("osv", "2026-01-01")
    assert d.no_distro_data == ()
    later = HomeConsole(home, clock=lambda: datetime(2027, 1, 1, tzinfo=UTC)).dashboard()
    assert later.expiring == ()  # expired: no longer "expiring"


def test_a_tampered_record_is_named(home: Home, service: HomeConsole) -> None:
    with open_state(home) as db, db.transaction("tamper") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    assert service.verify_audit().bad_seq == 2


def test_a_file_being_copied_is_listed_as_settling(home: Home) -> None:
    (home.inbox / "next.stella.tar.zst").write_bytes(b"partial")
    service = HomeConsole(home, clock=lambda: NOW, settle=30)
    (entry,) = service.inbox()
    assert (entry.name, entry.ready, entry.settling) == ("next.stella.tar.zst", False, True)
    assert service.inbox_dir() == str(home.inbox)


def test_the_operators_changes_are_audited_as_the_console_actor(
    home: Home, service: HomeConsole
) -> None:
    view = service.findings(IMAGE)
    (row,) = view.rows
    service.triage(
        TriageRequest(
            IMAGE, view.digest, row.id, row.purl, VexStatus.AFFECTED, None, "upgrade", None
        )
    )
    assert service.actor.endswith("(stella tui)")
    with open_state(home) as db:
        (record,) = AuditLog(db).records(action="vex.add")
        regated = AuditLog(db).records(action="gate")[-1]  # the re-gate the triage made
    assert record.actor == service.actor
    assert regated.actor == service.actor
