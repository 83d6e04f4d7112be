from __future__ import annotations

import pytest

from appliance.scanner.analyzers.python import PythonAnalyzer, parse_metadata, parse_record
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import DATA, by_name, merged, run

ROOT = DATA / "python"
REQUESTS = "usr/local/lib/python3.11/site-packages/requests-2.34.2.dist-info"


def _all_files() -> dict[str, bytes]:
    analyzer = PythonAnalyzer()
    return {
        p.relative_to(ROOT).as_posix(): p.read_bytes()
        for p in sorted(ROOT.rglob("*"))
        if p.is_file() and analyzer.required(p.relative_to(ROOT).as_posix(), 0o100644)
    }


def test_dist_info_egg_info_and_single_file_egg_info() -> None:
    result = merged(PythonAnalyzer(), _all_files())
    assert result.unknowns == ()
    packages = by_name(result)
    assert sorted(packages) == ["PyJWT", "blinker", "idna", "requests", "wsgiref"]
    requests = packages["requests"]
    assert requests.type is PackageType.PYPI
    assert (requests.version, requests.licenses) == ("2.34.2", ("Apache-2.0",))
    # runtime requirements, PEP 503-normalized; "extra ==" ones are optional and left out
    assert requests.dependencies == ("certifi", "charset-normalizer", "idna", "urllib3")
    assert requests.locations == (f"{REQUESTS}/METADATA",)
    assert "usr/local/lib/python3.11/site-packages/requests/api.py" in requests.installed_files
    assert f"{REQUESTS}/RECORD" in requests.installed_files
    assert packages["idna"].licenses == ("BSD-3-Clause",)  # License-Expression
    assert packages["idna"].installed_files == ()  # no RECORD in the fixture
    assert packages["blinker"].licenses == ("MIT License",)
    assert "usr/lib/python3/dist-packages/blinker/base.py" in packages["blinker"].installed_files
    assert packages["PyJWT"].version == "2.6.0"
    assert packages["PyJWT"].licenses == ("MIT",)
    assert packages["wsgiref"].locations == ("usr/lib/python2.7/wsgiref.egg-info",)


def test_license_from_classifiers_when_the_field_is_a_text() -> None:
    text = "Copyright (c) someone\n\nPermission is hereby granted..."
    data = (
        "Metadata-Version: 2.1\nName: x\nVersion: 1\n"
        f"License: {text.replace(chr(10), chr(10) + '        ')}\n"
        "Classifier: License :: OSI Approved :: BSD License\n"
    ).encode()
    package, problems = parse_metadata(data)
    assert (package.licenses, problems) == (("BSD License",), [])


def test_bad_requirement_is_reported_with_the_package_kept() -> None:
    path = "usr/lib/python3/site-packages/x-1.dist-info/METADATA"
    result = run(
        PythonAnalyzer(), path, b"Name: x\nVersion: 1\nRequires-Dist: ok>=1\nRequires-Dist: !!bad\n"
    )
    assert [p.dependencies for p in result.packages] == [("ok",)]
    assert len(result.unknowns) == 1
    assert result.unknowns[0].reason.startswith("Requires-Dist '!!bad' is not a valid requirement")


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("a/x-1.dist-info/METADATA", b"Summary: nothing\n", "core metadata lacks Name or Version"),
        ("a/x-1.dist-info/METADATA", b"\xff\xfe\x00garbage", "core metadata lacks Name or Version"),
        ("a/x-1.dist-info/RECORD", b"x.py,sha256=abc\n", "RECORD line 1 has 2 fields, expected 3"),
        ("a/x-1.dist-info/RECORD", b"\xff", "RECORD is not UTF-8"),
        ("a/x-1.dist-info/RECORD", b'"unterminated\n', "RECORD is not valid CSV"),
    ],
)
def test_unreadable_files_are_unknowns(path: str, data: bytes, message: str) -> None:
    result = run(PythonAnalyzer(), path, data)
    assert result.packages == ()
    assert [u.path for u in result.unknowns] == [path]
    assert message in result.unknowns[0].reason


def test_record_paths_are_normalized_against_site_packages() -> None:
    files = parse_record(
        b"x/__init__.py,sha256=a,1\n../../../bin/x,sha256=b,2\n\n", "usr/lib/python3/site-packages"
    )
    assert files == ("usr/lib/python3/site-packages/x/__init__.py", "usr/bin/x")


@pytest.mark.parametrize(
    ("path", "mode", "wanted"),
    [
        ("a/x-1.dist-info/METADATA", 0o100644, True),
        ("a/x-1.dist-info/RECORD", 0o100644, True),
        ("a/x-1.dist-info/WHEEL", 0o100644, False),
        ("a/x.egg-info/PKG-INFO", 0o100644, True),
        ("a/x.egg/EGG-INFO/PKG-INFO", 0o100644, True),
        ("a/x.egg-info", 0o100644, True),
        ("a/x.egg-info", 0o040755, False),
        ("a/sdist/PKG-INFO", 0o100644, False),
        ("a/METADATA", 0o100644, False),
    ],
)
def test_required(path: str, mode: int, wanted: bool) -> None:
    assert PythonAnalyzer().required(path, mode) is wanted
