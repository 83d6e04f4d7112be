"""The findings view-model: display order and every filter, on synthetic rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from appliance.console.views import FindingRow
from appliance.match.model import Severity
from appliance.vex.model import Justification, VexStatus
from tests.tui.fakes import NOW, finding
from tui.model import FindingFilter, FindingsModel, Flag, Sort, form_refusal, triage_problem

ROWS = [finding(i) for i in range(100)]
MODEL = FindingsModel(ROWS)


def test_display_order_is_worst_first_then_id() -> None:
    ranks = [r.severity.rank for r in MODEL.rows]
    assert ranks == sorted(ranks, reverse=True)
    criticals = [r.id for r in MODEL.rows if r.severity is Severity.CRITICAL]
    assert criticals == sorted(criticals)
    assert MODEL.select(FindingFilter()) == list(MODEL.rows)


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (FindingFilter(severity=Severity.HIGH), lambda r: r.severity.rank >= Severity.HIGH.rank),
        (FindingFilter(status=VexStatus.FIXED), lambda r: r.status is VexStatus.FIXED),
        (FindingFilter(flags=frozenset({Flag.KEV})), lambda r: r.kev is not None),
        (FindingFilter(flags=frozenset({Flag.REACHABLE})), lambda r: r.reachable),
        (FindingFilter(flags=frozenset({Flag.FIX})), lambda r: r.fix_available),
        (FindingFilter(text="CVE-2026-10042"), lambda r: r.id == "CVE-2026-10042"),
        (FindingFilter(text="ghsa-0007"), lambda r: r.id == "CVE-2026-10007"),  # an alias
        (FindingFilter(text="LIB05"), lambda r: r.package == "lib05"),
        (
            FindingFilter(severity=Severity.CRITICAL, flags=frozenset({Flag.KEV, Flag.FIX})),
            lambda r: r.severity is Severity.CRITICAL and r.kev is not None and r.fix_available,
        ),
    ],
)
def test_filters_keep_exactly_the_matching_rows(
    f: FindingFilter, expected: Callable[[FindingRow], bool]
) -> None:
    kept = MODEL.select(f)
    assert kept, "the case must keep something"
    assert kept == [r for r in MODEL.rows if expected(r)]


def test_keys_cycle_and_describe() -> None:
    f = FindingFilter()
    seen = []
    for _ in range(5):
        f = f.next_severity()
        seen.append(f.severity)
    assert seen == [Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW, None]
    statuses = []
    for _ in range(5):
        f = f.next_status()
        statuses.append(f.status)
    assert statuses == [*VexStatus, None]
    f = FindingFilter().next_severity().toggle(Flag.KEV).toggle(Flag.FIX).with_text("  ssl ")
    assert f.describe() == "severity ≥ critical, kev, fix, search 'ssl'"
    assert FindingFilter().describe() == "no filter"
    assert f.toggle(Flag.KEV).flags == {Flag.FIX}


def test_each_order_sorts_and_breaks_ties_worst_first() -> None:
    by_epss = MODEL.select(FindingFilter(), Sort.EPSS)
    scores = [float(r.epss[0]) if r.epss else -1.0 for r in by_epss]
    assert scores == sorted(scores, reverse=True)
    assert [r.kev is None for r in MODEL.select(FindingFilter(), Sort.KEV)][:9] == [False] * 9
    ids = [r.id for r in MODEL.select(FindingFilter(), Sort.ID)]
    assert ids == sorted(ids)
    fixable = MODEL.select(FindingFilter(), Sort.FIXABLE)
    assert [r.fix_available for r in fixable] == sorted(
        (r.fix_available for r in fixable), reverse=True
    )
    assert Sort.FIXABLE.next() is Sort.SEVERITY


def test_package_type_filter_cycles_through_the_types_present() -> None:
    assert MODEL.types == ("deb",)
    f = FindingFilter().next_type(("deb", "pypi"))
    assert f.package_type == "deb"
    assert f.next_type(("deb", "pypi")).package_type == "pypi"
    assert f.next_type(("deb", "pypi")).next_type(("deb", "pypi")).package_type is None
    assert MODEL.select(replace(f, package_type="pypi")) == []
    assert len(MODEL.select(f)) == len(MODEL.rows)


@pytest.mark.parametrize(
    ("status", "justification", "text", "expires", "field"),
    [
        (VexStatus.NOT_AFFECTED, None, "", None, "justification"),
        (VexStatus.AFFECTED, Justification.COMPONENT_NOT_PRESENT, "x", None, "justification"),
        (VexStatus.AFFECTED, None, "", None, "text"),
        (VexStatus.NOT_AFFECTED, None, "x", datetime(2026, 1, 1, tzinfo=UTC), "expires"),
    ],
)
def test_triage_problems_name_the_field(
    status: VexStatus,
    justification: Justification | None,
    text: str,
    expires: datetime | None,
    field: str,
) -> None:
    problem = triage_problem(status, justification, text, expires, NOW)
    assert problem is not None
    assert problem.field == field
    assert "--" not in problem.message
    assert triage_problem(VexStatus.NOT_AFFECTED, None, "x", None, NOW) is None


def test_a_service_refusal_in_the_forms_words() -> None:
    refusal = form_refusal("--expires 2026-01-01T00:00:00Z is not after the statement time")
    assert refusal.field == "expires"
    assert refusal.message.startswith("the expiry 2026-01-01T00:00:00Z is not after")
    assert form_refusal("the signing key is locked").field == "status"
