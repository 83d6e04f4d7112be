"""``stella vex suggest IMAGE``: not_affected proposals for the findings whose vulnerable code
a Go binary does not link, through the real entry point; nothing is signed or stored until the
operator runs the proposed ``stella vex add``. An image holding a program built here (links
html/template's Template.Execute, no net/http) and two real Go vulndb records."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.vex import service
from tests.appliance.auditor.helpers import add_snapshot
from tests.appliance.gobuild import GO_DATA, build_hello, hello_home


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello(tmp_path_factory.mktemp("go"))


def _home(tmp_path: Path, hello: Path) -> Home:
    home = hello_home(tmp_path / "home", hello)
    records = [
        json.loads((GO_DATA / f"{name}.json").read_text())
        for name in ("GO-2023-1753", "GO-2023-1878")
    ]
    add_snapshot(home, records, 1)
    return home


def _stella(home: Home, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_suggest_proposes_not_present_findings_only(tmp_path: Path, hello: Path) -> None:
    home = _home(tmp_path, hello)
    doc = json.loads(_stella(home, "--json", "vex", "suggest", "hello:1"))
    assert doc["signed"] is False
    [only] = doc["suggestions"]  # GO-2023-1753's Template.Execute is linked: no suggestion
    assert only["vulnerability"] == "CVE-2023-29406"
    assert "GO-2023-1878" in only["aliases"]
    assert only["component"].startswith("pkg:golang/stdlib@v1.19")
    assert only["justification"] == "vulnerable_code_not_present"
    assert (
        "/usr/local/bin/hello links none of net/http.Client.CloseIdleConnections"
        in (only["impact"])
    )
    assert only["stated"] == []
    assert service.stored_statements(home) == []  # suggesting signs nothing

    # the operator signs the proposal as shown; it is then reported as stated
    argv = shlex.split(only["command"])
    assert argv[:3] == ["stella", "vex", "add"]
    _stella(home, *argv[1:])
    [made] = service.stored_statements(home)
    assert made.justification is not None
    assert made.justification.value == "vulnerable_code_not_present"
    again = json.loads(_stella(home, "--json", "vex", "suggest", "hello:1"))
    assert again["suggestions"][0]["stated"] == [made.key]
    text = _stella(home, "vex", "suggest", "hello:1")
    assert "1 finding(s) of hello" in text
    assert f"[already stated: {made.key}]" in text


def test_suggest_without_knowledge_is_a_clear_error(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    result = CliRunner().invoke(cli, ["--home", str(home.root), "vex", "suggest", "hello:1"])
    assert result.exit_code != 0
    assert "no knowledge store" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("state", "justification"),
    [
        ("not-present", "vulnerable_code_not_present"),
        ("present-not-reached", "vulnerable_code_not_in_execute_path"),
        ("present", None),
        ("reachable", None),
        ("unknown", None),
    ],
)
def test_which_states_are_proposed(state: str, justification: str | None) -> None:
    """A finding present but reached by no call or import chain (docs/reachability.md), Go or
    Python alike, is proposed as not in the execute path; one a chain reaches, or that could
    not be judged, is not. Every state is listed."""
    from appliance.match.model import Reachability
    from appliance.vex.suggest import JUSTIFICATIONS

    found = JUSTIFICATIONS.get(Reachability(state))
    assert (found.value if found else None) == justification


def test_every_reachability_state_is_listed_above() -> None:
    from appliance.match.model import Reachability

    listed = {"not-present", "present-not-reached", "present", "reachable", "unknown"}
    assert {r.value for r in Reachability} == listed
