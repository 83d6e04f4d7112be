"""A plain-text table for people at a terminal: worst first, one finding a line.

Column widths come from the content only (never from the terminal), so the text is as
deterministic as the report. SOURCE says which source decided the severity (docs/matching.md).
Unknowns and delegated packages are listed after the table: they are part of the answer, not
noise.

With VEX applied the table gains VEX, JUSTIFICATION and EXPIRES columns (the deciding
statement's status, its justification, an exception's expiry date), and the findings VEX
waives (``not_affected``, ``fixed``) are hidden unless ``show_suppressed``; the summary says
how many were hidden, as trivy and grype do.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.match.model import Finding, FindingsReport, SeveritySource
from appliance.report.interface import FindingsView, Format, Renderer, ReportInput
from appliance.report.packages import packages_table
from appliance.vex.merge import MergedFinding

HEADERS = (
    "SEVERITY",
    "SOURCE",
    "ID",
    "PACKAGE",
    "INSTALLED",
    "FIXED IN",
    "KEV",
    "EPSS",
    "REACHABLE",
)
VEX_HEADERS = ("VEX", "JUSTIFICATION", "EXPIRES")


def _row(f: Finding) -> tuple[str, ...]:
    return (
        f.severity.value.upper(),
        f.severity_source.value,
        f.id,
        f.component.name,
        f.component.version,
        ", ".join(f.fixed_versions) or f"({f.fix_state.value})",
        "yes" if f.kev else "-",
        f.epss.score if f.epss else "-",
        f.evidence.reachability.value,
    )


def _vex_row(m: MergedFinding) -> tuple[str, ...]:
    statement = m.vex
    justification = statement.justification.value if statement and statement.justification else "-"
    expires = statement.expires.strftime("%Y-%m-%d") if statement and statement.expires else "-"
    return (m.status.value, justification, expires)


def _lines(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_table(report: FindingsReport | FindingsView, *, show_suppressed: bool = False) -> str:
    """The findings as text lines ending in a newline (a bare report: no VEX applied)."""
    view = report if isinstance(report, FindingsView) else FindingsView.raw(report)
    report = view.report
    listed = view.findings if show_suppressed else view.shown
    merged = sorted(
        listed,
        key=lambda m: (
            -m.finding.severity.rank,
            m.finding.component.name,
            m.finding.component.purl,
            m.finding.id,
        ),
    )
    out: list[str] = []
    if merged and view.vex:
        out.extend(
            _lines([HEADERS + VEX_HEADERS, *(_row(m.finding) + _vex_row(m) for m in merged)])
        )
    elif merged:
        out.extend(_lines([HEADERS, *(_row(m.finding) for m in merged)]))
    elif view.suppressed:
        out.append("No vulnerabilities shown.")
    else:
        out.append("No vulnerabilities found.")
    counts = report.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    rated = sum(1 for f in report.findings if f.severity_source is not SeveritySource.NONE)
    out.append("")
    out.append(
        f"{len(report.findings)} findings in {report.components} components"
        + (f" ({summary})" if summary else "")
        + (f"; {rated} rated by a source" if report.findings else "")
        + (f"; knowledge snapshot {report.snapshot}" if report.snapshot else "")
    )
    if view.vex:
        statuses = ", ".join(f"{n} {s}" for s, n in view.status_counts().items() if n)
        hidden = len(view.suppressed) if not show_suppressed else 0
        out.append(
            f"VEX: {statuses}"
            + (
                f"; {hidden} suppressed findings hidden (--show-suppressed lists them)"
                if hidden
                else ""
            )
            + (f"; {len(view.expired)} exceptions expired" if view.expired else "")
        )
    if report.unknowns:
        out.append("")
        out.append(f"Not decided ({len(report.unknowns)}):")
        for u in report.unknowns:
            where = f" [{u.record}]" if u.record else ""
            out.append(f"  {u.purl}{where}: {u.kind.value}: {u.reason}")
    if report.delegated:
        out.append("")
        out.append(f"Judged by distribution data ({len(report.delegated)}):")
        for d in report.delegated:
            out.append(f"  {d.purl}: {d.reason}")
    return "\n".join(out) + "\n"


class TableRenderer(Renderer):
    format = Format.TABLE
    help = "findings for a terminal (packages without a snapshot)"

    def render(self, given: ReportInput) -> bytes:
        if given.view is None:
            scan = given.require_scan(self.format)
            return (
                packages_table(scan) + "\nno knowledge snapshot imported: packages only\n"
            ).encode()
        return render_table(given.view, show_suppressed=given.show_suppressed).encode("utf-8")
