"""What the operators' console shows and takes: the values and the :class:`Console` interface.

The TUI never touches a store, a layout or a file in the home itself; it calls a
:class:`Console` (:class:`appliance.console.backend.HomeConsole` over a home, or in rendering
tests a fake with the same interface). Every answer is a frozen value the UI can render without
further I/O. Each call is blocking and may take seconds (a findings view re-scans from the layer
cache and re-matches), so the UI runs them in worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol

from appliance.match.model import Finding, Severity
from appliance.vex.merge import MergedFinding
from appliance.vex.model import Justification, VexStatus, format_time
from appliance.vex.suggest import suggestion
from bundles.errors import StellaError

STALE_AFTER_DAYS: Final = 30
"""A snapshot older than this is shown as stale: the default policy's
``max_snapshot_age_days``, past which gates report ``RISK.KNOWLEDGE.STALE``."""

SEVERITY_ORDER: Final = tuple(sorted(Severity, key=lambda s: -s.rank))
"""Severities worst first, the order every count is shown in."""

AUDIT_PAGE: Final = 50
"""Audit records per page: a few screenfuls on an 80x24 terminal, one cheap keyset query."""


class ConsoleError(StellaError):
    """The service cannot answer: an image or verdict the UI asked for does not exist."""


# ---------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """The active knowledge snapshot, with its age at the time asked."""

    digest: str
    channel: str
    sequence: int
    created: str
    imported: str
    age_days: int
    counts: tuple[tuple[str, int], ...]

    @property
    def id(self) -> str:
        return f"{self.channel}/{self.sequence}"

    @property
    def stale(self) -> bool:
        return self.age_days > STALE_AFTER_DAYS


@dataclass(frozen=True, slots=True)
class ImportEvent:
    """One import or refused import, from the audit log."""

    time: str
    bundle: str
    accepted: bool
    detail: str


@dataclass(frozen=True, slots=True)
class QuarantinedBundle:
    name: str
    time: str
    reason: str


EXPIRING_DAYS: Final = 14
"""The dashboard lists exceptions that expire within this many days."""


@dataclass(frozen=True, slots=True)
class SeverityCount:
    """Findings of one severity over every image's latest verdict: ``open`` ones still
    count against the image (affected, under_investigation), ``waived`` ones do not
    (not_affected, fixed)."""

    severity: str
    open: int
    waived: int


@dataclass(frozen=True, slots=True)
class ExpiringException:
    vulnerability: str
    expires: str
    days: int  # whole days left
    statement: str
    product: str  # the image (or product) it is about


@dataclass(frozen=True, slots=True)
class FeedFreshness:
    """One dataset of the active snapshot and how new its data is: the newest record's
    date (an advisory's ``modified``, the KEV catalog's release, the EPSS score date), not
    when the snapshot was built."""

    name: str
    type: str
    records: int
    newest: str | None  # YYYY-MM-DD; None when the records carry no date
    age_days: int | None


@dataclass(frozen=True, slots=True)
class NoDistroData:
    """An image with packages the active snapshot has no distro data for (its OS release
    is not covered): they are unknowns, not clean."""

    image: str
    packages: int
    reason: str  # the matcher's reason for the first of them


@dataclass(frozen=True, slots=True)
class VerdictChange:
    """An image whose verdict changed since the last import."""

    image: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class Dashboard:
    snapshot: SnapshotInfo | None
    imports: tuple[ImportEvent, ...]
    quarantined: tuple[QuarantinedBundle, ...]
    images: int
    verdicts: tuple[tuple[str, int], ...]  # verdict (or "not gated") -> images
    severities: tuple[tuple[str, int], ...]  # over the latest verdict of every image
    under_investigation: int
    kev: int
    by_severity: tuple[SeverityCount, ...] = ()
    expiring: tuple[ExpiringException, ...] = ()
    audit: AuditCheck | None = None
    feeds: tuple[FeedFreshness, ...] = ()
    no_distro_data: tuple[NoDistroData, ...] = ()
    changed: tuple[VerdictChange, ...] = ()
    last_import: str | None = None


@dataclass(frozen=True, slots=True)
class ImageRow:
    name: str
    digest: str
    verdict: str | None
    severities: tuple[tuple[str, int], ...]
    last_scan: str | None
    last_gate: str | None
    snapshot: str | None  # id (channel/sequence) of the snapshot the verdict used


@dataclass(frozen=True, slots=True)
class FindingRow:
    """One finding of one image after the VEX merge, with all its detail."""

    id: str
    aliases: tuple[str, ...]
    package: str
    version: str
    purl: str
    severity: Severity
    severity_detail: str
    status: VexStatus
    vex_statement: str | None
    exception_expires: str | None
    kev: str | None  # date added to KEV, "" when unknown; None when not in KEV
    epss: tuple[str, str] | None  # score, percentile
    cvss: tuple[tuple[str, float, str], ...]  # version, base score, vector
    reachability: str
    entrypoints: tuple[str, ...]
    files: tuple[tuple[str, str | None], ...]  # path, layer digest
    fixed_versions: tuple[str, ...]
    fix_state: str
    summary: str
    explanations: tuple[str, ...]
    severity_source: str = ""
    # every rating seen, the deciding one first: source, provider, severity, score
    ratings: tuple[tuple[str, str, str, float | None], ...] = ()
    # how the reachability was decided, and entrypoint file -> module -> ... -> function
    reachability_note: str = ""
    reachability_chain: tuple[str, ...] = ()
    # what reachability lets an operator state (appliance.vex.suggest): justification and
    # impact of a not_affected statement; a suggestion the triage form offers, never signed
    suggestion: tuple[Justification, str] | None = None

    @property
    def key(self) -> str:
        return f"{self.id} {self.purl}"

    @property
    def fix_available(self) -> bool:
        return bool(self.fixed_versions)

    @property
    def reachable(self) -> bool:
        return self.reachability == "reachable"

    @property
    def package_type(self) -> str:
        """The purl's type (``deb``, ``pypi``, ``npm``...): the package's ecosystem."""
        head = self.purl.removeprefix("pkg:").split("/", 1)[0]
        return head.lower() or "unknown"

    @classmethod
    def of(cls, merged: MergedFinding) -> FindingRow:
        f: Finding = merged.finding
        vex = merged.vex
        return cls(
            id=f.id,
            aliases=f.aliases,
            package=f.component.name,
            version=f.component.version,
            purl=f.component.purl,
            severity=f.severity,
            severity_detail=f.severity_detail,
            status=merged.status,
            vex_statement=vex.key if vex else None,
            exception_expires=format_time(vex.expires) if vex and vex.expires else None,
            kev=f.kev.date_added if f.kev else None,
            epss=(f.epss.score, f.epss.percentile) if f.epss else None,
            cvss=tuple((c.version, c.base_score, c.vector) for c in f.cvss),
            reachability=f.reachable.value,
            entrypoints=f.evidence.entrypoints,
            files=tuple((e.path, e.layer) for e in f.evidence.files),
            fixed_versions=f.fixed_versions,
            fix_state=f.fix_state.value,
            summary=f.summary,
            explanations=tuple(m.explain() for m in f.matches),
            severity_source=f.severity_source.value,
            ratings=tuple(
                (r.source.value, r.provider, r.severity.value, r.score) for r in f.ratings
            ),
            reachability_note=f.evidence.reachability_note,
            reachability_chain=f.evidence.reachability_chain,
            suggestion=(proposed.justification, proposed.impact)
            if (proposed := suggestion(f)) is not None
            else None,
        )


@dataclass(frozen=True, slots=True)
class Advisory:
    """The whole text of a finding's advisory, as the active snapshot's record has it."""

    id: str  # the record's id (the finding's id or one of its aliases)
    summary: str
    details: str
    published: str | None
    modified: str | None
    references: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ImageFindings:
    """An image's findings at ``at``, as the gate would see them now."""

    name: str
    digest: str
    at: str
    snapshot: str | None
    rows: tuple[FindingRow, ...]


@dataclass(frozen=True, slots=True)
class VexEntry:
    """One statement about a vulnerability, for a finding's history."""

    key: str
    status: str
    origin: str
    timestamp: str
    justification: str | None
    text: str  # impact, action or notes
    expires: str | None
    revokes: str


@dataclass(frozen=True, slots=True)
class TriageRequest:
    """An operator's decision about one finding of one image."""

    image: str
    digest: str
    vulnerability: str
    purl: str
    status: VexStatus
    justification: Justification | None
    text: str  # impact statement (not_affected) or action statement (affected)
    expires: datetime | None


@dataclass(frozen=True, slots=True)
class RevokeRequest:
    """An operator's revocation of the statement in force for one finding of one image."""

    image: str
    digest: str
    statement: str | None  # the key of the statement in force; None when none is
    reason: str


@dataclass(frozen=True, slots=True)
class TriageResult:
    """A VEX change (a triage or a revocation) and the image's verdict before and after."""

    statement: str
    vex_audit_seq: int
    before: str | None
    after: str
    reason_codes: tuple[str, ...]
    change: str = "triage"  # what changed the VEX: "triage" or "revocation"


@dataclass(frozen=True, slots=True)
class VerdictView:
    """The latest verdict of an image, read back from its verified signed bundle."""

    image: str
    digest: str
    verdict: str
    evaluation_time: str
    reason_codes: tuple[str, ...]
    reasons: tuple[tuple[str, str], ...]  # code, message
    explanation: str
    evidence: tuple[tuple[str, str], ...]  # role, digest
    policy: str
    snapshot: str | None
    bundle: str
    referrer: str
    audit_seq: int
    signer: str
    # per reason (in ``reasons``' order): the finding it is about, vulnerability and purl
    reason_findings: tuple[tuple[str, str], ...] = ()
    unknowns: tuple[tuple[str, str, str], ...] = ()  # purl, kind, reason


@dataclass(frozen=True, slots=True)
class VerdictCheck:
    """What verifying an image's newest signed verdict proved."""

    verdict: str
    statement: str
    signer: str
    evidence: int  # evidence blobs present and matching their digests
    audit_seq: int | None  # the gate's record in the (verified) audit chain


@dataclass(frozen=True, slots=True)
class ExportedPackage:
    path: str
    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class InboxEntry:
    name: str
    files: tuple[str, ...]
    ready: bool
    sequence: int | None
    channel: str | None
    missing: tuple[str, ...]
    companions: tuple[str, ...] = ()  # e.g. the parts manifest travelling with the parts
    settling: bool = False  # changed in the last seconds: still being copied, not offered yet


@dataclass(frozen=True, slots=True)
class ImportStep:
    """One step of an import as the UI shows it: ``done`` of ``total`` once it finished."""

    done: int
    total: int
    text: str


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    accepted: bool
    bundle: str
    steps: tuple[str, ...]
    reason: str | None = None
    quarantined: str | None = None


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    time: str
    actor: str
    action: str
    subject: str
    result: str


@dataclass(frozen=True, slots=True)
class AuditPage:
    """A page of the audit log, newest first, and where it lies: ``newer`` records come
    before it in that order and ``older`` after it, of ``total``."""

    entries: tuple[AuditEntry, ...]
    total: int
    newer: int
    older: int

    @property
    def first(self) -> int:
        """The page's first entry counted from the newest record (1-based); 0 when empty."""
        return self.newer + 1 if self.entries else 0

    @property
    def last(self) -> int:
        return self.newer + len(self.entries)


@dataclass(frozen=True, slots=True)
class AuditCheck:
    ok: bool
    records: int
    verified: int
    problem: str | None
    bad_seq: int | None = None  # the record verification found wrong, when it is one record


class Console(Protocol):
    """What the TUI may ask of the appliance."""

    def now(self) -> datetime: ...
    def dashboard(self) -> Dashboard: ...
    def images(self) -> tuple[ImageRow, ...]: ...
    def findings(self, image: str) -> ImageFindings: ...
    def vex_history(self, row: FindingRow) -> tuple[VexEntry, ...]: ...
    def advisory(self, row: FindingRow) -> Advisory | None: ...
    def triage(self, request: TriageRequest) -> TriageResult: ...
    def revoke(self, request: RevokeRequest) -> TriageResult: ...
    def verdict(self, image: str) -> VerdictView | None: ...
    def verify_verdict(self, image: str) -> VerdictCheck: ...
    def export_audit_package(self, image: str, out: Path) -> ExportedPackage: ...
    def inbox(self) -> tuple[InboxEntry, ...]: ...
    def inbox_dir(self) -> str: ...
    def import_bundle(self, name: str, progress: Callable[[ImportStep], None]) -> ImportOutcome: ...
    def audit(
        self, *, before: int | None = None, after: int | None = None, limit: int = AUDIT_PAGE
    ) -> AuditPage: ...
    def verify_audit(self) -> AuditCheck: ...
