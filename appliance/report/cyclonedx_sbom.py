"""The CycloneDX 1.6 SBOM as a report format: the scanner's document, unchanged
(:mod:`appliance.scanner.cyclonedx` writes it; the same image gives the same bytes)."""

from __future__ import annotations

from appliance.report.interface import Format, Renderer, ReportInput


class CycloneDXSbomRenderer(Renderer):
    format = Format.CYCLONEDX
    help = "the CycloneDX 1.6 SBOM"

    def render(self, given: ReportInput) -> bytes:
        return given.require_scan(self.format).sbom_bytes()
