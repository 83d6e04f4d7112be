"""The findings view-model: an image's findings in display order, and the subset a filter
keeps. Pure and fast (no I/O, no widgets): the table renders whatever ``select`` returns, so
filtering 10,000 findings is one pass over prepared tuples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from appliance.console.views import FindingRow
from appliance.match.model import Severity
from appliance.vex.model import VexStatus

SEVERITY_STEPS: tuple[Severity | None, ...] = (
    None,
    Severity.CRITICAL,
    Severity.HIGH,
    Severity.MEDIUM,
    Severity.LOW,
)
"""What the severity key cycles through: all, then "at least" each level."""

STATUS_STEPS: tuple[VexStatus | None, ...] = (None, *VexStatus)


class Flag(StrEnum):
    """The yes/no filters, each on its own key."""

    KEV = "kev"
    REACHABLE = "reachable"
    FIX = "fix"


@dataclass(frozen=True, slots=True)
class FindingFilter:
    """What the operator asked to see; the default shows everything."""

    severity: Severity | None = None  # at least this severe
    status: VexStatus | None = None
    flags: frozenset[Flag] = frozenset()
    text: str = ""  # a substring of the id, an alias, the package name or the purl

    def next_severity(self) -> FindingFilter:
        i = SEVERITY_STEPS.index(self.severity)
        return replace(self, severity=SEVERITY_STEPS[(i + 1) % len(SEVERITY_STEPS)])

    def next_status(self) -> FindingFilter:
        i = STATUS_STEPS.index(self.status)
        return replace(self, status=STATUS_STEPS[(i + 1) % len(STATUS_STEPS)])

    def toggle(self, flag: Flag) -> FindingFilter:
        return replace(self, flags=self.flags ^ {flag})

    def with_text(self, text: str) -> FindingFilter:
        return replace(self, text=text.strip())

    def describe(self) -> str:
        parts = [
            f"severity {'≥ ' + self.severity.value if self.severity else 'all'}",
            f"status {self.status.value if self.status else 'all'}",
        ]
        parts += [f.value for f in Flag if f in self.flags]
        if self.text:
            parts.append(f"search {self.text!r}")
        return ", ".join(parts)


def display_order(row: FindingRow) -> tuple[int, str, str]:
    """Worst first, then by id and component."""
    return (-row.severity.rank, row.id, row.purl)


class FindingsModel:
    """The rows of one image in display order, with what each filter tests precomputed."""

    __slots__ = ("_keys", "rows")

    def __init__(self, rows: Sequence[FindingRow]) -> None:
        self.rows: tuple[FindingRow, ...] = tuple(sorted(rows, key=display_order))
        self._keys = tuple(
            (
                r.severity.rank,
                r.status,
                r.kev is not None,
                r.reachable,
                r.fix_available,
                " ".join((r.id, *r.aliases, r.package, r.purl)).lower(),
            )
            for r in self.rows
        )

    def select(self, f: FindingFilter) -> list[FindingRow]:
        """The rows ``f`` keeps, in display order."""
        floor = f.severity.rank if f.severity else -1
        status = f.status
        kev, reach, fix = (flag in f.flags for flag in (Flag.KEV, Flag.REACHABLE, Flag.FIX))
        text = f.text.lower()
        rows = self.rows
        return [
            rows[i]
            for i, (rank, st, is_kev, is_reach, has_fix, haystack) in enumerate(self._keys)
            if rank >= floor
            and (status is None or st is status)
            and (not kev or is_kev)
            and (not reach or is_reach)
            and (not fix or has_fix)
            and (not text or text in haystack)
        ]
