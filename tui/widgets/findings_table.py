"""A findings table that renders only the lines on screen.

Textual's ``DataTable`` builds every row when it is filled (2.5 s for 10,000 rows); this
widget keeps the already filtered rows as a list and draws each visible line on demand
through the Line API, so replacing 10,000 rows by a filtered subset costs a list assignment
and one repaint. Line 0 is the column header and stays put while the rows scroll.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from appliance.console.views import FindingRow

STATUS_LABELS = {
    "affected": "affected",
    "not_affected": "not_affected",
    "fixed": "fixed",
    "under_investigation": "investigating",
}

# (title, fixed width or 0 for the flexible package column)
COLUMNS: tuple[tuple[str, int], ...] = (
    ("SEV", 5),
    ("ID", 20),
    ("PACKAGE", 0),
    ("VERSION", 14),
    ("STATUS", 13),
    ("K R F", 5),
)


def _cell(text: str, width: int) -> str:
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…"
    return text.ljust(width)


class FindingsTable(ScrollView, can_focus=True):
    """Rows of findings with a cursor; Enter posts :class:`FindingsTable.Selected`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "Up", show=False),
        Binding("down", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Detail"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "findings-table--header",
        "findings-table--cursor",
        "findings-table--critical",
        "findings-table--high",
        "findings-table--medium",
        "findings-table--low",
        "findings-table--other",
        "findings-table--waived",
    }

    cursor: reactive[int] = reactive(0)

    class Selected(Message):
        """The operator chose a finding."""

        def __init__(self, row: FindingRow) -> None:
            super().__init__()
            self.row = row

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: Sequence[FindingRow] = ()

    # -- data --------------------------------------------------------------------------

    @property
    def rows(self) -> Sequence[FindingRow]:
        return self._rows

    def set_rows(self, rows: Sequence[FindingRow]) -> None:
        """Show ``rows`` (already filtered and ordered); the cursor stays on its index."""
        self._rows = rows
        # Width 0: the lines are drawn as wide as the view, never wider, so nothing scrolls
        # sideways (the view's width is not known yet before the vertical scrollbar shows).
        self.virtual_size = Size(0, len(rows) + 1)
        self.cursor = min(self.cursor, max(len(rows) - 1, 0))
        self._reveal()
        self.refresh()

    @property
    def current(self) -> FindingRow | None:
        return self._rows[self.cursor] if self._rows else None

    # -- movement ----------------------------------------------------------------------

    def _visible_rows(self) -> int:
        return max(self.scrollable_content_region.height - 1, 1)

    def _reveal(self) -> None:
        top = round(self.scroll_y)
        page = self._visible_rows()
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False)
        elif self.cursor >= top + page:
            self.scroll_to(y=self.cursor - page + 1, animate=False)

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh(self._line_region(old), self._line_region(new))

    def _line_region(self, index: int) -> Region:
        line = index - round(self.scroll_y) + 1
        return Region(0, line, self.size.width, 1)

    def action_cursor(self, delta: int) -> None:
        if self._rows:
            self.cursor = max(0, min(len(self._rows) - 1, self.cursor + delta))
            self._reveal()

    def action_page(self, direction: int) -> None:
        self.action_cursor(direction * self._visible_rows())

    def action_jump(self, index: int) -> None:
        if self._rows:
            self.cursor = index % len(self._rows)
            self._reveal()

    def action_select(self) -> None:
        row = self.current
        if row is not None:
            self.post_message(self.Selected(row))

    # -- rendering ---------------------------------------------------------------------

    def _widths(self, width: int) -> list[int]:
        fixed = sum(w for _, w in COLUMNS) + len(COLUMNS) - 1
        flexible = max(width - fixed, 8)
        return [w or flexible for _, w in COLUMNS]

    def _cells(self, row: FindingRow) -> list[str]:
        flags = " ".join(
            (
                "K" if row.kev is not None else "·",
                "R" if row.reachable else "·",
                "F" if row.fix_available else "·",
            )
        )
        return [
            row.severity.value[:4].upper(),
            row.id,
            row.package,
            row.version,
            STATUS_LABELS.get(row.status.value, row.status.value),
            flags,
        ]

    def _row_style(self, row: FindingRow) -> Style:
        if row.status.value in ("not_affected", "fixed"):
            return self.get_component_rich_style("findings-table--waived")
        level = row.severity.value
        if level not in ("critical", "high", "medium", "low"):
            level = "other"
        return self.get_component_rich_style(f"findings-table--{level}")

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        widths = self._widths(width)
        if y == 0:
            text = " ".join(_cell(title, w) for (title, _), w in zip(COLUMNS, widths, strict=True))
            style = self.get_component_rich_style("findings-table--header")
            return Strip([Segment(text, style)]).adjust_cell_length(width, style)
        index = round(self.scroll_y) + y - 1
        if index >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        row = self._rows[index]
        text = " ".join(_cell(c, w) for c, w in zip(self._cells(row), widths, strict=True))
        style = self._row_style(row)
        if index == self.cursor and self.has_focus:
            style = style + self.get_component_rich_style("findings-table--cursor")
        elif index == self.cursor:
            style = style + Style(underline=True)
        return Strip([Segment(text, style)]).adjust_cell_length(width, style)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
