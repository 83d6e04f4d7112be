"""The findings view-model: display order and every filter, on synthetic rows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from appliance.console.views import FindingRow
from appliance.match.model import Severity
from appliance.vex.model import VexStatus
from tests.tui.fakes import finding
from tui.model import FindingFilter, FindingsModel, Flag

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
    assert f.describe() == "severity ≥ critical, status all, kev, fix, search 'ssl'"
    assert f.toggle(Flag.KEV).flags == {Flag.FIX}
