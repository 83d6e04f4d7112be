from __future__ import annotations

import pytest

from appliance.scanner.analyzers.interface import ParseError
from appliance.scanner.analyzers.os_release import OSReleaseAnalyzer, parse_os_release
from appliance.scanner.model import OSInfo
from tests.appliance.scanner.helpers import fixture_bytes, merged, run


def test_debian_os_release() -> None:
    info = parse_os_release(fixture_bytes("debian", "etc/os-release"))
    assert info == OSInfo(
        id="debian",
        version_id="12",
        version_codename="bookworm",
        pretty_name="Debian GNU/Linux 12 (bookworm)",
        name="Debian GNU/Linux",
    )
    assert info.distro == "debian-12"


def test_alpine_unquoted_values() -> None:
    info = parse_os_release(fixture_bytes("alpine", "etc/os-release"))
    assert (info.id, info.version_id, info.distro) == ("alpine", "3.20.3", "alpine-3.20.3")


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("rhel9", ("rhel", "9.4", None, ("fedora",), "rhel-9.4")),
        ("rocky9", ("rocky", "9.3", None, ("rhel", "centos", "fedora"), "rocky-9.3")),
        ("ubuntu2204", ("ubuntu", "22.04", "jammy", ("debian",), "ubuntu-22.04")),
        ("wolfi", ("wolfi", "20230201", None, (), "wolfi-20230201")),
    ],
)
def test_distribution_os_releases(fixture: str, expected: tuple[object, ...]) -> None:
    info = parse_os_release(fixture_bytes(fixture, "etc/os-release"))
    assert (info.id, info.version_id, info.version_codename, info.id_like, info.distro) == (
        expected
    )


def test_quoting_comments_and_id_like() -> None:
    data = (
        b'# comment\n\nID="rhel"\nID_LIKE="fedora centos"\n'
        b'VERSION_ID=\'9.3\'\nNAME="Red \\"Hat\\""\n'
    )
    info = parse_os_release(data)
    assert info.id == "rhel"
    assert info.id_like == ("fedora", "centos")
    assert info.version_id == "9.3"
    assert info.name == 'Red "Hat"'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"NAME=Debian\n", "os-release has no ID field"),
        (b'ID="debian\n', "os-release line 1 has bad quoting"),
        (b"ID=debian\nthis is not an assignment\n", "os-release line 2 is not KEY=value"),
        (b"ID=\xff\xfe\n", "os-release is not UTF-8 text"),
    ],
)
def test_bad_os_release(data: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_os_release(data)


def test_etc_wins_over_usr_lib() -> None:
    result = merged(
        OSReleaseAnalyzer(),
        {"usr/lib/os-release": b"ID=debian\nVERSION_ID=11\n", "etc/os-release": b"ID=ubuntu\n"},
    )
    assert result.os is not None
    assert result.os.id == "ubuntu"


def test_bad_file_becomes_unknown() -> None:
    result = run(OSReleaseAnalyzer(), "etc/os-release", b"NAME=x\n")
    assert result.os is None
    assert [(u.path, u.analyzer) for u in result.unknowns] == [("etc/os-release", "os-release")]
    assert "no ID field" in result.unknowns[0].reason


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("etc/os-release", True),
        ("usr/lib/os-release", True),
        ("etc/os-release.bak", False),
        ("opt/etc/os-release", False),
    ],
)
def test_required(path: str, wanted: bool) -> None:
    assert OSReleaseAnalyzer().required(path, 0o100644) is wanted
