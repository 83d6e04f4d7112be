"""Images: each image's latest verdict, findings by severity, last scan and gate, and the
snapshot the verdict used; filtered by name or verdict and sorted on a key."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from appliance.console.views import ImageRow
from tui.screens.base import (
    HELP,
    VERDICT_STYLE,
    Failed,
    MessageLine,
    blocking,
    mode_keys,
    service_of,
    shown,
)
from tui.screens.findings import FindingsScreen
from tui.screens.verdict import VerdictScreen
from tui.widgets.table import Table

VERDICT_RANK = {"FAIL": 0, "INDETERMINATE": 1, "PASS_WITH_EXCEPTIONS": 2, "PASS": 3}
SORTS: tuple[str, ...] = ("name", "verdict", "critical", "last gate")


def _when(stamp: str | None) -> str:
    """``2026-11-23T06:00:00Z`` -> ``11-23 06:00``: month, day and time fit the table."""
    return stamp[5:16].replace("T", " ") if stamp else "-"


def _count(row: ImageRow, severity: str) -> int:
    return dict(row.severities).get(severity, 0)


def sort_key(kind: str, row: ImageRow) -> tuple[object, ...]:
    if kind == "verdict":
        return (VERDICT_RANK.get(row.verdict or "", 4), row.name)
    if kind == "critical":
        return (-_count(row, "critical"), -_count(row, "high"), row.name)
    if kind == "last gate":
        return (row.last_gate is None, "" if row.last_gate is None else row.last_gate, row.name)
    return (row.name,)


class ImagesScreen(Screen[None]):
    """Every image in the local store."""

    # the list, not the search field: keys typed ahead of the screen go to the list's keys
    AUTO_FOCUS = "#images-table"
    BINDINGS: ClassVar[list[BindingType]] = [
        HELP,
        Binding("slash", "search", "Filter"),
        Binding("s", "sort", "Sort"),
        # Enter (the table's) opens the findings: action_choose
        Binding("v", "verdict", "Verdict"),
        Binding("r", "refresh", "Re-read"),
        *mode_keys("images"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._rows: tuple[ImageRow, ...] = ()
        self._sort = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Input(placeholder="filter: name or verdict (/)", id="image-filter")
        yield Static("", id="image-status", classes="status")
        yield Table(id="images-table", cursor_type="row", zebra_stripes=False)
        yield MessageLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Images"
        table = self.query_one(DataTable)
        table.add_columns("IMAGE", "VERDICT", "C", "H", "M", "L", "SCANNED", "GATED", "SNAPSHOT")

    def on_screen_resume(self) -> None:
        self.query_one(DataTable).focus()
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(exclusive=True, group="images")
    async def load(self) -> None:
        rows = await blocking(self, service_of(self.app).images)
        if isinstance(rows, Failed):
            shown(self, rows, "Cannot list the images", self.query_one("#image-status", Static))
            return
        self._rows = rows
        self._show()

    def _shown(self) -> list[ImageRow]:
        text = self.query_one(Input).value.strip().lower()
        rows = [
            r
            for r in self._rows
            if not text or text in r.name.lower() or text in (r.verdict or "not gated").lower()
        ]
        return sorted(rows, key=lambda r: sort_key(SORTS[self._sort], r))

    def _show(self) -> None:
        table = self.query_one(DataTable)
        table.clear()
        shown = self._shown()
        for r in shown:
            verdict = r.verdict or "not gated"
            table.add_row(
                Text(r.name),
                Text(verdict, VERDICT_STYLE.get(verdict, "dim")),
                *(str(_count(r, s)) for s in ("critical", "high", "medium", "low")),
                _when(r.last_scan),
                _when(r.last_gate),
                Text(r.snapshot or "-"),
                key=r.name,
            )
        self.query_one("#image-status", Static).update(
            Text(
                f"{len(shown)} of {len(self._rows)} images, sorted by {SORTS[self._sort]}; "
                "Enter: findings"
            )
        )

    @on(Input.Changed, "#image-filter")
    def _filter(self) -> None:
        self._show()

    @on(Input.Submitted, "#image-filter")
    def _done(self) -> None:
        self.query_one(DataTable).focus()

    def action_search(self) -> None:
        self.query_one(Input).focus()

    def action_sort(self) -> None:
        self._sort = (self._sort + 1) % len(SORTS)
        self._show()

    def _current(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return str(key.value) if key.value is not None else None

    def action_choose(self) -> None:
        self.action_findings()

    def action_findings(self) -> None:
        name = self._current()
        if name is not None:
            self.app.push_screen(FindingsScreen(name))

    def action_verdict(self) -> None:
        name = self._current()
        if name is not None:
            self.app.push_screen(VerdictScreen(name))
