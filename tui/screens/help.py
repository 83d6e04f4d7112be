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
            ("d", "Dashboard"),
            ("i", "Images"),
            ("m", "Import"),
            ("a", "Audit log"),
            ("?", "this list of keys"),
            ("q", "quit (also ctrl+c)"),
            ("esc", "back, or close the form"),
        ),
    ),
    (
        "Every list",
        (
            ("j k", "down, up (also the arrows)"),
            ("g G", "first, last row (also home, end)"),
            ("pgdn pgup", "a page down, up"),
            ("enter", "open the selected line"),
        ),
    ),
    ("Dashboard", (("enter", "the screen the line is about"), ("r", "re-read"))),
    (
        "Images",
        (
            ("/", "filter by name or verdict"),
            ("s", "sort: name, verdict, critical, last gate"),
            ("enter", "findings"),
            ("v", "verdict"),
            ("r", "re-read"),
        ),
    ),
    (
        "Findings",
        (
            ("/", "search id, alias or package (esc clears, then closes)"),
            ("s", "sort: severity, EPSS, KEV, id, package, fixable"),
            ("l", "severity level: all, >= critical, >= high, ..."),
            ("o", "OpenVEX status: all, affected, not_affected, ..."),
            ("e", "only known exploited (KEV)"),
            ("p", "only reachable from an entrypoint"),
            ("f", "only with a fix"),
            ("y", "package type: all, deb, pypi, ..."),
            ("z", "clear every filter"),
            ("enter", "detail"),
            ("v", "verdict"),
        ),
    ),
    (
        "Detail",
        (
            ("t", "triage: sign a VEX statement, then re-gate"),
            ("x", "revoke the statement in force, then re-gate"),
            ("v", "verdict"),
        ),
    ),
    (
        "Verdict",
        (
            ("enter", "the finding the selected reason is about"),
            ("u", "list the unknowns (again: hide them)"),
            ("c", "check the signed verdict (as stella verify)"),
            ("w", "write an audit package"),
            ("r", "re-read"),
        ),
    ),
    ("Triage", (("tab", "next field"), ("ctrl+s", "sign (enter in a text field too)"))),
    ("Revoke", (("ctrl+s", "sign the revocation (enter too)"),)),
    ("Import", (("enter", "import the selected bundle"), ("r", "re-read the inbox"))),
    (
        "Audit log",
        (
            ("pgdn pgup", "older, newer page"),
            ("r", "newest page, re-read"),
            ("c", "check the hash chain and the signed head"),
        ),
    ),
)
"""Every key, once per screen (docs/tui.md lists the same)."""


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
