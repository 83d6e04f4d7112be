"""Finding detail: advisory, fix, scores, the evidence chain package -> file -> layer ->
entrypoint, the match explanation and the VEX history; ``t`` opens the triage form, ``x``
revokes the statement in force. After either, the finding is read again and the new verdict
shown."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from appliance.console.views import (
    Advisory,
    FindingRow,
    ImageFindings,
    TriageResult,
    VexEntry,
)
from tui.screens.base import (
    HELP,
    SEVERITY_STYLE,
    Failed,
    MessageLine,
    blocking,
    label_grid,
    say,
    service_of,
    short,
    shown,
    vex_entry_text,
)
from tui.screens.revoke import RevokeScreen
from tui.screens.triage import TriageScreen
from tui.screens.verdict import VerdictScreen
from tui.widgets.findings_table import epss_text

LABELS = 9  # the label column's width, so the finding's grid and the history's line up


def ordinal(n: int) -> str:
    """``66`` -> ``66th``, ``1`` -> ``1st``, ``12`` -> ``12th``."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def epss_words(score: str, percentile: str) -> str:
    """``0.012070000``, ``0.657320000`` -> ``1.2% (66th percentile)``."""
    try:
        pct = float(percentile) * 100
    except ValueError:
        return f"{epss_text(score)} (percentile {percentile})"
    return f"{epss_text(score)} chance of exploitation in 30 days ({ordinal(int(pct))} percentile)"


def reach_words(row: FindingRow) -> str:
    """The reachability and why it is what it is."""
    if row.reachable and (row.reachability_chain or row.reachability_note):
        # a Python import and call chain, or a Go call chain from main (shown above)
        return "reachable: a chain from the entrypoint reaches the vulnerable code (above)"
    if row.reachable:
        return "reachable: an entrypoint of the image loads it (chain above)"
    if row.reachability == "present-not-reached":
        return "present, not reached: no entrypoint reaches the vulnerable code (note above)"
    if row.reachability == "not-present":
        return "not present: the vulnerable code is not in the image (note above)"
    if row.reachability == "present" and row.reachability_note:
        return "present: the vulnerable code is in the binary (note above)"
    if row.reachability == "present":
        return "present: the vulnerable code is in the binary; calls to it are not analysed"
    if row.package_type == "pypi":
        return (
            "unknown: no entrypoint's Python imports reach it, but a static trace cannot "
            "prove it unused"
        )
    return (
        f"unknown: the entry trace follows executables and Python imports; it cannot tell "
        f"whether a {row.package_type} package is used"
    )


class FoldedPath:
    """A line naming a path, broken after a ``/`` rather than inside a name when it does not
    fit (a path has no spaces for the usual wrapping to use)."""

    def __init__(self, prefix: str, path: str, indent: int, style: str = "") -> None:
        self.prefix, self.path, self.indent, self.style = prefix, path, indent, style

    def lines(self, width: int) -> list[str]:
        lines = [self.prefix]
        pieces = [p + "/" for p in self.path.split("/")]
        pieces[-1] = pieces[-1][:-1]
        for piece in pieces:
            if len(lines[-1]) + len(piece) > width and lines[-1].strip():
                lines.append(" " * self.indent)
            lines[-1] += piece
        return lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = Text("\n".join(self.lines(options.max_width)), self.style)
        text.overflow = "fold"  # a single name longer than the line still shows whole
        yield text


def finding_text(row: FindingRow, advisory: Advisory | None = None) -> Group:
    head = Text(f"{row.id}  ", "bold")
    head.append(row.severity.value.upper(), SEVERITY_STYLE.get(row.severity.value, "bold"))
    head.append(f"  {row.package} {row.version}")
    grid = label_grid(LABELS)
    summary = advisory.summary if advisory and advisory.summary else row.summary
    grid.add_row("Summary", Text(summary) if summary else Text("none published", "dim"))
    if advisory and advisory.details and advisory.details.strip() != summary.strip():
        grid.add_row("Details", Text(advisory.details.strip()))
    if advisory and (advisory.published or advisory.modified):
        grid.add_row(
            "Published",
            Text(
                f"{(advisory.published or '?')[:10]}"
                + (f", modified {advisory.modified[:10]}" if advisory.modified else "")
                + f" ({advisory.id})"
            ),
        )
    grid.add_row("Aliases", Text(", ".join(row.aliases) or "-"))
    grid.add_row("Fixed in", Text(", ".join(row.fixed_versions) or f"no fix ({row.fix_state})"))
    grid.add_row(
        "Severity",
        Text(f"{row.severity.value} from {row.severity_source or '?'}: {row.severity_detail}")
        if row.severity_source and row.severity_source != "none"
        else Text(f"unknown: {row.severity_detail or 'no source rates it'}", "dim"),
    )
    if row.ratings:
        grid.add_row(
            "Ratings",
            Text(
                "\n".join(
                    f"{source} {severity}"
                    + (f" {score:.1f}" if score is not None else "")
                    + f" ({provider})"
                    for source, provider, severity, score in row.ratings
                )
            ),
        )
    for version, score, vector in row.cvss:
        grid.add_row("CVSS", Text(f"{score:.1f} (v{version}) {vector}"))
    if not row.cvss:
        grid.add_row("CVSS", Text(f"none; severity from {row.severity_detail or '?'}", "dim"))
    grid.add_row(
        "EPSS",
        Text(epss_words(*row.epss)) if row.epss else Text("not known", "dim"),
    )
    grid.add_row(
        "KEV",
        Text(f"yes, added {row.kev or '?'}", "bold red")
        if row.kev is not None
        else Text("no", "dim"),
    )
    chain: list[RenderableType] = [FoldedPath("package ", row.purl, 8)]
    for path, layer in row.files:
        chain.append(FoldedPath(" -> file ", path, 9))
        chain.append(Text(f"    -> layer {short(layer, 16)}" if layer else "    -> layer unknown"))
    for entry in row.entrypoints:
        chain.append(FoldedPath("       -> entrypoint ", entry, 21, "bold"))
    for step in row.reachability_chain:
        chain.append(FoldedPath("       => ", step, 10, "bold"))
    if row.reachability_note:
        chain.append(Text(row.reachability_note, "italic"))
    chain.append(Text(f"({reach_words(row)})", "bold" if row.reachable else "dim"))
    grid.add_row("Evidence", Group(*chain))
    if row.suggestion is not None:
        grid.add_row(
            "Suggestion",
            Text(
                f"not_affected, {row.suggestion[0].value} (from reachability; press t to "
                "review it in the triage form, nothing is signed until you confirm)",
                "yellow",
            ),
        )
    grid.add_row("Match", Text("\n".join(row.explanations) or "-"))
    status = Text(row.status.value, "bold")
    if row.vex_statement:
        status.append(f" by {row.vex_statement}")
    if row.exception_expires:
        status.append(f" (exception until {row.exception_expires})", "yellow")
    grid.add_row("VEX", status)
    if advisory and advisory.references:
        grid.add_row("Links", Group(*(FoldedPath("", url, 0) for url in advisory.references)))
    return Group(head, grid)


def history_text(entries: tuple[VexEntry, ...]) -> Table:
    grid = label_grid(LABELS)
    if not entries:
        grid.add_row("History", Text("no VEX statement names this vulnerability", "dim"))
    for i, e in enumerate(entries):
        grid.add_row("History" if i == 0 else "", vex_entry_text(e))
    return grid


class DetailScreen(Screen[bool]):
    """One finding; dismisses with True when a triage or revocation changed the image's
    findings."""

    BINDINGS: ClassVar[list[BindingType]] = [
        HELP,
        Binding("escape", "back", "Back"),
        Binding("t", "triage", "Triage"),
        Binding("x", "revoke", "Revoke"),
        Binding("v", "verdict", "Verdict"),
    ]

    def __init__(self, view: ImageFindings, row: FindingRow) -> None:
        super().__init__()
        self.view = view
        self.row = row
        self.changed = False
        self.history: tuple[VexEntry, ...] = ()
        self.advisory: Advisory | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static(finding_text(self.row), id="finding")
            yield Static("VEX history: loading…", id="history")
        yield MessageLine()
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"{self.row.id} in {self.view.name}"
        self.query_one("#detail").focus()
        self.load_history()
        self.load_advisory()

    @work(exclusive=True, group="history")
    async def load_history(self) -> None:
        entries = await blocking(self, service_of(self.app).vex_history, self.row)
        if isinstance(entries, Failed):
            shown(self, entries, "VEX history", self.query_one("#history", Static))
            return
        self.history = entries
        self.query_one("#history", Static).update(history_text(entries))

    @work(exclusive=True, group="advisory")
    async def load_advisory(self) -> None:
        advisory = await blocking(self, service_of(self.app).advisory, self.row)
        if isinstance(advisory, Failed):
            shown(self, advisory, "Cannot read the advisory")
            return
        self.advisory = advisory
        self.query_one("#finding", Static).update(finding_text(self.row, advisory))

    @work(exclusive=True, group="row")
    async def reload_row(self) -> None:
        """Read the finding again after a VEX change, so the status shown, and the statement
        a revocation would revoke, are the ones now in force."""
        view = await blocking(self, service_of(self.app).findings, self.view.name)
        if isinstance(view, Failed):
            shown(self, view, "Cannot re-read the finding")
            return
        row = next((r for r in view.rows if r.key == self.row.key), None)
        if row is not None:
            self.view, self.row = view, row
            self.query_one("#finding", Static).update(finding_text(row, self.advisory))

    def action_back(self) -> None:
        self.dismiss(self.changed)

    def action_triage(self) -> None:
        self.app.push_screen(TriageScreen(self.view, self.row), self._changed)

    def action_revoke(self) -> None:
        key = self.row.vex_statement
        if key is None:
            say(
                self,
                f"no VEX statement is in force for {self.row.id}: nothing to revoke "
                "(press t to triage it)",
                "error",
            )
            return
        entry = next((e for e in self.history if e.key == key), None)
        self.app.push_screen(RevokeScreen(self.view, self.row, key, entry), self._changed)

    def action_verdict(self) -> None:
        self.app.push_screen(VerdictScreen(self.view.name))

    def _changed(self, result: TriageResult | None) -> None:
        if result is None:
            return
        self.changed = True
        self.load_history()
        self.reload_row()
        self.app.push_screen(VerdictScreen(self.view.name, triage=result))
