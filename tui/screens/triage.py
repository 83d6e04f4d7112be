"""The triage form (modal): OpenVEX status, justification from the spec's list, impact or
action statement, optional expiry. Submitting (ctrl+s, or Enter in a text field) dismisses
with a :class:`TriageRequest`; the screen below signs it through the service and re-gates."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Footer, Input, Label, Select, Static

from appliance.console.views import FindingRow, ImageFindings, TriageRequest
from appliance.vex.model import Justification, VexError, VexStatus, parse_time


class TriageScreen(ModalScreen[TriageRequest | None]):
    """Decide about one finding of one image."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Sign"),
    ]

    def __init__(self, view: ImageFindings, row: FindingRow) -> None:
        super().__init__()
        self.view = view
        self.row = row

    def compose(self) -> ComposeResult:
        with Vertical(id="triage"):
            yield Static(
                Text(f"Triage {self.row.id} in {self.row.package} {self.row.version}", "bold"),
                id="triage-title",
            )
            yield Label("Status")
            yield Select(
                [(s.value, s) for s in VexStatus],
                value=VexStatus.NOT_AFFECTED,
                allow_blank=False,
                id="status",
            )
            yield Label("Justification (not_affected)")
            yield Select(
                [(j.value, j) for j in Justification],
                prompt="none",
                id="justification",
            )
            yield Label("Impact (not_affected) or action (affected) statement")
            yield Input(placeholder="e.g. the parser is never given untrusted input", id="text")
            yield Label("Expires (optional, e.g. 2026-12-31): makes it an exception")
            yield Input(placeholder="YYYY-MM-DD or RFC 3339; empty: no expiry", id="expires")
            yield Static("", id="triage-error")
            with Horizontal(id="triage-buttons"):
                yield Button("Sign", variant="primary", id="sign")
                yield Button("Cancel", id="cancel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#status", Select).focus()

    def request(self) -> TriageRequest:
        """The form as a request; raises :class:`VexError` for an expiry that does not parse."""
        status = self.query_one("#status", Select).value
        justification = self.query_one("#justification", Select).value
        expires = self.query_one("#expires", Input).value.strip()
        if not isinstance(status, VexStatus):
            raise VexError("choose a status")
        return TriageRequest(
            image=self.view.name,
            digest=self.view.digest,
            vulnerability=self.row.id,
            purl=self.row.purl,
            status=status,
            justification=justification if isinstance(justification, Justification) else None,
            text=self.query_one("#text", Input).value.strip(),
            expires=parse_time(expires, where="expires") if expires else None,
        )

    def action_submit(self) -> None:
        try:
            request = self.request()
        except VexError as e:
            self.query_one("#triage-error", Static).update(Text(e.diagnostics(), "bold red"))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#text, #expires")
    def _submitted(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#sign")
    def _sign(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.action_cancel()
