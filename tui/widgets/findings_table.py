"""A findings table that renders only the lines on screen.

Textual's ``DataTable`` builds every row when it is filled (2.5 s for 10,000 rows); this
widget keeps the already filtered rows as a list and draws each visible line on demand
through the Line API, so replacing 10,000 rows by a filtered subset costs a list assignment
and one repaint. Line 0 is the column header and stays put while the rows scroll.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
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


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its title, its width (0 for the one flexible column), and its rank: the
    narrower the view, the fewer columns show, the lowest ranked leaving first."""

    title: str
    width: int
    rank: int


COLUMNS: tuple[Column, ...] = (
    Column("SEVERITY", 8, 0),
    Column("ID", 19, 0),
    Column("PACKAGE", 0, 0),
    Column("VERSION", 14, 3),
    Column("FIXED IN", 14, 5),
    Column("EPSS", 5, 6),
    Column("STATUS", 13, 1),
    Column("K R F", 5, 2),
)
MIN_FLEXIBLE = 12
"""The package column never gets narrower than this; columns leave instead."""


def layout(width: int) -> tuple[list[tuple[Column, int]], list[Column]]:
    """The columns shown at ``width`` with their widths, and the columns hidden."""
    shown = list(COLUMNS)
    hidden: list[Column] = []

    def fixed() -> int:
        return sum(c.width for c in shown) + len(shown) - 1

    for column in sorted(COLUMNS, key=lambda c: -c.rank):
        if column.rank == 0 or width - fixed() >= MIN_FLEXIBLE:
            break
        shown.remove(column)
        hidden.append(column)
    flexible = max(width - fixed(), MIN_FLEXIBLE)
    return [(c, c.width or flexible) for c in shown], [c for c in COLUMNS if c in hidden]


def epss_text(score: str) -> str:
    """An EPSS probability as a percentage: ``0.012070000`` -> ``1.2%``."""
    try:
        value = float(score) * 100
    except ValueError:
        return score
    return f"{value:.0f}%" if value >= 10 else f"{value:.1f}%"


def _cell(text: str, width: int) -> str:
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…"
    return text.ljust(width)


REACH_MARK = {"reachable": "R", "present-not-reached": "-", "unknown": "?"}
"""The R column: reached from an entrypoint, shown not reached, or not known (never the same
mark for the last two)."""


class FindingsTable(ScrollView, can_focus=True):
    """Rows of findings with a cursor; Enter runs the screen's ``choose`` action, which
    opens :attr:`current`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,g", "jump(0)", "First", show=False),
        Binding("end,G", "jump(-1)", "Last", show=False),
        # the screen's action, in the same turn as the key (see tui.widgets.table)
        Binding("enter", "screen.choose", "Detail", show=False),
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

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: Sequence[FindingRow] = ()

    # -- data --------------------------------------------------------------------------

    @property
    def rows(self) -> Sequence[FindingRow]:
        return self._rows

    def set_rows(self, rows: Sequence[FindingRow], *, keep: bool = False) -> None:
        """Show ``rows`` (already filtered and ordered). A new filter or order puts the
        cursor on the first (worst) row, at the top; ``keep`` (the same rows read again)
        leaves it on its row."""
        key = self.current.key if keep and self.current is not None else None
        self._rows = rows
        # Width 0: the lines are drawn as wide as the view, never wider, so nothing scrolls
        # sideways (the view's width is not known yet before the vertical scrollbar shows).
        self.virtual_size = Size(0, len(rows) + 1)
        if key is not None:
            at = next((i for i, r in enumerate(rows) if r.key == key), self.cursor)
            self.cursor = min(at, max(len(rows) - 1, 0))
        else:
            self.cursor = 0
            self.scroll_to(y=0, animate=False, immediate=True)
        self._reveal()
        self.refresh()

    @property
    def hidden_columns(self) -> list[str]:
        """The columns the view is too narrow for (the screen says which)."""
        return [c.title for c in layout(self.scrollable_content_region.width)[1]]

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

    # -- rendering ---------------------------------------------------------------------

    def _cell_text(self, column: Column, row: FindingRow) -> str:
        match column.title:
            case "SEVERITY":
                return row.severity.value.upper()
            case "ID":
                return row.id
            case "PACKAGE":
                return row.package
            case "VERSION":
                return row.version
            case "FIXED IN":
                return ", ".join(row.fixed_versions) or "-"
            case "EPSS":
                return epss_text(row.epss[0]) if row.epss else "-"
            case "STATUS":
                return STATUS_LABELS.get(row.status.value, row.status.value)
            case _:
                return " ".join(
                    (
                        "K" if row.kev is not None else "·",
                        REACH_MARK.get(row.reachability, "?"),
                        "F" if row.fix_available else "·",
                    )
                )

    def _row_style(self, row: FindingRow) -> Style:
        if row.status.value in ("not_affected", "fixed"):
            return self.get_component_rich_style("findings-table--waived")
        level = row.severity.value
        if level not in ("critical", "high", "medium", "low"):
            level = "other"
        return self.get_component_rich_style(f"findings-table--{level}")

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        columns, _ = layout(width)
        if y == 0:
            text = " ".join(_cell(c.title, w) for c, w in columns)
            style = self.get_component_rich_style("findings-table--header")
            return Strip([Segment(text, style)]).adjust_cell_length(width, style)
        index = round(self.scroll_y) + y - 1
        if index >= len(self._rows):
            return Strip.blank(width, self.rich_style)
        row = self._rows[index]
        text = " ".join(_cell(self._cell_text(c, row), w) for c, w in columns)
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
