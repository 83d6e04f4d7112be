"""Hostile VEX documents handed to ``stella vex import`` (OpenVEX, CSAF VEX, CycloneDX VEX,
plain or wrapped in DSSE) and hostile arguments to ``stella vex add``.

Each case is refused with one exact line and its exit code, within the memory ceiling, and
leaves every byte of the home as it was; the last test compares what a user sees (VEX list,
trust list, audit verify, snapshots, images) with the untouched template.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.appliance.vex.test_csaf import CSAF
from tests.hostile.documents import (
    CYCLONEDX_VEX,
    OPENVEX,
    Template,
    case_fixtures,
    case_tests,
    changed,
    deep_in_field,
    deep_json,
    many_statements,
    sparse_file,
    write_json,
)
from tests.hostile.harness import Run, run

E = "stella: error: "
DEPTH = (
    "the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 "
    "(found 200,000) (if this input is trusted and that large, raise the cap with "
    "STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))"
)
EXPECT_VEX = "(expected an OpenVEX v0.2.0 JSON document)"

#: The one line each case is refused with; {f} is the file handed over.
EXPECTED: dict[str, str] = {
    "deep": E + "{f}: " + DEPTH,
    "deep-in-statements": E + "{f}: " + DEPTH.replace("200,000", "200,001"),
    "over-size": E + "{f}: a VEX document given to 'stella vex import' is over the "
    "vex.document_bytes cap of 16 MiB (found 17 MiB) (if this input is trusted and that "
    "large, raise the cap with STELLA_LIMIT_VEX_DOCUMENT_BYTES=N (docs/limits.md))",
    "statements-cap": E + "{f}: the statements of one VEX document (OpenVEX, or read from "
    "CSAF or CycloneDX) is over the vex.statements cap of 50,000 (found 50,001) (if this input "
    "is trusted and that large, raise the cap with STELLA_LIMIT_VEX_STATEMENTS=N "
    "(docs/limits.md))",
    "not-json": E + "{f}: not valid JSON: Expecting value: line 1 column 1 (char 0) " + EXPECT_VEX,
    "not-utf8": E + "{f}: not valid JSON: 'utf-8' codec can't decode byte 0xff in position 2: "
    "invalid start byte " + EXPECT_VEX,
    "empty": E + "{f}: not valid JSON: Expecting value: line 1 column 1 (char 0) " + EXPECT_VEX,
    "top-array": E + "{f}: not an OpenVEX document (a JSON object), but an array",
    "duplicate-key": E + "{f}: duplicate JSON object key 'status' " + EXPECT_VEX,
    "nan": E + "{f}: JSON constant NaN is not allowed " + EXPECT_VEX,
    "no-context": E + "{f}: required field '@context' is missing",
    "context-list": E + "{f}: field '@context' must be a string, not an array",
    "statements-object": E + "{f}: field 'statements' must be an array, not an object",
    "statement-string": E + "{f}: statements[0]: must be an object, not a string",
    "status-list": E + "{f}: statements[0]: field 'status' must be a string, not an array",
    "status-unknown": E + "{f}: statements[0]: status 'exploitable' is not an OpenVEX status "
    "(use one of not_affected, affected, fixed, under_investigation)",
    "status-huge": E + "{f}: statements[0]: status '" + "x" * 78 + "… is not an OpenVEX "
    "status (use one of not_affected, affected, fixed, under_investigation)",
    "justification-unknown": E + "{f}: statements[0]: justification 'because' is not an "
    "OpenVEX justification (use one of component_not_present, vulnerable_code_not_present, "
    "vulnerable_code_not_in_execute_path, vulnerable_code_cannot_be_controlled_by_adversary, "
    "inline_mitigations_already_exist)",
    "products-string": E + "{f}: statements[0]: field 'products' must be an array, not a string",
    "product-number": E + "{f}: statements[0].products[0]: must be an object with '@id' or "
    "'identifiers', not a number",
    "subcomponents-object": E + "{f}: statements[0].products[0]: field 'subcomponents' must be "
    "an array, not an object",
    "vulnerability-list": E + "{f}: statements[0]: field 'vulnerability' must name the "
    "vulnerability (a string, or an object with a string 'name' and an array 'aliases'), "
    "not an array",
    "timestamp-number": E + "{f}: field 'timestamp' must be a string, not a number",
    "timestamp-garbage": E + "{f}: statements[0].timestamp: 'yesterday' is not an RFC 3339 time "
    "(write e.g. 2026-12-31 or 2026-12-31T23:59:59Z)",
    "cdx-metadata-array": E + "{f}: field 'metadata' must be an object, not an array",
    "cdx-analysis-string": E + "{f}: vulnerabilities[0]: field 'analysis' must be an object, "
    "not a string",
    "cdx-state-list": E + "{f}: vulnerabilities[0]: analysis.state an array is not a "
    "CycloneDX state",
    "cdx-justification-object": E + "{f}: vulnerabilities[0]: analysis.justification must be a "
    "string, not an object",
    "cdx-unknown-ref": E + "{f}: vulnerabilities[0].affects[0]: ref 'nowhere' names no "
    "component with a purl (give the component a purl, or reference it by purl)",
    "cdx-components-string": E + "{f}: field 'components' must be an array, not a string",
    "csaf-tracking-array": E + "{f}: document: field 'tracking' must be an object, not an array",
    "csaf-tree-string": E + "{f}: field 'product_tree' must be an object, not a string",
    "csaf-status-list": E + "{f}: vulnerabilities[0]: field 'product_status' must be an object, "
    "not an array",
    "csaf-pid-object": E + "{f}: vulnerabilities[0]: product_status.known_affected names an "
    "object, which has no purl in the product tree (give the product a "
    "product_identification_helper.purl)",
    "csaf-multiplied": E + "{f}: the statements of one VEX document (OpenVEX, or read from CSAF "
    "or CycloneDX) is over the vex.statements cap of 50,000 (found 50,001) (if this input is "
    "trusted and that large, raise the cap with STELLA_LIMIT_VEX_STATEMENTS=N (docs/limits.md))",
    "dsse-bad-payload": E + "{f}: field 'payload' is not valid base64: Only base64 data is "
    "allowed (DSSE fields are standard or URL-safe base64 with padding)",
    "dsse-deep-payload": E + "{f} payload: " + DEPTH,
    "intoto-predicate-string": E + "{f}: not an OpenVEX document (a JSON object), but a string",
    "one-bad-of-two": E + "{f}: statements[0]: status 'exploitable' is not an OpenVEX status "
    "(use one of not_affected, affected, fixed, under_investigation)",
    "add-expires": E + "--expires: 'soon' is not an RFC 3339 time "
    "(write e.g. 2026-12-31 or 2026-12-31T23:59:59Z)",
    "add-justification-affected": E + "--justification is only for not_affected, not affected",
}


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    build: Callable[[Path, Template], tuple[list[Any], Path]]  # -> argv, the file handed over
    code: int = 1
    env: dict[str, str] = field(default_factory=dict)


def _import(doc: Any = None, *, raw: bytes | None = None, name: str = "vex.json") -> Any:
    def build(tmp: Path, _: Template) -> tuple[list[Any], Path]:
        path = tmp / name
        if raw is not None:
            path.write_bytes(raw)
        else:
            write_json(path, doc)
        return ["vex", "import", path], path

    return build


def _statement(**fields: Any) -> dict[str, Any]:
    def edit(doc: Any) -> None:
        doc["statements"][0].update(fields)

    return changed(OPENVEX, edit)


def _set(seed: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    def edit(doc: Any) -> None:
        for step in path[:-1]:
            doc = doc[step]
        doc[path[-1]] = value

    return changed(seed, edit)


def _over_size(tmp: Path, _: Template) -> tuple[list[Any], Path]:
    path = sparse_file(tmp / "big.json", 17 << 20, b'{"statements": [')
    return ["vex", "import", path], path


def _dsse(payload: bytes) -> bytes:
    return json.dumps(
        {
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64.b64encode(payload).decode(),
            "signatures": [],
        }
    ).encode()


def _csaf_multiplied() -> dict[str, Any]:
    doc = _set(CSAF, ("vulnerabilities", 0, "product_status"), {"known_affected": ["SSL"] * 50_001})
    doc["vulnerabilities"] = doc["vulnerabilities"][:1]
    return doc


def _one_bad_of_two(tmp: Path, _: Template) -> tuple[list[Any], Path]:
    good = write_json(tmp / "good.json", _set(OPENVEX, ("@id",), "https://vex.example.com/new"))
    bad = write_json(tmp / "bad.json", _statement(status="exploitable"))
    return ["vex", "import", good, bad], bad


def _add(*extra: str) -> Any:
    def build(tmp: Path, _: Template) -> tuple[list[Any], Path]:
        return ["vex", "add", "CVE-2025-1", "--image", "sha256:" + "ab" * 32, *extra], tmp

    return build


CASES = [
    Case("deep", _import(raw=deep_json())),
    Case("deep-in-statements", _import(raw=deep_in_field(OPENVEX, "statements"))),
    Case("over-size", _over_size),
    Case("statements-cap", _import(raw=many_statements(50_001))),
    Case("not-json", _import(raw=b"this is not a VEX document")),
    Case("not-utf8", _import(raw=b'{"\xff\xfe": 1}')),
    Case("empty", _import(raw=b"")),
    Case("top-array", _import([OPENVEX])),
    Case("duplicate-key", _import(raw=b'{"status": 1, "status": 2}')),
    Case("nan", _import(raw=b'{"version": NaN}')),
    Case("no-context", _import({k: v for k, v in OPENVEX.items() if k != "@context"})),
    Case("context-list", _import(_set(OPENVEX, ("@context",), ["https://openvex.dev/ns"]))),
    Case("statements-object", _import(_set(OPENVEX, ("statements",), {"0": {}}))),
    Case("statement-string", _import(_set(OPENVEX, ("statements",), ["not_affected"]))),
    Case("status-list", _import(_statement(status=["fixed"]))),
    Case("status-unknown", _import(_statement(status="exploitable"))),
    Case("status-huge", _import(_statement(status="x" * (4 << 20)))),
    Case("justification-unknown", _import(_statement(justification="because"))),
    Case("products-string", _import(_statement(products="pkg:oci/app"))),
    Case("product-number", _import(_statement(products=[42]))),
    Case(
        "subcomponents-object",
        _import(_statement(products=[{"@id": "pkg:oci/a", "subcomponents": {"a": 1}}])),
    ),
    Case("vulnerability-list", _import(_statement(vulnerability=["CVE-1"]))),
    Case("timestamp-number", _import(_set(OPENVEX, ("timestamp",), 1736935200))),
    Case("timestamp-garbage", _import(_statement(timestamp="yesterday"))),
    Case("cdx-metadata-array", _import(_set(CYCLONEDX_VEX, ("metadata",), []))),
    Case(
        "cdx-analysis-string",
        _import(_set(CYCLONEDX_VEX, ("vulnerabilities", 0, "analysis"), "not_affected")),
    ),
    Case(
        "cdx-state-list",
        _import(_set(CYCLONEDX_VEX, ("vulnerabilities", 0, "analysis", "state"), ["a"])),
    ),
    Case(
        "cdx-justification-object",
        _import(_set(CYCLONEDX_VEX, ("vulnerabilities", 0, "analysis", "justification"), {})),
    ),
    Case(
        "cdx-unknown-ref",
        _import(_set(CYCLONEDX_VEX, ("vulnerabilities", 0, "affects"), [{"ref": "nowhere"}])),
    ),
    Case("cdx-components-string", _import(_set(CYCLONEDX_VEX, ("components",), "ssl"))),
    Case("csaf-tracking-array", _import(_set(CSAF, ("document", "tracking"), []))),
    Case("csaf-tree-string", _import(_set(CSAF, ("product_tree",), "tree"))),
    Case("csaf-status-list", _import(_set(CSAF, ("vulnerabilities", 0, "product_status"), []))),
    Case(
        "csaf-pid-object",
        _import(
            _set(CSAF, ("vulnerabilities", 0, "product_status"), {"known_affected": [{"a": 1}]})
        ),
    ),
    Case("csaf-multiplied", _import(_csaf_multiplied())),
    Case(
        "dsse-bad-payload",
        _import(
            raw=b'{"payloadType": "application/vnd.in-toto+json", "payload": "%%%", '
            b'"signatures": []}'
        ),
    ),
    Case("dsse-deep-payload", _import(raw=_dsse(deep_json()))),
    Case(
        "intoto-predicate-string",
        _import(
            raw=_dsse(
                json.dumps(
                    {"_type": "https://in-toto.io/Statement/v1", "predicate": "not_affected"}
                ).encode()
            )
        ),
    ),
    Case("one-bad-of-two", _one_bad_of_two),
    Case("add-expires", _add("--status", "fixed", "--expires", "soon"), code=2),
    Case(
        "add-justification-affected",
        _add("--status", "affected", "--justification", "component_not_present", "--action", "x"),
        code=2,
    ),
]


def execute(case: Case, tmp: Path, made: Template, home: Path) -> tuple[Run, dict[str, Any]]:
    argv, handed = case.build(tmp, made)
    return run("stella", *argv, home=home, env=case.env), {"f": handed}


made, home, outcomes = case_fixtures("vex", CASES, execute)


(
    test_hostile_vex_is_refused,
    test_every_case_has_its_line,
    test_what_a_user_sees_is_unchanged_after_every_refusal,
) = case_tests(CASES, EXPECTED)
