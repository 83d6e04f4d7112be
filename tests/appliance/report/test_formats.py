"""Report formats: reviewed goldens (rewrite with STELLA_UPDATE_GOLDENS=1 and review the
diff), SARIF validated against the 2.1.0 schema, CycloneDX structure, round trips."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from appliance.match import (
    FindingsReport,
    Inventory,
    MemoryAdvisories,
    Reachability,
    ReachabilityFact,
    match,
)
from appliance.report import Format, render
from appliance.report.cyclonedx_vex import cyclonedx_document
from appliance.report.sarif import sarif_document
from tests.appliance.match.data import SNAPSHOT, cve, debian12, ghsa, npm, pypi
from tests.appliance.match.test_app_image import APP
from tests.appliance.match.test_distro import BOOKWORM, IMAGE

TESTS = Path(__file__).resolve().parents[2]
GOLDEN = TESTS / "golden" / "match"
SARIF_SCHEMA = TESTS / "data" / "schemas" / "sarif-2.1.0.json"
CDX_SCHEMAS = TESTS / "data" / "schemas" / "cyclonedx-1.6"
KEV = [{"id": "CVE-2023-4911", "dateAdded": "2023-11-21", "dueDate": "2023-12-12"}]
EPSS = [{"id": "CVE-2023-4911", "epss": "0.83", "percentile": "0.99"}]


def report() -> FindingsReport:
    source = MemoryAdvisories(
        [*pypi(), *npm(), *debian12(), *ghsa()], kev=KEV, epss=EPSS, cve=cve(), snapshot=SNAPSHOT
    )
    inventory = Inventory.of(
        [*APP[:2], APP[5], *IMAGE[4:]],
        BOOKWORM,
        file_layers={"var/lib/dpkg/status": "sha256:" + "1" * 64},
        reachability=[
            ReachabilityFact("pkg:pypi/requests@2.19.0", Reachability.REACHABLE, ("/app/run.py",))
        ],
        target="app:1.0",
    )
    return match(inventory, source)


NAMES = {
    Format.TABLE: "report.txt",
    Format.JSON: "report.json",
    Format.SARIF: "report.sarif.json",
    Format.CYCLONEDX_VEX: "report.cdx.json",
}


@pytest.mark.parametrize("fmt", list(NAMES))
def test_goldens(fmt: Format) -> None:
    data = render(report(), fmt)
    path = GOLDEN / NAMES[fmt]
    if os.environ.get("STELLA_UPDATE_GOLDENS") == "1":
        path.write_bytes(data)
    assert data == path.read_bytes()


def test_sarif_validates_against_the_schema() -> None:
    doc = sarif_document(report())
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(doc)
    run = doc["runs"][0]
    assert {r["ruleId"] for r in run["results"]} == {
        r["id"] for r in run["tool"]["driver"]["rules"]
    }
    glibc = next(r for r in run["results"] if r["ruleId"] == "CVE-2023-4911")
    assert glibc["level"] == "error"
    assert glibc["properties"]["kev"] is True
    assert glibc["locations"][0]["properties"]["layer"] == "sha256:" + "1" * 64


def test_sarif_schema_rejects_a_broken_log() -> None:
    doc = sarif_document(report())
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(doc)


def cyclonedx_validator() -> jsonschema.Draft7Validator:
    resources = []
    for path in CDX_SCHEMAS.glob("*.json"):
        doc = json.loads(path.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc, default_specification=DRAFT7)))
    schema = json.loads((CDX_SCHEMAS / "bom-1.6.schema.json").read_text())
    return jsonschema.Draft7Validator(
        schema,
        registry=Registry().with_resources(resources),
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )


def test_cyclonedx_validates_against_the_schema() -> None:
    doc = json.loads(render(report(), Format.CYCLONEDX_VEX))
    errors = sorted(cyclonedx_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    doc["vulnerabilities"][0]["ratings"] = [{"severity": "severe"}]
    assert not cyclonedx_validator().is_valid(doc)


def test_cyclonedx_vulnerabilities() -> None:
    doc = cyclonedx_document(report())
    assert (doc["bomFormat"], doc["specVersion"]) == ("CycloneDX", "1.6")
    refs = {c["bom-ref"] for c in doc["components"]}
    vulns = {v["id"]: v for v in doc["vulnerabilities"]}
    assert all(a["ref"] in refs for v in vulns.values() for a in v["affects"])
    glibc = vulns["CVE-2023-4911"]
    assert {r["id"] for r in glibc["references"]} == {"DEBIAN-CVE-2023-4911", "DSA-5514-1"}
    assert glibc["ratings"][0]["method"] == "other"
    assert glibc["ratings"][0]["severity"] == "high"
    assert glibc["recommendation"] == "Upgrade to a fixed version: 2.36-9+deb12u3"


def test_json_round_trips() -> None:
    r = report()
    again = FindingsReport.from_dict(json.loads(render(r, Format.JSON)))
    assert again == r


def test_an_empty_report_renders_in_every_format() -> None:
    empty = FindingsReport.build((), snapshot=SNAPSHOT, target="scratch:1", components=0)
    assert render(empty, Format.TABLE).startswith(b"No vulnerabilities found.\n")
    sarif = sarif_document(empty)
    jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text())).validate(sarif)
    assert sarif["runs"][0]["results"] == []
    assert cyclonedx_validator().is_valid(json.loads(render(empty, Format.CYCLONEDX_VEX)))
    assert json.loads(render(empty, Format.JSON))["counts"]["critical"] == 0
