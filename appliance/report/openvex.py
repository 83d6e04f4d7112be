"""The findings as an OpenVEX 0.2.0 document: what this scan says of the image, statement by
statement.

One statement per vulnerability and deciding VEX statement, the product being the image
(``pkg:oci/NAME@sha256:…``, or each component when the input has no manifest) with the
affected components as subcomponents. A group a VEX statement decides carries that statement's
status, justification, impact and action statements and time; a group none decides is
``affected`` as the matcher found it, with the fixed versions as its action statement and
the evaluation time as its timestamp. With ``--no-vex`` every finding is such a group. The
document's ``@id`` derives from its content: same findings, statements and time, same bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from appliance.match.model import Finding, FixState
from appliance.report.interface import FindingsView, Format, Renderer, RenderError, ReportInput
from appliance.report.tool import NAME
from appliance.scanner.cyclonedx import image_purl
from appliance.vex.export import document, statement_dict
from appliance.vex.merge import MergedFinding
from appliance.vex.model import format_time
from bundles import canonical


def _action(findings: list[Finding]) -> str:
    fixed = sorted({v for f in findings for v in f.fixed_versions})
    if fixed and all(f.fix_state is FixState.FIXED for f in findings):
        return "upgrade to " + " or ".join(fixed)
    states = sorted({f.fix_state.value for f in findings})
    return f"no fixed version ({', '.join(states)}); mitigate or accept"


def _vulnerability(first: Finding) -> dict[str, Any]:
    if first.aliases:
        return {"name": first.id, "aliases": list(first.aliases)}
    return {"name": first.id}


def _statement(group: list[MergedFinding], image: str | None, at: datetime) -> dict[str, Any]:
    findings = [m.finding for m in group]
    components: list[dict[str, Any]] = [
        {"@id": c, "identifiers": {"purl": c}} for c in sorted({f.component.purl for f in findings})
    ]
    products: list[dict[str, Any]] = components
    if image:
        products = [{"@id": image, "identifiers": {"purl": image}, "subcomponents": components}]
    decided = group[0].vex
    if decided is not None:
        doc = statement_dict(decided)
        doc["vulnerability"] = _vulnerability(findings[0])
        doc["products"] = products
        return doc
    return {
        "vulnerability": _vulnerability(findings[0]),
        "products": products,
        "status": "affected",
        "action_statement": _action(findings),
        "timestamp": format_time(at),
    }


def openvex_document(view: FindingsView, image: str | None, at: datetime) -> dict[str, Any]:
    """The OpenVEX document of ``view`` about ``image`` (its purl), dated ``at``."""
    groups: dict[tuple[str, str], list[MergedFinding]] = {}
    for m in view.findings:
        groups.setdefault((m.finding.id, m.vex.key if m.vex else ""), []).append(m)
    statements = [_statement(groups[k], image, at) for k in sorted(groups)]
    if not statements:
        raise RenderError(
            f"no vulnerabilities in {view.report.target}: an OpenVEX document needs at least "
            "one statement",
            hint="use --format json or cyclonedx-vex for an empty report",
        )
    return document(statements, author=f"{NAME} scan of {view.report.target}", timestamp=at)


class OpenVexRenderer(Renderer):
    format = Format.OPENVEX
    help = "the findings as OpenVEX 0.2.0 statements about the image"
    needs_findings = True
    dated = True

    def render(self, given: ReportInput) -> bytes:
        view = given.require_view(self.format)
        at = given.created
        if at is None:
            raise RenderError("--format openvex needs the evaluation time")
        image = image_purl(given.scan) if given.scan is not None else None
        return canonical.dumps(openvex_document(view, image, at)) + b"\n"
