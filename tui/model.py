"""The findings view-model: an image's findings in display order, and the subset a filter
keeps. Pure and fast (no I/O, no widgets): the table renders whatever ``select`` returns, so
filtering 10,000 findings is one pass over prepared tuples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from appliance.console.views import FindingRow
from appliance.match.model import Severity
from appliance.vex.model import VexStatus, format_time

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
    package_type: str | None = None  # a purl type: deb, pypi, npm, golang, ...

    def next_severity(self) -> FindingFilter:
        i = SEVERITY_STEPS.index(self.severity)
        return replace(self, severity=SEVERITY_STEPS[(i + 1) % len(SEVERITY_STEPS)])

    def next_status(self) -> FindingFilter:
        i = STATUS_STEPS.index(self.status)
        return replace(self, status=STATUS_STEPS[(i + 1) % len(STATUS_STEPS)])

    def toggle(self, flag: Flag) -> FindingFilter:
        return replace(self, flags=self.flags ^ {flag})

    def next_type(self, types: Sequence[str]) -> FindingFilter:
        """The next package type of ``types`` (those present), after all of them."""
        steps: list[str | None] = [None, *types]
        i = steps.index(self.package_type) if self.package_type in steps else 0
        return replace(self, package_type=steps[(i + 1) % len(steps)])

    def with_text(self, text: str) -> FindingFilter:
        return replace(self, text=text.strip())

    def describe(self) -> str:
        """The filters in force, briefly (a status line of 80 columns holds it)."""
        parts = []
        if self.severity:
            parts.append(f"severity ≥ {self.severity.value}")
        if self.status:
            parts.append(f"status {self.status.value}")
        parts += [f.value for f in Flag if f in self.flags]
        if self.package_type:
            parts.append(f"type {self.package_type}")
        if self.text:
            parts.append(f"search {self.text!r}")
        return ", ".join(parts) or "no filter"


def display_order(row: FindingRow) -> tuple[int, str, str]:
    """Worst first, then by id and component."""
    return (-row.severity.rank, row.id, row.purl)


def _epss(row: FindingRow) -> float:
    try:
        return float(row.epss[0]) if row.epss else -1.0
    except ValueError:
        return -1.0


class Sort(StrEnum):
    """The orders the findings list offers, each breaking ties worst first."""

    SEVERITY = "severity"
    EPSS = "EPSS"
    KEV = "KEV"
    ID = "id"
    PACKAGE = "package"
    FIXABLE = "fixable"

    def key(self, row: FindingRow) -> tuple[object, ...]:
        match self:
            case Sort.SEVERITY:
                return display_order(row)
            case Sort.EPSS:
                return (-_epss(row), *display_order(row))
            case Sort.KEV:
                return (row.kev is None, *display_order(row))
            case Sort.ID:
                return (row.id, row.purl)
            case Sort.PACKAGE:
                return (row.package, row.version, *display_order(row))
            case Sort.FIXABLE:
                return (not row.fix_available, *display_order(row))

    def next(self) -> Sort:
        members = list(Sort)
        return members[(members.index(self) + 1) % len(members)]


class FindingsModel:
    """The rows of one image in display order, with what each filter tests precomputed."""

    __slots__ = ("_keys", "_sorted", "rows", "types")

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
                r.package_type,
            )
            for r in self.rows
        )
        self.types: tuple[str, ...] = tuple(sorted({r.package_type for r in self.rows}))
        self._sorted: dict[Sort, list[int]] = {Sort.SEVERITY: list(range(len(self.rows)))}

    def _order(self, sort: Sort) -> list[int]:
        """Row indexes in ``sort``'s order, computed once per order."""
        order = self._sorted.get(sort)
        if order is None:
            rows = self.rows
            order = sorted(range(len(rows)), key=lambda i: sort.key(rows[i]))
            self._sorted[sort] = order
        return order

    def select(self, f: FindingFilter, sort: Sort = Sort.SEVERITY) -> list[FindingRow]:
        """The rows ``f`` keeps, in ``sort``'s order (display order by default)."""
        floor = f.severity.rank if f.severity else -1
        status = f.status
        kev, reach, fix = (flag in f.flags for flag in (Flag.KEV, Flag.REACHABLE, Flag.FIX))
        text = f.text.lower()
        ptype = f.package_type
        rows, keys = self.rows, self._keys
        return [
            rows[i]
            for i in self._order(sort)
            for rank, st, is_kev, is_reach, has_fix, haystack, kind in (keys[i],)
            if rank >= floor
            and (ptype is None or kind == ptype)
            and (status is None or st is status)
            and (not kev or is_kev)
            and (not reach or is_reach)
            and (not fix or has_fix)
            and (not text or text in haystack)
        ]


@dataclass(frozen=True, slots=True)
class FormProblem:
    """Why a triage form cannot be signed: the field to mark and what to do, in the form's
    own words."""

    field: str  # the form field's id
    message: str


def triage_problem(
    status: VexStatus,
    justification: object,
    text: str,
    expires: datetime | None,
    now: datetime,
) -> FormProblem | None:
    """What the VEX service would refuse in this decision, said before anything is signed
    (the same rules as :func:`appliance.vex.service.add`)."""
    if status is VexStatus.NOT_AFFECTED and justification is None and not text:
        return FormProblem(
            "justification", "not_affected needs a justification or an impact statement"
        )
    if status is not VexStatus.NOT_AFFECTED and justification is not None:
        return FormProblem(
            "justification", f"a justification is only for not_affected, not {status.value}"
        )
    if status is VexStatus.AFFECTED and not text:
        return FormProblem("text", "affected needs an action statement: what to do about it")
    if expires is not None and expires <= now:
        return FormProblem(
            "expires",
            f"the expiry {format_time(expires)} is not after now ({format_time(now)}): "
            "an exception must expire in the future",
        )
    return None


FIELD_WORDS: tuple[tuple[str, str, str], ...] = (
    ("--expires", "expires", "the expiry"),
    ("--justification", "justification", "a justification"),
    ("--impact", "text", "an impact statement"),
    ("--action", "text", "an action statement"),
)
"""The VEX service's words for its inputs (the CLI's options), the form field each stands
for, and the form's words for it."""


def form_refusal(message: str) -> FormProblem:
    """A refusal of the VEX service in the form's words, with the field it is about (the
    first the message names; the status field when none)."""
    field = next((f for flag, f, _ in FIELD_WORDS if flag in message), "status")
    for flag, _, words in FIELD_WORDS:
        message = message.replace(f"{flag} ", f"{words} ").replace(flag, words)
    return FormProblem(field, message)
