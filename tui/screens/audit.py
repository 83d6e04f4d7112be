"""Audit log: a page of records newest first (``PgDn`` older, ``PgUp`` newer, keyset-paged
on the sequence number), which of how many records are shown, the selected record's result
below, and ``c`` to check the whole hash chain against the signed head checkpoint. A record
the check finds wrong is shown, marked, on its page, read afresh."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from appliance.console.views import AuditEntry, AuditPage
from tui.screens.base import HELP, Failed, MessageLine, blocking, mode_keys, service_of, shown
from tui.widgets.table import Table


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
        HELP,
        Binding("c", "verify", "Check"),
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
        self._bad: int | None = None  # the record the last check found wrong

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("press c to check the chain", id="audit-check", classes="status")
        yield Static("loading…", id="audit-range", classes="status")
        yield Table(id="audit-table", cursor_type="row")
        yield Static("", id="audit-record")
        yield MessageLine()
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
    async def load(self, show: int | None = None) -> None:
        """Read the page asked for; ``show``: put the cursor on that record."""
        page = await blocking(
            self, service_of(self.app).audit, before=self._before, after=self._after
        )
        if isinstance(page, Failed):
            shown(self, page, "Cannot read the audit log", self.query_one("#audit-check", Static))
            return
        if page.newer == 0:
            self._before = self._after = None  # at the head: a reload shows records added since
        self.page = page
        self.query_one("#audit-range", Static).update(range_text(page))
        table = self.query_one(DataTable)
        table.clear()
        self._entries = {str(x.seq): x for x in page.entries}
        for entry in page.entries:
            bad = entry.seq == self._bad
            table.add_row(
                Text(f"{entry.seq} BAD", "bold red reverse") if bad else str(entry.seq),
                entry.time.replace("T", " ").removesuffix("Z"),
                Text(entry.action),
                Text(entry.subject if len(entry.subject) <= 24 else entry.subject[:23] + "…"),
                Text(entry.actor),
                key=str(entry.seq),
            )
        if show is not None and str(show) in self._entries:
            table.move_cursor(row=table.get_row_index(str(show)))
        self._show_current()

    def action_choose(self) -> None:
        """Enter: the selected record is already shown whole below the list."""
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
            text = Text(f"#{entry.seq} {entry.action} {entry.subject}\n", "bold")
            if entry.seq == self._bad:
                text = Text("TAMPERED: ", "bold red") + text
            record.update(text + Text(f"by {entry.actor}\n") + Text(entry.result))

    def action_verify(self) -> None:
        self.verify()

    @work(exclusive=True, group="audit-verify")
    async def verify(self) -> None:
        label = self.query_one("#audit-check", Static)
        label.update("checking…")
        check = await blocking(self, service_of(self.app).verify_audit)
        if isinstance(check, Failed):
            shown(self, check, "Cannot check the chain", label)
            return
        self._bad = check.bad_seq
        if check.bad_seq is not None:  # show the record as it is now, on its page, marked
            self._before, self._after = check.bad_seq + 1, None
        self.load(show=check.bad_seq)
        if check.ok:
            label.update(
                Text(
                    f"chain intact: {check.records:,} records, head checkpoint signature valid",
                    "bold green",
                )
            )
        else:
            label.update(
                Text(
                    f"TAMPERED: {check.problem} ({check.verified:,} of {check.records:,} records "
                    "chain correctly)",
                    "bold red",
                )
            )
