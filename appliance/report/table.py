"""A plain-text table for people at a terminal: worst first, one finding a line.

Column widths come from the content only (never from the terminal), so the text is as
deterministic as the report. SOURCE says which source decided the severity (docs/matching.md).
Unknowns and delegated packages are listed after the table: they are part of the answer, not
noise.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.match.model import Finding, FindingsReport, SeveritySource

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


def _lines(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def render_table(report: FindingsReport) -> str:
    """The report as text lines ending in a newline."""
    findings = sorted(
        report.findings, key=lambda f: (-f.severity.rank, f.component.name, f.component.purl, f.id)
    )
    out: list[str] = []
    if findings:
        out.extend(_lines([HEADERS, *(_row(f) for f in findings)]))
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
