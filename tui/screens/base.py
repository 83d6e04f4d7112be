"""What every screen shares: the service it asks, reached through the app."""

from __future__ import annotations

from typing import Protocol, cast

from textual.app import App
from textual.binding import Binding

from appliance.service import Service
from bundles.errors import StellaError


class HasService(Protocol):
    service: Service


def service_of(app: App[object]) -> Service:
    """The service of the running :class:`tui.app.StellaApp`."""
    return cast(HasService, app).service


def short(digest: str | None, n: int = 12) -> str:
    """``sha256:0123456789ab`` — enough of a digest to tell images apart on one line."""
    if not digest:
        return "-"
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:n]}" if hexpart else digest[: n + 7]


def mode_keys(current: str) -> list[Binding]:
    """The keys to the other top-level screens, for a top-level screen's footer (the app
    keeps them active everywhere, but an 80-column footer has room for them only there)."""
    modes = (
        ("d", "dashboard", "Dash"),
        ("i", "images", "Images"),
        ("m", "import", "Import"),
        ("a", "audit", "Audit"),
    )
    return [
        Binding(key, f"app.switch_mode('{mode}')", label)
        for key, mode, label in modes
        if mode != current
    ]


def describe(error: StellaError | OSError) -> str:
    """One line for an error a worker met: the appliance's own diagnostics, or the file and
    the system's reason."""
    if isinstance(error, StellaError):
        return error.diagnostics()
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"
