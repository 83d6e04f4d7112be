"""Every screen rendered at 80x24 and 120x40 (the main ones at 60x20, too) from the fake
service's fixed data, compared with the committed SVGs in ``__snapshots__`` (update with
``pytest --snapshot-update`` and review the diff)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from textual.pilot import Pilot

from tests.tui.fakes import FakeService
from tui.app import StellaApp

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]

# screen -> the keys that reach it from the dashboard
SCREENS = {
    "dashboard": (),
    "images": ("i",),
    "findings": ("i", "enter"),
    "findings_filtered": ("i", "enter", "l", "l", "f"),
    "findings_sorted": ("i", "enter", "end", "s"),  # by EPSS: the cursor back on the first row
    "detail": ("i", "enter", "enter"),
    "triage": ("i", "enter", "enter", "t"),
    "triage_refused": ("i", "enter", "enter", "t", "ctrl+s"),  # not_affected with nothing
    "revoke": ("i", "enter", "o", "enter", "x"),  # a not_affected finding's statement
    "verdict": ("i", "v"),
    "verdict_checked": ("i", "v", "c"),  # the result on its own line above the footer
    "verdict_unknowns": ("i", "v", "u"),
    "import_refused": ("m", "enter"),
    "audit": ("a", "c"),
    "audit_tampered": ("a", "c"),
    "help": ("question_mark",),
}
SERVICES = {"audit_tampered": lambda: FakeService(tampered=7)}


def driver(keys: tuple[str, ...]) -> Callable[[Pilot[None]], object]:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.app.workers.wait_for_complete()
        for key in keys:
            await pilot.press(key)
            for _ in range(3):
                await pilot.pause()
                await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("screen", list(SCREENS))
def test_screen(snap_compare: Callable[..., bool], screen: str, size: tuple[int, int]) -> None:
    app = StellaApp(SERVICES.get(screen, FakeService)())
    assert snap_compare(app, terminal_size=size, run_before=driver(SCREENS[screen]))


NARROW = ("dashboard", "findings", "detail", "triage")


@pytest.mark.parametrize("screen", NARROW)
def test_narrow_screen(snap_compare: Callable[..., bool], screen: str) -> None:
    """60x20, below the 80x24 the TUI is made for: columns leave in order and say so, and
    the footer starts with ? (every key)."""
    app = StellaApp(FakeService())
    assert snap_compare(app, terminal_size=(60, 20), run_before=driver(SCREENS[screen]))
