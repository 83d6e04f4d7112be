"""``stella scan --format spdx``: SPDX 3.0.1 JSON-LD with packages, vulnerabilities and VEX."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from tests.appliance.homes import SITE
from tests.appliance.rva.test_gate import _snapshot
from tests.appliance.scanner.layouts import build_image, dist_info

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "data/schemas/spdx-3.0.1.schema.json").read_bytes()
)
_ENVELOPE = jsonschema.Draft202012Validator(SCHEMA)
_CLASSES: dict[str, jsonschema.Draft202012Validator] = {}


def validate(doc: dict[str, Any]) -> None:
    """The official schema, each graph node checked against the class its ``type`` names:
    what the schema's ``anyOf`` over every class decides (``type`` is a constant per class),
    without trying all 400 of them for each node."""
    _ENVELOPE.validate({**doc, "@graph": []})
    for node in doc["@graph"]:
        kind = node["type"]
        assert kind in SCHEMA["$defs"], kind
        if kind not in _CLASSES:
            _CLASSES[kind] = jsonschema.Draft202012Validator(
                {
                    "$defs": SCHEMA["$defs"],
                    "$ref": f"#/$defs/{kind}",
                    "unevaluatedProperties": False,
                }
            )
        _CLASSES[kind].validate(node)


AT = "2026-11-23T06:00:00Z"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    return h


def run(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    return result.exit_code, result.stdout, result.stderr


def spdx(home: Home, at: str = AT) -> dict[str, Any]:
    code, out, err = run(home, "scan", "app:1", "--format", "spdx", "--at", at)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    validate(doc)
    return doc


def of_type(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e for e in doc["@graph"] if e["type"] == kind]


def test_packages_only_without_knowledge(home: Home) -> None:
    doc = spdx(home)
    assert doc["@context"] == "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
    (info,) = of_type(doc, "CreationInfo")
    assert info["specVersion"] == "3.0.1"
    assert info["created"] == AT
    (document,) = of_type(doc, "SpdxDocument")
    assert document["profileConformance"] == ["core", "software", "security"]
    packages = {e["spdxId"]: e for e in of_type(doc, "software_Package")}
    (root,) = document["rootElement"]
    image = packages.pop(root)
    assert image["software_primaryPurpose"] == "container"
    assert image["verifiedUsing"][0]["algorithm"] == "sha256"
    (requests,) = [p for p in packages.values() if p["name"] == "requests"]
    assert requests["software_packageUrl"] == "pkg:pypi/requests@2.19.0"
    assert requests["software_packageVersion"] == "2.19.0"
    (contains,) = [r for r in of_type(doc, "Relationship") if r["relationshipType"] == "contains"]
    assert contains["from"] == root
    assert requests["spdxId"] in contains["to"]
    assert set(document["element"]) == {
        e["spdxId"] for e in doc["@graph"] if e["type"] not in ("CreationInfo", "SpdxDocument")
    } - {e["spdxId"] for e in doc["@graph"] if e["type"] in ("Tool", "Organization")}
    assert not of_type(doc, "security_Vulnerability")


def test_vulnerabilities_cvss_and_the_matcher_assessment(home: Home) -> None:
    _snapshot(home, kev=True)
    doc = spdx(home)
    (vuln,) = of_type(doc, "security_Vulnerability")
    assert vuln["name"] == "CVE-2018-18074"
    assert {"type": "ExternalIdentifier", "externalIdentifierType": "cve",
            "identifier": "CVE-2018-18074"} in vuln["externalIdentifier"]  # fmt: skip
    requests = next(p for p in of_type(doc, "software_Package") if p["name"] == "requests")
    (assoc,) = [
        r for r in of_type(doc, "Relationship")
        if r["relationshipType"] == "hasAssociatedVulnerability"
    ]  # fmt: skip
    assert (assoc["from"], assoc["to"]) == (requests["spdxId"], [vuln["spdxId"]])
    (affects,) = of_type(doc, "security_VexAffectedVulnAssessmentRelationship")
    assert affects["relationshipType"] == "affects"
    assert affects["from"] == vuln["spdxId"]
    assert affects["to"] == [requests["spdxId"]]
    assert affects["security_actionStatement"] == "upgrade to 2.20.0"
    cvss = of_type(doc, "security_CvssV3VulnAssessmentRelationship")
    assert cvss
    assert all(c["from"] == vuln["spdxId"] for c in cvss)
    assert all(c["security_vectorString"].startswith("CVSS:3") for c in cvss)


def test_a_not_affected_statement_becomes_does_not_affect(home: Home) -> None:
    _snapshot(home, kev=True)
    code, _, err = run(
        home, "vex", "add", "CVE-2018-18074", "--image", "app:1",
        "--component", "pkg:pypi/requests@2.19.0", "--status", "not_affected",
        "--justification", "vulnerable_code_not_in_execute_path",
        "--impact", "requests never follows redirects here", "--at", "2026-11-22T00:00:00Z",
    )  # fmt: skip
    assert code == 0, err
    doc = spdx(home)
    assert not of_type(doc, "security_VexAffectedVulnAssessmentRelationship")
    (waived,) = of_type(doc, "security_VexNotAffectedVulnAssessmentRelationship")
    assert waived["relationshipType"] == "doesNotAffect"
    assert waived["security_justificationType"] == "vulnerableCodeNotInExecutePath"
    assert waived["security_impactStatement"] == "requests never follows redirects here"
    assert waived["security_publishedTime"] == "2026-11-22T00:00:00Z"
    # judged before the statement existed, the finding is still affected
    before = spdx(home, "2026-11-21T00:00:00Z")
    assert of_type(before, "security_VexAffectedVulnAssessmentRelationship")


def test_the_class_check_refuses_what_the_schema_refuses() -> None:
    node = {"type": "software_Package", "spdxId": "https://x/p", "creationInfo": "_:c"}
    validate({"@context": SCHEMA["properties"]["@context"]["const"], "@graph": [node]})
    for bad in ({**node, "software_packageUrl": 3}, {**node, "madeUp": 1}, {"type": "Nope"}):
        with pytest.raises((jsonschema.ValidationError, AssertionError)):
            validate({"@context": SCHEMA["properties"]["@context"]["const"], "@graph": [bad]})


def test_same_inputs_same_bytes_and_a_bad_time_is_refused(home: Home) -> None:
    _snapshot(home, kev=True)
    first = run(home, "scan", "app:1", "--format", "spdx", "--at", AT)[1]
    assert run(home, "scan", "app:1", "--format", "spdx", "--at", AT)[1] == first
    code, _, err = run(home, "scan", "app:1", "--format", "spdx", "--at", "yesterday")
    assert code != 0
    assert "'yesterday' is not an RFC 3339 time" in err
