"""Findings as a CycloneDX 1.6 document with a ``vulnerabilities`` list (the VEX form).

One vulnerability object per vulnerability id, affecting every component it was found in
(``affects[].ref`` = the component's ``bom-ref`` = its purl); aliases are ``references``,
CVSS vectors are ``ratings`` with the score the ``cvss`` library computed, a severity without
a vector is a rating with method ``other``. No timestamp or random serial number: same
findings, same statements, same bytes.

With VEX applied, a vulnerability decided by a statement carries the statement's
``analysis``: OpenVEX status -> ``state`` (``not_affected`` -> ``not_affected``, ``fixed`` ->
``resolved``, ``affected`` -> ``exploitable``, ``under_investigation`` -> ``in_triage``), the
justification mapped to CycloneDX's closest one (:data:`JUSTIFICATIONS`), ``response``
(``update`` when a fixed version exists for an affected finding, else ``can_not_fix``),
``detail`` (impact or action statement, notes, the statement key and an exception's expiry)
and ``lastUpdated`` (the statement's time). A vulnerability whose components are decided by
different statements is written once per decision (``bom-ref`` ``vulnerability:ID`` for the
undecided or first, ``vulnerability:ID/2``... after it). A finding no statement decides has no
``analysis``: nobody has judged it.
"""

from __future__ import annotations

from typing import Any, Final

from appliance.match.model import Finding, FindingsReport, Severity, SeveritySource
from appliance.report.interface import FindingsView, Format, Renderer, ReportInput
from appliance.report.tool import NAME, tool_version
from appliance.vex.merge import MergedFinding
from appliance.vex.model import Justification, VexStatus, format_time
from bundles import canonical

SPEC_VERSION: Final = "1.6"
_SEVERITY: Final = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.NEGLIGIBLE: "info",
    Severity.NONE: "none",
    Severity.UNKNOWN: "unknown",
}
_METHOD: Final = {"4.0": "CVSSv4", "3.1": "CVSSv31", "3.0": "CVSSv3", "2.0": "CVSSv2"}
STATES: Final = {
    VexStatus.NOT_AFFECTED: "not_affected",
    VexStatus.FIXED: "resolved",
    VexStatus.AFFECTED: "exploitable",
    VexStatus.UNDER_INVESTIGATION: "in_triage",
}
# OpenVEX justification -> CycloneDX's closest (the inverse of appliance.vex.cyclonedx's reading
# where one exists; an adversary who cannot control the input is an environment requirement).
JUSTIFICATIONS: Final = {
    Justification.COMPONENT_NOT_PRESENT: "code_not_present",
    Justification.VULNERABLE_CODE_NOT_PRESENT: "code_not_present",
    Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH: "code_not_reachable",
    Justification.VULNERABLE_CODE_CANNOT_BE_CONTROLLED_BY_ADVERSARY: "requires_environment",
    Justification.INLINE_MITIGATIONS_ALREADY_EXIST: "protected_by_mitigating_control",
}


def _source(identifier: str) -> dict[str, str]:
    prefix = identifier.split("-", 1)[0]
    return {"name": {"CVE": "NVD", "GHSA": "GitHub"}.get(prefix, prefix)}


def _ratings(f: Finding) -> list[dict[str, Any]]:
    """One rating per source that rated the finding, in precedence order (the first decided
    the severity); findings read back from before ratings were kept fall back to their CVSS
    scores and database word."""
    if f.ratings:
        out: list[dict[str, Any]] = []
        for r in f.ratings:
            rating: dict[str, Any] = {"source": {"name": r.provider}}
            if r.score is not None:
                rating["score"] = r.score
            rating["severity"] = _SEVERITY[r.severity]
            rating["method"] = _METHOD.get(r.version, "other")
            if r.vector:
                rating["vector"] = r.vector
            rating["justification"] = f"{r.source.value}: {r.note}" if r.note else r.source.value
            out.append(rating)
        return out
    ratings: list[dict[str, Any]] = [
        {
            "source": {"name": c.source},
            "score": c.base_score,
            "severity": _SEVERITY[c.severity],
            "method": _METHOD.get(c.version, "other"),
            "vector": c.vector,
        }
        for c in f.cvss
    ]
    if f.severity_source is SeveritySource.DATABASE:
        ratings.append(
            {
                "source": {"name": f.severity_detail.split(" ", 1)[0]},
                "severity": _SEVERITY[f.severity],
                "method": "other",
                "justification": f.severity_detail,
            }
        )
    return ratings


def _properties(f: Finding) -> list[dict[str, str]]:
    props = [
        ("stella:severity", f.severity.value),
        ("stella:severity-source", f.severity_source.value),
        ("stella:severity-detail", f.severity_detail),
        ("stella:fix-state", f.fix_state.value),
        ("stella:kev", "true" if f.kev else "false"),
    ]
    if f.kev:
        props.append(("stella:kev:date-added", f.kev.date_added))
    if f.epss:
        props += [("stella:epss", f.epss.score), ("stella:epss:percentile", f.epss.percentile)]
    props += [("stella:record", f"{r.id} sha256:{r.digest}") for r in f.records]
    return [{"name": k, "value": v} for k, v in props]


def _analysis(merged: MergedFinding) -> dict[str, Any] | None:
    statement = merged.vex
    if statement is None:
        return None
    analysis: dict[str, Any] = {"state": STATES[statement.status]}
    if statement.justification is not None:
        analysis["justification"] = JUSTIFICATIONS[statement.justification]
    if statement.status is VexStatus.AFFECTED:
        analysis["response"] = ["update" if merged.finding.fixed_versions else "can_not_fix"]
    detail = [
        text
        for text in (
            statement.impact,
            statement.action,
            statement.notes,
            f"justification: {statement.justification.value}" if statement.justification else "",
            f"VEX statement {statement.key} ({statement.origin.value})",
            f"an exception until {format_time(statement.expires)}" if statement.expires else "",
        )
        if text
    ]
    analysis["detail"] = "; ".join(detail)
    analysis["lastUpdated"] = format_time(statement.timestamp)
    return analysis


def _vulnerability(group: list[MergedFinding], ref: str) -> dict[str, Any]:
    findings = [m.finding for m in group]
    first = findings[0]
    fixed = sorted({v for f in findings for v in f.fixed_versions})
    vuln: dict[str, Any] = {
        "bom-ref": ref,
        "id": first.id,
        "source": _source(first.id),
        "references": [{"id": a, "source": _source(a)} for a in first.aliases],
        "ratings": _ratings(first),
        "description": first.summary,
        "detail": "; ".join(m.explain() for f in findings for m in f.matches),
        "affects": [
            {
                "ref": f.component.purl,
                "versions": [{"version": f.component.version, "status": "affected"}],
            }
            for f in findings
        ],
        "properties": _properties(first),
    }
    analysis = _analysis(group[0])
    if analysis is not None:
        vuln["analysis"] = analysis
    if fixed:
        vuln["recommendation"] = "Upgrade to a fixed version: " + ", ".join(fixed)
    if not vuln["references"]:
        del vuln["references"]
    if not vuln["ratings"]:
        del vuln["ratings"]
    return vuln


def _vulnerabilities(view: FindingsView) -> list[dict[str, Any]]:
    """One object per vulnerability id and deciding statement, in id order, the undecided
    group first, then by statement key."""
    groups: dict[tuple[str, str], list[MergedFinding]] = {}
    for m in view.findings:
        groups.setdefault((m.finding.id, m.vex.key if m.vex else ""), []).append(m)
    out: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for vid, key in sorted(groups):
        seen[vid] = seen.get(vid, 0) + 1
        ref = f"vulnerability:{vid}" + (f"/{seen[vid]}" if seen[vid] > 1 else "")
        out.append(_vulnerability(groups[(vid, key)], ref))
    return out


def cyclonedx_document(report: FindingsReport | FindingsView) -> dict[str, Any]:
    """The CycloneDX document as a JSON-able dict (a bare report: no VEX applied)."""
    view = report if isinstance(report, FindingsView) else FindingsView.raw(report)
    report = view.report
    components: dict[str, Finding] = {}
    for f in report.findings:
        components.setdefault(f.component.purl, f)
    metadata: dict[str, Any] = {
        "tools": {"components": [{"type": "application", "name": NAME, "version": tool_version()}]},
        "properties": [
            {"name": "stella:knowledge-snapshot", "value": report.snapshot or ""},
            {"name": "stella:target", "value": report.target},
        ],
    }
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "version": 1,
        "metadata": metadata,
        "components": [
            {
                "type": "library",
                "bom-ref": purl,
                "name": f.component.name,
                "version": f.component.version,
                "purl": purl,
            }
            for purl, f in sorted(components.items())
        ],
        "vulnerabilities": _vulnerabilities(view),
    }
    if view.vex:
        metadata["properties"].append(
            {"name": "stella:vex:evaluation-time", "value": format_time(view.at) if view.at else ""}
        )
        metadata["properties"].sort(key=lambda p: p["name"])
    return document


def render_cyclonedx(report: FindingsReport | FindingsView) -> bytes:
    """The CycloneDX document as canonical JSON bytes with a final newline."""
    return canonical.dumps(cyclonedx_document(report)) + b"\n"


class CycloneDXVexRenderer(Renderer):
    format = Format.CYCLONEDX_VEX
    help = "the findings as CycloneDX 1.6 vulnerabilities, with VEX analysis"
    needs_findings = True

    def render(self, given: ReportInput) -> bytes:
        return render_cyclonedx(given.require_view(self.format))
