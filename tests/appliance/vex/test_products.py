"""Product matching: the real-world cases where scanners fail to apply a VEX statement."""

from __future__ import annotations

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
