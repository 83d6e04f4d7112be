from __future__ import annotations

import json

import pytest

from appliance.scanner.analyzers.npm import NpmAnalyzer, NpmLockAnalyzer, parse_package_lock
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import DATA, fixture_bytes, merged, run

ROOT = DATA / "npm"


def test_installed_node_modules() -> None:
    analyzer = NpmAnalyzer()
    files = {
        p.relative_to(ROOT).as_posix(): p.read_bytes()
        for p in sorted(ROOT.rglob("package.json"))
        if analyzer.required(p.relative_to(ROOT).as_posix(), 0o100644)
    }
    assert "usr/src/app/package.json" not in files  # the application itself
    assert "usr/src/app/node_modules/lodash/fp/package.json" not in files
    result = merged(analyzer, files)
    assert result.unknowns == ()
    found = {(p.name, p.version): p for p in result.packages}
    assert sorted(found) == [
        ("@babel/core", "7.24.0"),
        ("debug", "2.6.9"),
        ("lodash", "4.17.21"),
        ("ms", "2.0.0"),
        ("ms", "2.1.3"),
    ]
    babel = found["@babel/core", "7.24.0"]
    assert babel.type is PackageType.NPM
    assert babel.licenses == ("MIT",)
    assert babel.dependencies == ("@ampproject/remapping", "@babel/code-frame", "debug", "semver")
    assert babel.locations == ("usr/src/app/node_modules/@babel/core/package.json",)
    assert found["ms", "2.1.3"].licenses == ("MIT",)  # legacy "licenses" array
    assert found["ms", "2.0.0"].locations == (
        "usr/src/app/node_modules/debug/node_modules/ms/package.json",
    )


def _lock(version: int) -> list[tuple[str, str, tuple[str, ...]]]:
    path = f"srv/lock-v{version}/package-lock.json"
    result = run(NpmLockAnalyzer(), path, fixture_bytes("npm", path))
    assert result.unknowns == ()
    assert all(p.locations == (path,) for p in result.packages)
    return sorted((p.name, p.version, p.dependencies) for p in result.packages)


def test_lockfile_v1_nested_and_dev() -> None:
    assert _lock(1) == [
        ("debug", "2.6.9", ("ms",)),
        ("lodash", "4.17.21", ()),
        ("ms", "2.0.0", ()),
    ]  # jest-util is dev-only


def test_lockfile_v2_uses_packages_section() -> None:
    assert _lock(2) == [
        ("@babel/core", "7.24.0", ("debug",)),
        ("debug", "2.6.9", ("ms",)),
        ("debug", "4.3.4", ("ms",)),
        ("ms", "2.0.0", ()),
    ]


def test_lockfile_v3_aliases_links_and_dev() -> None:
    assert _lock(3) == [
        ("emoji-regex", "8.0.0", ()),
        ("string-width", "4.2.3", ("emoji-regex",)),  # installed under the alias name
    ]  # typescript is dev-only; util-pkg is a workspace link


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (b"{not json", "package-lock.json is not valid JSON"),
        (b"[]", "package-lock.json is a JSON list, expected an object"),
        (b'{"lockfileVersion": 4, "packages": {}}', "unsupported lockfileVersion 4"),
        (b'{"lockfileVersion": 2}', "unsupported lockfileVersion 2"),
    ],
)
def test_unreadable_lockfiles_are_unknowns(doc: bytes, message: str) -> None:
    path = "srv/app/package-lock.json"
    result = run(NpmLockAnalyzer(), path, doc)
    assert result.packages == ()
    assert message in result.unknowns[0].reason


def test_bad_lockfile_entries_are_unknowns_and_the_rest_is_kept() -> None:
    doc = {
        "lockfileVersion": 3,
        "packages": {
            "node_modules/a": {"version": "1.0.0"},
            "node_modules/b": {"resolved": "x"},
            "node_modules/c": "nonsense",
        },
    }
    packages, problems = parse_package_lock(json.dumps(doc).encode())
    assert [p.name for p in packages] == ["a"]
    assert problems == [
        "lockfile entry 'b' has no version",
        "lockfile package 'node_modules/c' is not an object",
    ]


@pytest.mark.parametrize(
    "doc", [b'{"name": "x"}', b'{"version": "1"}', b'{"name": 3, "version": "1"}', b"\xff"]
)
def test_bad_package_json_is_unknown(doc: bytes) -> None:
    path = "app/node_modules/x/package.json"
    result = run(NpmAnalyzer(), path, doc)
    assert result.packages == ()
    assert [u.path for u in result.unknowns] == [path]


@pytest.mark.parametrize(
    ("path", "installed", "lock"),
    [
        ("app/node_modules/x/package.json", True, False),
        ("node_modules/@s/x/package.json", True, False),
        ("app/node_modules/@s/package.json", False, False),
        ("app/node_modules/x/lib/package.json", False, False),
        ("app/package.json", False, False),
        ("app/package-lock.json", False, True),
        ("package-lock.json", False, True),
        ("app/node_modules/.package-lock.json", False, False),
        ("app/node_modules/x/package-lock.json", False, False),
    ],
)
def test_required(path: str, installed: bool, lock: bool) -> None:
    assert NpmAnalyzer().required(path, 0o100644) is installed
    assert NpmLockAnalyzer().required(path, 0o100644) is lock
