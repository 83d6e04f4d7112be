"""Dashboard: the active knowledge snapshot, recent imports and quarantine, images by
verdict and findings by severity (under_investigation and KEV counted apart)."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from appliance.console.views import Dashboard
from tui.screens.base import Failed, blocking, label_grid, mode_keys, service_of, short, shown

VERDICT_STYLE = {
    "PASS": "green",
    "PASS_WITH_EXCEPTIONS": "yellow",
    "FAIL": "bold red",
    "INDETERMINATE": "magenta",
}
SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


def knowledge_text(d: Dashboard) -> Table:
    grid = label_grid()
    s = d.snapshot
    if s is None:
        grid.add_row("Knowledge", Text("no snapshot imported: import a bundle (m)", "bold red"))
        return grid
    age = Text(f"{s.age_days} days old")
    if s.stale:
        age = Text(f"{s.age_days} days old: STALE, import a newer bundle", "bold yellow")
    grid.add_row("Knowledge", Text(f"{s.id}  {short(s.digest)}  created {s.created[:10]}  ") + age)
    grid.add_row("", Text(", ".join(f"{k} {n}" for k, n in s.counts) or "no datasets"))
    return grid


def images_text(d: Dashboard) -> Table:
    grid = label_grid()
    verdicts = Text()
    for verdict, n in d.verdicts:
        verdicts.append(f"{verdict} {n}", VERDICT_STYLE.get(verdict, ""))
        verdicts.append("  ")
    grid.add_row("Images", Text(f"{d.images}:  ") + verdicts)
    severities = Text()
    for severity, n in d.severities:
        if not n and severity in ("negligible", "none"):
            continue  # rarely present; shown when they are
        severities.append(f"{severity} {n}", SEVERITY_STYLE.get(severity, "") if n else "dim")
        severities.append("  ")
    grid.add_row("Findings", severities)
    grid.add_row(
        "",
        Text(f"under_investigation {d.under_investigation}   KEV {d.kev}", "bold"),
    )
    return grid


def imports_text(d: Dashboard) -> Table:
    grid = label_grid()
    if not d.imports:
        grid.add_row("Imports", Text("none yet", "dim"))
    for i, event in enumerate(d.imports):
        mark = Text("ok ", "green") if event.accepted else Text("REFUSED ", "bold red")
        grid.add_row(
            "Imports" if i == 0 else "",
            Text(f"{event.time}  ") + mark + Text(f"{short(event.bundle)}  {event.detail}"),
        )
    if not d.quarantined:
        grid.add_row("Quarantine", Text("empty", "dim"))
    for i, q in enumerate(d.quarantined):
        grid.add_row(
            "Quarantine" if i == 0 else "",
            Text(f"{q.name}  {q.time}\n", "bold") + Text(q.reason, "red"),
        )
    return grid


class DashboardScreen(Screen[None]):
    """The appliance at a glance."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "refresh", "Re-read"),
        *mode_keys("dashboard"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="dashboard"):
            yield Static("loading…", id="knowledge", classes="panel")
            yield Static("", id="images", classes="panel")
            yield Static("", id="imports", classes="panel")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = "Dashboard"

    def on_screen_resume(self) -> None:
        self.load()

    def action_refresh(self) -> None:
        self.load()

    @work(exclusive=True, group="dashboard")
    async def load(self) -> None:
        data = await blocking(self, service_of(self.app).dashboard)
        if isinstance(data, Failed):
            shown(self, data, "Cannot read the appliance", self.query_one("#knowledge", Static))
            return
        self.query_one("#knowledge", Static).update(knowledge_text(data))
        self.query_one("#images", Static).update(images_text(data))
        self.query_one("#imports", Static).update(imports_text(data))
