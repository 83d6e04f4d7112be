"""``stella tui`` in a real terminal: tmux runs it at 80x24, keys are sent, and the screen
is read back with ``capture-pane``. Also the command's refusals without a terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from tests.conftest import require_tools
from tests.tui.homes import CVE, gated_home

STELLA = Path(sys.executable).parent / "stella"


class Tmux:
    """One tmux server of our own (its own socket), so nothing else is touched."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False
        )

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "tui").stdout

    def wait_for(self, text: str, timeout: float = 90.0) -> str:  # a loaded CI machine
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen()
            if text in shown:
                return shown
            time.sleep(0.2)
        raise AssertionError(f"{text!r} did not appear on the terminal; it shows:\n{shown}")

    def alive(self) -> bool:
        return self.run("has-session", "-t", "tui").returncode == 0


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    require_tools("tmux")
    # The socket lives in tmux's directory, shared by every test process of this user.
    server = Tmux(f"stella-tui-test-{os.getpid()}-{tmp_path.name}")
    yield server
    server.run("kill-server")


@pytest.mark.slow
def test_stella_tui_in_a_real_terminal(tmp_path: Path, tmux: Tmux) -> None:
    home = gated_home(tmp_path / "home")
    command = f"{STELLA} --home {home.root} tui"
    started = tmux.run("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command)
    assert started.returncode == 0, started.stderr
    screen = tmux.wait_for("Knowledge")
    assert "stable/1" in screen
    assert "FAIL 1" in screen
    assert "? Keys" in screen
    tmux.run("send-keys", "-t", "tui", "i")
    screen = tmux.wait_for("app:1")
    assert "FAIL" in screen
    tmux.run("send-keys", "-t", "tui", "Enter")
    screen = tmux.wait_for(CVE)
    assert "requests" in screen
    assert "1 of 1 findings" in screen
    tmux.run("send-keys", "-t", "tui", "?")
    tmux.wait_for("this list of keys")
    tmux.run("send-keys", "-t", "tui", "Escape")
    tmux.wait_for("1 of 1 findings")  # (a key right after Escape would read as Alt+key)
    tmux.run("send-keys", "-t", "tui", "q")
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "stella tui did not exit on q"


def send(tmux: Tmux, *keys: str, wait: str, timeout: float = 60.0) -> str:
    """Send keys (tmux key names, or literal text with ``-l``), then wait for ``wait``."""
    for key in keys:
        if key.startswith("text:"):
            tmux.run("send-keys", "-t", "tui", "-l", key.removeprefix("text:"))
        else:
            tmux.run("send-keys", "-t", "tui", key)
        time.sleep(0.05)
    return tmux.wait_for(wait, timeout)


@pytest.mark.slow
@pytest.mark.parametrize("size", [(80, 24), (60, 20)], ids=["80x24", "60x20"])
def test_an_operators_day_in_a_real_terminal(
    tmp_path: Path, tmux: Tmux, size: tuple[int, int]
) -> None:
    """Dashboard, images, findings (filtered, sorted), detail, a triage refused then
    corrected, the verdict, a revocation, the audit log checked: every step read back from
    the terminal, at 80x24 and below it."""
    home = gated_home(tmp_path / "home")
    # without the COLUMNS and LINES the test run may have set: the terminal's own size counts
    command = f"env -u COLUMNS -u LINES {STELLA} --home {home.root} tui"
    width, height = (str(n) for n in size)
    started = tmux.run("new-session", "-d", "-s", "tui", "-x", width, "-y", height, command)
    assert started.returncode == 0, started.stderr
    screen = tmux.wait_for("Knowledge")
    assert "? Keys" in screen
    assert "Audit" in screen
    send(tmux, "i", wait="app:1")
    send(tmux, "Enter", wait=CVE)
    screen = send(tmux, "/", "text:requests", "Enter", wait="search 'requests'")
    assert "1 of 1 findings" in screen
    send(tmux, "s", wait="by EPSS")
    send(tmux, "Enter", wait="Evidence")
    send(tmux, "t", wait="Triage")
    screen = send(tmux, "C-s", wait="not_affected needs a justification")
    assert "Triage" in screen  # the form stays
    # corrected: from the marked justification, Tab to the impact statement, Enter signs
    screen = send(tmux, "Tab", "text:the redirect path is never used", "Enter", wait="After")
    assert "FAIL -> PASS" in screen
    send(tmux, "Escape", wait="Evidence")
    time.sleep(1.1)  # a revocation must come after the statement's second
    send(tmux, "x", wait="Reason")
    screen = send(tmux, "text:it is used after all", "Enter", wait="After the revocation")
    assert "FAIL" in screen
    send(tmux, "a", wait="records")
    screen = send(tmux, "c", wait="chain intact")
    assert "vex.revoke" in screen
    tmux.run("send-keys", "-t", "tui", "q")
    deadline = time.monotonic() + 15
    while tmux.alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not tmux.alive(), "stella tui did not exit on q"


def test_stella_tui_needs_a_terminal(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    result = CliRunner().invoke(cli, ["--home", str(home.root), "tui"])
    assert result.exit_code == 2
    assert "stella tui needs a terminal (stdin and stdout are not one)" in result.output


def test_stella_tui_needs_a_home(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "nowhere"), "tui"])
    assert result.exit_code == 2
    assert "is not an appliance home" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("where", ["global", "command"])
def test_stella_tui_for_a_tenant(tmp_path: Path, tmux: Tmux, where: str) -> None:
    base = tmp_path / "home"
    Home(base).init()
    home = gated_home(base / "tenants" / "acme")  # the tenant's own stores, shared knowledge
    assert home.tenant == "acme"
    option = "--tenant acme"
    command = (
        f"{STELLA} --home {base} {option} tui"
        if where == "global"
        else f"{STELLA} --home {base} tui {option}"
    )
    started = tmux.run("new-session", "-d", "-s", "tui", "-x", "80", "-y", "24", command)
    assert started.returncode == 0, started.stderr
    screen = tmux.wait_for("Knowledge")
    assert "tenant acme" in screen
    assert "FAIL 1" in screen
    tmux.run("send-keys", "-t", "tui", "q")
