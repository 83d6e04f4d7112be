"""Findings as a CycloneDX 1.6 document with a ``vulnerabilities`` list (the VEX form).

One vulnerability object per vulnerability id, affecting every component it was found in
(``affects[].ref`` = the component's ``bom-ref`` = its purl); aliases are ``references``,
CVSS vectors are ``ratings`` with the score the ``cvss`` library computed, a severity without
a vector is a rating with method ``other``. No ``analysis`` is written: that is what a VEX
statement adds later. No timestamp or random serial number: same report, same bytes.
"""

from __future__ import annotations

from typing import Any, Final

from appliance.match.model import Finding, FindingsReport, Severity, SeveritySource
from appliance.report.tool import NAME, tool_version
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


def _vulnerability(findings: list[Finding]) -> dict[str, Any]:
    first = findings[0]
    fixed = sorted({v for f in findings for v in f.fixed_versions})
    vuln: dict[str, Any] = {
        "bom-ref": f"vulnerability:{first.id}",
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
    if fixed:
        vuln["recommendation"] = "Upgrade to a fixed version: " + ", ".join(fixed)
    if not vuln["references"]:
        del vuln["references"]
    if not vuln["ratings"]:
        del vuln["ratings"]
    return vuln


def cyclonedx_document(report: FindingsReport) -> dict[str, Any]:
    """The CycloneDX document as a JSON-able dict."""
    components: dict[str, Finding] = {}
    by_id: dict[str, list[Finding]] = {}
    for f in report.findings:
        components.setdefault(f.component.purl, f)
        by_id.setdefault(f.id, []).append(f)
    metadata: dict[str, Any] = {
        "tools": {"components": [{"type": "application", "name": NAME, "version": tool_version()}]},
        "properties": [
            {"name": "stella:knowledge-snapshot", "value": report.snapshot or ""},
            {"name": "stella:target", "value": report.target},
        ],
    }
    return {
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
        "vulnerabilities": [_vulnerability(by_id[i]) for i in sorted(by_id)],
    }


def render_cyclonedx(report: FindingsReport) -> bytes:
    """The CycloneDX document as canonical JSON bytes with a final newline."""
    return canonical.dumps(cyclonedx_document(report)) + b"\n"
