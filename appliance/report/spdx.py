"""The scan as an SPDX 3.0.1 JSON-LD document: packages, vulnerabilities and VEX.

Core, Software and Security profiles (docs/scanning.md). The image is the document's root
element, a ``software_Package`` with purpose ``container`` and its manifest digest as a
``Hash``; every package found in it is a ``software_Package`` with its purl, ``contains``-related
to the image. With a knowledge snapshot, every vulnerability is a ``security_Vulnerability``
(its CVE and other ids as external identifiers); each package it was matched in gets a
``hasAssociatedVulnerability`` relationship, its CVSS vectors ``security_Cvss*`` assessments,
and -- after the VEX merge -- the assessment that decides it: ``security_Vex*`` relationships
``affects`` / ``doesNotAffect`` (with the justification) / ``fixedIn`` /
``underInvestigationFor``. A finding no statement speaks about is an ``affects`` assessment made
by the matcher, with the fixed versions as its action statement.

Same scan, same findings, same statements, same ``created`` time -> same bytes: identifiers
derive from the image digest and the purls, every list is sorted, and the output is RFC 8785
canonical JSON. ``created`` is the evaluation time the command was given, never read here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from appliance.match.model import CvssScore, Finding, FixState
from appliance.report.interface import Format, Renderer, RenderError, ReportInput
from appliance.vex.merge import MergedFinding
from appliance.vex.model import Justification, VexStatus, format_time
from bundles import __version__, canonical

if TYPE_CHECKING:
    from appliance.scanner.result import FoundPackage, ScanResult

CONTEXT: Final = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
SPEC_VERSION: Final = "3.0.1"
_BASE: Final = "https://stella-ops.org/spdx/"
_CREATION: Final = "_:creationinfo"
_JUSTIFICATIONS: Final = {
    Justification.COMPONENT_NOT_PRESENT: "componentNotPresent",
    Justification.VULNERABLE_CODE_NOT_PRESENT: "vulnerableCodeNotPresent",
    Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH: "vulnerableCodeNotInExecutePath",
    Justification.VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY: (
        "vulnerableCodeCannotBeControlledByAdversary"
    ),
    Justification.INLINE_MITIGATIONS_ALREADY_EXIST: "inlineMitigationsAlreadyExist",
}
_VEX: Final = {
    VexStatus.AFFECTED: ("security_VexAffectedVulnAssessmentRelationship", "affects"),
    VexStatus.NOT_AFFECTED: ("security_VexNotAffectedVulnAssessmentRelationship", "doesNotAffect"),
    VexStatus.FIXED: ("security_VexFixedVulnAssessmentRelationship", "fixedIn"),
    VexStatus.UNDER_INVESTIGATION: (
        "security_VexUnderInvestigationVulnAssessmentRelationship",
        "underInvestigationFor",
    ),
}
_CVSS_SEVERITIES: Final = frozenset({"critical", "high", "medium", "low", "none"})


def _short(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _image_key(scan: ScanResult) -> str:
    digest = scan.manifest_digest or scan.config_digest
    if digest is not None:
        return f"{digest.algorithm}-{digest.hex}"
    return "rootfs-" + _short(scan.ref)


def _identifier(kind: str, identifier: str) -> dict[str, Any]:
    return {"type": "ExternalIdentifier", "externalIdentifierType": kind, "identifier": identifier}


class _Graph:
    """Elements of one document, named under the image's namespace."""

    def __init__(self, scan: ScanResult, created: datetime) -> None:
        self.base = f"{_BASE}{_image_key(scan)}/"
        self.created = format_time(created)
        self.elements: dict[str, dict[str, Any]] = {}
        self.tool = self.add("tool/stella", {"type": "Tool", "name": f"stella {__version__}"})
        self.agent = self.add(
            "agent/stella-ops", {"type": "Organization", "name": "Stella Ops appliance"}
        )

    def add(self, local: str, body: dict[str, Any]) -> str:
        spdx_id = self.base + local
        if spdx_id not in self.elements:
            self.elements[spdx_id] = {"spdxId": spdx_id, "creationInfo": _CREATION, **body}
        return spdx_id

    def described(self) -> list[str]:
        """What the document describes: every element but the tool and agent that made it."""
        return sorted(k for k in self.elements if k not in (self.tool, self.agent))

    def relationship(self, kind: str, source: str, targets: Iterable[str], **extra: Any) -> str:
        to = sorted(set(targets))
        local = f"relationship/{kind}/{_short(source + ' ' + ' '.join(to))}"
        body = {"type": "Relationship", "from": source, "relationshipType": kind, "to": to}
        return self.add(local, {**body, **extra})


def _package_ids(graph: _Graph, packages: Sequence[FoundPackage]) -> dict[str, list[str]]:
    """Each package as an element; purl -> its elements (one purl may be found twice)."""
    by_purl: dict[str, list[str]] = {}
    for found in packages:
        where = found.package.locations[0] if found.package.locations else ""
        local = f"package/{_short(found.purl + '#' + where)}"
        body: dict[str, Any] = {
            "type": "software_Package",
            "name": found.package.name,
            "software_packageVersion": found.package.full_version,
            "software_packageUrl": found.purl,
            "externalIdentifier": [_identifier("packageUrl", found.purl)],
            "software_primaryPurpose": "library",
        }
        if where:
            body["comment"] = f"found at /{where.lstrip('/')}"
        by_purl.setdefault(found.purl, []).append(graph.add(local, body))
    return by_purl


def _cvss(graph: _Graph, vuln: str, targets: list[str], score: CvssScore) -> None:
    kind = "security_CvssV4VulnAssessmentRelationship"
    if not score.version.startswith("4"):
        kind = "security_CvssV3VulnAssessmentRelationship"
    body: dict[str, Any] = {
        "type": kind,
        "from": vuln,
        "relationshipType": "hasAssessmentFor",
        "to": sorted(targets),
        "security_score": float(score.base_score),
        "security_vectorString": score.vector,
        "suppliedBy": graph.agent,
    }
    if score.severity.value in _CVSS_SEVERITIES:
        body["security_severity"] = score.severity.value
    graph.add(f"assessment/cvss/{_short(vuln + score.vector + ' '.join(targets))}", body)


def _vulnerability(graph: _Graph, finding: Finding) -> str:
    ids = sorted({finding.id, *finding.aliases})
    body: dict[str, Any] = {
        "type": "security_Vulnerability",
        "name": finding.id,
        "externalIdentifier": [
            _identifier("cve" if i.upper().startswith("CVE-") else "securityOther", i) for i in ids
        ],
    }
    if finding.summary:
        body["summary"] = finding.summary
    return graph.add(f"vulnerability/{_short(finding.id)}", body)


def _assessment(graph: _Graph, vuln: str, targets: list[str], merged: MergedFinding) -> None:
    finding, statement = merged.finding, merged.vex
    kind, relationship = _VEX[merged.status]
    body: dict[str, Any] = {
        "type": kind,
        "from": vuln,
        "relationshipType": relationship,
        "to": sorted(targets),
        "suppliedBy": graph.agent,
    }
    if statement is None:
        body["security_publishedTime"] = graph.created
        if finding.fix_state is FixState.FIXED and finding.fixed_versions:
            action = "upgrade to " + " or ".join(finding.fixed_versions)
        else:
            action = f"no fixed version ({finding.fix_state.value}); mitigate or accept"
        body["security_actionStatement"] = action
        body["comment"] = "matched by the appliance; no VEX statement decides this finding"
    else:
        body["security_publishedTime"] = format_time(statement.timestamp)
        if statement.status is VexStatus.AFFECTED:
            body["security_actionStatement"] = statement.action or "no action statement given"
        if statement.status is VexStatus.NOT_AFFECTED:
            if statement.justification is not None:
                body["security_justificationType"] = _JUSTIFICATIONS[statement.justification]
            if statement.impact:
                body["security_impactStatement"] = statement.impact
        if statement.notes:
            body["security_statusNotes"] = statement.notes
        note = f"VEX statement {statement.key} ({statement.origin.value})"
        if statement.expires is not None:
            note += f", an exception until {format_time(statement.expires)}"
        body["comment"] = note
    local = f"assessment/vex/{_short(vuln + relationship + ' '.join(sorted(targets)))}"
    graph.add(local, body)


def render_spdx(
    scan: ScanResult, findings: Sequence[MergedFinding] | None, *, created: datetime
) -> bytes:
    """The SPDX 3.0.1 document of ``scan`` (and of ``findings`` after VEX, when matched)."""
    graph = _Graph(scan, created)
    image_body: dict[str, Any] = {
        "type": "software_Package",
        "name": scan.name,
        "software_primaryPurpose": "container",
    }
    if scan.tag:
        image_body["software_packageVersion"] = scan.tag.rpartition(":")[2]
    digest = scan.manifest_digest or scan.config_digest
    if digest is not None:
        image_body["verifiedUsing"] = [
            {"type": "Hash", "algorithm": "sha256", "hashValue": digest.hex}
        ]
    image = graph.add("image", image_body)
    by_purl = _package_ids(graph, scan.packages)
    every = [e for ids in by_purl.values() for e in ids]
    if every:
        graph.relationship("contains", image, every, completeness="complete")
    for merged in sorted(findings or (), key=lambda m: m.finding.sort_key()):
        finding = merged.finding
        targets = by_purl.get(finding.component.purl) or [image]
        vuln = _vulnerability(graph, finding)
        for target in targets:
            graph.relationship("hasAssociatedVulnerability", target, [vuln])
        for score in finding.cvss:
            _cvss(graph, vuln, targets, score)
        _assessment(graph, vuln, targets, merged)
    document = graph.add(
        "document",
        {
            "type": "SpdxDocument",
            "name": f"SBOM and vulnerabilities of {scan.ref}",
            "profileConformance": ["core", "software", "security"],
            "rootElement": [image],
            "element": graph.described(),
        },
    )
    creation = {
        "@id": _CREATION,
        "type": "CreationInfo",
        "specVersion": SPEC_VERSION,
        "created": graph.created,
        "createdBy": [graph.agent],
        "createdUsing": [graph.tool],
    }
    nodes = [creation, *(graph.elements[k] for k in sorted(graph.elements) if k != document)]
    return canonical.dumps({"@context": CONTEXT, "@graph": [*nodes, graph.elements[document]]})


class SpdxRenderer(Renderer):
    format = Format.SPDX
    help = "SPDX 3.0.1 with vulnerabilities and VEX"
    dated = True

    def render(self, given: ReportInput) -> bytes:
        if given.created is None:
            raise RenderError("--format spdx needs the creation time")
        findings = given.view.findings if given.view is not None else None
        return render_spdx(given.require_scan(self.format), findings, created=given.created)
