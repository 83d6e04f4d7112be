"""The findings report as canonical JSON (RFC 8785): the form that is stored and hashed."""

from __future__ import annotations

from appliance.match.model import FindingsReport
from bundles import canonical
from bundles.digest import Digest


def render_json(report: FindingsReport) -> bytes:
    """Canonical JSON of :meth:`FindingsReport.to_dict`, with a final newline."""
    return canonical.dumps(report.to_dict()) + b"\n"


def report_digest(report: FindingsReport) -> Digest:
    """The digest evidence cites the findings by (over the canonical bytes, no newline)."""
    return canonical.digest(report.to_dict())
