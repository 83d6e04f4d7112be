"""Where to write an audit package (modal): a path, prefilled, confirmed with Enter."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static


class ExportScreen(ModalScreen[Path | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, image: str, default: Path) -> None:
        super().__init__()
        self.image = image
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(id="export"):
            yield Static(Text(f"Export the audit package of {self.image}", "bold"))
            yield Label("Write the ZIP to (Enter writes, Esc cancels)")
            yield Input(str(self.default), id="export-path")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted, "#export-path")
    def _submit(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.dismiss(Path(text).expanduser())

    def action_cancel(self) -> None:
        self.dismiss(None)
