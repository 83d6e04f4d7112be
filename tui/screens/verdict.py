"""Verdict: the latest signed verdict of an image, read back verified: verdict, reason
codes with their messages, the explanation and the evidence digests. After a triage it also
says what the verdict was before."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option

from appliance.console.views import TriageResult, VerdictView
from tui.screens.base import (
    HELP,
    VERDICT_STYLE,
    Failed,
    MessageLine,
    OpenFinding,
    blocking,
    label_grid,
    say,
    service_of,
    shown,
)
from tui.screens.export import ExportScreen


def verdict_text(v: VerdictView, triage: TriageResult | None) -> Group:
    parts: list[Text | Table] = []
    if triage is not None:
        change = Text(f"After the {triage.change}: ", "bold")
        change.append(triage.before or "not gated", VERDICT_STYLE.get(triage.before or "", ""))
        change.append(" -> ")
        change.append(triage.after, VERDICT_STYLE.get(triage.after, ""))
        change.append(f"  (statement {triage.statement}, audit #{triage.vex_audit_seq})")
        parts.append(change)
    head = Text(v.verdict, VERDICT_STYLE.get(v.verdict, "bold"))
    head.append(f"  {v.image}  evaluated {v.evaluation_time}", "bold")
    parts.append(head)
    grid = label_grid(9)
    grid.add_row("Image", Text(v.digest))
    grid.add_row("Signed by", Text(f"key {v.signer[:16]} (signature verified)"))
    grid.add_row("Policy", Text(v.policy))
    grid.add_row("Snapshot", Text(v.snapshot) if v.snapshot else Text("none", "bold red"))
    grid.add_row("Explain", Text(singular(v.explanation)))
    parts.append(grid)
    return Group(*parts)


def verdict_tail(v: VerdictView) -> Table:
    """What follows the reasons: the unknowns' count and the evidence."""
    grid = label_grid(9)
    grid.add_row(
        "Unknowns",
        Text(f"{len(v.unknowns):,} (u lists them)") if v.unknowns else Text("none", "dim"),
    )
    for i, (role, digest) in enumerate(v.evidence):
        grid.add_row("Evidence" if i == 0 else "", Text(f"{role:<13}{digest}"))
    grid.add_row("Bundle", Text(v.bundle))
    grid.add_row("Referrer", Text(v.referrer))
    grid.add_row("Audit", Text(f"record #{v.audit_seq}"))
    return grid


def singular(text: str) -> str:
    """``1 exceptions`` -> ``1 exception``: the counts of a verdict's explanation."""
    return re.sub(r"\b1 (findings|exceptions|unknowns)\b", lambda m: f"1 {m[1][:-1]}", text)


def reason_options(v: VerdictView, with_unknowns: bool) -> list[Option]:
    """The reasons, each opening its finding when it names one; then the unknowns."""
    options = [
        Option(
            Text(f"{'Reasons' if i == 0 else '':<10}", "bold")
            + Text(code, "bold")
            + Text(f" {message}")
            + (
                Text("  (Enter: the finding)", "dim")
                if i < len(v.reason_findings) and v.reason_findings[i][0]
                else Text()
            ),
            id=f"reason-{i}",
        )
        for i, (code, message) in enumerate(v.reasons)
    ]
    if not v.reasons:
        options.append(Option(Text("Reasons   ", "bold") + Text("none", "dim"), disabled=True))
    if with_unknowns:
        options += [
            Option(
                Text(f"{'Unknowns' if i == 0 else '':<10}", "bold")
                + Text(f"{purl or '(image)'} {kind}: {reason}"),
                id=f"unknown-{i}",
            )
            for i, (purl, kind, reason) in enumerate(v.unknowns)
        ]
    return options


class VerdictScreen(Screen[None]):
    """The image's latest verdict."""

    BINDINGS: ClassVar[list[BindingType]] = [
        HELP,
        Binding("escape", "app.pop_screen", "Back"),
        Binding("c", "check", "Check"),
        Binding("w", "export", "Write package"),
        Binding("r", "refresh", "Re-read"),
        Binding("u", "unknowns", "Unknowns"),
    ]

    def __init__(self, image: str, *, triage: TriageResult | None = None) -> None:
        super().__init__()
        self.image = image
        self.triage = triage
        self._exporting = False  # an export is being written: it is never cancelled
        self.view: VerdictView | None = None
        self._unknowns = False

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="verdict"):
            yield Static("reading the signed verdict…", id="verdict-body")
            yield OptionList(id="verdict-reasons")
            yield Static("", id="verdict-tail")
        yield MessageLine()  # below the scrolled view: a result shows wherever it is scrolled
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
        view = await blocking(self, service_of(self.app).verdict, self.image)
        if isinstance(view, Failed):
            shown(self, view, "Cannot read the verdict", body)
            return
        if view is None:
            body.update(Text(f"{self.image} has not been gated yet (stella gate)", "bold"))
            return
        self.view = view
        body.update(verdict_text(view, self.triage))
        self.query_one("#verdict-tail", Static).update(verdict_tail(view))
        self._list()

    def _list(self) -> None:
        if self.view is None:
            return
        reasons = self.query_one(OptionList)
        reasons.clear_options()
        reasons.add_options(reason_options(self.view, self._unknowns))
        if reasons.option_count:
            reasons.highlighted = 0
        reasons.focus()

    def action_unknowns(self) -> None:
        """List the verdict's unknowns below its reasons (again: hide them)."""
        if self.view is not None and not self.view.unknowns:
            say(self, "the verdict has no unknowns")
            return
        self._unknowns = not self._unknowns
        self._list()

    @on(OptionList.OptionSelected, "#verdict-reasons")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        kind, _, index = (event.option_id or "").partition("-")
        if kind != "reason" or self.view is None:
            return
        found = (
            self.view.reason_findings[int(index)]
            if int(index) < len(self.view.reason_findings)
            else ("", "")
        )
        if not found[0]:
            say(self, "this reason is about the image, not one finding")
            return
        self.open_finding(*found)

    @work(exclusive=True, group="verdict-finding")
    async def open_finding(self, vulnerability: str, purl: str) -> None:
        say(self, f"reading {vulnerability}…")
        view = await blocking(self, service_of(self.app).findings, self.image)
        if isinstance(view, Failed):
            shown(self, view, "Cannot read the findings")
            return
        row = next(
            (r for r in view.rows if r.id == vulnerability and (not purl or r.purl == purl)),
            None,
        ) or next((r for r in view.rows if vulnerability in (r.id, *r.aliases)), None)
        if row is None:
            say(self, f"{vulnerability} is no longer a finding of {self.image}", "warning")
            return
        say(self, "")
        self.post_message(OpenFinding(view, row))

    def action_check(self) -> None:
        self.check()

    @work(exclusive=True, group="verify")  # reads only: a newer check may replace it
    async def check(self) -> None:
        say(self, "verifying the newest verdict…")
        c = await blocking(self, service_of(self.app).verify_verdict, self.image)
        if isinstance(c, Failed):
            shown(self, c, "NOT VERIFIED")
            return
        where = f"gate record #{c.audit_seq} in the verified audit chain" if c.audit_seq else ""
        say(
            self,
            Text(
                f"verified {c.verdict}: signed by {c.signer}; statement {c.statement}; "
                f"{c.evidence} evidence blobs match their digests; {where}",
                "bold green",
            ),
        )

    def action_export(self) -> None:
        if self._exporting:
            say(self, "an audit package is already being written; wait for it", "warning")
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
        say(self, f"writing {out}…")
        try:
            done = await blocking(self, service_of(self.app).export_audit_package, self.image, out)
        finally:
            self._exporting = False
        if isinstance(done, Failed):
            shown(self, done, "NOT WRITTEN")
            return
        say(self, Text(f"wrote {done.path} ({done.size:,} bytes, {done.digest})", "bold green"))
