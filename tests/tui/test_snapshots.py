"""Every screen rendered at 80x24 and 120x40 from the fake service's fixed data, compared
with the committed SVGs in ``__snapshots__`` (update with ``pytest --snapshot-update`` and
review the diff)."""

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
    "findings_filtered": ("i", "enter", "s", "s", "f"),
    "detail": ("i", "enter", "enter"),
    "triage": ("i", "enter", "enter", "t"),
    "revoke": ("i", "enter", "v", "enter", "r"),  # a not_affected finding's statement
    "verdict": ("i", "v"),
    "import_refused": ("m", "enter"),
    "audit": ("a", "v"),
    "help": ("question_mark",),
}


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
    app = StellaApp(FakeService())
    assert snap_compare(app, terminal_size=size, run_before=driver(SCREENS[screen]))
