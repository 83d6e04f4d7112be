# ruff: noqa: E501  (the expected refusals are one line each, as the user sees them)
"""Hostile parts of split bundles against ``stella import`` and ``stella-mirror verify``:
missing, duplicated, foreign, corrupt or misnamed parts, part headers that lie about their
length or nest too deep, and well-signed parts that reassemble into a hostile bundle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bundles.keys import PrivateKey
from bundles.parts import MAGIC, split_bundle
from tests.hostile.bundlekit import CHANNEL, Kit
from tests.hostile.bundleplay import (
    Build,
    Case,
    Outcome,
    World,
    check_import,
    check_verify,
    world_fixtures,
    worst,
)
from tests.hostile.cases_bundles import CASES as BUNDLES
from tests.hostile.harness import RSS_CEILING, run

NAME = "split.stella.tar.zst"


def parts_of(
    kit: Kit,
    d: Path,
    *,
    count: int = 3,
    signer: PrivateKey | None = None,
    name: str = NAME,
    bundle: Build | None = None,
) -> list[Path]:
    """A good bundle (or the one ``bundle`` builds) split into ``count`` signed parts."""
    if bundle is None:
        path = kit.good(d / name)
    else:
        built = bundle(kit, d)[0]
        path = built.rename(d / name)
    size = path.stat().st_size
    parts, _ = split_bundle(path, -(-size // count), signer or kit.signer, CHANNEL)
    return parts


def only(*indexes: int) -> Build:
    return lambda kit, d: [parts_of(kit, d)[i] for i in indexes]


def _foreign(kit: Kit, d: Path) -> list[Path]:
    ours = parts_of(kit, d)
    (d / "other").mkdir()
    theirs = parts_of(kit, d / "other", name="other.stella.tar.zst")
    return [ours[0], theirs[1], ours[2]]


def _corrupt(kit: Kit, d: Path) -> list[Path]:
    parts = parts_of(kit, d)
    data = bytearray(parts[1].read_bytes())
    data[-3] ^= 0xFF
    parts[1].write_bytes(bytes(data))
    return parts


def _appended(kit: Kit, d: Path) -> list[Path]:
    parts = parts_of(kit, d)
    with open(parts[2], "ab") as out:
        out.write(b"\0" * 100)
    return parts


def _header(length: int, body: bytes = b"") -> Build:
    """Part 1 replaced by a part header claiming ``length`` bytes (with ``body`` after it)."""

    def build(kit: Kit, d: Path) -> list[Path]:
        parts = parts_of(kit, d)
        parts[0].write_bytes(MAGIC + length.to_bytes(8, "big") + body)
        return parts

    return build


def _truncated_header(kit: Kit, d: Path) -> list[Path]:
    parts = parts_of(kit, d)
    parts[0].write_bytes(MAGIC + b"\0\0\0")
    return parts


def _renamed(kit: Kit, d: Path) -> list[Path]:
    parts = parts_of(kit, d)
    return [parts[0], parts[1].rename(d / "second-part.bin"), parts[2]]


def _untrusted(kit: Kit, d: Path) -> list[Path]:
    return parts_of(kit, d, signer=PrivateKey.generate())


def _non_utf8(kit: Kit, d: Path) -> list[Path]:
    parts = _corrupt(kit, d)
    odd = d / os.fsdecode(b"\xff" + parts[1].name.encode())
    return [parts[0], parts[1].rename(odd), parts[2]]


def _hostile(case_id: str) -> Build:
    inner = next(c for c in BUNDLES if c.id == case_id).build
    return lambda kit, d: parts_of(kit, d, bundle=inner)


DEEP = b"[" * 100_000 + b"]" * 100_000
_BUILDS: list[tuple[str, Build]] = [
    ("part-missing", only(0, 2)),
    ("two-parts-missing", only(1)),
    ("part-given-twice", only(0, 1, 1, 2)),
    ("foreign-part", _foreign),
    ("corrupt-part", _corrupt),
    ("part-with-bytes-appended", _appended),
    ("part-header-claims-2^63", _header(1 << 63)),
    ("part-header-really-5MiB", _header(5 << 20, b" " * (5 << 20))),
    ("part-header-100k-deep", _header(len(DEEP), DEEP)),
    ("part-header-not-json", _header(9, b"not json!")),
    ("part-header-truncated", _truncated_header),
    ("part-header-shorter-than-it-says", _header(4096, b"{}")),
    ("part-misnamed", _renamed),
    ("parts-untrusted-signer", _untrusted),
    ("corrupt-part-non-utf8-name", _non_utf8),
    ("parts-of-a-negative-size-statement", _hostile("statement-negative-base256-then-zeros")),
    ("parts-of-600MB-before-statement", _hostile("600MB-record-before-statement")),
    ("parts-of-a-zstd-bomb", _hostile("zstd-bomb-after-the-end")),
    ("parts-of-a-200k-deep-statement", _hostile("statement-200k-deep-json")),
]
#: An incomplete set is not refused for good: it waits for its other parts.
_WAITING = {"part-missing", "two-parts-missing"}


EXPECTED: dict[str, tuple[str, str | None]] = {
    "part-missing": (
        "split.stella.tar.zst: 1 of 3 parts missing: split.stella.tar.zst.part-002-of-003 (bring every part; the others are kept until the set is complete)",
        "split.stella.tar.zst: 1 of 3 parts missing: split.stella.tar.zst.part-002-of-003 (give every part to check the set as a whole, or pass --partial to check only the parts given)",
    ),
    "two-parts-missing": (
        "split.stella.tar.zst: 2 of 3 parts missing: split.stella.tar.zst.part-001-of-003, split.stella.tar.zst.part-003-of-003 (bring every part; the others are kept until the set is complete)",
        "split.stella.tar.zst: 2 of 3 parts missing: split.stella.tar.zst.part-001-of-003, split.stella.tar.zst.part-003-of-003 (give every part to check the set as a whole, or pass --partial to check only the parts given)",
    ),
    "part-given-twice": (
        "split.stella.tar.zst.part-002-of-003: part 2 given twice (reason in {reason})",
        "split.stella.tar.zst.part-002-of-003: part 2 given twice",
    ),
    "foreign-part": (
        "other.stella.tar.zst.part-002-of-003: belongs to another bundle than split.stella.tar.zst.part-001-of-003 (import the parts of one bundle together; reason in {reason})",
        "other.stella.tar.zst.part-002-of-003: belongs to another bundle than split.stella.tar.zst.part-001-of-003 (import the parts of one bundle together)",
    ),
    "corrupt-part": (
        "split.stella.tar.zst.part-002-of-003: part 2 is corrupt (its content does not match the signed parts manifest) (copy that part again from the connected side; reason in {reason})",
        "split.stella.tar.zst.part-002-of-003: content matches no part of the signed manifest of split.stella.tar.zst (this part is corrupt; copy it again from the connected side)",
    ),
    "part-with-bytes-appended": (
        "split.stella.tar.zst.part-003-of-003: part 3 is corrupt (its content does not match the signed parts manifest) (copy that part again from the connected side; reason in {reason})",
        "split.stella.tar.zst.part-003-of-003: content matches no part of the signed manifest of split.stella.tar.zst (this part is corrupt; copy it again from the connected side)",
    ),
    "part-header-claims-2^63": (
        "split.stella.tar.zst.part-001-of-003: part header: the signed parts manifest at the head of each part is over the bundle.parts_manifest_bytes cap of 4 MiB (found 8589934592 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_PARTS_MANIFEST_BYTES=N (docs/limits.md); reason in {reason})",
        "split.stella.tar.zst.part-001-of-003: part header: the signed parts manifest at the head of each part is over the bundle.parts_manifest_bytes cap of 4 MiB (found 8589934592 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_PARTS_MANIFEST_BYTES=N (docs/limits.md))",
    ),
    "part-header-really-5MiB": (
        "split.stella.tar.zst.part-001-of-003: part header: the signed parts manifest at the head of each part is over the bundle.parts_manifest_bytes cap of 4 MiB (found 5 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_PARTS_MANIFEST_BYTES=N (docs/limits.md); reason in {reason})",
        "split.stella.tar.zst.part-001-of-003: part header: the signed parts manifest at the head of each part is over the bundle.parts_manifest_bytes cap of 4 MiB (found 5 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_PARTS_MANIFEST_BYTES=N (docs/limits.md))",
    ),
    "part-header-100k-deep": (
        "split.stella.tar.zst.part-001-of-003: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 100,000) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md); reason in {reason})",
        "split.stella.tar.zst.part-001-of-003: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 100,000) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))",
    ),
    "part-header-not-json": (
        "split.stella.tar.zst.part-001-of-003: not valid JSON: Expecting value: line 1 column 1 (char 0) (expected a DSSE JSON envelope; reason in {reason})",
        "split.stella.tar.zst.part-001-of-003: not valid JSON: Expecting value: line 1 column 1 (char 0) (expected a DSSE JSON envelope)",
    ),
    "part-header-truncated": (
        "split.stella.tar.zst.part-001-of-003: truncated part header (reason in {reason})",
        "split.stella.tar.zst.part-001-of-003: truncated part header",
    ),
    "part-header-shorter-than-it-says": (
        "split.stella.tar.zst.part-001-of-003: truncated part header (reason in {reason})",
        "split.stella.tar.zst.part-001-of-003: truncated part header",
    ),
    "part-misnamed": (
        "second-part.bin: name does not say which of the 3 parts it is (keep the part-NNN-of-MMM names the export wrote; reason in {reason})",
        "second-part.bin: name does not say which of the 3 parts it is (keep the part-NNN-of-MMM names the export wrote)",
    ),
    "parts-untrusted-signer": (
        "split.stella.tar.zst.part-001-of-003: parts manifest: envelope is signed only by keys that are not trusted: …",
        "split.stella.tar.zst.part-001-of-003: parts manifest: envelope is signed only by keys that are not trusted: …",
    ),
    "corrupt-part-non-utf8-name": (
        "\\xffsplit.stella.tar.zst.part-002-of-003: part 2 is corrupt (its content does not match the signed parts manifest) (copy that part again from the connected side; reason in {reason})",
        "\\xffsplit.stella.tar.zst.part-002-of-003: content matches no part of the signed manifest of split.stella.tar.zst (this part is corrupt; copy it again from the connected side)",
    ),
    "parts-of-a-negative-size-statement": (
        "split.stella.tar.zst: not a well-formed tar stream: a tar header declares a negative size (-1099511627776) (reason in {reason})",
        "split.stella.tar.zst: not a well-formed tar stream: a tar header declares a negative size (-1099511627776)",
    ),
    "parts-of-600MB-before-statement": (
        "split.stella.tar.zst: first member is 'records.jsonl', expected 'statement.dsse.json' (this is not a Stella Ops bundle, or it was repacked; reason in {reason})",
        "split.stella.tar.zst: first member is 'records.jsonl', expected 'statement.dsse.json' (this is not a Stella Ops bundle, or it was repacked)",
    ),
    "parts-of-a-zstd-bomb": (
        "split.stella.tar.zst: the zero padding after a bundle's end-of-archive marker is over the bundle.trailing_bytes cap of 1 MiB (found 2 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_TRAILING_BYTES=N (docs/limits.md); reason in {reason})",
        "split.stella.tar.zst: the zero padding after a bundle's end-of-archive marker is over the bundle.trailing_bytes cap of 1 MiB (found 2 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_TRAILING_BYTES=N (docs/limits.md))",
    ),
    "parts-of-a-200k-deep-statement": (
        "split.stella.tar.zst: statement.dsse.json: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 200,000) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md); reason in {reason})",
        "split.stella.tar.zst: statement.dsse.json: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 200,000) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))",
    ),
}


CASES: list[Case] = [
    Case(i, build, *EXPECTED[i], quarantined=i not in _WAITING) for i, build in _BUILDS
]


world, outcomes = world_fixtures("hostile-parts", CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_import_refuses_parts_and_changes_nothing(
    case: Case, world: World, outcomes: dict[str, Outcome]
) -> None:
    check_import(case, world, outcomes[case.id])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mirror_verify_refuses_parts(case: Case, outcomes: dict[str, Outcome]) -> None:
    check_verify(case, outcomes[case.id])


def test_worst_peak_of_parts(outcomes: dict[str, Outcome]) -> None:
    if not outcomes:
        pytest.skip("no case selected")
    assert worst(outcomes).peak_rss <= RSS_CEILING


def test_mirror_verify_reports_good_parts_named_in_no_encoding(world: World) -> None:
    """Parts whose file names are not UTF-8 verify, and the JSON report names them escaped
    (the names are the carrier's, not the signer's)."""
    d = world.root / "odd-names"
    d.mkdir()
    first, second = parts_of(world.kit, d, count=2)
    odd = second.rename(d / os.fsdecode(b"\xff" + second.name.encode()))
    result = run(
        "stella-mirror",
        "--json",
        "verify",
        first,
        odd,
        "--trust-root",
        world.kit.trust_root,
        home=d / "mirror",
    )
    assert result.code == 0, result.describe()
    report = json.loads(result.out)
    assert report["complete"] is True
    assert [p["file"] for p in report["parts"]] == [
        str(first),
        str(d) + "/\\xff" + second.name,
    ]
