"""Finding detail: advisory, fix, scores, the evidence chain package -> file -> layer ->
entrypoint, the match explanation and the VEX history; ``t`` opens the triage form, ``r``
revokes the statement in force. After either, the finding is read again."""

from __future__ import annotations

import asyncio
from functools import partial
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

from appliance.console.views import (
    FindingRow,
    ImageFindings,
    RevokeRequest,
    TriageRequest,
    TriageResult,
    VexEntry,
)
from bundles.errors import StellaError
from tui.screens.base import describe, label_grid, service_of, short, vex_entry_text
from tui.screens.dashboard import SEVERITY_STYLE
from tui.screens.revoke import RevokeScreen
from tui.screens.triage import TriageScreen
from tui.screens.verdict import VerdictScreen

LABELS = 9  # the label column's width, so the finding's grid and the history's line up


def finding_text(row: FindingRow) -> Group:
    head = Text(f"{row.id}  ", "bold")
    head.append(row.severity.value.upper(), SEVERITY_STYLE.get(row.severity.value, "bold"))
    head.append(f"  {row.package} {row.version}")
    grid = label_grid(LABELS)
    grid.add_row("Summary", Text(row.summary) if row.summary else Text("none published", "dim"))
    grid.add_row("Aliases", Text(", ".join(row.aliases) or "-"))
    grid.add_row("Fixed in", Text(", ".join(row.fixed_versions) or f"no fix ({row.fix_state})"))
    grid.add_row(
        "Severity",
        Text(f"{row.severity.value} from {row.severity_source or '?'}: {row.severity_detail}")
        if row.severity_source and row.severity_source != "none"
        else Text(f"unknown: {row.severity_detail or 'no source rates it'}", "dim"),
    )
    if row.ratings:
        grid.add_row(
            "Ratings",
            Text(
                "\n".join(
                    f"{source} {severity}"
                    + (f" {score:.1f}" if score is not None else "")
                    + f" ({provider})"
                    for source, provider, severity, score in row.ratings
                )
            ),
        )
    for version, score, vector in row.cvss:
        grid.add_row("CVSS", Text(f"{score:.1f} (v{version}) {vector}"))
    if not row.cvss:
        grid.add_row("CVSS", Text(f"none; severity from {row.severity_detail or '?'}", "dim"))
    grid.add_row(
        "EPSS",
        Text(f"{row.epss[0]} (percentile {row.epss[1]})") if row.epss else Text("not known", "dim"),
    )
    grid.add_row(
        "KEV",
        Text(f"yes, added {row.kev or '?'}", "bold red")
        if row.kev is not None
        else Text("no", "dim"),
    )
    chain = Text(f"package {row.purl}")
    for path, layer in row.files:
        chain.append(f"\n -> file {path}")
        chain.append(f"\n    -> layer {short(layer, 16)}" if layer else "\n    -> layer unknown")
    for entry in row.entrypoints:
        chain.append(f"\n       -> entrypoint {entry}", "bold")
    chain.append(f"\n({row.reachability})", "bold" if row.reachable else "dim")
    grid.add_row("Evidence", chain)
    grid.add_row("Match", Text("\n".join(row.explanations) or "-"))
    status = Text(row.status.value, "bold")
    if row.vex_statement:
        status.append(f" by {row.vex_statement}")
    if row.exception_expires:
        status.append(f" (exception until {row.exception_expires})", "yellow")
    grid.add_row("VEX", status)
    return Group(head, grid)


def history_text(entries: tuple[VexEntry, ...]) -> Table:
    grid = label_grid(LABELS)
    if not entries:
        grid.add_row("History", Text("no VEX statement names this vulnerability", "dim"))
    for i, e in enumerate(entries):
        grid.add_row("History" if i == 0 else "", vex_entry_text(e))
    return grid


class DetailScreen(Screen[bool]):
    """One finding; dismisses with True when a triage or revocation changed the image's
    findings."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("t", "triage", "Triage"),
        Binding("r", "revoke", "Revoke"),
    ]

    def __init__(self, view: ImageFindings, row: FindingRow) -> None:
        super().__init__()
        self.view = view
        self.row = row
        self.changed = False
        self.history: tuple[VexEntry, ...] = ()
        self._signing = False  # a triage or revocation is under way: it is never cancelled

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static(finding_text(self.row), id="finding")
            yield Static("VEX history: loading…", id="history")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"{self.row.id} in {self.view.name}"
        self.query_one("#detail").focus()
        self.load_history()

    @work(exclusive=True, group="history")
    async def load_history(self) -> None:
        try:
            entries = await asyncio.to_thread(service_of(self.app).vex_history, self.row)
        except (StellaError, OSError) as e:
            self.query_one("#history", Static).update(Text(describe(e), "bold red"))
            return
        self.history = entries
        self.query_one("#history", Static).update(history_text(entries))

    @work(exclusive=True, group="row")
    async def reload_row(self) -> None:
        """Read the finding again after a VEX change, so the status shown, and the statement
        a revocation would revoke, are the ones now in force."""
        try:
            view = await asyncio.to_thread(service_of(self.app).findings, self.view.name)
        except (StellaError, OSError) as e:
            self.notify(describe(e), title="Cannot re-read the finding", severity="error")
            return
        row = next((r for r in view.rows if r.key == self.row.key), None)
        if row is not None:
            self.view, self.row = view, row
            self.query_one("#finding", Static).update(finding_text(row))

    def action_back(self) -> None:
        if not self._busy():  # leaving would cancel the worker, not the signing
            self.dismiss(self.changed)

    def _busy(self) -> bool:
        """Whether a triage or revocation is under way (and say so): one at a time."""
        if self._signing:
            self.notify(
                "a VEX statement is already being signed; wait for its verdict",
                severity="warning",
            )
        return self._signing

    def action_triage(self) -> None:
        if self._busy():
            return
        self.app.push_screen(TriageScreen(self.view, self.row), self._triage)

    def _triage(self, request: TriageRequest | None) -> None:
        if request is not None:
            self._signing = True
            self.run_triage(request)

    # Neither worker is exclusive: cancelling one would not stop the signing it waits for.
    @work(group="triage")
    async def run_triage(self, request: TriageRequest) -> None:
        try:
            self.notify(f"signing the VEX statement and gating {request.image}…", timeout=3)
            result = await asyncio.to_thread(service_of(self.app).triage, request)
        except (StellaError, OSError) as e:
            self.notify(describe(e), title="Triage refused", severity="error", timeout=10)
            return
        finally:
            self._signing = False
        self._changed(request.image, result)

    def _changed(self, image: str, result: TriageResult) -> None:
        self.changed = True
        self.load_history()
        self.reload_row()
        self.app.push_screen(VerdictScreen(image, triage=result))

    def action_revoke(self) -> None:
        if self._busy():
            return
        key = self.row.vex_statement
        if key is None:
            self.notify(
                f"no VEX statement is in force for {self.row.id}: nothing to revoke "
                "(press t to triage it)",
                title="Revoke",
                severity="error",
                timeout=10,
            )
            return
        entry = next((e for e in self.history if e.key == key), None)
        self.app.push_screen(RevokeScreen(self.row, key, entry), partial(self._revoke, key))

    def _revoke(self, key: str, reason: str | None) -> None:
        """Revoke ``key``, the statement the form showed, once a reason was given."""
        if reason is not None:
            self._signing = True
            self.run_revoke(RevokeRequest(self.view.name, self.view.digest, key, reason))

    @work(group="triage")
    async def run_revoke(self, request: RevokeRequest) -> None:
        try:
            self.notify(f"signing the revocation and gating {request.image}…", timeout=3)
            result = await asyncio.to_thread(service_of(self.app).revoke, request)
        except (StellaError, OSError) as e:
            self.notify(describe(e), title="Revoke refused", severity="error", timeout=10)
            return
        finally:
            self._signing = False
        self._changed(request.image, result)
