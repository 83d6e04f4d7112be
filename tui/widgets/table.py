"""The app's data table: Textual's ``DataTable`` with the movement keys every list of the
app answers to (``j``/``k`` down and up, ``g``/``G`` first and last row), and Enter handed to
the screen's ``choose`` action at once.

Enter runs the screen's action in the same turn as the key, not through a ``RowSelected``
message: a message would be handled after the keys typed behind Enter, which would then go
to the list instead of the screen Enter opens (``Enter t`` typed together would lose ``t``)."""

from __future__ import annotations

from typing import Any, ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import DataTable


class Table(DataTable[Any]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "First", show=False),
        Binding("G", "scroll_bottom", "Last", show=False),
        Binding("enter", "screen.choose", "Open", show=False),
    ]
