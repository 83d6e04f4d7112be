"""CSAF 2.0 VEX imported as OpenVEX: product tree, relationships, statuses and flags."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from appliance.home import Home
from appliance.vex import service
from appliance.vex.csaf import to_openvex
from appliance.vex.merge import merge
from appliance.vex.model import Justification, Origin, VexError, VexStatus
from appliance.vex.openvex import statements_of
from appliance.vex.products import ImageIdentity
from tests.appliance.rva.factories import AT, IMAGE_DIGEST, OPENSSL, finding
from tests.appliance.vex.test_openvex import SCHEMA

IMAGE = f"pkg:oci/app@sha256%3A{'ab' * 32}"
CSAF: dict[str, Any] = {
    "document": {
        "category": "csaf_vex",
        "csaf_version": "2.0",
        "publisher": {
            "name": "Vendor PSIRT",
            "category": "vendor",
            "namespace": "https://vendor.example",
        },
        "title": "openssl in app",
        "tracking": {
            "id": "VENDOR-2026-0042",
            "version": "2",
            "current_release_date": "2026-10-10T00:00:00Z",
            "initial_release_date": "2026-10-01T00:00:00Z",
            "status": "final",
            "revision_history": [],
        },
    },
    "product_tree": {
        "branches": [
            {
                "category": "vendor",
                "name": "Vendor",
                "branches": [
                    {
                        "category": "product_name",
                        "name": "app",
                        "product": {
                            "product_id": "APP",
                            "name": "app 1",
                            "product_identification_helper": {"purl": IMAGE},
                        },
                    },
                ],
            }
        ],
        "full_product_names": [
            {
                "product_id": "SSL",
                "name": "openssl",
                "product_identification_helper": {"purl": OPENSSL},
            },
            {"product_id": "NOPURL", "name": "something"},
        ],
        "relationships": [
            {
                "category": "default_component_of",
                "product_reference": "SSL",
                "relates_to_product_reference": "APP",
                "full_product_name": {"product_id": "APP:SSL", "name": "openssl in app"},
            }
        ],
    },
    "vulnerabilities": [
        {
            "cve": "CVE-2024-0001",
            "ids": [{"system_name": "Vendor", "text": "VENDOR-BUG-1"}],
            "product_status": {"known_not_affected": ["APP:SSL"], "known_affected": ["SSL"]},
            "flags": [{"label": "vulnerable_code_not_in_execute_path", "product_ids": ["APP:SSL"]}],
            "remediations": [
                {"category": "vendor_fix", "details": "upgrade to 3.0.13", "product_ids": ["SSL"]}
            ],
        },
        {
            "cve": "CVE-2024-0002",
            "product_status": {"known_not_affected": ["APP"], "under_investigation": ["SSL"]},
            "threats": [
                {
                    "category": "impact",
                    "details": "TLS is terminated upstream",
                    "product_ids": ["APP"],
                }
            ],
        },
    ],
}


def test_csaf_vex_becomes_valid_openvex() -> None:
    doc = to_openvex(CSAF, source="csaf.json")
    assert list(Draft202012Validator(SCHEMA).iter_errors(doc)) == []
    assert doc["@id"] == "urn:csaf:VENDOR-2026-0042:2"
    got = {
        (s.vulnerability, s.status): s
        for s in statements_of(doc, origin=Origin.VENDOR, source="csaf")
    }
    in_app = got[("CVE-2024-0001", VexStatus.NOT_AFFECTED)]
    assert in_app.products[0].id == IMAGE
    assert in_app.products[0].subcomponents == (OPENSSL,)
    assert in_app.justification is Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
    assert in_app.aliases == ("VENDOR-BUG-1",)
    assert got[("CVE-2024-0001", VexStatus.AFFECTED)].action == "upgrade to 3.0.13"
    assert got[("CVE-2024-0002", VexStatus.NOT_AFFECTED)].impact == "TLS is terminated upstream"
    assert ("CVE-2024-0002", VexStatus.UNDER_INVESTIGATION) in got


def test_merged_csaf_statement_decides_by_specificity() -> None:
    statements = statements_of(to_openvex(CSAF, source="csaf"), origin=Origin.VENDOR, source="csaf")
    result = merge([finding("CVE-2024-0001")], statements, ImageIdentity.of(IMAGE_DIGEST), AT)
    # same vendor, same time: the subcomponent-in-image statement beats the bare component one
    assert result.findings[0].status is VexStatus.NOT_AFFECTED


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("document", "tracking", "current_release_date"), None, "has no tracking.id"),
        (
            ("vulnerabilities", 0, "product_status"),
            {"known_affected": ["NOPURL"]},
            "'NOPURL', which has no purl",
        ),
        (
            ("vulnerabilities",),
            [{"cve": "CVE-1", "product_status": {"recommended": ["SSL"]}}],
            "no product status",
        ),
        (("vulnerabilities",), [{"product_status": {}}], "has neither cve nor ids"),
    ],
)
def test_bad_csaf(path: tuple[Any, ...], value: Any, message: str) -> None:
    doc = copy.deepcopy(CSAF)
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    with pytest.raises(VexError, match=message):
        to_openvex(doc, source="csaf.json")


def test_import_file_reads_csaf(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    path = tmp_path / "advisory.json"
    path.write_text(json.dumps(CSAF))
    recorded = service.import_file(home, path, at=AT)
    assert len(recorded.statements) == 4
