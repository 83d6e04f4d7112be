"""Findings as SARIF 2.1.0, the interchange format code-scanning tools read.

One rule per vulnerability (``ruleId`` = the finding id), one result per finding. The level
follows severity (critical/high: ``error``, medium: ``warning``, the rest: ``note``), and
``properties.security-severity`` carries the CVSS base score as the string code-scanning
dashboards sort by. The result's location is the file the component was read from; its
``partialFingerprints`` identify (vulnerability, component) so a viewer can follow a finding
from one scan to the next; its ``region`` is line 1 of that file (a package database names no
better line).

Rules carry a ``name`` (the summary in PascalCase, ``…Vulnerability`` without one) distinct
from their ``id``, and a ``helpUri`` to the vulnerability's public record (SARIF's rule-level
counterpart of the driver's ``informationUri``; the schema allows no ``informationUri`` on a
rule). The run has ``automationDetails.id`` ``stella/TARGET/`` (one analysis category per
image) and the driver a ``fullName`` and ``informationUri``, which GitHub Advanced Security
for Azure DevOps requires.

With VEX applied, a finding a statement waives (``not_affected`` or ``fixed``) keeps its
result with a ``suppressions`` entry of kind ``external``, status ``accepted`` and the
statement's justification, so code-scanning tools show it as dismissed instead of opening an
alert; every result decided by a statement has its VEX status in ``properties``. No time, no
absolute paths: same findings, same statements, same bytes.
"""

from __future__ import annotations

import re
from typing import Any, Final

from appliance.match.model import Finding, FindingsReport, Severity
from appliance.report.interface import FindingsView, Format, Renderer, ReportInput, vex_fields
from appliance.report.tool import tool_version
from appliance.vex.merge import MergedFinding
from appliance.vex.model import format_time
from bundles import canonical

SCHEMA_URI: Final = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
VERSION: Final = "2.1.0"
TOOL: Final = "stella"
TOOL_VERSION: Final = tool_version()
FULL_NAME: Final = "Stella Ops air-gapped container scanner"
INFORMATION_URI: Final = "https://stella-ops.org/"
_WORD: Final = re.compile(r"[A-Za-z0-9]+")
_NAME_WORDS: Final = 8
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


def rule_name(f: Finding) -> str:
    """A short PascalCase name for the rule: the summary's first words, else the package's
    name and ``Vulnerability``; never the id (it keeps no dash)."""
    words = _WORD.findall(f.summary)[:_NAME_WORDS]
    if not words:
        words = [*_WORD.findall(f.component.name), "Vulnerability"]
    name = "".join(w[:1].upper() + w[1:] for w in words)
    if not name[:1].isalpha():
        name = "Vuln" + name
    return name


def help_uri(identifier: str) -> str:
    """The public record of a vulnerability id: the CVE Program's for a CVE, else OSV's."""
    if identifier.upper().startswith("CVE-"):
        return f"https://www.cve.org/CVERecord?id={identifier}"
    return f"https://osv.dev/vulnerability/{identifier}"


def _rule(f: Finding) -> dict[str, Any]:
    text = f.summary or f"{f.id} in {f.component.name}"
    return {
        "id": f.id,
        "name": rule_name(f),
        "helpUri": help_uri(f.id),
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


def _suppression(merged: MergedFinding) -> dict[str, Any]:
    statement = merged.vex
    assert statement is not None  # a waived finding has its statement
    parts = [statement.status.value]
    if statement.justification is not None:
        parts.append(statement.justification.value)
    if statement.impact:
        parts.append(statement.impact)
    parts.append(f"VEX statement {statement.key} ({statement.origin.value})")
    if statement.expires is not None:
        parts.append(f"an exception until {format_time(statement.expires)}")
    return {"kind": "external", "status": "accepted", "justification": "; ".join(parts)}


def _result(merged: MergedFinding, rule_index: int, vex: bool) -> dict[str, Any]:
    f = merged.finding
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
    if vex:
        result["properties"]["vex"] = vex_fields(merged)
    if merged.waived:
        result["suppressions"] = [_suppression(merged)]
    if f.evidence.files:
        result["locations"] = [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": file.path.lstrip("/")},
                    "region": {"startLine": 1},
                },
                **({"properties": {"layer": file.layer}} if file.layer is not None else {}),
            }
            for file in f.evidence.files
        ]
    else:
        result["locations"] = [{"logicalLocations": [{"name": f.component.purl, "kind": "module"}]}]
    return result


def sarif_document(
    report: FindingsReport | FindingsView, tool_version: str = TOOL_VERSION
) -> dict[str, Any]:
    """The SARIF log as a JSON-able dict (a bare report: no VEX applied)."""
    view = report if isinstance(report, FindingsView) else FindingsView.raw(report)
    report = view.report
    by_id: dict[str, Finding] = {}
    for f in report.findings:  # the rule text comes from the first finding of that id
        by_id.setdefault(f.id, f)
    rule_ids = sorted(by_id)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": TOOL,
                "fullName": FULL_NAME,
                "version": tool_version,
                "informationUri": INFORMATION_URI,
                "rules": [_rule(by_id[rid]) for rid in rule_ids],
            }
        },
        "automationDetails": {"id": f"stella/{report.target}/"},
        "results": [_result(m, index[m.finding.id], view.vex) for m in view.findings],
        "columnKind": "unicodeCodePoints",
        "properties": {
            "target": report.target,
            "knowledgeSnapshot": report.snapshot,
            "distro": report.distro,
            "components": report.components,
            "unknowns": [u.to_dict() for u in report.unknowns],
            "delegated": [d.to_dict() for d in report.delegated],
            "vex": {
                "applied": view.vex,
                "evaluationTime": format_time(view.at) if view.at else None,
                "suppressed": len(view.suppressed),
            },
        },
    }
    return {"$schema": SCHEMA_URI, "version": VERSION, "runs": [run]}


def render_sarif(report: FindingsReport | FindingsView, tool_version: str = TOOL_VERSION) -> bytes:
    """The SARIF log as canonical JSON bytes with a final newline."""
    return canonical.dumps(sarif_document(report, tool_version)) + b"\n"


class SarifRenderer(Renderer):
    format = Format.SARIF
    help = "SARIF 2.1.0, waived findings suppressed"
    needs_findings = True

    def render(self, given: ReportInput) -> bytes:
        return render_sarif(given.require_view(self.format))
