"""OSV semantics of one affected entry, and of records as the matcher sees them."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.match import Inventory, MatchKind, MemoryAdvisories, UnknownKind, match
from appliance.match.osv import Affected, Undecided, evaluate
from appliance.scanner.model import Package, PackageType


def entry(
    *events: dict[str, str], rtype: str = "ECOSYSTEM", versions: list[str] | None = None
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "package": {"ecosystem": "PyPI", "name": "x"},
        "ranges": [{"type": rtype, "events": list(events)}],
    }
    if versions is not None:
        e["versions"] = versions
    return e


@pytest.mark.parametrize(
    ("events", "version", "affected"),
    [
        ([{"introduced": "0"}, {"fixed": "1.0"}], "0.9", True),
        ([{"introduced": "0"}, {"fixed": "1.0"}], "1.0", False),
        ([{"introduced": "1.0"}, {"last_affected": "1.2"}], "1.2", True),
        ([{"introduced": "1.0"}, {"last_affected": "1.2"}], "1.2.1", False),
        ([{"introduced": "1.0"}], "99", True),
        ([{"introduced": "1.0"}], "0.9", False),
        (
            [{"introduced": "2.0"}, {"fixed": "2.1"}, {"introduced": "1.0"}, {"fixed": "1.1"}],
            "1.0.5",
            True,
        ),
        (
            [{"introduced": "2.0"}, {"fixed": "2.1"}, {"introduced": "1.0"}, {"fixed": "1.1"}],
            "1.5",
            False,
        ),
        ([{"introduced": "0"}, {"limit": "2.0"}], "1.9", True),
        ([{"introduced": "0"}, {"limit": "2.0"}], "2.0", False),
        ([{"introduced": "0"}, {"fixed": "0"}], "1.0", False),
    ],
)
def test_ecosystem_ranges(events: list[dict[str, str]], version: str, affected: bool) -> None:
    outcome = evaluate(entry(*events), "PyPI", version)
    assert isinstance(outcome, Affected) is affected


def test_fixed_versions_are_those_above_the_installed_version() -> None:
    e = entry({"introduced": "1.0"}, {"fixed": "1.1"}, {"introduced": "2.0"}, {"fixed": "2.1"})
    outcome = evaluate(e, "PyPI", "1.0.5")
    assert isinstance(outcome, Affected)
    assert outcome.fixed == ("1.1", "2.1")
    assert outcome.range == "ECOSYSTEM: introduced 1.0, fixed 1.1"


def test_semver_range_in_go_keeps_the_v_prefix_meaning() -> None:
    e = {
        "package": {"ecosystem": "Go", "name": "example.com/m"},
        "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2.3"}]}],
    }
    assert isinstance(evaluate(e, "Go", "v1.2.2"), Affected)
    assert evaluate(e, "Go", "v1.2.3") is None
    assert isinstance(evaluate(e, "Go", "v0.0.0-20200101000000-abcdefabcdef"), Affected)


def test_versions_list_alone_decides() -> None:
    e = {"package": {"ecosystem": "PyPI", "name": "x"}, "versions": ["1.0", "1.1"]}
    outcome = evaluate(e, "PyPI", "1.1.0")
    assert isinstance(outcome, Affected)
    assert outcome.kind is MatchKind.OSV_VERSIONS
    assert evaluate(e, "PyPI", "1.2") is None


def test_git_ranges_are_unknowns_not_guesses() -> None:
    e = entry({"introduced": "0"}, {"fixed": "abc123"}, rtype="GIT")
    outcome = evaluate(e, "PyPI", "1.0")
    assert isinstance(outcome, Undecided)
    assert outcome.kind is UnknownKind.GIT_RANGE
    # with a versions list next to the GIT range, the list decides
    e["versions"] = ["1.0"]
    assert isinstance(evaluate(e, "PyPI", "1.0"), Affected)


@pytest.mark.parametrize(
    ("e", "ecosystem", "version", "kind"),
    [
        (
            entry({"introduced": "0"}, {"fixed": "1.0"}),
            "PyPI",
            "not a version!",
            UnknownKind.BAD_VERSION,
        ),
        (entry({"fixed": "1.0"}), "PyPI", "1.0", UnknownKind.BAD_RANGE),
        (entry({"introduced": "0"}), "Packagist", "1.0", UnknownKind.NO_SCHEME),
        ({"package": {"ecosystem": "PyPI", "name": "x"}}, "PyPI", "1.0", UnknownKind.UNSUPPORTED),
    ],
)
def test_undecidable_entries(
    e: dict[str, Any], ecosystem: str, version: str, kind: UnknownKind
) -> None:
    outcome = evaluate(e, ecosystem, version)
    assert isinstance(outcome, Undecided)
    assert outcome.kind is kind


def test_npm_legacy_ranges() -> None:
    e = {
        "package": {"ecosystem": "npm", "name": "m"},
        "database_specific": {
            "version_scheme": "npm-semver",
            "vulnerable_versions": "<1.2.3 || >=2.0.0 <2.0.5",
            "patched_versions": ">=1.2.3 <2.0.0 || >=2.0.5",
        },
    }
    assert isinstance(evaluate(e, "npm", "2.0.4"), Affected)
    assert evaluate(e, "npm", "1.5.0") is None
    assert evaluate(e, "npm", "2.1.0-beta.1") is None  # node-semver: pre-releases need opt-in
    none = {**e, "database_specific": {**e["database_specific"], "patched_versions": "<0.0.0"}}
    outcome = evaluate(none, "npm", "1.0.0")
    assert isinstance(outcome, Affected)
    assert outcome.fixed == ()


def record(rid: str, name: str, events: list[dict[str, str]], **extra: object) -> dict[str, Any]:
    return {
        "id": rid,
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": name},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
        **extra,
    }


def test_withdrawn_records_and_other_packages_entries_are_ignored() -> None:
    records = [
        record("A-1", "x", [{"introduced": "0"}], withdrawn="2024-01-01T00:00:00Z"),
        {
            "id": "A-2",
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "other"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                },
                {
                    "package": {"ecosystem": "PyPI", "name": "X"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "2.0"}]}],
                },
            ],
        },
    ]
    r = match(Inventory.of([Package(PackageType.PYPI, "x", "1.0")]), MemoryAdvisories(records))
    assert r.findings == ()
    assert r.unknowns == ()


def test_names_are_normalized_per_ecosystem() -> None:
    records = [
        record("P-1", "Zope.Interface", [{"introduced": "0"}]),
        {
            "id": "N-1",
            "affected": [
                {
                    "package": {"ecosystem": "npm", "name": "@Scope/Pkg"},
                    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
                }
            ],
        },
        {
            "id": "M-1",
            "affected": [
                {
                    "package": {"ecosystem": "Maven", "name": "org.x:lib"},
                    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                }
            ],
        },
        {
            "id": "G-1",
            "affected": [
                {
                    "package": {"ecosystem": "Go", "name": "github.com/Azure/go"},
                    "ranges": [{"type": "SEMVER", "events": [{"introduced": "0"}]}],
                }
            ],
        },
    ]
    pkgs = [
        Package(PackageType.PYPI, "zope_interface", "5.0"),
        Package(PackageType.NPM, "@scope/pkg", "1.0.0"),
        Package(PackageType.MAVEN, "org.x:lib", "1.0"),
        Package(PackageType.GOLANG, "github.com/Azure/go", "v1.0.0"),
        Package(PackageType.GOLANG, "github.com/azure/go", "v1.0.0"),  # another module
    ]
    r = match(Inventory.of(pkgs), MemoryAdvisories(records))
    assert sorted((f.id, f.component.name) for f in r.findings) == [
        ("G-1", "github.com/Azure/go"),
        ("M-1", "org.x:lib"),
        ("N-1", "@scope/pkg"),
        ("P-1", "zope_interface"),
    ]


def test_aliased_records_are_one_finding() -> None:
    records = [
        record("PYSEC-1", "x", [{"introduced": "0"}], aliases=["CVE-2024-1"]),
        record("GHSA-aaaa", "x", [{"introduced": "0"}, {"fixed": "2.0"}], aliases=["CVE-2024-1"]),
    ]
    r = match(Inventory.of([Package(PackageType.PYPI, "x", "1.0")]), MemoryAdvisories(records))
    (f,) = r.findings
    assert f.id == "CVE-2024-1"
    assert f.aliases == ("GHSA-aaaa", "PYSEC-1")
    assert f.fixed_versions == ("2.0",)
    assert [m.record.id for m in f.matches] == ["GHSA-aaaa", "PYSEC-1"]


def test_matcher_reports_git_only_records_and_bad_versions_once() -> None:
    git_only = {
        "id": "G-1",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": "x"},
                "ranges": [{"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "abc"}]}],
            }
        ],
    }
    others = [record(f"R-{i}", "y", [{"introduced": "0"}]) for i in range(3)]
    pkgs = [Package(PackageType.PYPI, "x", "1.0"), Package(PackageType.PYPI, "y", "not valid!")]
    r = match(Inventory.of(pkgs), MemoryAdvisories([git_only, *others]))
    assert r.findings == ()
    assert [(u.purl, u.kind, u.record) for u in r.unknowns] == [
        ("pkg:pypi/x@1.0", UnknownKind.GIT_RANGE, "G-1"),
        ("pkg:pypi/y@not%20valid%21", UnknownKind.BAD_VERSION, ""),
    ]


def _frozen(value: object) -> Any:
    """The same JSON with read-only mappings (a Mapping that is not a dict) for objects."""
    from types import MappingProxyType

    if isinstance(value, dict):
        return MappingProxyType({k: _frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_frozen(v) for v in value]
    return value


@pytest.mark.parametrize(
    "e",
    [
        entry({"introduced": "1.0"}, {"fixed": "1.1"}, {"introduced": "2.0"}, {"fixed": "2.1"}),
        entry({"introduced": "0"}, {"last_affected": "1.0.5"}),
        entry({"introduced": "0"}, {"fixed": "1.0", "note": "two keys"}),
        entry({"introduced": "0"}, {"unknown": "1.0"}),
        entry({"introduced": "1.1"}, versions=["1.0.5", "1.0"]),
    ],
)
def test_any_mapping_is_read_as_a_dict_is(e: dict[str, Any]) -> None:
    assert evaluate(_frozen(e), "PyPI", "1.0.5") == evaluate(e, "PyPI", "1.0.5")
    record = {"id": "PYSEC-1", "affected": [e]}
    package = Package(PackageType.PYPI, "x", "1.0.5")
    inventory = Inventory.of([package], None)
    frozen = MemoryAdvisories([record])
    for advisory in frozen.advisories("PyPI", "x"):
        advisory.record = _frozen(record)  # same digest, read-only mappings
    assert (
        match(inventory, frozen).to_dict() == match(inventory, MemoryAdvisories([record])).to_dict()
    )
