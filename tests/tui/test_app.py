"""Pilot tests of every screen: the triage flow, import, audit and verdict against a real
home through the real service; filtering and navigation against the fake service."""

from __future__ import annotations

import asyncio
import functools
import io
import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, ProgressBar, Select, Static

from appliance.auditor.package import verify_package
from appliance.console.backend import HomeConsole
from appliance.home import Home
from appliance.store import open_state
from appliance.store.audit import AuditLog
from appliance.store.verdicts import VerdictStore
from appliance.vex import service as vex_service
from appliance.vex.model import Justification, VexStatus
from tests.flow.conftest import Appliance, Mirror, appliance, mirror  # noqa: F401
from tests.tui.fakes import REFUSED_BUNDLE, FakeService, SlowService, finding
from tests.tui.homes import CVE, NOW, add_audit_records, excepted_home, gated_home
from tui.app import StellaApp
from tui.screens.audit import AuditScreen
from tui.screens.base import short
from tui.screens.dashboard import DashboardScreen
from tui.screens.detail import DetailScreen
from tui.screens.export import ExportScreen
from tui.screens.findings import FindingsScreen
from tui.screens.help import HelpScreen
from tui.screens.images import ImagesScreen
from tui.screens.inbox import ImportScreen
from tui.screens.revoke import RevokeScreen
from tui.screens.triage import TriageScreen
from tui.screens.verdict import VerdictScreen
from tui.widgets.findings_table import FindingsTable


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async pilot test on its own event loop (no async plugin needed)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


async def settle(pilot: Pilot[None]) -> None:
    """Let every worker finish, and the screens they push load too."""
    for _ in range(4):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def press_settled(pilot: Pilot[None], *keys: str) -> None:
    """Press each key in turn, settling after each (a key may start a worker or a screen)."""
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


async def open_triage(pilot: Pilot[None]) -> None:
    """From the dashboard: the images screen, the first image's findings, the first finding's
    detail, then the triage form."""
    await settle(pilot)
    await press_settled(pilot, "i", "enter")
    await pilot.press("enter", "t")
    await settle(pilot)


async def open_detail(pilot: Pilot[None]) -> None:
    """From the dashboard: the images screen, the first image's findings, the first finding's
    detail with its VEX history loaded."""
    await settle(pilot)
    await press_settled(pilot, "i", "enter")
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(pilot.app.screen, DetailScreen)


async def until(pilot: Pilot[None], condition: Callable[[], bool], what: str) -> None:
    """Pause until ``condition`` holds (without waiting for workers: one may be held open on
    purpose), or fail after about five seconds."""
    for _ in range(500):
        if condition():
            return
        await pilot.pause(0.01)
    raise AssertionError(f"never happened: {what}")


def current(app: StellaApp) -> Screen[Any]:
    """The active screen, read afresh (a call, so no earlier isinstance narrows it)."""
    return app.screen


def messages(app: StellaApp) -> list[str]:
    return [n.message for n in app._notifications]


def warnings(app: StellaApp) -> list[str]:
    return [n.message for n in app._notifications if n.severity == "warning"]


def text_of(app: StellaApp, selector: str) -> str:
    """The plain text a Static shows, lines stripped of their padding."""
    content = app.screen.query_one(selector, Static).content
    console = Console(width=1000, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(content)
    return "\n".join(line.rstrip() for line in capture.get().splitlines()).strip()


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return gated_home(tmp_path / "home")


def real_app(home: Home) -> StellaApp:
    return StellaApp(HomeConsole(home, clock=lambda: NOW, settle=0))


@run
async def test_triage_end_to_end_lands_the_vex_and_changes_the_verdict(home: Home) -> None:
    app = real_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        assert isinstance(app.screen, ImagesScreen)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, FindingsScreen)
        table = app.screen.query_one(FindingsTable)
        assert [r.id for r in table.rows] == [CVE]
        assert table.rows[0].status is VexStatus.AFFECTED
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert "requests sends credentials on redirect" in text_of(app, "#finding")
        await pilot.press("t")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, TriageScreen)
        # status stays not_affected; the justification is chosen from the spec's list
        await pilot.press("tab", "enter")
        await pilot.press("down", "down", "down", "enter")
        assert (
            form.query_one("#justification", Select).value
            is Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
        )
        await pilot.press("tab", *"the redirect path is never used")
        await pilot.press("tab", *"2026-12-31")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, VerdictScreen)
        body = text_of(app, "#verdict-body")
        assert "After triage: FAIL -> PASS_WITH_EXCEPTIONS" in body
        assert "RISK.VEX.EXCEPTION_APPLIED" in body
        # back on the findings list, the finding now carries the exception
        await press_settled(pilot, "escape", "escape")
        assert isinstance(app.screen, FindingsScreen)
        row = app.screen.query_one(FindingsTable).rows[0]
        assert row.status is VexStatus.NOT_AFFECTED
        assert row.exception_expires == "2026-12-31T00:00:00Z"
    with open_state(home) as db:
        (statement,) = vex_service.stored_statements(home)
        verdicts = VerdictStore(db).history()
        actions = [r.action for r in AuditLog(db).records()]
    assert statement.vulnerability == CVE
    assert statement.status is VexStatus.NOT_AFFECTED
    assert statement.justification is Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
    assert statement.impact == "the redirect path is never used"
    assert [v.verdict for v in verdicts] == ["FAIL", "PASS_WITH_EXCEPTIONS"]
    assert actions[-3:] == ["vex.add", "scan", "gate"]


@run
async def test_triage_with_a_bad_expiry_stays_in_the_form(home: Home) -> None:
    app = real_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_triage(pilot)
        app.screen.query_one("#expires", Input).value = "next tuesday"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, TriageScreen)
        assert "'next tuesday' is not an RFC 3339 time" in text_of(app, "#triage-error")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)
    assert vex_service.stored_statements(home) == []


@run
async def test_a_refused_triage_is_reported_and_changes_nothing(home: Home) -> None:
    app = real_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_triage(pilot)
        # not_affected with neither justification nor impact: the VEX service refuses it
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        messages = [n.message for n in app._notifications]
        assert any("not_affected needs --justification or --impact" in m for m in messages)
    with open_state(home) as db:
        assert vex_service.stored_statements(home) == []
        assert [v.verdict for v in VerdictStore(db).history()] == ["FAIL"]


@run
async def test_dashboard_shows_snapshot_verdicts_and_kev(home: Home) -> None:
    app = real_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        knowledge = text_of(app, "#knowledge")
        assert "stable/1" in knowledge
        assert "3 days old" in knowledge
        assert "kev 1, osv 1" in knowledge
        images = text_of(app, "#images")
        assert "FAIL 1" in images
        assert "critical 1" in images
        assert "under_investigation 0   KEV 1" in images


@run
async def test_verdict_screen_reads_the_signed_verdict(home: Home) -> None:
    app = real_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "v")
        assert isinstance(app.screen, VerdictScreen)
        body = text_of(app, "#verdict-body")
        assert body.startswith("FAIL")
        assert "RISK.CVE.KEV" in body
        assert "signature verified" in body
        for role in ("policyInput", "sbom", "vexBundle", "vulnData"):
            assert role in body


@run
async def test_import_of_a_bad_bundle_shows_the_refusal(home: Home) -> None:
    bad = home.inbox / "broken.stella.tar.zst"
    bad.write_bytes(b"not a bundle at all")
    app = real_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot)
        assert isinstance(app.screen, ImportScreen)
        assert app.screen.query_one(DataTable).row_count == 1
        await pilot.press("enter")
        await settle(pilot)
        reason = text_of(app, "#import-reason")
        assert reason.startswith("REFUSED: ")
        assert "reason file: " in reason
        assert "found broken.stella.tar.zst" in text_of(app, "#import-steps")
        assert app.screen.query_one(DataTable).row_count == 0  # it left the inbox
    assert not bad.exists()
    assert len(list(home.quarantine.glob("*broken.stella.tar.zst.reason"))) == 1


@run
async def test_audit_screen_lists_and_verifies_the_chain(home: Home) -> None:
    app = real_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, AuditScreen)
        table = app.screen.query_one(DataTable)
        assert [str(table.get_row_at(i)[2]) for i in range(table.row_count)] == ["gate", "scan"]
        assert "#2 gate" in text_of(app, "#audit-record")
        await pilot.press("v")
        await settle(pilot)
        assert text_of(app, "#audit-check") == (
            "chain intact: 2 records, head checkpoint signature valid"
        )


@run
async def test_findings_filters_and_search() -> None:
    app = StellaApp(FakeService(count=200))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "enter")
        table = app.screen.query_one(FindingsTable)
        assert len(table.rows) == 200
        await pilot.press("s")  # at least critical
        assert {r.severity.value for r in table.rows} == {"critical"}
        assert len(table.rows) == 40
        await pilot.press("k")  # and in KEV
        assert all(r.kev is not None for r in table.rows)
        await pilot.press("c")
        assert len(table.rows) == 200
        await pilot.press("v")  # the statuses in OpenVEX's order
        assert {r.status for r in table.rows} == {VexStatus.NOT_AFFECTED}
        await pilot.press("v")
        assert {r.status for r in table.rows} == {VexStatus.AFFECTED}
        await pilot.press("c", "r", "f")
        assert table.rows
        assert all(r.reachable and r.fix_available for r in table.rows)
        await pilot.press("c", "slash", *"lib07")
        assert {r.package for r in table.rows} == {"lib07"}
        assert "search 'lib07'" in text_of(app, "#findings-filter")
        await pilot.press("enter", "down", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert app.screen.row.id == table.rows[1].id


@run
async def test_table_cursor_moves_and_scrolls() -> None:
    app = StellaApp(FakeService(count=500))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("i", "enter")
        await settle(pilot)
        table = app.screen.query_one(FindingsTable)
        await pilot.press("end")
        assert table.cursor == 499
        assert table.scroll_y > 400
        await pilot.press("home", "pagedown")
        assert table.cursor > 10
        await pilot.press("home")
        assert table.cursor == 0
        assert table.scroll_y == 0


@run
async def test_help_and_mode_keys() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        for key, screen in (
            ("i", ImagesScreen),
            ("m", ImportScreen),
            ("a", AuditScreen),
            ("d", DashboardScreen),
        ):
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, screen)


@run
async def test_images_filter_and_sort() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("i")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert names == ["app:1", "base:12", "tool:3"]
        await pilot.press("s", "s", "s")  # by last gate, oldest first, never gated last
        assert "sorted by last gate" in text_of(app, "#image-status")
        names = [str(table.get_row_at(i)[0]) for i in range(table.row_count)]
        assert names == ["base:12", "app:1", "tool:3"]
        await pilot.press("slash", *"pass")
        assert table.row_count == 1
        assert str(table.get_row_at(0)[0]) == "base:12"


@run
async def test_verdict_screen_verifies_and_exports_an_audit_package(
    home: Home, tmp_path: Path
) -> None:
    out = tmp_path / "audit.zip"
    app = real_app(home)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "v")
        await pilot.press("c")
        await settle(pilot)
        line = text_of(app, "#verdict-action")
        assert line.startswith("verified FAIL: signed by appliance")
        assert "6 evidence blobs match their digests" in line
        assert "gate record #2 in the verified audit chain" in line
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ExportScreen)
        app.screen.query_one(Input).value = str(out)
        await pilot.press("enter")
        await settle(pilot)
        assert text_of(app, "#verdict-action").startswith(f"wrote {out} (")
    report = verify_package(out.read_bytes(), home.public_key(), source=str(out))
    assert report.verification.predicate["verdict"] == "FAIL"


@run
async def test_import_of_a_good_bundle_shows_each_step(
    mirror: Mirror,  # noqa: F811
    appliance: Appliance,  # noqa: F811
    tmp_path: Path,
) -> None:
    bundle = tmp_path / "full.stella.tar.zst"
    mirror.export(bundle, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    shutil.copy(bundle, appliance.home / "inbox" / bundle.name)
    app = StellaApp(HomeConsole(Home(appliance.home), settle=0))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "m", "enter")
        steps = text_of(app, "#import-steps").splitlines()
        assert steps[0].startswith("found full.stella.tar.zst: sequence 1 on channel ")
        assert steps[1].startswith("verified: signed by ")
        assert "sequence 1 newer than the last" in steps[1]
        assert steps[2].startswith("loaded: ")
        assert "active" in steps[2]
        assert text_of(app, "#import-reason") == "full.stella.tar.zst imported"
        bar = app.screen.query_one(ProgressBar)
        assert (bar.progress, bar.total) == (3, 3)
        assert app.screen.query_one(DataTable).row_count == 0
        await pilot.press("d")
        await settle(pilot)
        assert "ok " in text_of(app, "#imports")
    assert list((appliance.home / "inbox").iterdir()) == []


@run
async def test_revoke_end_to_end_signs_the_revocation_and_regates(tmp_path: Path) -> None:
    home, key = excepted_home(tmp_path / "home")
    app = real_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        detail: DetailScreen = screen
        assert f"not_affected by {key}" in text_of(app, "#finding")
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RevokeScreen)
        shown = text_of(app, "#revoke-statement")
        assert shown.startswith(key)
        assert "not_affected (vulnerable_code_not_in_execute_path) until 2026-12-31" in shown
        await pilot.press("enter")  # no reason yet: refused in the form
        await pilot.pause()
        assert isinstance(app.screen, RevokeScreen)
        assert text_of(app, "#revoke-error") == "give a reason: why the statement no longer holds"
        await pilot.press(*"the redirect path is used since 2.3", "enter")
        await settle(pilot)
        assert isinstance(app.screen, VerdictScreen)
        body = text_of(app, "#verdict-body")
        assert "After triage: PASS_WITH_EXCEPTIONS -> FAIL" in body
        assert "RISK.CVE.KEV" in body
        await pilot.press("escape")
        await settle(pilot)
        assert current(app) is screen
        # the finding was read again: the revocation is now in force, and shown in history
        assert detail.row.status is VexStatus.UNDER_INVESTIGATION
        assert detail.row.vex_statement != key
        assert f"revokes {key}: the redirect path is used since 2.3" in text_of(app, "#history")
        # a revocation cannot itself be revoked: one line, no traceback, nothing stored
        await pilot.press("r")
        await settle(pilot)
        await pilot.press(*"again", "ctrl+s")
        await settle(pilot)
        assert current(app) is screen
        refusal = messages(app)[-1]
        assert f"is itself the revocation of {key}: nothing to revoke" in refusal
        assert "\n" not in refusal
    with open_state(home) as db:
        statements = vex_service.stored_statements(home)
        verdicts = [v.verdict for v in VerdictStore(db).history()]
        records = AuditLog(db, public_key=home.public_key())
        actions = [r.action for r in records.records()]
        assert records.verify().ok
    assert [s.revokes for s in statements] == ["", key]
    assert verdicts == ["FAIL", "PASS_WITH_EXCEPTIONS", "FAIL"]
    assert actions[-3:] == ["vex.revoke", "scan", "gate"]


@run
async def test_revoke_with_nothing_in_force_says_so(home: Home) -> None:
    app = real_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)  # no form to fill in
        assert messages(app)[-1] == (
            f"no VEX statement is in force for {CVE}: nothing to revoke (press t to triage it)"
        )


@run
async def test_revoke_without_the_signing_key_is_one_line(tmp_path: Path) -> None:
    home, key = excepted_home(tmp_path / "home")
    home.appliance_key.rename(tmp_path / "elsewhere.key")
    app = real_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot)
        await pilot.press("r")
        await settle(pilot)
        await pilot.press(*"no longer holds", "enter")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        refusal = messages(app)[-1]
        assert str(home.appliance_key) in refusal
        assert "\n" not in refusal
    assert [s.key for s in vex_service.stored_statements(home)] == [key]


@run
async def test_revoke_cancelled_changes_nothing() -> None:
    service = FakeService(rows=(finding(2),))  # not_affected by urn:stella:vex:2#0
    app = StellaApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert isinstance(app.screen, RevokeScreen)
        assert text_of(app, "#revoke-statement") == (
            "urn:stella:vex:2#0\n"
            "2026-10-01T00:00:00Z vendor not_affected (vulnerable_code_not_present)"
        )
        await pilot.press(*"typed, then thought better", "escape")
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
    assert service.revoked == []


@run
async def test_audit_pages_through_a_long_log(home: Home) -> None:
    add_audit_records(home, 120)  # with the gated home's scan and gate: 122 records
    app = real_app(home)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)
        table = app.screen.query_one(DataTable)

        def seqs() -> list[int]:
            return [int(str(table.get_row_at(i)[0])) for i in range(table.row_count)]

        assert seqs() == list(range(122, 72, -1))
        assert text_of(app, "#audit-range") == ("records 1–50 of 122, newest first (PgDn 72 older)")
        await pilot.press("pagedown")
        await settle(pilot)
        assert seqs() == list(range(72, 22, -1))
        assert text_of(app, "#audit-range") == (
            "records 51–100 of 122, newest first (PgUp 50 newer, PgDn 22 older)"
        )
        assert "#72 scan" in text_of(app, "#audit-record")
        await pilot.press("pagedown")
        await settle(pilot)
        assert seqs() == list(range(22, 0, -1))
        assert text_of(app, "#audit-range") == (
            "records 101–122 of 122, newest first (PgUp 100 newer)"
        )
        assert [str(table.get_row_at(i)[2]) for i in (20, 21)] == ["gate", "scan"]
        await pilot.press("pagedown")  # nothing older: the page stays
        await settle(pilot)
        assert seqs()[0] == 22
        await pilot.press("pageup")
        await settle(pilot)
        assert seqs() == list(range(72, 22, -1))
        await pilot.press("pageup")
        await settle(pilot)
        assert seqs()[0] == 122
        await pilot.press("pagedown", "pagedown")
        await settle(pilot)
        assert seqs()[0] == 22
        await pilot.press("r")  # back to the newest page
        await settle(pilot)
        assert seqs()[0] == 122
        await pilot.press("v")
        await settle(pilot)
        assert text_of(app, "#audit-check") == (
            "chain intact: 122 records, head checkpoint signature valid"
        )


async def start_slow_import(pilot: Pilot[None], service: SlowService) -> int:
    """Open the inbox and start an import that waits on ``service.gate``; returns how often
    the inbox had been read before."""
    await settle(pilot)
    await pilot.press("m")
    await settle(pilot)
    reads = service.inbox_reads
    await pilot.press("enter")
    await until(pilot, lambda: bool(service.calls), "the import started")
    return reads


@run
async def test_a_second_enter_does_not_cancel_the_running_import() -> None:
    service = SlowService()
    app = StellaApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        reads = await start_slow_import(pilot, service)
        await pilot.press("enter")  # while the first import runs
        await pilot.pause()
        assert warnings(app) == ["an import is already running"]
        service.gate.set()
        await settle(pilot)
        assert service.calls == ["import next.stella.tar.zst"]
        assert text_of(app, "#import-reason") == "next.stella.tar.zst imported"
        assert text_of(app, "#import-steps").splitlines() == [
            "found next.stella.tar.zst",
            "verified next.stella.tar.zst",
            "loaded next.stella.tar.zst",
        ]
        assert service.inbox_reads == reads + 1  # the inbox was read again
        await pilot.press("enter")  # and once it is done, the next import may start
        await settle(pilot)
        assert len(service.calls) == 2


@run
async def test_quitting_during_an_import_lets_it_finish() -> None:
    service = SlowService()
    app = StellaApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await start_slow_import(pilot, service)
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running
    service.gate.set()
    assert await asyncio.to_thread(service.finished.wait, 10)
    assert service.progress_errors == []  # reporting a step never broke the import


@run
async def test_verifying_during_an_export_does_not_cancel_it(tmp_path: Path) -> None:
    out = tmp_path / "audit.zip"
    service = SlowService()
    app = StellaApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "v")
        await pilot.press("x")
        await settle(pilot)
        assert isinstance(app.screen, ExportScreen)
        app.screen.query_one(Input).value = str(out)
        await pilot.press("enter")
        await until(pilot, lambda: bool(service.calls), "the export started")
        await pilot.press("c")  # verify while the export is written
        await until(
            pilot,
            lambda: text_of(app, "#verdict-action").startswith("verified FAIL"),
            "the verdict was verified",
        )
        await pilot.press("x")  # a second export while the first runs: refused
        await pilot.pause()
        assert isinstance(app.screen, VerdictScreen)
        assert warnings(app) == ["an export is already running"]
        service.gate.set()
        await settle(pilot)
        assert text_of(app, "#verdict-action").startswith(f"wrote {out} (4096 bytes")
    assert service.calls == [f"export {out}"]


@run
async def test_a_second_vex_change_waits_for_the_first() -> None:
    service = SlowService(rows=(finding(2),))  # not_affected by urn:stella:vex:2#0
    app = StellaApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_detail(pilot)
        detail = app.screen
        await pilot.press("r")
        await settle(pilot)
        await pilot.press(*"no longer holds", "enter")
        await until(pilot, lambda: bool(service.calls), "the revocation started")
        assert current(app) is detail
        for key in ("t", "r", "escape"):  # neither a triage, another revocation, nor leaving
            await pilot.press(key)
            await pilot.pause()
            assert current(app) is detail
        assert len(warnings(app)) == 3
        assert warnings(app)[0] == "a VEX statement is already being signed; wait for its verdict"
        service.gate.set()
        await settle(pilot)
        assert isinstance(app.screen, VerdictScreen)
    assert service.calls == ["revoke urn:stella:vex:2#0"]
    assert service.triaged == []


@run
async def test_enter_in_a_triage_text_field_signs() -> None:
    service = FakeService(rows=(finding(0),))
    app = StellaApp(service)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_triage(pilot)
        assert isinstance(app.screen, TriageScreen)
        app.screen.query_one("#text", Input).focus()
        await pilot.press(*"the parser never sees input", "enter")
        await settle(pilot)
        assert isinstance(app.screen, VerdictScreen)
    (request,) = service.triaged
    assert request.text == "the parser never sees input"


@run
async def test_dashboard_shows_a_refused_bundle_by_its_whole_name() -> None:
    app = StellaApp(FakeService())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        imports = text_of(app, "#imports")
        assert f"REFUSED {REFUSED_BUNDLE}  sequence 6 is not newer" in imports


def test_short_cuts_digests_only() -> None:
    assert short("sha256:" + "ab" * 32) == "sha256:abababababab"
    assert short("sha256:" + "ab" * 32, 4) == "sha256:abab"
    assert short(REFUSED_BUNDLE) == REFUSED_BUNDLE
    assert short("c:/bundles/x.stella.tar.zst") == "c:/bundles/x.stella.tar.zst"
    assert short(None) == short("") == "-"


@run
async def test_findings_table_uses_every_line_at_80x24() -> None:
    app = StellaApp(FakeService())  # 40 findings: more than fit
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press_settled(pilot, "i", "enter")
        table = app.screen.query_one(FindingsTable)
        assert table.show_vertical_scrollbar
        assert not table.show_horizontal_scrollbar
        assert table.scrollable_content_region.height == 1 + 18  # the header and 18 rows
        await pilot.press("pagedown")  # a page is the 18 rows on screen
        assert table.cursor == 18
