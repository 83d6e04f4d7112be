"""One meaning per key on every screen, and the keys the help and docs/tui.md list are the
ones the screens bind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.dom import DOMNode
from textual.widgets import OptionList

from tui.app import StellaApp
from tui.screens.audit import AuditScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.detail import DetailScreen
from tui.screens.findings import FindingsScreen
from tui.screens.help import KEYS
from tui.screens.images import ImagesScreen
from tui.screens.inbox import ImportScreen
from tui.screens.revoke import RevokeScreen
from tui.screens.triage import TriageScreen
from tui.screens.verdict import VerdictScreen
from tui.widgets.findings_table import FindingsTable
from tui.widgets.table import Table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "tui.md"

# help section -> the screen and the widget that has the focus on it
SCREENS: dict[str, tuple[type[DOMNode], type[DOMNode] | None]] = {
    "Dashboard": (DashboardScreen, OptionList),
    "Images": (ImagesScreen, Table),
    "Findings": (FindingsScreen, FindingsTable),
    "Detail": (DetailScreen, None),
    "Verdict": (VerdictScreen, OptionList),
    "Triage": (TriageScreen, None),
    "Revoke": (RevokeScreen, None),
    "Import": (ImportScreen, Table),
    "Audit log": (AuditScreen, Table),
}
HELP = dict(KEYS)
NAMES = {
    "/": "slash",
    "?": "question_mark",
    "pgdn": "pagedown",
    "pgup": "pageup",
    "esc": "escape",
}


def actions(*nodes: type[DOMNode]) -> dict[str, set[str]]:
    """Key -> the actions the nodes bind it to, the focused widget's first."""
    bound: dict[str, set[str]] = {
        key: {b.action for b in bindings}  # the app's priority keys come first
        for key, bindings in StellaApp._merge_bindings().key_to_bindings.items()
        if all(b.priority for b in bindings)
    }
    for node in nodes:
        for key, bindings in node._merge_bindings().key_to_bindings.items():
            if key in bound:
                continue  # the widget nearer the focus has it
            bound[key] = {b.action.removeprefix("app.").removeprefix("screen.") for b in bindings}
    return bound


def keys_of(section: str) -> list[str]:
    return [NAMES.get(k, k) for keys, _ in HELP[section] for k in keys.split()]


@pytest.mark.parametrize("section", list(SCREENS))
def test_each_key_has_one_meaning_on_each_screen(section: str) -> None:
    screen, widget = SCREENS[section]
    nodes = (widget, screen, StellaApp) if widget else (screen, StellaApp)
    bound = actions(*nodes)
    for key, meanings in bound.items():
        assert len(meanings) == 1, f"{section}: {key} means {meanings}"
    for key in keys_of(section):
        if key in ("tab", "enter") or ("+" in key and key != "ctrl+s"):
            continue  # a widget's own (the form's fields, the list's selection)
        assert key in bound, f"{section}: the help lists {key}, the screen does not bind it"


@pytest.mark.parametrize("section", [s for s in SCREENS if s not in ("Triage", "Revoke")])
def test_every_letter_a_screen_binds_is_listed(section: str) -> None:
    screen, _ = SCREENS[section]
    listed = set(keys_of(section)) | set(keys_of("Everywhere")) | set(keys_of("Every list"))
    for key in screen._merge_bindings().key_to_bindings:
        if len(key) == 1:
            assert key in listed, f"{section} binds {key} but the help does not list it"


def test_docs_list_every_key_once_per_screen() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for section, keys in KEYS:
        found = re.search(rf"^### {re.escape(section)}\n(.*?)(?=^##)", text, re.M | re.S)
        assert found, f"docs/tui.md has no '### {section}' section"
        body = found.group(1)
        rows = re.findall(r"^\| `([^`]+)` \| (.+?) \|$", body, re.M)
        assert [k for k, _ in rows] == [k for k, _ in keys], section
        letters = [k for row, _ in rows for k in row.split() if len(k) == 1]
        assert len(letters) == len(set(letters)), f"{section}: a key twice"
