"""The package table of a scan: what ``--format packages`` prints, and ``table`` before any
knowledge snapshot is imported. One package a line with the layer and file it came from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from appliance.report.interface import Format, Renderer, ReportInput

if TYPE_CHECKING:
    from appliance.scanner.result import ScanResult


def packages_table(result: ScanResult) -> str:
    """The packages, then a summary line, other platforms and unknowns (no final newline)."""
    rows = [("TYPE", "NAME", "VERSION", "LAYER", "PATH")]
    for found in result.packages:
        evidence = found.evidence[0] if found.evidence else None
        layer = "-"
        if evidence is not None and evidence.layer_digest is not None:
            layer = f"{evidence.layer_index}:{evidence.layer_digest.hex[:12]}"
        rows.append(
            (
                found.package.type.value,
                found.package.name,
                found.package.full_version,
                layer,
                "/" + evidence.path if evidence else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    ]
    digest = result.manifest_digest or result.config_digest
    head = f"{result.ref}" + (f" {digest}" if digest else "")
    if result.platform:
        head += f" {result.platform}"
    others = [p for p in result.platforms if p != result.platform]
    tail = [
        f"{len(result.packages)} packages, {len(result.unknowns)} unknowns, "
        f"{len(result.entry_trace.reachable)} reachable from the entrypoint"
    ]
    if others:
        tail.append(f"other platforms: {', '.join(others)} (choose with --platform)")
    tail += [f"unknown: /{u.path}: {u.reason}" for u in result.unknowns]
    return "\n".join([head, *lines, *tail])


class PackagesRenderer(Renderer):
    format = Format.PACKAGES
    help = "the package table"

    def render(self, given: ReportInput) -> bytes:
        return (packages_table(given.require_scan(self.format)) + "\n").encode()
