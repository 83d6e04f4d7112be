"""The TUI's service facade over a real home: each answer, and that reading records nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.home import Home
from appliance.service import ApplianceService, ServiceError, TriageRequest
from appliance.store import open_state
from appliance.store.audit import AuditLog
from appliance.vex.model import VexStatus
from bundles import canonical
from tests.tui.homes import CVE, IMAGE, NOW, gated_home


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return gated_home(tmp_path / "home")


@pytest.fixture
def service(home: Home) -> ApplianceService:
    return ApplianceService(home, clock=lambda: NOW, settle=0)


def _records(home: Home) -> int:
    with open_state(home) as db:
        return AuditLog(db).count()


def test_reading_changes_nothing(home: Home, service: ApplianceService) -> None:
    before = _records(home)
    service.dashboard()
    service.images()
    service.findings(IMAGE)
    service.verdict(IMAGE)
    service.audit()
    service.verify_audit()
    assert _records(home) == before


def test_dashboard_and_images(service: ApplianceService) -> None:
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


def test_stale_snapshot_is_flagged(home: Home) -> None:
    later = ApplianceService(home, clock=lambda: NOW.replace(month=12, day=31))
    snapshot = later.dashboard().snapshot
    assert snapshot is not None
    assert snapshot.age_days == 41
    assert snapshot.stale


def test_findings_carry_the_evidence_chain(service: ApplianceService) -> None:
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


def test_triage_then_history_and_verdict(home: Home, service: ApplianceService) -> None:
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


def test_quarantined_bundles_and_refusals_are_listed(home: Home, service: ApplianceService) -> None:
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


def test_unknown_bundle_is_an_error(service: ApplianceService) -> None:
    with pytest.raises(ServiceError, match="no bundle 'nope.stella.tar.zst' in "):
        service.import_bundle("nope.stella.tar.zst", lambda _: None)


def test_tampered_audit_log_is_reported(home: Home, service: ApplianceService) -> None:
    with open_state(home) as db, db.transaction("tamper") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")
        conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    check = service.verify_audit()
    assert not check.ok
    assert check.problem == "record 1: hash mismatch (edited)"
    assert (check.records, check.verified) == (2, 0)
