"""The report-format axis: one :class:`Renderer` per ``stella scan --format`` value.

Every renderer reads the same :class:`ReportInput`: the scan (packages, image), and -- when a
knowledge snapshot is active -- the :class:`FindingsView`, the findings with the VEX merge
applied exactly as ``stella gate`` applies it (or not, with ``--no-vex``). A renderer is a
pure function of its input: the same input gives the same bytes.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from appliance.match.model import FindingsReport
from appliance.vex.merge import MergedFinding, MergeResult
from appliance.vex.model import VexStatement, VexStatus, format_time
from bundles.errors import StellaError

if TYPE_CHECKING:
    from appliance.scanner.result import ScanResult


class RenderError(StellaError):
    """A format cannot be written for this input (e.g. findings without a snapshot)."""


class Format(enum.StrEnum):
    """Every ``stella scan --format`` name; the CLI contract, never renamed."""

    TABLE = "table"
    PACKAGES = "packages"
    JSON = "json"
    CYCLONEDX = "cyclonedx"  # the CycloneDX 1.6 SBOM
    CYCLONEDX_VEX = "cyclonedx-vex"  # the findings as CycloneDX vulnerabilities with analysis
    SARIF = "sarif"
    OPENVEX = "openvex"
    SPDX = "spdx"


@dataclass(frozen=True, slots=True)
class FindingsView:
    """The findings every output shows: each finding of ``report`` (same order) with the VEX
    statement deciding it. ``vex`` is False when VEX was not applied (``--no-vex``): then no
    finding has a statement and none is waived."""

    report: FindingsReport
    findings: tuple[MergedFinding, ...]
    vex: bool
    at: datetime | None = None
    expired: tuple[VexStatement, ...] = ()

    @classmethod
    def raw(cls, report: FindingsReport) -> FindingsView:
        """The matcher's findings, no VEX applied."""
        return cls(report, tuple(MergedFinding(f) for f in report.findings), vex=False)

    @classmethod
    def merged(cls, report: FindingsReport, result: MergeResult, at: datetime) -> FindingsView:
        """The findings after the VEX merge at ``at`` (``result`` from :func:`merge` over
        ``report.findings``)."""
        if tuple(m.finding for m in result.findings) != report.findings:
            raise RenderError("the merged findings are not the report's findings")
        return cls(report, result.findings, vex=True, at=at, expired=result.expired)

    @property
    def shown(self) -> tuple[MergedFinding, ...]:
        """The findings not waived by VEX."""
        return tuple(m for m in self.findings if not m.waived)

    @property
    def suppressed(self) -> tuple[MergedFinding, ...]:
        """The findings VEX waives (``not_affected`` or ``fixed``)."""
        return tuple(m for m in self.findings if m.waived)

    def status_counts(self) -> dict[str, int]:
        """Findings per VEX status (every status, zeros included)."""
        out = {s.value: 0 for s in VexStatus}
        for m in self.findings:
            out[m.status.value] += 1
        return out


def vex_fields(merged: MergedFinding) -> dict[str, object]:
    """The VEX part of one finding as the JSON output writes it."""
    statement = merged.vex
    return {
        "status": merged.status.value,
        "suppressed": merged.waived,
        "justification": (
            statement.justification.value if statement and statement.justification else None
        ),
        "impact": statement.impact if statement else "",
        "action": statement.action if statement else "",
        "statement": statement.key if statement else None,
        "origin": statement.origin.value if statement else None,
        "exception": merged.exception,
        "expires": format_time(statement.expires) if statement and statement.expires else None,
        "superseded": list(merged.superseded),
        "expired": list(merged.expired),
    }


@dataclass(frozen=True, slots=True)
class ReportInput:
    """What a renderer reads. ``view`` is None when no knowledge snapshot is active;
    ``created`` is the time the command was given (``--at``), for formats that date
    themselves; ``show_suppressed`` lists waived findings in the table too."""

    scan: ScanResult | None = None
    view: FindingsView | None = None
    created: datetime | None = None
    show_suppressed: bool = False

    def require_view(self, fmt: Format) -> FindingsView:
        if self.view is None:
            raise RenderError(
                f"--format {fmt.value} reports vulnerabilities, and no knowledge snapshot is "
                "imported",
                hint="import a knowledge bundle with 'stella import' first",
            )
        return self.view

    def require_scan(self, fmt: Format) -> ScanResult:
        if self.scan is None:
            raise RenderError(f"--format {fmt.value} needs the scan of an image")
        return self.scan


class Renderer(abc.ABC):
    """One output format. ``needs_findings``: the format is about vulnerabilities and is
    refused without a knowledge snapshot; ``dated``: the document records ``created``."""

    format: ClassVar[Format]
    help: ClassVar[str]
    needs_findings: ClassVar[bool] = False
    dated: ClassVar[bool] = False

    @abc.abstractmethod
    def render(self, given: ReportInput) -> bytes:
        """The output's exact bytes; the same input gives the same bytes."""
