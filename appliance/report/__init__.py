"""Renderers of a findings report: table, JSON, SARIF 2.1.0, CycloneDX vulnerabilities.

Each renderer is a pure function from :class:`~appliance.match.model.FindingsReport` to bytes;
the same report gives the same bytes. :func:`render` picks one by :class:`Format`.
"""

from __future__ import annotations

import enum

from appliance.match.model import FindingsReport
from appliance.report.cyclonedx_vex import render_cyclonedx
from appliance.report.json import render_json
from appliance.report.sarif import render_sarif
from appliance.report.table import render_table


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
    CYCLONEDX = "cyclonedx"


def render(report: FindingsReport, fmt: Format) -> bytes:
    """The report in ``fmt``."""
    match fmt:
        case Format.TABLE:
            return render_table(report).encode("utf-8")
        case Format.JSON:
            return render_json(report)
        case Format.SARIF:
            return render_sarif(report)
        case Format.CYCLONEDX:
            return render_cyclonedx(report)


__all__ = ["Format", "render", "render_cyclonedx", "render_json", "render_sarif", "render_table"]
