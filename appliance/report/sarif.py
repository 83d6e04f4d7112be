"""Findings as SARIF 2.1.0, the interchange format code-scanning tools read.

One rule per vulnerability (``ruleId`` = the finding id), one result per finding. The level
follows severity (critical/high: ``error``, medium: ``warning``, the rest: ``note``), and
``properties.security-severity`` carries the CVSS base score as the string code-scanning
dashboards sort by. The result's location is the file the component was read from; its
``partialFingerprints`` identify (vulnerability, component) so a viewer can follow a finding
from one scan to the next. No time, no absolute paths: same report, same bytes.
"""

from __future__ import annotations

from typing import Any, Final

from appliance.match.model import Finding, FindingsReport, Severity
from appliance.report.tool import tool_version
from bundles import canonical

SCHEMA_URI: Final = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
VERSION: Final = "2.1.0"
TOOL: Final = "stella"
TOOL_VERSION: Final = tool_version()
_LEVEL: Final = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.NEGLIGIBLE: "note",
    Severity.NONE: "note",
    Severity.UNKNOWN: "note",
}
# Score given to code-scanning dashboards when no CVSS score is known (the middle of the band).
_BAND_SCORE: Final = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
    Severity.NEGLIGIBLE: "0.5",
    Severity.NONE: "0.0",
    Severity.UNKNOWN: "0.0",
}


def _security_severity(f: Finding) -> str:
    score = f.score
    return f"{score:.1f}" if score is not None else _BAND_SCORE[f.severity]


def _rule(f: Finding) -> dict[str, Any]:
    text = f.summary or f"{f.id} in {f.component.name}"
    return {
        "id": f.id,
        "name": f.id,
        "shortDescription": {"text": text},
        "fullDescription": {"text": text},
        "help": {
            "text": f"{f.id} ({', '.join(f.aliases) or 'no aliases'}); "
            f"severity {f.severity.value} ({f.severity_detail})"
        },
        "properties": {
            "security-severity": _security_severity(f),
            "tags": ["security", "vulnerability", f.severity.value],
            "aliases": list(f.aliases),
        },
    }


def _message(f: Finding) -> str:
    fixed = ", ".join(f.fixed_versions) if f.fixed_versions else f"no fix ({f.fix_state.value})"
    return (
        f"{f.id} affects {f.component.name} {f.component.version} ({f.component.purl}); "
        f"fixed in: {fixed}; matched by {'; '.join(m.explain() for m in f.matches)}"
    )


def _result(f: Finding, rule_index: int) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": f.id,
        "ruleIndex": rule_index,
        "level": _LEVEL[f.severity],
        "message": {"text": _message(f)},
        "partialFingerprints": {
            "stellaFinding/v1": canonical.digest([f.id, f.component.purl]).hex,
        },
        "properties": {
            "purl": f.component.purl,
            "installedVersion": f.component.version,
            "fixedVersions": list(f.fixed_versions),
            "fixState": f.fix_state.value,
            "severity": f.severity.value,
            "severitySource": f.severity_source.value,
            "severityDetail": f.severity_detail,
            "ratings": [r.to_dict() for r in f.ratings],
            "kev": f.kev is not None,
            "epss": f.epss.score if f.epss else None,
            "epssPercentile": f.epss.percentile if f.epss else None,
            "reachability": f.evidence.reachability.value,
            "records": [r.to_dict() for r in f.records],
        },
    }
    if f.evidence.files:
        result["locations"] = [
            {
                "physicalLocation": {"artifactLocation": {"uri": file.path.lstrip("/")}},
                **({"properties": {"layer": file.layer}} if file.layer is not None else {}),
            }
            for file in f.evidence.files
        ]
    else:
        result["locations"] = [{"logicalLocations": [{"name": f.component.purl, "kind": "module"}]}]
    return result


def sarif_document(report: FindingsReport, tool_version: str = TOOL_VERSION) -> dict[str, Any]:
    """The SARIF log as a JSON-able dict."""
    by_id: dict[str, Finding] = {}
    for f in report.findings:  # the rule text comes from the first finding of that id
        by_id.setdefault(f.id, f)
    rule_ids = sorted(by_id)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": TOOL,
                "version": tool_version,
                "rules": [_rule(by_id[rid]) for rid in rule_ids],
            }
        },
        "results": [_result(f, index[f.id]) for f in report.findings],
        "columnKind": "unicodeCodePoints",
        "properties": {
            "target": report.target,
            "knowledgeSnapshot": report.snapshot,
            "distro": report.distro,
            "components": report.components,
            "unknowns": [u.to_dict() for u in report.unknowns],
            "delegated": [d.to_dict() for d in report.delegated],
        },
    }
    return {"$schema": SCHEMA_URI, "version": VERSION, "runs": [run]}


def render_sarif(report: FindingsReport, tool_version: str = TOOL_VERSION) -> bytes:
    """The SARIF log as canonical JSON bytes with a final newline."""
    return canonical.dumps(sarif_document(report, tool_version)) + b"\n"
