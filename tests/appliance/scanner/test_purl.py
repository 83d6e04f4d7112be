from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.scanner.model import OSInfo, Package, PackageType
from appliance.scanner.purl import PurlError, build, package_purl

DEBIAN = OSInfo(id="debian", version_id="12", version_codename="bookworm")
ALPINE = OSInfo(id="alpine", version_id="3.20.3")
RHEL = OSInfo(id="rhel", version_id="9.3")


@pytest.mark.parametrize(
    ("package", "os_info", "expected"),
    [
        (
            Package(PackageType.DEB, "libc6", "2.36-9+deb12u4", arch="amd64"),
            DEBIAN,
            "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12",
        ),
        (
            Package(PackageType.DEB, "bsdutils", "2.38.1-5+deb12u3", epoch=1, arch="amd64"),
            DEBIAN,
            "pkg:deb/debian/bsdutils@2.38.1-5%2Bdeb12u3?arch=amd64&distro=debian-12&epoch=1",
        ),
        (
            Package(PackageType.DEB, "libssl3", "3.0.19-1~deb12u2", arch="amd64"),
            None,
            "pkg:deb/debian/libssl3@3.0.19-1~deb12u2?arch=amd64",
        ),
        (
            Package(PackageType.APK, "musl", "1.2.5-r0", arch="x86_64"),
            ALPINE,
            "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3",
        ),
        (
            Package(PackageType.RPM, "openssl", "3.0.7", epoch=1, release="24.el9", arch="x86_64"),
            RHEL,
            "pkg:rpm/redhat/openssl@3.0.7-24.el9?arch=x86_64&distro=rhel-9.3&epoch=1",
        ),
        (
            Package(
                PackageType.RPM,
                "nodejs",
                "18.0",
                release="1",
                arch="x86_64",
                qualifiers=(("modularitylabel", "nodejs:18:9:rhel9"),),
            ),
            OSInfo(id="rocky", version_id="9"),
            "pkg:rpm/rocky/nodejs@18.0-1?arch=x86_64&distro=rocky-9&modularitylabel=nodejs:18:9:rhel9",
        ),
        (Package(PackageType.PYPI, "Zope.Interface", "5.4"), None, "pkg:pypi/zope-interface@5.4"),
        (
            Package(PackageType.PYPI, "typing__Extensions", "4.0"),
            None,
            "pkg:pypi/typing-extensions@4.0",
        ),
        (Package(PackageType.NPM, "@babel/core", "7.24.0"), None, "pkg:npm/%40babel/core@7.24.0"),
        (Package(PackageType.NPM, "JSONStream", "1.3.5"), None, "pkg:npm/jsonstream@1.3.5"),
        (
            Package(PackageType.GOLANG, "github.com/Azure/go-autorest/v14", "v14.2.0+incompatible"),
            None,
            "pkg:golang/github.com/Azure/go-autorest/v14@v14.2.0%2Bincompatible",
        ),
        (Package(PackageType.GOLANG, "stdlib", "v1.21.5"), None, "pkg:golang/stdlib@v1.21.5"),
        (
            Package(PackageType.MAVEN, "org.apache.logging.log4j:log4j-core", "2.14.1"),
            None,
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
        ),
        (Package(PackageType.GEM, "rack", "3.0.8"), None, "pkg:gem/rack@3.0.8"),
        (
            Package(PackageType.COMPOSER, "Monolog/Monolog", "3.5.0"),
            None,
            "pkg:composer/monolog/monolog@3.5.0",
        ),
        (
            Package(PackageType.NUGET, "Newtonsoft.Json", "13.0.1"),
            None,
            "pkg:nuget/Newtonsoft.Json@13.0.1",
        ),
    ],
)
def test_package_purls(package: Package, os_info: OSInfo | None, expected: str) -> None:
    assert package_purl(package, os_info) == expected


def test_build_encoding_sorting_and_subpath() -> None:
    assert (
        build(
            "generic",
            "name with space/slash",
            "1.0 beta",
            namespace="a b/c",
            qualifiers={"Zed": "1", "alpha": "x&y=z", "empty": ""},
            subpath="./dir/../file name",
        )
        == "pkg:generic/a%20b/c/name%20with%20space%2Fslash@1.0%20beta"
        "?alpha=x%26y%3Dz&zed=1#dir/file%20name"
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type_": "1bad", "name": "x"}, "purl type '1bad' is not valid"),
        ({"type_": "deb", "name": ""}, "purl name is empty"),
        ({"type_": "deb", "name": "x", "qualifiers": {"bad key": "1"}}, "qualifier key 'bad key'"),
    ],
)
def test_build_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(PurlError, match=message):
        build(**kwargs)


@given(st.text(min_size=1), st.text())
def test_components_round_trip_through_percent_decoding(name: str, version: str) -> None:
    text = build("generic", name, version or None)
    body = text.removeprefix("pkg:generic/")
    encoded_name, _, encoded_version = body.partition("@")
    assert unquote(encoded_name) == name
    assert unquote(encoded_version) == version
    assert all(c not in encoded_name for c in "/@?#&= ")


def test_remembered_purls_tell_apart_every_field_a_purl_is_made_of() -> None:
    debian = OSInfo("debian", "12")
    base = Package(PackageType.DEB, "libc6", "2.36-9", arch="amd64")
    variants = [
        base,
        Package(PackageType.DEB, "libc6", "2.36-9", arch="arm64"),
        Package(PackageType.DEB, "libc6", "2.36-9", arch="amd64", epoch=1),
        Package(PackageType.DEB, "libc6", "2.36-10", arch="amd64"),
        Package(PackageType.DEB, "libc6", "2.36-9", arch="amd64", qualifiers=(("x", "y"),)),
        Package(PackageType.RPM, "libc6", "2.36", release="9", arch="amd64"),
        Package(PackageType.RPM, "libc6", "2.36", release="10", arch="amd64"),
    ]
    purls = [package_purl(p, debian) for p in variants]
    assert len(set(purls)) == len(variants)
    assert package_purl(base, OSInfo("debian", "11")) != purls[0]
    assert package_purl(base, None) != purls[0]
    # the same package again, and one differing in nothing a purl shows: the same purl
    assert package_purl(base, debian) == purls[0]
    assert (
        package_purl(
            Package(PackageType.DEB, "libc6", "2.36-9", arch="amd64", locations=("x",)), debian
        )
        == purls[0]
    )
