"""A Go finding's call chain through the gate: the RVA's reachability evidence blob and
``stella explain`` carry the chain from ``main`` to the vulnerable function, read from a
program built here (it calls html/template's Template.Execute from main)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from tests.appliance.auditor.helpers import add_snapshot
from tests.appliance.gobuild import GO_DATA, build_hello, hello_home

CHAIN = "call chain: main.main -> html/template.Template.Execute"


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello(tmp_path_factory.mktemp("go"))


def _stella(home: Home, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    assert result.exit_code in (0, 3), result.output  # 3: the gate's FAIL
    return result.output


def test_gate_and_explain_carry_the_call_chain(tmp_path: Path, hello: Path) -> None:
    home = hello_home(tmp_path / "home", hello)
    record = json.loads((GO_DATA / "GO-2023-1753.json").read_text())
    # a rating, so the default policy blocks the finding and explain prints its chain
    record["severity"] = [
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
    ]
    add_snapshot(home, [record], 1)
    rva = tmp_path / "rva.json"
    _stella(home, "gate", "hello:1", "--out", str(rva))
    doc = json.loads(_stella(home, "--json", "explain", str(rva)))
    [blocking] = doc["blockingFindings"]
    assert blocking["reachability"] == "reachable"
    assert blocking["note"].endswith(CHAIN)
    digest = doc["evidence"]["reachability"]["digest"].removeprefix("sha256:")
    blob = json.loads((home.oci / "blobs" / "sha256" / digest).read_bytes())
    [finding] = blob["findings"]
    assert finding["reachability"] == "reachable"
    assert finding["note"].endswith(CHAIN)
    assert blob["components"][0]["reachability"] == "reachable"
    assert CHAIN in " ".join(_stella(home, "explain", str(rva)).split())
