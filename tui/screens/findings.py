"""Findings of one image: a virtual table over the filtered model; keys filter by severity,
VEX status, KEV, reachability and fix availability, ``/`` searches ids and packages."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from appliance.console.views import ImageFindings
from bundles.errors import StellaError
from tui.model import FindingFilter, FindingsModel, Flag
from tui.screens.base import describe, service_of, short
from tui.screens.detail import DetailScreen
from tui.widgets.findings_table import FindingsTable


class FindingsScreen(Screen[None]):
    """Triage list of one image's findings."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("slash", "search", "Search"),
        Binding("s", "severity", "Sev"),
        Binding("v", "status", "VEX"),
        Binding("k", "flag('kev')", "KEV"),
        Binding("r", "flag('reachable')", "Reach"),
        Binding("f", "flag('fix')", "Fix"),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self, image: str) -> None:
        super().__init__()
        self.image = image
        self.view: ImageFindings | None = None
        self.model = FindingsModel(())
        self.filter = FindingFilter()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            Text(f"{self.image}: scanning and matching…"), id="findings-title", classes="status"
        )
        yield Input(placeholder="search id or package (/)", id="findings-search")
        yield Static("", id="findings-filter", classes="status")
        yield FindingsTable(id="findings-table")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Findings of {self.image}"
        self.query_one(FindingsTable).focus()

    def on_screen_resume(self) -> None:
        if self.view is None:
            self.load()

    @work(exclusive=True, group="findings")
    async def load(self) -> None:
        try:
            view = await asyncio.to_thread(service_of(self.app).findings, self.image)
        except (StellaError, OSError) as e:
            self.query_one("#findings-title", Static).update(Text(describe(e), "bold red"))
            return
        self.show_view(view)

    def show_view(self, view: ImageFindings) -> None:
        """Replace the model with ``view`` and repaint under the current filter."""
        self.view = view
        self.model = FindingsModel(view.rows)
        self.query_one("#findings-title", Static).update(
            f"{view.name} {short(view.digest)}  snapshot {view.snapshot or 'none'}  as of {view.at}"
        )
        self.apply()

    def apply(self) -> None:
        rows = self.model.select(self.filter)
        self.query_one(FindingsTable).set_rows(rows)
        self.query_one("#findings-filter", Static).update(
            Text(f"{len(rows)} of {len(self.model.rows)} findings; {self.filter.describe()}")
        )

    @on(Input.Changed, "#findings-search")
    def _search(self, event: Input.Changed) -> None:
        self.filter = self.filter.with_text(event.value)
        self.apply()

    @on(Input.Submitted, "#findings-search")
    def _searched(self) -> None:
        self.query_one(FindingsTable).focus()

    @on(FindingsTable.Selected)
    def _selected(self, event: FindingsTable.Selected) -> None:
        if self.view is not None:
            self.app.push_screen(DetailScreen(self.view, event.row), self._after_detail)

    def _after_detail(self, triaged: bool | None) -> None:
        if triaged:  # a VEX statement changed the findings: read them again
            self.load()

    def action_search(self) -> None:
        self.query_one(Input).focus()

    def action_severity(self) -> None:
        self.filter = self.filter.next_severity()
        self.apply()

    def action_status(self) -> None:
        self.filter = self.filter.next_status()
        self.apply()

    def action_flag(self, name: str) -> None:
        self.filter = self.filter.toggle(Flag(name))
        self.apply()

    def action_clear(self) -> None:
        self.filter = FindingFilter()
        self.query_one(Input).value = ""
        self.apply()
