"""Reading OpenVEX strictly, and writing documents the published schema accepts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from appliance.vex.model import Justification, Origin, Product, VexError, VexStatus
from appliance.vex.openvex import authored_document, statements_of
from tests.appliance.rva.factories import AT, IMAGE_DIGEST, OPENSSL

SCHEMA = json.loads(
    (Path(__file__).parents[2] / "data/schemas/openvex-0.2.0.schema.json").read_text()
)

VENDOR: dict[str, Any] = {
    "@context": "https://openvex.dev/ns/v0.2.0",
    "@id": "https://vendor.example/vex/2026-0001",
    "author": "Vendor Security",
    "timestamp": "2026-10-01T12:00:00Z",
    "version": 1,
    "statements": [
        {
            "vulnerability": {"name": "CVE-2024-0001", "aliases": ["GHSA-xxxx-yyyy-zzzz"]},
            "products": [
                {
                    "@id": f"pkg:oci/app@{IMAGE_DIGEST}",
                    "subcomponents": [{"@id": OPENSSL}],
                }
            ],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path",
        },
        {
            "vulnerability": {"name": "CVE-2024-0002"},
            "timestamp": "2026-10-02T00:00:00+02:00",
            "products": [{"identifiers": {"purl": OPENSSL}}],
            "status": "affected",
            "action_statement": "upgrade to 3.0.13",
        },
    ],
}


def test_vendor_document_reads_into_statements() -> None:
    assert Draft202012Validator(SCHEMA).is_valid(VENDOR)
    first, second = statements_of(VENDOR, origin=Origin.VENDOR, source="vendor.json")
    assert first.key == "https://vendor.example/vex/2026-0001#0"
    assert first.names == {"CVE-2024-0001", "GHSA-XXXX-YYYY-ZZZZ"}
    assert first.products == (Product(f"pkg:oci/app@{IMAGE_DIGEST}", (OPENSSL,)),)
    assert first.justification is Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH
    assert first.timestamp.isoformat() == "2026-10-01T12:00:00+00:00"  # the document's
    assert second.timestamp.isoformat() == "2026-10-01T22:00:00+00:00"  # its own, in UTC
    assert second.products == (Product(OPENSSL),)
    assert first.origin is Origin.VENDOR
    assert first.expires is None


def _broken(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(VENDOR)
    target: Any = doc
    for part in path[:-1]:
        target = target[part]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("@context",), "https://example.com/ns", "not an OpenVEX context"),
        (("@id",), KeyError, "required field '@id' is missing"),
        (("timestamp",), "yesterday", "'yesterday' is not an RFC 3339 time"),
        (("timestamp",), "2026-10-01T12:00:00", "has no time zone"),
        (("statements", 0, "status"), "exploitable", "'exploitable' is not an OpenVEX status"),
        (
            ("statements", 0, "justification"),
            "not_reachable",
            "'not_reachable' is not an OpenVEX justification",
        ),
        (("statements", 0, "justification"), KeyError, "needs a justification or an impact"),
        (("statements", 1, "action_statement"), KeyError, "affected needs an action_statement"),
        (("statements", 0, "products"), [], "names no products"),
        (("statements", 0, "products", 0), {"hashes": {}}, "neither '@id' nor 'identifiers.purl'"),
        (("statements", 0, "vulnerability"), {"id": "x"}, "must name the vulnerability"),
    ],
)
def test_bad_documents_are_refused_naming_the_field(
    path: tuple[Any, ...], value: Any, message: str
) -> None:
    with pytest.raises(VexError, match=message) as caught:
        statements_of(_broken(path, value), origin=Origin.VENDOR, source="vendor.json")
    assert caught.value.message.startswith("vendor.json")


@pytest.mark.parametrize(
    ("status", "justification", "impact", "action"),
    [
        (VexStatus.NOT_AFFECTED, Justification.COMPONENT_NOT_PRESENT, "", ""),
        (VexStatus.NOT_AFFECTED, None, "only used offline", ""),
        (VexStatus.AFFECTED, None, "", "upgrade"),
        (VexStatus.FIXED, None, "", ""),
        (VexStatus.UNDER_INVESTIGATION, None, "", ""),
    ],
)
def test_authored_documents_conform_to_the_openvex_schema(
    status: VexStatus, justification: Justification | None, impact: str, action: str
) -> None:
    doc = authored_document(
        vulnerability="CVE-2024-0001",
        products=(Product(f"pkg:oci/app@{IMAGE_DIGEST}", (OPENSSL,)),),
        status=status,
        justification=justification,
        impact=impact,
        action=action,
        notes="exception; expires 2027-01-01T00:00:00Z",
        author="alice@host",
        timestamp=AT,
    )
    errors = list(Draft202012Validator(SCHEMA).iter_errors(doc))
    assert errors == []
    (read,) = statements_of(doc, origin=Origin.OPERATOR, source="authored")
    assert read.status is status
    assert read.timestamp == AT
    again = authored_document(
        vulnerability="CVE-2024-0001",
        products=(Product(f"pkg:oci/app@{IMAGE_DIGEST}", (OPENSSL,)),),
        status=status,
        justification=justification,
        impact=impact,
        action=action,
        notes="exception; expires 2027-01-01T00:00:00Z",
        author="alice@host",
        timestamp=AT,
    )
    assert again["@id"] == doc["@id"]  # content-derived identity
