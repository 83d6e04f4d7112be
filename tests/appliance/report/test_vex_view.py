"""``stella scan`` shows the findings after the gate's VEX merge in every format: the table
hides waived findings unless ``--show-suppressed``, JSON carries the VEX fields, CycloneDX VEX
the ``analysis``, SARIF ``suppressions``, OpenVEX the statements; ``--no-vex`` the raw matches.
Each output is validated against its official schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.report import RENDERERS, Format
from tests.appliance.homes import SITE
from tests.appliance.report.test_formats import cyclonedx_validator
from tests.appliance.rva.test_gate import _snapshot
from tests.appliance.scanner.layouts import build_image, dist_info

SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "schemas"
SARIF = json.loads((SCHEMAS / "sarif-2.1.0.json").read_bytes())
OPENVEX = json.loads((SCHEMAS / "openvex-0.2.0.schema.json").read_bytes())
AT = "2026-11-23T06:00:00Z"
CVE = "CVE-2018-18074"
REQUESTS = "pkg:pypi/requests@2.19.0"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    _snapshot(h, kev=True)
    return h


def run(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    return result.exit_code, result.stdout, result.stderr


def scan(home: Home, *args: str) -> str:
    code, out, err = run(home, "scan", "app:1", "--at", AT, *args)
    assert code == 0, err
    return out


def waive(home: Home, *extra: str) -> None:
    code, _, err = run(
        home, "vex", "add", CVE, "--image", "app:1", "--component", REQUESTS,
        "--status", "not_affected", "--justification", "vulnerable_code_not_in_execute_path",
        "--impact", "requests never follows redirects here", "--at", "2026-11-22T00:00:00Z",
        *extra,
    )  # fmt: skip
    assert code == 0, err


def test_every_format_has_one_renderer() -> None:
    assert set(RENDERERS) == set(Format)
    assert {f.value for f in Format} == {
        "table", "packages", "json", "cyclonedx", "cyclonedx-vex", "sarif", "openvex", "spdx",
    }  # fmt: skip


def test_without_statements_the_finding_is_affected_everywhere(home: Home) -> None:
    table = scan(home)
    assert CVE in table
    assert "VEX: 1 affected" in table
    findings = json.loads(scan(home, "--format", "json"))["findings"]
    assert findings["findings"][0]["vex"]["status"] == "affected"
    assert findings["findings"][0]["vex"]["statement"] is None
    cdx = json.loads(scan(home, "--format", "cyclonedx-vex"))
    assert "analysis" not in cdx["vulnerabilities"][0]


def test_the_table_hides_a_waived_finding_and_says_so(home: Home) -> None:
    waive(home, "--expires", "2027-01-31")
    table = scan(home)
    assert CVE not in table
    assert table.startswith("No vulnerabilities shown.\n")
    assert "VEX: 1 not_affected; 1 suppressed findings hidden (--show-suppressed lists them)" in (
        table
    )
    shown = scan(home, "--show-suppressed")
    header, row = shown.splitlines()[:2]
    assert header.split()[-3:] == ["VEX", "JUSTIFICATION", "EXPIRES"]
    assert row.split()[-3:] == ["not_affected", "vulnerable_code_not_in_execute_path", "2027-01-31"]
    assert "hidden" not in shown
    raw = scan(home, "--no-vex")
    assert CVE in raw
    assert "VEX" not in raw


def test_json_carries_status_justification_and_expiry(home: Home) -> None:
    waive(home, "--expires", "2027-01-31")
    doc = json.loads(scan(home, "--format", "json"))["findings"]
    vex = doc["findings"][0]["vex"]
    assert vex["status"] == "not_affected"
    assert vex["suppressed"] is True
    assert vex["justification"] == "vulnerable_code_not_in_execute_path"
    assert vex["exception"] is True
    assert vex["expires"] == "2027-01-31T00:00:00Z"
    assert vex["origin"] == "operator"
    assert doc["vex"]["applied"] is True
    assert doc["vex"]["suppressed"] == 1
    raw = json.loads(scan(home, "--format", "json", "--no-vex"))["findings"]
    assert raw["findings"][0]["vex"] is None
    assert raw["vex"]["applied"] is False
    _code, out, _ = run(home, "--json", "scan", "app:1", "--at", AT)
    assert json.loads(out)["vex"]["suppressed"] == 1
    # after the exception expired, the finding counts again and the expiry is reported
    late = json.loads(scan(home, "--format", "json", "--at", "2027-02-01T00:00:00Z"))["findings"]
    assert late["findings"][0]["vex"]["status"] == "affected"
    assert len(late["vex"]["expired"]) == 1


def test_cyclonedx_vex_has_the_analysis_and_validates(home: Home) -> None:
    waive(home)
    doc = json.loads(scan(home, "--format", "cyclonedx-vex"))
    errors = list(cyclonedx_validator().iter_errors(doc))
    assert not errors, [e.message for e in errors[:3]]
    (vuln,) = doc["vulnerabilities"]
    analysis = vuln["analysis"]
    assert analysis["state"] == "not_affected"
    assert analysis["justification"] == "code_not_reachable"
    assert analysis["lastUpdated"] == "2026-11-22T00:00:00Z"
    assert "requests never follows redirects here" in analysis["detail"]
    assert "vulnerable_code_not_in_execute_path" in analysis["detail"]
    raw = json.loads(scan(home, "--format", "cyclonedx-vex", "--no-vex"))
    assert "analysis" not in raw["vulnerabilities"][0]


def test_sarif_suppresses_the_waived_result_and_validates(home: Home) -> None:
    waive(home)
    doc = json.loads(scan(home, "--format", "sarif"))
    jsonschema.Draft4Validator(SARIF).validate(doc)
    (result,) = doc["runs"][0]["results"]
    (suppression,) = result["suppressions"]
    assert suppression["kind"] == "external"
    assert suppression["status"] == "accepted"
    assert suppression["justification"].startswith(
        "not_affected; vulnerable_code_not_in_execute_path; requests never follows redirects"
    )
    assert result["properties"]["vex"]["status"] == "not_affected"
    raw = json.loads(scan(home, "--format", "sarif", "--no-vex"))
    assert "suppressions" not in raw["runs"][0]["results"][0]


def test_sarif_tidiness(home: Home) -> None:
    doc = json.loads(scan(home, "--format", "sarif"))
    run_ = doc["runs"][0]
    assert run_["automationDetails"]["id"] == "stella/app:1/"
    driver = run_["tool"]["driver"]
    assert driver["fullName"]
    assert driver["informationUri"].startswith("https://")
    (rule,) = driver["rules"]
    assert rule["name"] != rule["id"]
    assert rule["name"][0].isupper()
    assert " " not in rule["name"]
    assert rule["helpUri"] == f"https://www.cve.org/CVERecord?id={CVE}"
    location = run_["results"][0]["locations"][0]["physicalLocation"]
    assert location["region"] == {"startLine": 1}


def openvex(home: Home, *args: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(scan(home, "--format", "openvex", *args))
    jsonschema.Draft202012Validator(OPENVEX).validate(doc)
    return doc


def test_openvex_states_each_finding_about_the_image(home: Home) -> None:
    before = openvex(home)
    (statement,) = before["statements"]
    assert statement["status"] == "affected"
    assert statement["action_statement"] == "upgrade to 2.20.0"
    (product,) = statement["products"]
    assert product["@id"].startswith("pkg:oci/")
    assert product["subcomponents"] == [{"@id": REQUESTS, "identifiers": {"purl": REQUESTS}}]
    waive(home)
    (after,) = openvex(home)["statements"]
    assert after["status"] == "not_affected"
    assert after["justification"] == "vulnerable_code_not_in_execute_path"
    assert after["timestamp"] == "2026-11-22T00:00:00Z"


@pytest.mark.parametrize("fmt", ["table", "json", "cyclonedx-vex", "sarif", "openvex", "spdx"])
def test_same_inputs_same_bytes(home: Home, fmt: str) -> None:
    waive(home)
    assert scan(home, "--format", fmt) == scan(home, "--format", fmt)


def test_vex_formats_need_a_snapshot(tmp_path: Path) -> None:
    h = Home(tmp_path / "bare")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    code, _, err = run(h, "scan", "app:1", "--format", "openvex")
    assert code == 2
    assert err == (
        "stella: error: --format openvex reports vulnerabilities, and no knowledge snapshot is "
        "imported (import a knowledge bundle with 'stella import' first)\n"
    )
