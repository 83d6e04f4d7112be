"""Findings, statements and gate inputs built in a few words, for the VEX, policy and RVA
tests. Real model values (appliance.match.model), never mocks."""

from __future__ import annotations

from datetime import UTC, datetime

from appliance.match.model import (
    Component,
    CvssScore,
    Epss,
    Evidence,
    Finding,
    FindingsReport,
    FixState,
    Kev,
    MatchDetail,
    MatchKind,
    MatchUnknown,
    Reachability,
    RecordRef,
    Severity,
    SeveritySource,
    UnknownKind,
)
from appliance.policy.bundle import PolicyBundle
from appliance.policy.inputs import KnowledgeInfo
from appliance.rva.evaluate import GateInputs, SubjectInfo
from appliance.vex.model import Justification, Origin, Product, VexStatement, VexStatus
from bundles.digest import Digest

AT = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
IMAGE_DIGEST = "sha256:" + "ab" * 32
INDEX_DIGEST = "sha256:" + "cd" * 32
SNAPSHOT = "sha256:" + "5e" * 32
OPENSSL = "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"
REQUESTS = "pkg:pypi/requests@2.19.0"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def finding(
    vuln: str = "CVE-2024-0001",
    purl: str = OPENSSL,
    *,
    aliases: tuple[str, ...] = (),
    severity: Severity = Severity.HIGH,
    kev: bool = False,
    epss: str | None = None,
    reach: Reachability = Reachability.UNKNOWN,
    fixed: tuple[str, ...] = ("3.0.13-1~deb12u1",),
) -> Finding:
    name = purl.split("/")[-1].split("@")[0]
    version = purl.split("@")[1].split("?")[0]
    record = RecordRef(f"OSV-{vuln}", Digest.of_bytes(vuln.encode()).hex, "2026-01-01T00:00:00Z")
    return Finding(
        id=vuln,
        aliases=aliases,
        component=Component(purl, purl[4:].split("/")[0], name, version, "Debian:12", name),
        fixed_versions=fixed,
        fix_state=FixState.FIXED if fixed else FixState.NOT_FIXED,
        severity=severity,
        severity_source=SeveritySource.CVSS_V3,
        severity_detail="test",
        matches=(MatchDetail(record, MatchKind.OSV_RANGE, "dpkg", "introduced 0", version, name),),
        evidence=Evidence(
            purl,
            reachability=reach,
            entrypoints=("/app",) if reach is Reachability.REACHABLE else (),
        ),
        cvss=(CvssScore("3.1", "CVSS:3.1/AV:N", 7.5, severity, record.id),),
        kev=Kev(vuln, "2026-01-01") if kev else None,
        epss=Epss(vuln, epss, "0.99000") if epss else None,
    )


def statement(
    vuln: str = "CVE-2024-0001",
    product: str = f"pkg:oci/app@{IMAGE_DIGEST}",
    *,
    subcomponents: tuple[str, ...] = (),
    status: VexStatus = VexStatus.NOT_AFFECTED,
    origin: Origin = Origin.OPERATOR,
    at: str = "2026-11-01T00:00:00Z",
    expires: str | None = None,
    key: str = "",
    revokes: str = "",
    aliases: tuple[str, ...] = (),
) -> VexStatement:
    return VexStatement(
        key=key or f"urn:test:{vuln}:{origin.value}:{at}:{status.value}#0",
        document=Digest.of_bytes(f"{vuln}{at}{key}".encode()).hex,
        origin=origin,
        vulnerability=vuln,
        aliases=aliases,
        products=(Product(product, subcomponents),),
        status=status,
        timestamp=t(at),
        justification=Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
        if status is VexStatus.NOT_AFFECTED
        else None,
        action="upgrade" if status is VexStatus.AFFECTED else "",
        expires=t(expires) if expires else None,
        revokes=revokes,
    )


def report(*findings: Finding, unknowns: tuple[MatchUnknown, ...] = ()) -> FindingsReport:
    return FindingsReport.build(findings, unknowns, snapshot=SNAPSHOT, target="app:1")


def unknown(purl: str = "pkg:generic/blob@1") -> MatchUnknown:
    return MatchUnknown(purl, UnknownKind.NO_SCHEME, "no version scheme for generic")


SBOM = b'{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}'


def inputs(
    *findings: Finding,
    statements: tuple[VexStatement, ...] = (),
    policy: PolicyBundle | None = None,
    at: datetime = AT,
    snapshot: str = SNAPSHOT,
    created: str = "2026-11-20T00:00:00Z",
    sbom: bytes | None = SBOM,
    knowledge: bool = True,
) -> GateInputs:
    return GateInputs(
        subject=SubjectInfo(
            "registry.example/app:1",
            IMAGE_DIGEST,
            "application/vnd.oci.image.manifest.v1+json",
            512,
            "linux/amd64",
            INDEX_DIGEST,
        ),
        at=at,
        policy=policy or PolicyBundle.default(),
        report=report(*findings) if knowledge else None,
        statements=statements,
        knowledge=KnowledgeInfo(snapshot, "stable/7", created) if knowledge else None,
        sbom=sbom,
    )
