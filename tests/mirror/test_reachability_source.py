"""The ``reachability-curated`` source: the curated file shipped in examples/ parses whole,
each bad record is left out with an unknown naming it and why, and the dataset is canonical
(the same records in another order give the same bytes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bundles.snapshot import DatasetType, build_dataset
from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources import SOURCES

CURATED = Path(__file__).resolve().parents[2] / "examples" / "reachability" / "pypi-curated.json"
SOURCE = SOURCES[SourceKind.REACHABILITY_CURATED]


def _parse(records: Any, name: str = "r.json") -> Any:
    return SOURCE.parse([Member(name, json.dumps(records).encode())])


def _record(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": "CVE-2018-18074",
        "source": "PYSEC-2018-28 and fix c45d7c4",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "requests"},
                "imports": [
                    {"path": "requests.sessions", "symbols": ["SessionRedirectMixin.rebuild_auth"]}
                ],
            }
        ],
    }
    record.update(changes)
    return record


def test_the_shipped_file_parses_whole() -> None:
    result = SOURCE.parse([Member(CURATED.name, CURATED.read_bytes())])
    assert result.unknowns == []
    assert len(result.records) == len(json.loads(CURATED.read_text())["records"]) >= 10
    assert SOURCE.dataset_type is DatasetType.REACHABILITY
    by_id = {r["id"]: r for r in result.records}
    assert by_id["CVE-2018-18074"]["affected"][0]["imports"] == [
        {"path": "requests.sessions", "symbols": ["SessionRedirectMixin.rebuild_auth"]}
    ]
    assert all(r["source"] for r in result.records)


def test_forms_list_object_and_lines_agree() -> None:
    listed = _parse([_record()])
    wrapped = _parse({"records": [_record()]})
    lines = SOURCE.parse([Member("r.jsonl", json.dumps(_record()).encode() + b"\n")])
    assert listed.records == wrapped.records == lines.records
    assert listed.unknowns == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": "not an id"}, "no valid 'id'"),
        ({"source": ""}, "no 'source' saying where the names were checked"),
        ({"affected": []}, "no 'affected' entries"),
        (
            {"affected": [{"package": {"ecosystem": "npm", "name": "x"}, "imports": []}]},
            "affected[0].package needs ecosystem PyPI and a name",
        ),
        (
            {"affected": [{"package": {"ecosystem": "PyPI", "name": "x"}, "imports": []}]},
            "affected[0]: no imports (module paths) named",
        ),
        (
            {
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "x"},
                        "imports": [{"path": "x/y.py"}],
                    }
                ]
            },
            "imports[0].path is not a dotted module name: 'x/y.py'",
        ),
        (
            {
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": "x"},
                        "imports": [{"path": "x", "symbols": ["f()"]}],
                    }
                ]
            },
            "imports[0].symbols must be dotted names",
        ),
    ],
)
def test_a_bad_record_is_left_out_and_named(changes: dict[str, Any], reason: str) -> None:
    result = _parse([_record(), _record(**changes)])
    assert len(result.records) == 1
    [unknown] = result.unknowns
    assert unknown.item == "r.json[1]"
    assert reason in unknown.reason


def test_the_dataset_is_canonical() -> None:
    records = SOURCE.parse([Member(CURATED.name, CURATED.read_bytes())]).records
    a = build_dataset("reachability-pypi", DatasetType.REACHABILITY, records)
    b = build_dataset("reachability-pypi", DatasetType.REACHABILITY, list(reversed(records)))
    assert a == b
