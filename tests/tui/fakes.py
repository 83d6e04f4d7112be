"""A fake :class:`appliance.console.views.Console` with fixed data and a fixed clock, for rendering
tests (snapshots) and the benchmark. The end-to-end tests use the real service."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from appliance.console.views import (
    AUDIT_PAGE,
    AuditCheck,
    AuditEntry,
    AuditPage,
    Console,
    Dashboard,
    ExportedPackage,
    FindingRow,
    ImageFindings,
    ImageRow,
    ImportEvent,
    ImportOutcome,
    ImportStep,
    InboxEntry,
    QuarantinedBundle,
    RevokeRequest,
    SnapshotInfo,
    TriageRequest,
    TriageResult,
    VerdictCheck,
    VerdictView,
    VexEntry,
)
from appliance.match.model import Severity
from appliance.vex.model import VexStatus

NOW = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
SNAPSHOT = "sha256:" + "5e" * 32
REFUSED_BUNDLE = "2026-11-01-stable.stella.tar.zst"  # an operator's name for an old bundle
SEVERITIES = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.UNKNOWN)
STATUSES = (
    VexStatus.AFFECTED,
    VexStatus.AFFECTED,
    VexStatus.NOT_AFFECTED,
    VexStatus.UNDER_INVESTIGATION,
    VexStatus.FIXED,
)


def finding(i: int) -> FindingRow:
    """The i-th synthetic finding: severities, statuses and flags vary with i."""
    package = f"lib{i % 97:02d}"
    severity = SEVERITIES[i % len(SEVERITIES)]
    return FindingRow(
        id=f"CVE-2026-{10000 + i}",
        aliases=(f"GHSA-{i:04d}-test-0000",),
        package=package,
        version=f"1.{i % 7}.{i % 3}",
        purl=f"pkg:deb/debian/{package}@1.{i % 7}.{i % 3}?distro=debian-12",
        severity=severity,
        severity_detail="CVSS:3.1 from DSA-TEST",
        status=STATUSES[i % len(STATUSES)],
        vex_statement=None if i % 5 in (0, 1) else f"urn:stella:vex:{i}#0",
        exception_expires=None,
        kev="2026-01-02" if i % 11 == 0 else None,
        epss=("0.97000", "0.99900") if i % 3 == 0 else None,
        cvss=(("3.1", 9.8 - (i % 5), "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"),),
        reachability="reachable" if i % 4 == 0 else "unknown",
        entrypoints=("/usr/bin/app",) if i % 4 == 0 else (),
        files=((f"var/lib/dpkg/status.d/{package}", "sha256:" + "1c" * 32),),
        fixed_versions=(f"1.{i % 7}.9",) if i % 2 == 0 else (),
        fix_state="fixed" if i % 2 == 0 else "not-fixed",
        summary=f"{package}: heap overflow in the parser (synthetic finding {i})",
        explanations=(
            f"DSA-{i} Debian:12/{package}: 1.{i % 7}.{i % 3} in [fixed 1.{i % 7}.9] "
            "(dpkg, distro-fixed)",
        ),
    )


@dataclass
class FakeService:
    """Answers from fixed values; records triage and revoke requests; imports always
    refuse; the audit log holds ``audit_records`` synthetic records."""

    count: int = 40
    rows: tuple[FindingRow, ...] = ()
    triaged: list[TriageRequest] = field(default_factory=list)
    revoked: list[RevokeRequest] = field(default_factory=list)
    audit_records: int = 12

    def __post_init__(self) -> None:
        if not self.rows:
            self.rows = tuple(finding(i) for i in range(self.count))

    def now(self) -> datetime:
        return NOW

    def dashboard(self) -> Dashboard:
        return Dashboard(
            snapshot=SnapshotInfo(
                digest=SNAPSHOT,
                channel="stable",
                sequence=7,
                created="2026-10-01T00:00:00Z",
                imported="2026-10-02T00:00:00Z",
                age_days=53,
                counts=(("epss", 1200), ("kev", 1400), ("osv", 41000)),
            ),
            imports=(
                ImportEvent("2026-10-02T00:00:00Z", SNAPSHOT, True, "full seq 7 on stable"),
                ImportEvent(
                    "2026-11-01T00:00:00Z",
                    REFUSED_BUNDLE,
                    False,
                    "sequence 6 is not newer than 7 (rollback refused)",
                ),
            ),
            quarantined=(
                QuarantinedBundle(
                    REFUSED_BUNDLE,
                    "2026-11-01T00:00:00Z",
                    "sequence 6 is not newer than 7 (rollback refused)",
                ),
            ),
            images=3,
            verdicts=(("FAIL", 1), ("PASS", 1), ("not gated", 1)),
            severities=(
                ("critical", 8),
                ("high", 8),
                ("medium", 8),
                ("low", 8),
                ("unknown", 8),
                ("negligible", 0),
                ("none", 0),
            ),
            under_investigation=8,
            kev=4,
        )

    def images(self) -> tuple[ImageRow, ...]:
        counts = (("critical", 8), ("high", 8), ("medium", 8), ("low", 8))
        return (
            ImageRow(
                "app:1", DIGEST, "FAIL", counts, NOW.isoformat(), "2026-11-23T06:00:00Z", "stable/7"
            ),
            ImageRow(
                "base:12",
                "sha256:" + "cd" * 32,
                "PASS",
                (),
                None,
                "2026-11-22T06:00:00Z",
                "stable/7",
            ),
            ImageRow("tool:3", "sha256:" + "ef" * 32, None, (), None, None, None),
        )

    def findings(self, image: str) -> ImageFindings:
        return ImageFindings(image, DIGEST, "2026-11-23T06:00:00Z", "stable/7", self.rows)

    def vex_history(self, row: FindingRow) -> tuple[VexEntry, ...]:
        """One statement: the row's statement in force, or (for a row without one) a vendor's
        statement about the vulnerability that the appliance does not apply to it."""
        status = row.status.value if row.vex_statement else VexStatus.NOT_AFFECTED.value
        return (
            VexEntry(
                key=row.vex_statement or f"urn:stella:vex:{row.id}#0",
                status=status,
                origin="vendor",
                timestamp="2026-10-01T00:00:00Z",
                justification="vulnerable_code_not_present"
                if status == VexStatus.NOT_AFFECTED
                else None,
                text="",
                expires=None,
                revokes="",
            ),
        )

    def triage(self, request: TriageRequest) -> TriageResult:
        self.triaged.append(request)
        return TriageResult("urn:stella:vex:new#0", 9, "FAIL", "PASS_WITH_EXCEPTIONS", ())

    def revoke(self, request: RevokeRequest) -> TriageResult:
        self.revoked.append(request)
        return TriageResult("urn:stella:vex:revocation#0", 10, "PASS_WITH_EXCEPTIONS", "FAIL", ())

    def verdict(self, image: str) -> VerdictView | None:
        if image != "app:1":
            return None
        return VerdictView(
            image="app:1",
            digest=DIGEST,
            verdict="FAIL",
            evaluation_time="2026-11-23T06:00:00Z",
            reason_codes=("RISK.CVE.KEV", "RISK.KNOWLEDGE.STALE"),
            reasons=(
                ("RISK.CVE.KEV", "CVE-2026-10000 is in KEV"),
                ("RISK.KNOWLEDGE.STALE", "snapshot is 53 days old, the policy allows 30"),
            ),
            explanation="FAIL: the policy denies this image. 40 findings: 16 affected.",
            evidence=(
                ("policyInput", "sha256:" + "01" * 32),
                ("sbom", "sha256:" + "02" * 32),
                ("vexBundle", "sha256:" + "03" * 32),
            ),
            policy="sha256:" + "0f" * 32,
            snapshot="stable/7",
            bundle="sha256:" + "0b" * 32,
            referrer="sha256:" + "0e" * 32,
            audit_seq=12,
            signer="0123456789abcdef0123",
        )

    def verify_verdict(self, image: str) -> VerdictCheck:
        return VerdictCheck("FAIL", "sha256:" + "5a" * 32, "appliance 0123456789abcdef", 6, 12)

    def export_audit_package(self, image: str, out: Path) -> ExportedPackage:
        return ExportedPackage(str(out), "sha256:" + "9a" * 32, 4096)

    def inbox(self) -> tuple[InboxEntry, ...]:
        return (
            InboxEntry("next.stella.tar.zst", ("next.stella.tar.zst",), True, 8, "stable", ()),
            InboxEntry(
                "big.stella.tar.zst",
                ("big.stella.tar.zst.part-001-of-002",),
                False,
                9,
                "stable",
                ("big.stella.tar.zst.part-002-of-002",),
            ),
        )

    def import_bundle(self, name: str, progress: Callable[[ImportStep], None]) -> ImportOutcome:
        progress(ImportStep(1, 3, f"found {name}: sequence 8 on channel stable"))
        return ImportOutcome(
            False,
            name,
            (f"found {name}: sequence 8 on channel stable",),
            reason="bundle signature does not verify with the trust root of channel stable",
            quarantined=f"quarantine/20261123T060000Z-{name}.reason",
        )

    def audit(
        self, *, before: int | None = None, after: int | None = None, limit: int = AUDIT_PAGE
    ) -> AuditPage:
        """Keyset pages over seq 1..audit_records, as the audit log's own ``page``."""
        total = self.audit_records
        if before is not None:
            high = min(before - 1, total)
        elif after is not None and after + limit <= total:
            high = after + limit
        else:
            high = total
        low = max(high - limit + 1, 1)
        return AuditPage(
            entries=tuple(
                AuditEntry(
                    seq,
                    f"2026-11-23T0{seq % 10}:00:00Z",
                    "operator (stella gate)",
                    ("import", "scan", "gate", "vex.add")[seq % 4],
                    DIGEST,
                    '{"verdict":"FAIL"}',
                )
                for seq in range(high, low - 1, -1)
            ),
            total=total,
            newer=total - high if high >= low else total,
            older=low - 1 if high >= low else 0,
        )

    def verify_audit(self) -> AuditCheck:
        return AuditCheck(True, 12, 12, None)


@dataclass
class SlowService(FakeService):
    """A fake whose imports, exports, triages and revocations each wait for ``gate`` in the
    worker's thread, so a test can act while one runs. Imports are accepted, reporting their
    steps as the real service does; any error a progress report raised into the import is
    kept in ``progress_errors``. ``calls`` lists the calls that changed something."""

    gate: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    calls: list[str] = field(default_factory=list)
    progress_errors: list[BaseException] = field(default_factory=list)
    inbox_reads: int = 0

    def inbox(self) -> tuple[InboxEntry, ...]:
        self.inbox_reads += 1
        return super().inbox()

    def _wait(self, call: str) -> None:
        self.calls.append(call)
        if not self.gate.wait(timeout=10):
            raise TimeoutError(f"{call}: the test never opened the gate")

    def import_bundle(self, name: str, progress: Callable[[ImportStep], None]) -> ImportOutcome:
        try:
            steps = (f"found {name}", f"verified {name}", f"loaded {name}")
            self._report(progress, ImportStep(1, 3, steps[0]))
            self._wait(f"import {name}")
            for done, text in enumerate(steps[1:], start=2):
                self._report(progress, ImportStep(done, 3, text))
            return ImportOutcome(True, name, steps)
        finally:
            self.finished.set()

    def _report(self, progress: Callable[[ImportStep], None], step: ImportStep) -> None:
        try:
            progress(step)
        except BaseException as e:
            self.progress_errors.append(e)
            raise

    def export_audit_package(self, image: str, out: Path) -> ExportedPackage:
        self._wait(f"export {out}")
        return super().export_audit_package(image, out)

    def triage(self, request: TriageRequest) -> TriageResult:
        self._wait(f"triage {request.vulnerability}")
        return super().triage(request)

    def revoke(self, request: RevokeRequest) -> TriageResult:
        self._wait(f"revoke {request.statement}")
        return super().revoke(request)


# The fakes stand in for the real console: a method that drifts from the Console protocol
# (a renamed call, a changed signature or return type) fails the type check here.
_FAKE: Console = FakeService(count=1)
_SLOW: Console = SlowService(count=1)
