"""The revocation confirmation (modal): which statement is revoked, and the operator's reason,
which is signed into the revocation and kept in the audit log. Submitting revokes through the
service and re-gates; the form closes with the result. A refusal keeps the form and says
why."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Static

from appliance.console.views import FindingRow, ImageFindings, RevokeRequest, TriageResult, VexEntry
from tui.screens.base import Failed, blocking, service_of, vex_entry_text


def statement_text(key: str, entry: VexEntry | None) -> Text:
    """The statement about to be revoked, as the history shows it."""
    text = Text(key, "bold")
    if entry is not None:
        text.append("\n").append_text(vex_entry_text(entry))
    return text


class RevokeScreen(ModalScreen[TriageResult | None]):
    """Confirm revoking the VEX statement in force for one finding; dismisses with the
    signed result, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Revoke"),
    ]

    def __init__(
        self, view: ImageFindings, row: FindingRow, key: str, entry: VexEntry | None
    ) -> None:
        super().__init__()
        self.view = view
        self.row = row
        self.signing = False
        self.key = key
        self.entry = entry

    def compose(self) -> ComposeResult:
        with Vertical(id="revoke"):
            yield Static(
                Text(f"Revoke the VEX statement for {self.row.id} in {self.row.package}", "bold")
            )
            yield Static(statement_text(self.key, self.entry), id="revoke-statement")
            yield Label("Reason (required; signed into the revocation and audited)")
            yield Input(
                placeholder="e.g. the code is reachable since the last upgrade", id="reason"
            )
            yield Static("", id="revoke-error")
            with Horizontal(id="revoke-buttons"):
                yield Button("Revoke", variant="error", id="revoke-confirm")
                yield Button("Cancel", id="revoke-cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def action_submit(self) -> None:
        if self.signing:
            return
        reason = " ".join(self.query_one("#reason", Input).value.split())
        error = self.query_one("#revoke-error", Static)
        if not reason:
            error.update(Text("give a reason: why the statement no longer holds", "bold red"))
            return
        self.signing = True
        error.update(Text(f"signing the revocation and gating {self.view.name}…", "bold"))
        self.sign(RevokeRequest(self.view.name, self.view.digest, self.key, reason))

    @work(group="revoke")  # not exclusive: cancelling it would not stop the signing
    async def sign(self, request: RevokeRequest) -> None:
        try:
            result = await blocking(self, service_of(self.app).revoke, request)
        finally:
            self.signing = False
        if isinstance(result, Failed):
            self.query_one("#revoke-error", Static).update(
                Text(f"refused: {result.message}", "bold red")
            )
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        if self.signing:
            self.query_one("#revoke-error", Static).update(
                Text("the revocation is being signed; wait for the verdict", "bold yellow")
            )
            return
        self.dismiss(None)

    @on(Input.Submitted, "#reason")
    def _submitted(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#revoke-confirm")
    def _confirm(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#revoke-cancel")
    def _cancel(self) -> None:
        self.action_cancel()
