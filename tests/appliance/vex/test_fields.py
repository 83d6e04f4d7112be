"""VEX documents of the wrong shape are refused with the field named, within the statement
and size caps, and a bad file among several imports stores none of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from appliance.home import Home
from appliance.vex import csaf, cyclonedx, service
from appliance.vex.model import VexError
from bundles.limits import LimitError
from tests.appliance.rva.factories import AT
from tests.appliance.vex.test_csaf import CSAF
from tests.hostile.documents import CYCLONEDX_VEX, OPENVEX, changed, sparse_file


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            changed(CYCLONEDX_VEX, lambda d: d.update(metadata=[])),
            "field 'metadata' must be an object, not an array",
        ),
        (
            changed(CYCLONEDX_VEX, lambda d: d["vulnerabilities"][0].update(analysis="x")),
            "vulnerabilities[0]: field 'analysis' must be an object, not a string",
        ),
        (
            changed(CYCLONEDX_VEX, lambda d: d["vulnerabilities"][0]["analysis"].update(state=[1])),
            "vulnerabilities[0]: analysis.state an array is not a CycloneDX state",
        ),
    ],
    ids=["metadata", "analysis", "state"],
)
def test_cyclonedx_fields_are_named(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(VexError) as raised:
        cyclonedx.to_openvex(doc, source="c.json")
    assert raised.value.message == f"c.json: {message}"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["document"].update(tracking=[]),
            "document: field 'tracking' must be an object, not an array",
        ),
        (
            lambda d: d.update(product_tree="x"),
            "field 'product_tree' must be an object, not a string",
        ),
        (
            lambda d: d["vulnerabilities"][0].update(product_status={"fixed": [[]]}),
            "vulnerabilities[0]: product_status.fixed names an array, which has no purl in the "
            "product tree",
        ),
    ],
    ids=["tracking", "tree", "pid"],
)
def test_csaf_fields_are_named(edit: Any, message: str) -> None:
    with pytest.raises(VexError) as raised:
        csaf.to_openvex(changed(CSAF, edit), source="c.json")
    assert raised.value.message == f"c.json: {message}"


def test_csaf_statements_are_counted_as_they_are_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STELLA_LIMIT_VEX_STATEMENTS", "3")
    with pytest.raises(LimitError, match="vex.statements cap of 3 .found 4."):
        csaf.to_openvex(CSAF, source="c.json")


def test_an_over_size_file_is_refused_unread(tmp_path: Path) -> None:
    with pytest.raises(LimitError, match="vex.document_bytes cap of 16 MiB .found 1 GiB."):
        service.read_document(sparse_file(tmp_path / "big.json", 1 << 30, b"{"))


def test_a_bad_file_among_several_stores_none(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(OPENVEX))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(changed(OPENVEX, lambda d: d["statements"][0].update(status="x"))))
    with pytest.raises(VexError, match="status 'x' is not an OpenVEX status"):
        service.import_files(home, [good, bad], at=AT)
    assert service.stored_statements(home) == []
