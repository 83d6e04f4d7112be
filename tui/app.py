"""``stella tui``: the operators' terminal UI.

The app declares its screens and bindings only. Data comes from a
:class:`appliance.console.views.Console`; every call to it runs in a worker; styles are in
``styles/app.tcss``. It uses the terminal's own ANSI colors, so it reads the same on a
16-color console over SSH.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen, Screen

from appliance.console.views import Console
from tui.screens.audit import AuditScreen
from tui.screens.base import MODE_KEYS, OpenFinding
from tui.screens.dashboard import DashboardScreen
from tui.screens.detail import DetailScreen
from tui.screens.help import HelpScreen
from tui.screens.images import ImagesScreen
from tui.screens.inbox import ImportScreen


class StellaApp(App[None]):
    TITLE = "Stella Ops"
    CSS_PATH = "styles/app.tcss"
    ENABLE_COMMAND_PALETTE = False
    MODES: ClassVar[dict[str, str | Callable[[], Screen[Any]]]] = {
        "dashboard": DashboardScreen,
        "images": ImagesScreen,
        "import": ImportScreen,
        "audit": AuditScreen,
    }
    DEFAULT_MODE = "dashboard"
    BINDINGS: ClassVar[list[BindingType]] = [
        # active everywhere; the four top-level screens show them in their footers (mode_keys)
        *(Binding(key, f"section('{mode}')", label, show=False) for key, mode, label in MODE_KEYS),
        Binding("question_mark", "help", "Keys", key_display="?", show=False),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, service: Console) -> None:
        super().__init__()
        self.service = service

    def on_open_finding(self, message: OpenFinding) -> None:
        self.push_screen(DetailScreen(message.view, message.row))

    def on_mount(self) -> None:
        self.theme = "ansi-dark"

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_section(self, mode: str) -> None:
        """Show a section's own list: its top screen, whatever was opened on it before. A
        form or dialog on top keeps the keys to itself (it is closed with Esc)."""
        if isinstance(self.screen, ModalScreen):
            self.bell()
            return
        if self.current_mode != mode:
            await self.switch_mode(mode)
        while len(self.screen_stack) > 1:
            await self.pop_screen()
