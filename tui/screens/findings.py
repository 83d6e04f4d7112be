"""Findings of one image: a virtual table over the filtered, sorted model. ``/`` searches
ids and packages; keys filter by severity level, VEX status, KEV, reachability, fix and
package type, and ``s`` changes the order. A new filter or order starts at the first row."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from appliance.console.views import ImageFindings
from tui.model import FindingFilter, FindingsModel, Flag, Sort
from tui.screens.base import HELP, Failed, MessageLine, blocking, service_of, short, shown
from tui.screens.detail import DetailScreen
from tui.screens.verdict import VerdictScreen
from tui.widgets.findings_table import FindingsTable


class FindingsScreen(Screen[None]):
    """Triage list of one image's findings."""

    # the list, not the search field: keys typed ahead of the screen go to the list's keys
    AUTO_FOCUS = "#findings-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        HELP,
        Binding("escape", "back", "Back"),
        Binding("slash", "search", "Search"),
        Binding("s", "sort", "Sort"),
        Binding("l", "severity", "Level"),
        Binding("o", "status", "VEX"),
        Binding("e", "flag('kev')", "KEV"),
        Binding("p", "flag('reachable')", "Reach"),
        Binding("f", "flag('fix')", "Fix"),
        Binding("y", "package_type", "Type"),
        Binding("z", "clear", "Clear"),
        Binding("v", "verdict", "Verdict"),
    ]

    def __init__(self, image: str) -> None:
        super().__init__()
        self.image = image
        self.view: ImageFindings | None = None
        self.model = FindingsModel(())
        self.filter = FindingFilter()
        self.sort = Sort.SEVERITY

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            Text(f"{self.image}: scanning and matching…"), id="findings-title", classes="status"
        )
        yield Input(placeholder="search id or package (/)", id="findings-search")
        yield Static("", id="findings-filter", classes="status")
        yield FindingsTable(id="findings-table")
        yield MessageLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Findings of {self.image}"
        self.query_one(FindingsTable).focus()

    def on_screen_resume(self) -> None:
        if self.view is None:
            self.load()

    def on_resize(self, event: events.Resize) -> None:
        self.call_after_refresh(self._describe)

    @work(exclusive=True, group="findings")
    async def load(self) -> None:
        view = await blocking(self, service_of(self.app).findings, self.image)
        if isinstance(view, Failed):
            shown(self, view, "Cannot read the findings", self.query_one("#findings-title", Static))
            return
        self.show_view(view)

    def show_view(self, view: ImageFindings) -> None:
        """Replace the model with ``view`` and repaint under the current filter and order,
        the cursor staying on its finding when the image was shown before."""
        again = self.view is not None
        self.view = view
        self.model = FindingsModel(view.rows)
        self.query_one("#findings-title", Static).update(
            f"{view.name} {short(view.digest)}  snapshot {view.snapshot or 'none'}  as of {view.at}"
        )
        self.apply(keep=again)

    def apply(self, *, keep: bool = False) -> None:
        rows = self.model.select(self.filter, self.sort)
        self.query_one(FindingsTable).set_rows(rows, keep=keep)
        self._describe()

    def _describe(self) -> None:
        table = self.query_one(FindingsTable)
        text = Text(
            f"{len(table.rows):,} of {len(self.model.rows):,} findings by {self.sort.value}; "
            f"{self.filter.describe()}"
        )
        hidden = table.hidden_columns
        if hidden:
            text.append(f"; hidden: {', '.join(hidden)}", "dim")
        self.query_one("#findings-filter", Static).update(text)

    @on(Input.Changed, "#findings-search")
    def _search(self, event: Input.Changed) -> None:
        self.filter = self.filter.with_text(event.value)
        self.apply()

    @on(Input.Submitted, "#findings-search")
    def _searched(self) -> None:
        self.query_one(FindingsTable).focus()

    def action_choose(self) -> None:
        row = self.query_one(FindingsTable).current
        if self.view is not None and row is not None:
            self.app.push_screen(DetailScreen(self.view, row), self._after_detail)

    def _after_detail(self, triaged: bool | None) -> None:
        if triaged:  # a VEX statement changed the findings: read them again
            self.load()

    def action_back(self) -> None:
        """Esc in the search clears it, then closes it; elsewhere it goes back."""
        search = self.query_one(Input)
        if search.has_focus and search.value:
            search.value = ""
        elif search.has_focus:
            self.query_one(FindingsTable).focus()
        else:
            self.app.pop_screen()

    def action_search(self) -> None:
        self.query_one(Input).focus()

    def action_sort(self) -> None:
        self.sort = self.sort.next()
        self.apply()

    def action_severity(self) -> None:
        self.filter = self.filter.next_severity()
        self.apply()

    def action_status(self) -> None:
        self.filter = self.filter.next_status()
        self.apply()

    def action_flag(self, name: str) -> None:
        self.filter = self.filter.toggle(Flag(name))
        self.apply()

    def action_package_type(self) -> None:
        self.filter = self.filter.next_type(self.model.types)
        self.apply()

    def action_clear(self) -> None:
        self.filter = FindingFilter()
        self.query_one(Input).value = ""
        self.apply()

    def action_verdict(self) -> None:
        self.app.push_screen(VerdictScreen(self.image))
