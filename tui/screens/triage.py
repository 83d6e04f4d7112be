"""The triage form (modal): OpenVEX status, justification from the spec's list, impact or
action statement, optional expiry. Submitting (ctrl+s, or Enter in a text field) checks the
decision as the VEX service would, then signs it through the service and re-gates; the form
closes with the result. A refusal keeps the form and what was typed, marks the field and
says why."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Footer, Input, Label, Select, Static

from appliance.console.views import FindingRow, ImageFindings, TriageRequest, TriageResult
from appliance.vex.model import Justification, VexError, VexStatus, parse_time
from tui.model import FormProblem, form_refusal, triage_problem
from tui.screens.base import Failed, blocking, service_of

FIELDS = ("status", "justification", "text", "expires")


class TriageScreen(ModalScreen[TriageResult | None]):
    """Decide about one finding of one image; dismisses with the signed result."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Sign"),
    ]

    def __init__(self, view: ImageFindings, row: FindingRow) -> None:
        super().__init__()
        self.view = view
        self.row = row
        self.signing = False  # the statement is being signed: the form waits for the verdict

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
            suggested = self.row.suggestion
            if suggested is not None:
                yield Static(
                    Text(
                        f"Suggested from reachability ({self.row.reachability}): not_affected, "
                        f"{suggested[0].value}. Check the evidence; it is signed only when "
                        "you confirm with Sign.",
                        "bold yellow",
                    ),
                    id="triage-suggestion",
                )
            yield Label("Justification (not_affected)")
            justification: Select[Justification] = Select(
                [(j.value, j) for j in Justification], prompt="none", id="justification"
            )
            if suggested is not None:
                justification.value = suggested[0]
            yield justification
            yield Label("Impact (not_affected) or action (affected) statement")
            yield Input(
                value=suggested[1] if suggested is not None else "",
                placeholder="e.g. the parser is never given untrusted input",
                id="text",
            )
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

    def refuse(self, problem: FormProblem) -> None:
        """Keep the form, mark the field at fault, move to it and say why."""
        for name in FIELDS:
            self.query_one(f"#{name}").set_class(name == problem.field, "-refused")
        field: Widget = self.query_one(f"#{problem.field}")
        field.focus()
        self.query_one("#triage-error", Static).update(Text(problem.message, "bold red"))

    def action_submit(self) -> None:
        if self.signing:
            return
        try:
            request = self.request()
        except VexError as e:
            self.refuse(FormProblem("expires", form_refusal(e.diagnostics()).message))
            return
        problem = triage_problem(
            request.status,
            request.justification,
            request.text,
            request.expires,
            service_of(self.app).now(),
        )
        if problem is not None:
            self.refuse(problem)
            return
        self.signing = True
        self.query_one("#triage-error", Static).update(
            Text(f"signing the VEX statement and gating {request.image}…", "bold")
        )
        self.sign(request)

    @work(group="triage")  # not exclusive: cancelling it would not stop the signing
    async def sign(self, request: TriageRequest) -> None:
        try:
            result = await blocking(self, service_of(self.app).triage, request)
        finally:
            self.signing = False
        if isinstance(result, Failed):
            self.refuse(form_refusal(f"refused: {result.message}"))
            return
        self.dismiss(result)

    def action_cancel(self) -> None:
        if self.signing:
            self.query_one("#triage-error", Static).update(
                Text("the statement is being signed; wait for the verdict", "bold yellow")
            )
            return
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
