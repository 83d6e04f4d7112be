"""Product matching: the real-world cases where scanners fail to apply a VEX statement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from appliance.vex.products import (
    ImageIdentity,
    names_component,
    names_image,
    normalize_repository,
)

HEX = "244fd47e07d1004f0aed9c156aa09083ecf3f6b5b7d4d1a3e5e5b0c6b5cbf2ad"
IMAGE = ImageIdentity.of(
    f"sha256:{HEX}", index_digest="sha256:" + "1" * 64, names=("docker.io/library/debian:12",)
)


@pytest.mark.parametrize(
    "product",
    [
        f"pkg:oci/debian@sha256:{HEX}",  # no repository_url
        f"pkg:oci/debian@sha256%3A{HEX}",  # percent-encoded colon, as the purl spec writes it
        f"pkg:oci/debian@sha256%3a{HEX.upper()}",  # lower-case escape, upper-case hex
        f"pkg:oci/debian@sha256%3A{HEX}?repository_url=docker.io/library/debian",
        f"pkg:oci/debian@sha256%3A{HEX}?repository_url=index.docker.io%2Flibrary%2Fdebian",
        f"pkg:oci/debian@sha256%3A{HEX}?repository_url=registry.internal:5000/mirror/debian",
        f"pkg:oci/other-name@sha256%3A{HEX}?arch=amd64&tag=12",  # the digest is the identity
        "pkg:oci/debian@sha256%3A" + "1" * 64,  # the multi-platform index digest
        f"sha256:{HEX}",  # a bare digest as product @id
    ],
)
def test_image_digest_purls_match_whatever_the_spelling(product: str) -> None:
    assert names_image(product, IMAGE)


@pytest.mark.parametrize(
    "product",
    [
        "pkg:oci/debian@sha256%3A" + "0" * 64,  # another image
        f"pkg:docker/debian@sha256%3A{HEX}",  # not an OCI purl: a component, not this image
        "pkg:oci/alpine?repository_url=docker.io/library/alpine",
        "not a purl",
    ],
)
def test_other_images_do_not_match(product: str) -> None:
    assert not names_image(product, IMAGE)


@pytest.mark.parametrize(
    "product",
    [
        "pkg:oci/debian?repository_url=docker.io/library/debian",
        "pkg:oci/debian?repository_url=index.docker.io/library/debian",
        "pkg:oci/debian?repository_url=registry-1.docker.io/library/debian",
        "pkg:oci/debian?repository_url=https://index.docker.io/library/debian",
        "pkg:oci/debian",  # no registry: Docker Hub's official image
    ],
)
def test_repository_only_purls_match_docker_hub_spellings(product: str) -> None:
    assert names_image(product, IMAGE)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("debian", "docker.io/library/debian"),
        ("debian:12", "docker.io/library/debian"),
        ("index.docker.io/library/debian", "docker.io/library/debian"),
        ("docker.io/bitnami/redis@sha256:" + "a" * 64, "docker.io/bitnami/redis"),
        ("Registry.Example:5000/Team/App:1.0", "registry.example:5000/team/app"),
        ("localhost/app", "localhost/app"),
        ("oci://ghcr.io/org/app", "ghcr.io/org/app"),
    ],
)
def test_normalize_repository(text: str, normal: str) -> None:
    assert normalize_repository(text) == normal


COMPONENT = "pkg:deb/debian/openssl@3.0.11-1~deb12u2?arch=amd64&distro=debian-12"


@pytest.mark.parametrize(
    "product",
    [
        COMPONENT,
        "pkg:deb/debian/openssl@3.0.11-1~deb12u2",  # qualifiers omitted
        "pkg:deb/debian/openssl@3.0.11-1%7Edeb12u2?distro=debian-12",  # encoded ~
        "pkg:deb/debian/openssl",  # every version
        "pkg:deb/debian/openssl?arch=amd64",
        "pkg:DEB/debian/openssl@3.0.11-1~deb12u2",  # type is case-insensitive
    ],
)
def test_component_purls_match(product: str) -> None:
    assert names_component(product, COMPONENT)


@pytest.mark.parametrize(
    "product",
    [
        "pkg:deb/debian/openssl@3.0.13-1~deb12u1",  # another version
        "pkg:deb/debian/openssl?arch=arm64",  # a qualifier that differs
        "pkg:deb/ubuntu/openssl@3.0.11-1~deb12u2",
        "pkg:rpm/debian/openssl@3.0.11-1~deb12u2",
        "pkg:deb/debian/libssl3@3.0.11-1~deb12u2",
    ],
)
def test_component_purls_that_do_not_match(product: str) -> None:
    assert not names_component(product, COMPONENT)


def test_scoped_npm_and_pypi_name_normalization() -> None:
    assert names_component("pkg:npm/%40angular/core@16.0.0", "pkg:npm/@angular/core@16.0.0")
    assert names_component("pkg:pypi/Django_REST@1.0", "pkg:pypi/django-rest@1.0")


SPELLINGS = json.loads(
    (Path(__file__).resolve().parents[2] / "data/vex/purl-spellings.json").read_bytes()
)


@pytest.mark.parametrize("scanner", ["syft", "trivy"])
def test_other_scanners_spellings_name_our_components(scanner: str) -> None:
    rows = [r for r in SPELLINGS if r[scanner]]
    assert len(rows) >= 140 if scanner == "syft" else len(rows) >= 138
    missed = [r for r in rows if not names_component(r[scanner], r["stella"])]
    assert missed == []


@pytest.mark.parametrize("scanner", ["syft", "trivy"])
def test_other_scanners_spellings_name_no_other_component(scanner: str) -> None:
    ours = [r["stella"] for r in SPELLINGS]
    wrong = [
        (r[scanner], other)
        for r in SPELLINGS
        if r[scanner]
        for other in ours
        if other != r["stella"] and names_component(r[scanner], other)
    ]
    assert wrong == []


@pytest.mark.parametrize(
    ("product", "component", "expected"),
    [
        # the epoch: in the version (syft), as a qualifier (trivy, ours), or 0 as none
        ("pkg:deb/debian/libattr1@1:2.5.1-4", "pkg:deb/debian/libattr1@2.5.1-4?epoch=1", True),
        ("pkg:deb/debian/libattr1@2:2.5.1-4", "pkg:deb/debian/libattr1@2.5.1-4?epoch=1", False),
        ("pkg:deb/debian/libattr1@2.5.1-4", "pkg:deb/debian/libattr1@2.5.1-4?epoch=1", False),
        ("pkg:deb/debian/libattr1", "pkg:deb/debian/libattr1@2.5.1-4?epoch=1", True),
        ("pkg:rpm/redhat/bash@0:5.1.8-9.el9", "pkg:rpm/redhat/bash@5.1.8-9.el9", True),
        ("pkg:rpm/redhat/bash@5.1.8-9.el9?epoch=0", "pkg:rpm/redhat/bash@5.1.8-9.el9", True),
        # descriptive qualifiers: compared only when both have them
        ("pkg:deb/debian/libc6?upstream=glibc", "pkg:deb/debian/libc6@2.36-9", True),
        ("pkg:deb/debian/libc6?upstream=eglibc", "pkg:deb/debian/libc6@2.36?upstream=glibc", False),
        ("pkg:deb/debian/libc6?distro=debian-12.15", "pkg:deb/debian/libc6?distro=debian-12", True),
        ("pkg:deb/debian/libc6?distro=debian-11", "pkg:deb/debian/libc6?distro=debian-12", False),
        ("pkg:deb/debian/libc6?distro=ubuntu-12", "pkg:deb/debian/libc6?distro=debian-12", False),
        ("pkg:deb/debian/libc6?distro=debian-1", "pkg:deb/debian/libc6?distro=debian-12", False),
        ("pkg:rpm/redhat/bash?distro=redhat-9.4", "pkg:rpm/redhat/bash?distro=rhel-9", True),
        ("pkg:apk/alpine/musl?distro=3.20.3", "pkg:apk/alpine/musl?distro=alpine-3.20.3", True),
        # a distro purl without a namespace names every vendor's; other types keep theirs
        ("pkg:rpm/bash@5.1.8-9.el9", "pkg:rpm/redhat/bash@5.1.8-9.el9", True),
        ("pkg:npm/core@16.0.0", "pkg:npm/%40angular/core@16.0.0", False),
        # PEP 503 / PEP 440; Go's v and go prefixes
        ("pkg:pypi/PyYAML@5.3.0", "pkg:pypi/pyyaml@5.3", True),
        ("pkg:pypi/pyyaml@5.3.1", "pkg:pypi/pyyaml@5.3", False),
        (
            "pkg:golang/github.com/gin-gonic/gin@v1.7.0",
            "pkg:golang/github.com/gin-gonic/gin@1.7.0",
            True,
        ),
        ("pkg:golang/stdlib@go1.19.8", "pkg:golang/stdlib@v1.19.8", True),
        ("pkg:golang/stdlib@1.19.9", "pkg:golang/stdlib@v1.19.8", False),
    ],
)
def test_spelling_rules(product: str, component: str, expected: bool) -> None:
    assert names_component(product, component) is expected
