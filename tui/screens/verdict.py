"""Verdict: the latest signed verdict of an image, read back verified: verdict, reason
codes with their messages, the explanation and the evidence digests. After a triage it also
says what the verdict was before."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from appliance.console.views import TriageResult, VerdictView
from bundles.errors import StellaError
from tui.screens.base import describe, label_grid, service_of
from tui.screens.dashboard import VERDICT_STYLE
from tui.screens.export import ExportScreen


def verdict_text(v: VerdictView, triage: TriageResult | None) -> Group:
    parts: list[Text | Table] = []
    if triage is not None:
        change = Text("After triage: ", "bold")
        change.append(triage.before or "not gated", VERDICT_STYLE.get(triage.before or "", ""))
        change.append(" -> ")
        change.append(triage.after, VERDICT_STYLE.get(triage.after, ""))
        change.append(f"  (statement {triage.statement}, audit #{triage.vex_audit_seq})")
        parts.append(change)
    head = Text(v.verdict, VERDICT_STYLE.get(v.verdict, "bold"))
    head.append(f"  {v.image}  evaluated {v.evaluation_time}", "bold")
    parts.append(head)
    grid = label_grid()
    grid.add_row("Image", Text(v.digest))
    grid.add_row("Signed by", Text(f"key {v.signer[:16]} (signature verified)"))
    grid.add_row("Policy", Text(v.policy))
    grid.add_row("Snapshot", Text(v.snapshot) if v.snapshot else Text("none", "bold red"))
    grid.add_row("Explain", Text(v.explanation))
    for i, (code, message) in enumerate(v.reasons):
        grid.add_row("Reasons" if i == 0 else "", Text(code, "bold") + Text(f" {message}"))
    if not v.reasons:
        grid.add_row("Reasons", Text("none", "dim"))
    for i, (role, digest) in enumerate(v.evidence):
        grid.add_row("Evidence" if i == 0 else "", Text(f"{role:<13}{digest}"))
    grid.add_row("Bundle", Text(v.bundle))
    grid.add_row("Referrer", Text(v.referrer))
    grid.add_row("Audit", Text(f"record #{v.audit_seq}"))
    parts.append(grid)
    return Group(*parts)


class VerdictScreen(Screen[None]):
    """The image's latest verdict."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "check", "Verify"),
        Binding("x", "export", "Export audit package"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, image: str, *, triage: TriageResult | None = None) -> None:
        super().__init__()
        self.image = image
        self.triage = triage
        self._exporting = False  # an export is being written: it is never cancelled

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="verdict"):
            yield Static("", id="verdict-action")
            yield Static("reading the signed verdict…", id="verdict-body")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Verdict of {self.image}"
        self.query_one("#verdict").focus()
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(exclusive=True, group="verdict")
    async def load(self) -> None:
        body = self.query_one("#verdict-body", Static)
        try:
            view = await asyncio.to_thread(service_of(self.app).verdict, self.image)
        except (StellaError, OSError) as e:
            body.update(Text(describe(e), "bold red"))
            return
        if view is None:
            body.update(Text(f"{self.image} has not been gated yet (stella gate)", "bold"))
            return
        body.update(verdict_text(view, self.triage))

    def action_check(self) -> None:
        self.check()

    @work(exclusive=True, group="verify")  # reads only: a newer check may replace it
    async def check(self) -> None:
        line = self.query_one("#verdict-action", Static)
        line.update("verifying the newest verdict…")
        try:
            c = await asyncio.to_thread(service_of(self.app).verify_verdict, self.image)
        except (StellaError, OSError) as e:
            line.update(Text(f"NOT VERIFIED: {describe(e)}", "bold red"))
            return
        where = f"gate record #{c.audit_seq} in the verified audit chain" if c.audit_seq else ""
        line.update(
            Text(
                f"verified {c.verdict}: signed by {c.signer}; statement {c.statement}; "
                f"{c.evidence} evidence blobs match their digests; {where}",
                "bold green",
            )
        )

    def action_export(self) -> None:
        if self._exporting:
            self.notify("an export is already running", severity="warning")
            return
        name = self.image.replace("/", "_").replace(":", "_").replace("@", "_")
        self.app.push_screen(
            ExportScreen(self.image, Path.cwd() / f"audit-{name}.zip"), self._export
        )

    def _export(self, out: Path | None) -> None:
        if out is not None:
            self._exporting = True
            self.export(out)

    @work(group="export")  # not exclusive: cancelling the worker would not stop the writing
    async def export(self, out: Path) -> None:
        line = self.query_one("#verdict-action", Static)
        try:
            line.update(Text(f"writing {out}…"))
            done = await asyncio.to_thread(
                service_of(self.app).export_audit_package, self.image, out
            )
        except (StellaError, OSError) as e:
            line.update(Text(f"NOT EXPORTED: {describe(e)}", "bold red"))
            return
        finally:
            self._exporting = False
        line.update(Text(f"wrote {done.path} ({done.size} bytes, {done.digest})", "bold green"))
