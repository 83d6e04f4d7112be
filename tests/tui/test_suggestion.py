"""The triage form offers what reachability suggests: a finding whose vulnerable code is not
reached (or not present) opens the form with the not_affected justification and the evidence
as its impact statement, marked as a suggestion; nothing is signed until the operator confirms
with Sign, and the operator may change it first."""

from __future__ import annotations

from dataclasses import replace

from rich.console import Console
from textual.widgets import Input, Select

from appliance.console.views import FindingRow
from appliance.vex.model import Justification, VexStatus
from tests.tui.fakes import FakeService, finding
from tests.tui.test_app import open_detail, run, settle, text_of
from tui.app import StellaApp
from tui.screens.detail import finding_text
from tui.screens.triage import TriageScreen

NOTE = (
    "curated record CVE-2018-18074: the package is imported, but no entrypoint reaches "
    "requests.sessions.SessionRedirectMixin.rebuild_auth"
)


def suggested(i: int = 1) -> FindingRow:
    return replace(
        finding(i),
        status=VexStatus.AFFECTED,
        vex_statement=None,
        reachability="present-not-reached",
        reachability_note=NOTE,
        suggestion=(Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH, NOTE),
    )


@run
async def test_the_form_is_prefilled_but_signs_only_on_confirmation() -> None:
    row = suggested()
    service = FakeService(rows=(row,))
    app = StellaApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_detail(pilot)
        await pilot.press("t")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, TriageScreen)
        assert "Suggested from reachability (present-not-reached)" in text_of(
            app, "#triage-suggestion"
        )
        assert "signed only when you confirm" in text_of(app, "#triage-suggestion")
        assert form.query_one("#status", Select).value is VexStatus.NOT_AFFECTED
        assert (
            form.query_one("#justification", Select).value
            is Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
        )
        assert form.query_one("#text", Input).value == NOTE
        assert service.triaged == []  # offered, not signed
        await pilot.press("ctrl+s")
        await settle(pilot)
    [request] = service.triaged
    assert request.justification is Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
    assert request.text == NOTE
    assert request.status is VexStatus.NOT_AFFECTED


@run
async def test_a_finding_without_a_suggestion_opens_an_empty_form() -> None:
    service = FakeService(rows=(replace(finding(1), vex_statement=None),))
    app = StellaApp(service)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_detail(pilot)
        await pilot.press("t")
        await settle(pilot)
        form = app.screen
        assert isinstance(form, TriageScreen)
        assert not form.query("#triage-suggestion")
        assert not isinstance(form.query_one("#justification", Select).value, Justification)
        assert form.query_one("#text", Input).value == ""


def test_the_detail_shows_the_chain_note_and_suggestion() -> None:
    row = replace(
        suggested(),
        reachability="reachable",
        reachability_chain=("/app/main.py", "yaml (/usr/lib/yaml/__init__.py)", "yaml.load"),
        suggestion=None,
    )
    console = Console(width=140, record=True, color_system=None)
    console.print(finding_text(row))
    text = console.export_text()
    assert "=> /app/main.py" in text
    assert "=> yaml.load" in text
    assert "SessionRedirectMixin.rebuild_auth" in text  # the note
    assert "a chain from the entrypoint reaches the vulnerable code" in text
    plain = suggested()
    console = Console(width=140, record=True, color_system=None)
    console.print(finding_text(plain))
    assert "not_affected, vulnerable_code_not_in_execute_path" in console.export_text()
