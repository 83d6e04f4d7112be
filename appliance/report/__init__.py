"""Report formats: one :class:`~appliance.report.interface.Renderer` per ``stella scan
--format`` value, in one ordered table (:data:`RENDERERS`) that refuses duplicates.

| format | renderer | what |
| --- | --- | --- |
| ``table`` | :mod:`.table` | findings with VEX columns; waived ones hidden unless asked |
| ``packages`` | :mod:`.packages` | the package table |
| ``json`` | :mod:`.json` | inventory and findings with their VEX fields |
| ``cyclonedx`` | :mod:`.cyclonedx_sbom` | the CycloneDX 1.6 SBOM |
| ``cyclonedx-vex`` | :mod:`.cyclonedx_vex` | CycloneDX vulnerabilities with ``analysis`` |
| ``sarif`` | :mod:`.sarif` | SARIF 2.1.0 with ``suppressions`` for waived findings |
| ``openvex`` | :mod:`.openvex` | OpenVEX 0.2.0 statements about the image |
| ``spdx`` | :mod:`.spdx` | SPDX 3.0.1 with vulnerabilities and VEX assessments |

Every renderer is a pure function of its :class:`~appliance.report.interface.ReportInput`:
the same input gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import MappingProxyType
from typing import Final

from appliance.match.model import FindingsReport
from appliance.report.cyclonedx_sbom import CycloneDXSbomRenderer
from appliance.report.cyclonedx_vex import CycloneDXVexRenderer, render_cyclonedx
from appliance.report.interface import (
    FindingsView,
    Format,
    Renderer,
    RenderError,
    ReportInput,
)
from appliance.report.json import JsonRenderer, render_json
from appliance.report.openvex import OpenVexRenderer
from appliance.report.packages import PackagesRenderer
from appliance.report.sarif import SarifRenderer, render_sarif
from appliance.report.spdx import SpdxRenderer
from appliance.report.table import TableRenderer, render_table


def _table(renderers: Sequence[Renderer]) -> MappingProxyType[Format, Renderer]:
    table: dict[Format, Renderer] = {}
    for r in renderers:
        if r.format in table:
            raise ValueError(f"two renderers for format {r.format.value}")
        table[r.format] = r
    missing = set(Format) - set(table)
    if missing:
        raise ValueError(f"no renderer for {', '.join(sorted(missing))}")
    return MappingProxyType(table)


RENDERERS: Final = _table(
    [
        TableRenderer(),
        PackagesRenderer(),
        JsonRenderer(),
        CycloneDXSbomRenderer(),
        CycloneDXVexRenderer(),
        SarifRenderer(),
        OpenVexRenderer(),
        SpdxRenderer(),
    ]
)


def renderer(fmt: Format) -> Renderer:
    """The renderer of ``fmt``."""
    return RENDERERS[fmt]


def render(
    report: FindingsReport | FindingsView, fmt: Format, *, show_suppressed: bool = False
) -> bytes:
    """A findings-only format (``table``, ``json``, ``cyclonedx-vex``, ``sarif``) of a report
    or view, without a scan (a bare report: no VEX applied)."""
    view = report if isinstance(report, FindingsView) else FindingsView.raw(report)
    return RENDERERS[fmt].render(ReportInput(view=view, show_suppressed=show_suppressed))


__all__ = [
    "RENDERERS",
    "FindingsView",
    "Format",
    "RenderError",
    "Renderer",
    "ReportInput",
    "render",
    "render_cyclonedx",
    "render_json",
    "render_sarif",
    "render_table",
    "renderer",
]
