"""stella scan: packages always; findings in every format once a snapshot is active."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from tests.appliance.homes import SITE
from tests.appliance.rva.test_gate import _snapshot
from tests.appliance.scanner.layouts import build_image, dist_info

SCHEMAS = Path(__file__).resolve().parent.parent / "data" / "schemas"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    return h


def scan(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home.root), "scan", "app:1", *args])
    return result.exit_code, result.stdout, result.stderr


def test_without_knowledge_the_table_lists_packages_and_says_why(home: Home) -> None:
    code, out, _ = scan(home)
    assert code == 0
    assert "pypi  requests  2.19.0" in out
    assert out.endswith("no knowledge snapshot imported: packages only\n")
    code, _, err = scan(home, "--format", "sarif")
    assert code == 2
    assert err == (
        "stella: error: --format sarif reports vulnerabilities, and no knowledge snapshot is "
        "imported (import a knowledge bundle with 'stella import' first)\n"
    )


def test_findings_in_every_format(home: Home, tmp_path: Path) -> None:
    _snapshot(home, kev=True)
    code, out, _ = scan(home)
    assert code == 0
    assert "CVE-2018-18074" in out
    assert "requests" in out

    sarif = tmp_path / "r.sarif"
    assert scan(home, "--format", "sarif", "--out", str(sarif))[0] == 0
    doc = json.loads(sarif.read_bytes())
    jsonschema.validate(doc, json.loads((SCHEMAS / "sarif-2.1.0.json").read_bytes()))
    assert [r["ruleId"] for r in doc["runs"][0]["results"]] == ["CVE-2018-18074"]

    code, out, _ = scan(home, "--format", "cyclonedx-vex")
    assert [v["id"] for v in json.loads(out)["vulnerabilities"]] == ["CVE-2018-18074"]

    code, out, _ = scan(home, "--format", "json")
    inventory = json.loads(out)
    assert any(p["name"] == "requests" for p in inventory["packages"])
    assert [f["id"] for f in inventory["findings"]["findings"]] == ["CVE-2018-18074"]

    result = CliRunner().invoke(cli, ["--home", str(home.root), "--json", "scan", "app:1"])
    assert json.loads(result.stdout)["findings"]["critical"] == 1
