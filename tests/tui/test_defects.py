"""One pilot test per defect an operator met in the TUI (issue "The operator's day"): each
reproduces the report and asserts what the operator should see instead."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from textual import events
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Input, Select
from textual.widgets._select import SelectCurrent

from appliance.console.backend import HomeConsole
from appliance.store import open_state
from appliance.store.audit import AuditLog
from appliance.vex.model import VexStatus
from tests.tui.fakes import FakeService, finding
from tests.tui.homes import CVE, NOW, add_audit_records, excepted_home, gated_home
from tests.tui.test_app import (
    messages,
    open_detail,
    open_triage,
    press_settled,
    reasons_of,
    run,
    settle,
    text_of,
)
from tui.app import StellaApp
from tui.screens.audit import AuditScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.detail import DetailScreen
from tui.screens.findings import FindingsScreen
from tui.screens.images import ImagesScreen
from tui.screens.triage import TriageScreen
from tui.screens.verdict import VerdictScreen
from tui.widgets.findings_table import FindingsTable


@run
async def test_1_a_new_filter_or_sort_starts_at_the_first_row() -> None:
    app = StellaApp(FakeService(count=2000))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "enter")
        table = app.screen.query_one(FindingsTable)
        await pilot.press("end")
        assert table.cursor == 1999
        await pilot.press("slash", *"lib07")
        await settle(pilot)
        assert {r.package for r in table.rows} == {"lib07"}
        assert (table.cursor, table.scroll_y) == (0, 0)  # the worst match, on screen
        await pilot.press("enter", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.row == table.rows[0]
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("end", "s")  # a new order, too
        assert (table.cursor, table.scroll_y) == (0, 0)


@run
async def test_3_the_focused_form_field_is_marked() -> None:
    app = StellaApp(FakeService(rows=(finding(0),)))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_triage(pilot)
        form = app.screen
        status = form.query_one("#status", Select).query_one(SelectCurrent)
        text = form.query_one("#text", Input)
        assert status.rich_style.reverse
        assert not text.rich_style.reverse
        text.focus()
        await pilot.pause()
        assert text.rich_style.reverse
        assert not status.rich_style.reverse


@run
async def test_4_a_section_key_shows_its_list() -> None:
    app = StellaApp(FakeService(rows=(finding(0),)))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_triage(pilot)
        app.screen.query_one("#text", Input).value = "never reached"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, VerdictScreen)
        await press_settled(pilot, "d", "i")
        assert isinstance(app.screen, ImagesScreen)
        assert len(app.screen_stack) == 1
        await press_settled(pilot, "enter", "enter", "i")  # within the section, too
        assert isinstance(app.screen, ImagesScreen)


@run
async def test_5_esc_in_the_search_clears_it_then_closes_it() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "enter", "slash", *"lib0")
        screen = app.screen
        search = screen.query_one(Input)
        await press_settled(pilot, "escape")
        assert app.screen is screen
        assert search.value == ""
        assert search.has_focus
        await press_settled(pilot, "escape")
        assert app.screen is screen
        assert screen.query_one(FindingsTable).has_focus
        await press_settled(pilot, "escape")
        assert isinstance(app.screen, ImagesScreen)


@run
async def test_6_a_check_scrolled_away_from_the_top_still_shows() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "v")
        screen = app.screen
        scroll = screen.query_one("#verdict", VerticalScroll)
        scroll.scroll_end(animate=False, immediate=True)
        await press_settled(pilot, "c")
        assert scroll.scroll_y > 0
        line = screen.query_one("MessageLine")
        assert text_of(app, "MessageLine").startswith("verified FAIL")
        assert line not in scroll.walk_children()
        assert line.region.height >= 1
        assert screen.region.contains_region(line.region)


@run
async def test_7_no_toast_covers_the_screen_it_reports_on() -> None:
    service = FakeService(rows=(finding(2),))
    app = StellaApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot)
        await press_settled(pilot, "x", *"no longer holds", "enter")
        assert isinstance(app.screen, VerdictScreen)
        await press_settled(pilot, "c")
        assert messages(app) == []
        assert service.revoked


@run
async def test_8_keys_typed_ahead_are_kept() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await press_settled(pilot, "i")
        app.post_message(events.Key("enter", "\r"))
        app.post_message(events.Key("v", "v"))  # the findings' verdict key
        await settle(pilot)
        assert isinstance(app.screen, VerdictScreen)
        await press_settled(pilot, "escape")
        assert isinstance(app.screen, FindingsScreen)
        app.post_message(events.Key("enter", "\r"))
        app.post_message(events.Key("t", "t"))
        await settle(pilot)
        assert isinstance(app.screen, TriageScreen)


LONG = " ".join(f"sentence {i} of a long advisory text that runs over lines." for i in range(40))


@run
async def test_10_the_detail_shows_the_whole_advisory() -> None:
    row = replace(
        finding(3),
        summary=LONG,
        files=(("usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA", None),),
        epss=("0.012070000", "0.657320000"),
    )
    app = StellaApp(FakeService(rows=(row,)))
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot)
        shown = text_of(app, "#finding")
        flat = " ".join(shown.split())
        assert "sentence 39 of a long advisory text" in flat
        assert "Published 2026-03-04, modified 2026-04-01" in flat
        assert "https://security-tracker.debian.org/tracker/CVE-2026-10003" in flat
        assert "A crafted input makes the lib03 parser write past" in flat
        assert "1.2% chance of exploitation in 30 days (65th percentile)" in flat
        assert "unknown: the entry trace follows executables" in flat
        # the path breaks after a "/", never inside a name
        lines = [ln for ln in rendered(app, "#finding", 78) if "requests-2.19" in ln]
        assert lines
        assert "requests-2.19.0.dist-info/" in lines[0]


def rendered(app: StellaApp, selector: str, width: int) -> list[str]:
    """The lines of a Static as the screen lays it out at ``width``."""
    import io

    from rich.console import Console
    from textual.widgets import Static

    console = Console(width=width, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(app.screen.query_one(selector, Static).content)
    return capture.get().splitlines()


@run
async def test_12_a_tampered_record_is_marked_and_shown_as_it_is_now(tmp_path: Path) -> None:
    home = gated_home(tmp_path / "home")
    add_audit_records(home, 18)  # 20 records
    conn = sqlite3.connect(home.state_db)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET actor = 'edited' WHERE seq = 14")
    conn.commit()
    conn.close()
    app = StellaApp(HomeConsole(home, clock=lambda: NOW, settle=0))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "a", "c")
        assert isinstance(app.screen, AuditScreen)
        assert text_of(app, "#audit-check").startswith("TAMPERED: record 14")
        table = app.screen.query_one(DataTable)
        row = table.get_row_at(table.cursor_row)
        assert str(row[0]) == "14 BAD"
        record = text_of(app, "#audit-record")
        assert record.startswith("TAMPERED: #14 scan")
        assert "by edited" in record


@run
async def test_13_words(tmp_path: Path) -> None:
    service = FakeService(count=10000)
    app = StellaApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "enter")
        assert text_of(app, "#findings-filter").startswith("10,000 of 10,000 findings")
    app = StellaApp(FakeService(rows=(finding(2), finding(4))))  # medium, unknown
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "enter")
        table = app.screen.query_one(FindingsTable)
        lines = [table.render_line(y).text for y in (1, 2)]
        assert lines[0].startswith("MEDIUM   CVE-2026-10002")
        assert lines[1].startswith("UNKNOWN  CVE-2026-10004")
    home = gated_home(tmp_path / "home")
    app = StellaApp(HomeConsole(home, clock=lambda: NOW, settle=0))
    async with app.run_test(size=(120, 40)) as pilot:
        await open_triage(pilot)
        app.screen.query_one("#text", Input).value = "never reached"
        app.screen.query_one("#status", Select).value = VexStatus.NOT_AFFECTED
        await pilot.press("ctrl+s")
        await settle(pilot)
    with open_state(home) as db:
        (record,) = AuditLog(db).records(action="vex.add")
    assert record.actor.endswith("(stella tui)")


@run
async def test_dashboard_counts_waived_apart_and_lists_expiring_exceptions(
    tmp_path: Path,
) -> None:
    home, _ = excepted_home(tmp_path / "home")
    soon = datetime(2026, 12, 20, tzinfo=UTC)  # 11 days before the exception expires
    app = StellaApp(HomeConsole(home, clock=lambda: soon, settle=0))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        shown = screen.dashboard_text()
        assert "Open       critical 0" in shown  # the one finding is not_affected: waived
        assert "Waived     critical 1" in shown
        assert "Expiring   CVE-2018-18074 on " in shown
        assert "expires 2026-12-31 (in 11 days)" in shown
        assert "Feeds      " in shown
        assert "newest record 20" in shown
        # each line opens its screen: the audit line the audit log
        lines = shown.splitlines()
        audit = next(i for i, ln in enumerate(lines) if ln.startswith("Audit "))
        await press_settled(pilot, "g", *("j",) * audit, "enter")
        assert isinstance(app.screen, AuditScreen)


@run
async def test_dashboard_warns_and_jumps_to_an_image() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        lines = screen.dashboard_text().splitlines()
        assert any(ln.startswith("WARNING    tool:3: 12 packages without distro") for ln in lines)
        changed = next(i for i, ln in enumerate(lines) if ln.startswith("Changed "))
        assert "app:1: PASS -> FAIL since the last import" in lines[changed]
        await press_settled(pilot, "g", *("j",) * changed, "enter")
        assert isinstance(app.screen, VerdictScreen)
        assert app.screen.image == "app:1"


@run
async def test_9_the_import_screen_shows_a_file_being_copied_and_refreshes(
    tmp_path: Path,
) -> None:
    home = gated_home(tmp_path / "home")
    app = StellaApp(HomeConsole(home, clock=lambda: NOW, settle=30))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "m")
        assert text_of(app, "#inbox-status").startswith(f"the inbox {home.inbox} is empty")
        (home.inbox / "next.stella.tar.zst").write_bytes(b"half copied")
        await pilot.pause(5.5)  # no key: the screen re-reads by itself
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        assert str(table.get_row_at(0)[1]) == "being copied"
        assert text_of(app, "#inbox-status").startswith(f"inbox {home.inbox}: 1 bundle(s)")
        await press_settled(pilot, "enter")
        assert text_of(app, "MessageLine") == (
            "next.stella.tar.zst is still being copied; it is offered once it settles"
        )
    assert (home.inbox / "next.stella.tar.zst").exists()


@run
async def test_9_a_part_set_names_its_missing_part() -> None:
    service = FakeService()
    app = StellaApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "m", "j")
        table = app.screen.query_one(DataTable)
        assert str(table.get_row_at(1)[1]) == "waiting for big.stella.tar.zst.part-002-of-002"
        await press_settled(pilot, "enter")
        assert text_of(app, "MessageLine") == (
            "big.stella.tar.zst waits for big.stella.tar.zst.part-002-of-002: "
            "copy it into the inbox"
        )
        assert text_of(app, "#import-reason") == ""  # nothing was tried, nothing REFUSED


@run
async def test_a_verdicts_reason_opens_its_finding(tmp_path: Path) -> None:
    home = gated_home(tmp_path / "home")
    app = StellaApp(HomeConsole(home, clock=lambda: NOW, settle=0))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "v")
        assert isinstance(app.screen, VerdictScreen)
        assert reasons_of(app).startswith("Reasons   RISK.CVE.KEV ")
        await press_settled(pilot, "enter")
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.row.id == CVE


@run
async def test_the_verdicts_unknowns_are_listed_on_u() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "v")
        assert "Unknowns  2 (u lists them)" in text_of(app, "#verdict-tail")
        assert "musl" not in reasons_of(app)
        await press_settled(pilot, "u")
        assert "Unknowns  pkg:apk/alpine/musl@1.2.5 no-distro-data" in reasons_of(app)


@run
async def test_ctrl_c_quits() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await press_settled(pilot, "i", "enter", "slash")  # even from the search field
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert not app.is_running
