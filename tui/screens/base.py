"""What every screen shares: the service it asks, reached through the app; the keys to the
top-level screens; and the small renderers several screens use."""

from __future__ import annotations

import string
from typing import Protocol, cast

from rich.table import Table
from rich.text import Text
from textual.app import App
from textual.binding import Binding

from appliance.console.views import Console, VexEntry
from bundles.errors import StellaError

# (key, mode, footer label): the four top-level screens. The app binds the keys everywhere;
# each top-level screen shows the other three in its footer (mode_keys).
MODE_KEYS: tuple[tuple[str, str, str], ...] = (
    ("d", "dashboard", "Dash"),
    ("i", "images", "Images"),
    ("m", "import", "Import"),
    ("a", "audit", "Audit"),
)


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


def mode_keys(current: str) -> list[Binding]:
    """The keys to the other top-level screens, for a top-level screen's footer (the app
    keeps them active everywhere, but an 80-column footer has room for them only there)."""
    return [
        Binding(key, f"app.switch_mode('{mode}')", label)
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


def describe(error: StellaError | OSError) -> str:
    """One line for an error a worker met: the appliance's own diagnostics, or the file and
    the system's reason."""
    if isinstance(error, StellaError):
        return error.diagnostics()
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"
