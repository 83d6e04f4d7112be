"""The findings as canonical JSON (RFC 8785).

:func:`render_json` is the matcher's report as it is stored and hashed (no VEX). The ``json``
format writes the scan's inventory with ``findings``: that report with, on each finding, a
``vex`` object (status, suppressed, justification, impact, action, deciding statement and its
origin, whether it is an exception and when it expires, superseded and expired statements),
and on the report a ``vex`` object (applied, evaluation time, counts per status, suppressed
count, expired exceptions); every finding's ``vex`` is null with ``--no-vex``.
"""

from __future__ import annotations

from typing import Any

from appliance.match.model import FindingsReport
from appliance.report.interface import FindingsView, Format, Renderer, ReportInput, vex_fields
from appliance.vex.model import format_time
from bundles import canonical
from bundles.digest import Digest


def render_json(report: FindingsReport) -> bytes:
    """Canonical JSON of :meth:`FindingsReport.to_dict`, with a final newline."""
    return canonical.dumps(report.to_dict()) + b"\n"


def report_digest(report: FindingsReport) -> Digest:
    """The digest evidence cites the findings by (over the canonical bytes, no newline)."""
    return canonical.digest(report.to_dict())


def findings_document(view: FindingsView) -> dict[str, Any]:
    """The report's dict with the VEX fields (see the module docstring)."""
    doc = view.report.to_dict()
    for entry, merged in zip(doc["findings"], view.findings, strict=True):
        entry["vex"] = vex_fields(merged) if view.vex else None
    doc["vex"] = {
        "applied": view.vex,
        "evaluationTime": format_time(view.at) if view.at else None,
        "counts": view.status_counts() if view.vex else None,
        "suppressed": len(view.suppressed),
        "expired": [s.key for s in view.expired],
    }
    return doc


class JsonRenderer(Renderer):
    format = Format.JSON
    help = "inventory, entry trace and findings with their VEX status"

    def render(self, given: ReportInput) -> bytes:
        findings = findings_document(given.view) if given.view is not None else None
        if given.scan is None:
            return canonical.dumps(findings) + b"\n"
        doc = dict(given.scan.inventory())
        doc["findings"] = findings
        return canonical.dumps(doc)
