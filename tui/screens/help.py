"""Help (``?``): every key, grouped by screen, in a modal over the current screen."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Everywhere",
        (
            ("d i m a", "Dashboard, Images, Import, Audit log"),
            ("?", "this help"),
            ("q", "quit"),
            ("esc", "back"),
        ),
    ),
    ("Dashboard", (("r", "re-read"),)),
    (
        "Images",
        (
            ("/", "filter"),
            ("s", "next sort"),
            ("enter", "findings"),
            ("v", "verdict"),
            ("r", "re-read"),
        ),
    ),
    (
        "Findings",
        (
            ("/", "search id or package"),
            ("s", "severity: all, >= critical, >= high, ..."),
            ("v", "VEX status: all, affected, not_affected, ..."),
            ("k r f", "only KEV, reachable, with a fix (toggle)"),
            ("c", "clear the filter"),
            ("enter", "detail"),
        ),
    ),
    (
        "Detail",
        (
            ("t", "triage: sign a VEX statement, then re-gate"),
            ("r", "revoke the statement in force, then re-gate"),
        ),
    ),
    (
        "Verdict",
        (
            ("c", "verify the signed verdict"),
            ("x", "export an audit package"),
            ("r", "re-read the verdict"),
        ),
    ),
    ("Triage", (("tab", "next field"), ("enter ctrl+s", "sign"), ("esc", "cancel"))),
    ("Revoke", (("enter ctrl+s", "sign the revocation"), ("esc", "cancel"))),
    ("Import", (("enter", "import the selected bundle"), ("r", "re-read the inbox"))),
    (
        "Audit log",
        (
            ("pgdn pgup", "older, newer page"),
            ("r", "newest page, re-read"),
            ("v", "verify the chain"),
        ),
    ),
)


def keys_table() -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for section, keys in KEYS:
        for i, (key, what) in enumerate(keys):
            table.add_row(section if i == 0 else "", key, what)
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help"):
            yield Static(keys_table())

    def on_mount(self) -> None:
        self.query_one("#help").focus()  # so the arrows scroll a help taller than the screen
