"""Audit log: the newest records first, the selected record's result below, and ``v`` to
verify the whole hash chain against the signed head checkpoint."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from appliance.service import AuditEntry
from bundles.errors import StellaError
from tui.screens.base import describe, mode_keys, service_of


class AuditScreen(Screen[None]):
    """Browse and verify the audit log."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("v", "verify", "Verify chain"),
        Binding("r", "refresh", "Refresh"),
        *mode_keys("audit"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, AuditEntry] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("press v to verify the chain", id="audit-check", classes="status")
        yield DataTable(id="audit-table", cursor_type="row")
        yield Static("", id="audit-record")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Audit log"
        self.query_one(DataTable).add_columns("SEQ", "TIME", "ACTION", "SUBJECT", "ACTOR")

    def on_screen_resume(self) -> None:
        self.query_one(DataTable).focus()
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(exclusive=True, group="audit")
    async def load(self) -> None:
        try:
            entries = await asyncio.to_thread(service_of(self.app).audit)
        except (StellaError, OSError) as e:
            self.query_one("#audit-check", Static).update(Text(describe(e), "bold red"))
            return
        table = self.query_one(DataTable)
        table.clear()
        self._entries = {str(x.seq): x for x in entries}
        for entry in entries:
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
