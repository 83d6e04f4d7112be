"""Import: pick a bundle from the inbox and import it; the steps appear as they complete,
with a progress bar, and a refusal shows its reason (the bundle is then in quarantine)."""

from __future__ import annotations

import contextlib
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static

from appliance.console.views import ImportStep, InboxEntry
from tui.screens.base import HELP, Failed, MessageLine, blocking, mode_keys, say, service_of, shown
from tui.widgets.table import Table

REFRESH_SECONDS = 5


def state_text(entry: InboxEntry) -> Text:
    if entry.ready:
        return Text("ready", "green")
    if entry.settling:
        return Text("being copied", "yellow")
    return Text(f"waiting for {', '.join(entry.missing)}")


class ImportScreen(Screen[None]):
    """The inbox, and one import at a time."""

    BINDINGS: ClassVar[list[BindingType]] = [
        HELP,
        # Enter (the table's) imports the selected bundle: action_choose
        Binding("r", "refresh", "Re-read"),
        *mode_keys("import"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._steps: list[str] = []
        self._importing = False  # an import is under way: it is never cancelled
        self._entries: dict[str, InboxEntry] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="inbox-status", classes="status")
        yield Table(id="inbox-table", cursor_type="row")
        yield ProgressBar(total=3, show_eta=False, id="import-progress")
        yield Static("", id="import-steps")
        yield Static("", id="import-reason")
        yield MessageLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Import"
        self.set_interval(REFRESH_SECONDS, self._tick)
        self.query_one(DataTable).add_columns("BUNDLE", "STATE", "SEQ", "CHANNEL", "FILES")

    def on_screen_resume(self) -> None:
        self.query_one(DataTable).focus()
        self.load()

    def action_refresh(self) -> None:
        self.load()

    def _tick(self) -> None:
        """Re-read the inbox every few seconds while it is shown, so a copied file appears,
        settles and becomes ready by itself."""
        if self.is_current and not self._importing:
            self.load()

    @work(exclusive=True, group="inbox")
    async def load(self) -> None:
        status = self.query_one("#inbox-status", Static)
        service = service_of(self.app)
        entries = await blocking(self, service.inbox)
        if isinstance(entries, Failed):
            shown(self, entries, "Cannot read the inbox", status)
            return
        where = await blocking(self, service.inbox_dir)
        inbox = where.message if isinstance(where, Failed) else where
        table = self.query_one(DataTable)
        chosen = self._chosen()
        table.clear()
        self._entries = {e.name: e for e in entries}
        for entry in entries:
            table.add_row(
                Text(entry.name),
                state_text(entry),
                "-" if entry.sequence is None else str(entry.sequence),
                Text(entry.channel or "-"),
                str(len(entry.files)),
                key=entry.name,
            )
        if chosen in self._entries:
            table.move_cursor(row=table.get_row_index(chosen))
        ready = sum(1 for e in entries if e.ready)
        status.update(
            f"inbox {inbox}: {len(entries)} bundle(s), {ready} ready; Enter imports one"
            if entries
            else f"the inbox {inbox} is empty: copy a bundle into it (re-read every "
            f"{REFRESH_SECONDS} s)"
        )

    def _chosen(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if key is None else str(key)

    def action_choose(self) -> None:
        self.action_import()

    def action_import(self) -> None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return
        if self._importing:
            say(self, "an import is already running; wait for it", "warning")
            return
        key = self._chosen()
        entry = self._entries.get(key or "")
        if entry is not None and entry.settling:
            say(self, f"{entry.name} is still being copied; it is offered once it settles")
            return
        if entry is not None and not entry.ready:
            say(self, f"{entry.name} waits for {', '.join(entry.missing)}: copy it into the inbox")
            return
        if key is not None:
            self._importing = True  # at once, so a second Enter before the worker starts waits
            self.run_import(str(key))

    class Progress(Message):
        """A step of the running import, posted from the import's thread."""

        def __init__(self, step: ImportStep) -> None:
            super().__init__()
            self.step = step

    @on(Progress)
    def _progress(self, message: Progress) -> None:
        step = message.step
        self._steps.append(step.text)
        self.query_one(ProgressBar).update(total=step.total, progress=step.done)
        self.query_one("#import-steps", Static).update(Text("\n".join(self._steps)))

    @work(group="import")  # not exclusive: cancelling the worker would not stop the import
    async def run_import(self, name: str) -> None:
        try:
            await self._import(name)
        finally:
            self._importing = False

    async def _import(self, name: str) -> None:
        self._steps = []
        self.query_one(ProgressBar).update(total=3, progress=0)
        self.query_one("#import-steps", Static).update(Text(f"importing {name}…"))
        reason = self.query_one("#import-reason", Static)
        reason.update("")

        def progress(step: ImportStep) -> None:
            # Runs in the import's thread, and neither waits for the UI nor raises into the
            # import whatever befalls the UI (the screen gone, the app quit): the import goes
            # on to its end.
            with contextlib.suppress(Exception):
                self.post_message(self.Progress(step))

        outcome = await blocking(self, service_of(self.app).import_bundle, name, progress)
        if isinstance(outcome, Failed):
            shown(self, outcome, f"{name} not imported", reason)
            return
        if outcome.accepted:
            reason.update(Text(f"{name} imported", "bold green"))
        else:
            text = Text(f"REFUSED: {outcome.reason}", "bold red")
            if outcome.quarantined:
                text.append(f"\nreason file: {outcome.quarantined}", "red")
            reason.update(text)
        self.load()
