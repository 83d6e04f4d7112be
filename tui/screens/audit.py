"""Audit log: a page of records newest first (``PgDn`` older, ``PgUp`` newer, keyset-paged
on the sequence number), which of how many records are shown, the selected record's result
below, and ``v`` to verify the whole hash chain against the signed head checkpoint."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from appliance.console.views import AuditEntry, AuditPage
from bundles.errors import StellaError
from tui.screens.base import describe, mode_keys, service_of


def range_text(page: AuditPage) -> Text:
    """Which records of how many are on screen, and whether there are more either way."""
    if not page.entries:
        return Text("no records", "dim")
    text = Text(f"records {page.first:,}–{page.last:,} of {page.total:,}, newest first")
    more = [
        *([f"PgUp {page.newer:,} newer"] if page.newer else []),
        *([f"PgDn {page.older:,} older"] if page.older else []),
    ]
    text.append(f" ({', '.join(more)})" if more else " (all)", "dim")
    return text


class AuditScreen(Screen[None]):
    """Browse and verify the audit log."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "verify", "Verify"),
        Binding("r", "newest", "Newest"),
        # priority: the table would otherwise take these keys to scroll within the page
        Binding("pageup", "newer", "Newer", key_display="PgUp", priority=True),
        Binding("pagedown", "older", "Older", key_display="PgDn", priority=True),
        *mode_keys("audit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, AuditEntry] = {}
        self.page: AuditPage | None = None
        # the page to show: older than seq ``_before``, newer than ``_after``, or the newest
        self._before: int | None = None
        self._after: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("press v to verify the chain", id="audit-check", classes="status")
        yield Static("loading…", id="audit-range", classes="status")
        yield DataTable(id="audit-table", cursor_type="row")
        yield Static("", id="audit-record")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Audit log"
        self.query_one(DataTable).add_columns("SEQ", "TIME", "ACTION", "SUBJECT", "ACTOR")

    def on_screen_resume(self) -> None:
        self.query_one(DataTable).focus()
        self.load()

    def action_newest(self) -> None:
        self._before = self._after = None
        self.load()

    def action_older(self) -> None:
        if self.page is None or not self.page.older:
            self.app.bell()
            return
        self._before, self._after = self.page.entries[-1].seq, None
        self.load()

    def action_newer(self) -> None:
        if self.page is None or not self.page.newer or not self.page.entries:
            self.app.bell()
            return
        self._before, self._after = None, self.page.entries[0].seq
        self.load()

    @work(exclusive=True, group="audit")
    async def load(self) -> None:
        try:
            page = await asyncio.to_thread(
                service_of(self.app).audit, before=self._before, after=self._after
            )
        except (StellaError, OSError) as e:
            self.query_one("#audit-check", Static).update(Text(describe(e), "bold red"))
            return
        if page.newer == 0:
            self._before = self._after = None  # at the head: a reload shows records added since
        self.page = page
        self.query_one("#audit-range", Static).update(range_text(page))
        table = self.query_one(DataTable)
        table.clear()
        self._entries = {str(x.seq): x for x in page.entries}
        for entry in page.entries:
            table.add_row(
                str(entry.seq),
                entry.time.replace("T", " ").removesuffix("Z"),
                Text(entry.action),
                Text(entry.subject if len(entry.subject) <= 24 else entry.subject[:23] + "…"),
                Text(entry.actor),
                key=str(entry.seq),
            )
        self._show_current()

    @on(DataTable.RowHighlighted, "#audit-table")
    def _highlighted(self) -> None:
        self._show_current()

    def _show_current(self) -> None:
        table = self.query_one(DataTable)
        record = self.query_one("#audit-record", Static)
        if table.row_count == 0:
            record.update(Text("the audit log is empty", "dim"))
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        entry = self._entries.get(str(key))
        if entry is not None:
            record.update(
                Text(f"#{entry.seq} {entry.action} {entry.subject}\n", "bold") + Text(entry.result)
            )

    def action_verify(self) -> None:
        self.verify()

    @work(exclusive=True, group="audit-verify")
    async def verify(self) -> None:
        label = self.query_one("#audit-check", Static)
        label.update("verifying…")
        try:
            check = await asyncio.to_thread(service_of(self.app).verify_audit)
        except (StellaError, OSError) as e:
            label.update(Text(describe(e), "bold red"))
            return
        if check.ok:
            label.update(
                Text(
                    f"chain intact: {check.records} records, head checkpoint signature valid",
                    "bold green",
                )
            )
        else:
            label.update(
                Text(
                    f"TAMPERED: {check.problem} ({check.verified} of {check.records} records "
                    "chain correctly)",
                    "bold red",
                )
            )
