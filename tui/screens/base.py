"""What every screen shares: the service it asks, reached through the app; the keys to the
top-level screens; and the small renderers several screens use."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, ParamSpec, Protocol, TypeVar, cast

from rich.table import Table
from rich.text import Text
from textual.app import App
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.message import Message
from textual.widgets import Static

from appliance.console.views import Console, FindingRow, ImageFindings, VexEntry
from bundles.errors import StellaError

# (key, mode, footer label): the four top-level screens. The app binds the keys everywhere;
# each top-level screen shows the other three in its footer (mode_keys).
MODE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("d", "dashboard", "Dash"),
    ("i", "images", "Images"),
    ("m", "import", "Import"),
    ("a", "audit", "Audit"),
)


VERDICT_STYLE = {
    "PASS": "green",
    "PASS_WITH_EXCEPTIONS": "yellow",
    "FAIL": "bold red",
    "INDETERMINATE": "magenta",
}
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


class OpenFinding(Message):
    """Asks the app to open a finding's detail: posted by screens the detail itself opens
    (the verdict), so that neither screen module imports the other."""

    def __init__(self, view: ImageFindings, row: FindingRow) -> None:
        super().__init__()
        self.view = view
        self.row = row


class HasService(Protocol):
    service: Console


def service_of(app: App[object]) -> Console:
    """The service of the running :class:`tui.app.StellaApp`."""
    return cast(HasService, app).service


def short(digest: str | None, n: int = 12) -> str:
    """``sha256:0123456789ab`` — enough of a digest to tell images apart on one line. Anything
    that is not ``algorithm:hex`` (a bundle's file name, say) is returned whole."""
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    if algo and hexpart and set(hexpart.lower()) <= set(string.hexdigits.lower()):
        return f"{algo}:{hexpart[:n]}"
    return digest


HELP = Binding("question_mark", "app.help", "Keys", key_display="?")
"""First in every screen's footer, so even a footer too narrow for the rest shows where every
key is listed."""


def mode_keys(current: str) -> list[Binding]:
    """The keys to the other top-level screens, for a top-level screen's footer (the app
    keeps them active everywhere, but an 80-column footer has room for them only there)."""
    return [
        Binding(key, f"app.section('{mode}')", label)
        for key, mode, label in MODE_KEYS
        if mode != current
    ]


def label_grid(min_width: int | None = None) -> Table:
    """Two columns: a bold label (at least ``min_width`` wide, so grids stacked one under
    the other line up) and its value, folded to the width."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True, min_width=min_width)
    table.add_column(overflow="fold")
    return table


def vex_entry_text(entry: VexEntry) -> Text:
    """One VEX statement as the history lists it: when, whose, the status and its details,
    then its impact, action or notes on the next line."""
    line = Text(f"{entry.timestamp} {entry.origin} ")
    line.append(entry.status, "bold")
    if entry.justification:
        line.append(f" ({entry.justification})")
    if entry.expires:
        line.append(f" until {entry.expires}", "yellow")
    if entry.revokes:
        line.append(f" revokes {entry.revokes}")
    if entry.text:
        line.append(f"\n  {entry.text}", "italic")
    return line


P = ParamSpec("P")
T = TypeVar("T")

Level = Literal["information", "warning", "error"]
LEVEL_STYLE: dict[str, str] = {"information": "bold", "warning": "bold yellow", "error": "bold red"}


class MessageLine(Static):
    """The screen's line for what its actions did or why they were refused: it sits above
    the footer, in the layout, so it never covers what it reports on (a toast would), and it
    stays until the next message."""

    DEFAULT_CLASSES = "message-line"

    def on_mount(self) -> None:
        self.display = False  # no line taken until there is something to say

    def say(self, text: str | Text, level: Level = "information") -> None:
        self.update(text if isinstance(text, Text) else Text(text, LEVEL_STYLE[level]))
        self.display = bool(str(text))


def say(node: DOMNode, text: str | Text, level: Level = "information") -> None:
    """Show ``text`` on the message line of the screen ``node`` is on."""
    try:
        node.screen.query_one(MessageLine).say(text, level)
    except NoMatches:  # a screen without a message line: a modal's own error field is used
        node.app.notify(str(text), severity=level)


@dataclass(frozen=True, slots=True)
class Failed:
    """What a call to the service met instead of an answer: one line saying why."""

    message: str


async def blocking(
    node: DOMNode,
    call: Callable[P, T],
    *args: P.args,
    **kwargs: P.kwargs,
) -> T | Failed:
    """Run one blocking call to the service in a thread, as every screen's workers do; an
    error the appliance or the file system raised becomes a :class:`Failed` with its one
    line, so no worker dies with a traceback. Callers show the failure where it belongs
    (``shown``)."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except (StellaError, OSError) as e:
        return Failed(describe(e))


def shown(node: DOMNode, failure: Failed, title: str, where: Static | None = None) -> None:
    """Show ``failure``: in ``where`` when given (the part of the screen it stands for),
    else on the screen's message line."""
    text = Text(f"{title}: {failure.message}", "bold red")
    if where is not None:
        where.update(text)
    else:
        say(node, text, "error")


def describe(error: StellaError | OSError) -> str:
    """One line for an error a worker met: the appliance's own diagnostics, or the file and
    the system's reason."""
    if isinstance(error, StellaError):
        return error.diagnostics()
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"
