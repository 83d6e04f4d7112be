"""Dashboard: the appliance at a glance, one selectable line per fact: the active knowledge
snapshot and each feed's freshness, recent imports and quarantine, images by verdict,
findings open and waived by severity, exceptions about to expire, the audit chain's health,
images the snapshot has no distro data for, and verdicts changed since the last import.
Enter on a line opens the screen it is about."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList
from textual.widgets.option_list import Option

from appliance.console.views import EXPIRING_DAYS, Dashboard
from tui.screens.base import (
    HELP,
    SEVERITY_STYLE,
    VERDICT_STYLE,
    Failed,
    MessageLine,
    blocking,
    label_grid,
    mode_keys,
    service_of,
    short,
)
from tui.screens.findings import FindingsScreen
from tui.screens.verdict import VerdictScreen

LABEL = 11  # the label column's width


class Line:
    """A dashboard line: a label and its text, folded under the text (not the label) when
    it is longer than the width; plain text for tests through ``str``."""

    def __init__(self, label: str, body: Text) -> None:
        self.label, self.body = label, body

    def __str__(self) -> str:
        return f"{self.label:<{LABEL}}{self.body.plain}"

    def __rich__(self) -> Table:
        grid = label_grid(LABEL - 1)
        grid.add_row(self.label, self.body)
        return grid


def line(label: str, body: Text | str, style: str = "") -> Line:
    return Line(label, body if isinstance(body, Text) else Text(body, style))


def dashboard_lines(d: Dashboard) -> list[tuple[Line, str]]:
    """Every line of the dashboard with where Enter on it goes: a section (``images``,
    ``import``, ``audit``), or an image's ``findings:NAME`` or ``verdict:NAME``."""
    lines: list[tuple[Line, str]] = []
    s = d.snapshot
    if s is None:
        lines.append(
            (line("Knowledge", "no snapshot imported: import a bundle", "bold red"), "import")
        )
    else:
        age = Text(f"{s.age_days} days old")
        if s.stale:
            age = Text(f"{s.age_days} days old: STALE, import a newer bundle", "bold yellow")
        head = Text(f"{s.id}  {short(s.digest)}  built {s.created[:10]}  ") + age
        lines.append((line("Knowledge", head), "import"))
    for i, feed in enumerate(d.feeds):
        when = (
            Text(f"newest record {feed.newest} ({feed.age_days} days)")
            if feed.newest
            else Text("records carry no date", "dim")
        )
        body = Text(f"{feed.name} ({feed.type}, {feed.records:,} records): ") + when
        lines.append((line("Feeds" if i == 0 else "", body), "import"))
    if s is not None and not d.feeds:
        lines.append((line("Feeds", ", ".join(f"{k} {n:,}" for k, n in s.counts)), "import"))
    for i, event in enumerate(d.imports):
        mark = Text("ok ", "green") if event.accepted else Text("REFUSED ", "bold red")
        body = Text(f"{event.time}  ") + mark + Text(f"{short(event.bundle)}  {event.detail}")
        lines.append((line("Imports" if i == 0 else "", body), "import"))
    if not d.imports:
        lines.append((line("Imports", "none yet", "dim"), "import"))
    for i, q in enumerate(d.quarantined):
        body = Text(f"{q.name}  {q.time}: ", "bold") + Text(q.reason, "red")
        lines.append((line("Quarantine" if i == 0 else "", body), "import"))
    verdicts = Text(f"{d.images:,}:  ")
    for verdict, n in d.verdicts:
        verdicts.append(f"{verdict} {n:,}", VERDICT_STYLE.get(verdict, ""))
        verdicts.append("  ")
    lines.append((line("Images", verdicts), "images"))
    for i, change in enumerate(d.changed):
        body = Text(f"{change.image}: ")
        body.append(change.before, VERDICT_STYLE.get(change.before, ""))
        body.append(" -> ").append(change.after, VERDICT_STYLE.get(change.after, ""))
        body.append(" since the last import", "dim")
        lines.append((line("Changed" if i == 0 else "", body), f"verdict:{change.image}"))
    for i, gap in enumerate(d.no_distro_data):
        body = Text(
            f"{gap.image}: {gap.packages:,} packages without distro data: {gap.reason}",
            "bold yellow",
        )
        lines.append((line("WARNING" if i == 0 else "", body), f"findings:{gap.image}"))
    counts = d.by_severity or ()
    open_line, waived_line = Text(), Text()
    for c in counts:
        if not (c.open or c.waived) and c.severity in ("negligible", "none"):
            continue  # rarely present; shown when they are
        open_line.append(
            f"{c.severity} {c.open:,}", SEVERITY_STYLE.get(c.severity, "") if c.open else "dim"
        )
        open_line.append("  ")
        waived_line.append(f"{c.severity} {c.waived:,}  ", "" if c.waived else "dim")
    if counts:
        lines.append((line("Open", open_line), "images"))
        lines.append((line("Waived", waived_line.append("(not_affected, fixed)", "dim")), "images"))
    lines.append(
        (
            line(
                "", Text(f"under_investigation {d.under_investigation:,}   KEV {d.kev:,}", "bold")
            ),
            "images",
        )
    )
    if not d.expiring:
        lines.append(
            (line("Expiring", f"no exception expires in {EXPIRING_DAYS} days", "dim"), "images")
        )
    for i, e in enumerate(d.expiring):
        body = Text(
            f"{e.vulnerability} on {e.product}: expires {e.expires[:10]} "
            f"(in {e.days} day{'s' if e.days != 1 else ''})",
            "yellow",
        )
        lines.append((line("Expiring" if i == 0 else "", body), "images"))
    if d.audit is not None:
        a = d.audit
        body = (
            Text(f"chain intact: {a.records:,} records, head checkpoint signed", "green")
            if a.ok
            else Text(f"TAMPERED: {a.problem}", "bold red")
        )
        lines.append((line("Audit", body), "audit"))
    return lines


class DashboardScreen(Screen[None]):
    """The appliance at a glance."""

    BINDINGS: ClassVar[list[BindingType]] = [
        HELP,
        Binding("r", "refresh", "Re-read"),
        Binding("j", "move('cursor_down')", "Down", show=False),
        Binding("k", "move('cursor_up')", "Up", show=False),
        Binding("g", "move('first')", "First", show=False),
        Binding("G", "move('last')", "Last", show=False),
        *mode_keys("dashboard"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.targets: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield OptionList(Option("loading…", disabled=True), id="dashboard")
        yield MessageLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Dashboard"

    def on_screen_resume(self) -> None:
        self.query_one(OptionList).focus()
        self.load()

    def action_refresh(self) -> None:
        self.load()

    def action_move(self, how: str) -> None:
        options = self.query_one(OptionList)
        getattr(options, f"action_{how}")()

    @work(exclusive=True, group="dashboard")
    async def load(self) -> None:
        data = await blocking(self, service_of(self.app).dashboard)
        options = self.query_one(OptionList)
        if isinstance(data, Failed):
            options.clear_options()
            options.add_option(
                Option(Text(f"Cannot read the appliance: {data.message}", "bold red"))
            )
            self.targets = [""]
            return
        lines = dashboard_lines(data)
        highlighted = options.highlighted
        options.clear_options()
        options.add_options([Option(text) for text, _ in lines])
        self.targets = [target for _, target in lines]
        options.highlighted = min(highlighted or 0, len(lines) - 1)

    @on(OptionList.OptionSelected, "#dashboard")
    async def _selected(self, event: OptionList.OptionSelected) -> None:
        target = self.targets[event.option_index] if event.option_index < len(self.targets) else ""
        kind, _, image = target.partition(":")
        if kind in ("images", "import", "audit"):
            await self.app.run_action(f"section('{kind}')")
        elif kind == "findings":
            self.app.push_screen(FindingsScreen(image))
        elif kind == "verdict":
            self.app.push_screen(VerdictScreen(image))

    def dashboard_text(self) -> str:
        """The dashboard's lines as plain text (for tests and the terminal test)."""
        options = self.query_one(OptionList)
        return "\n".join(
            str(options.get_option_at_index(i).prompt) for i in range(options.option_count)
        )
