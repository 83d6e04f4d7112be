"""Image references and the inputs they open: the store, OCI layouts (several images,
several platforms), docker-archives, root file systems."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.scanner.image import (
    ImageInputError,
    ImageRef,
    ImageRefError,
    InputKind,
    open_image,
    parse_platform,
)
from bundles.errors import DigestError
from tests.appliance.scanner.layouts import (
    OS_RELEASE,
    F,
    add_image,
    build_image,
    build_index,
    docker_archive,
)


@pytest.mark.parametrize(
    ("text", "kind", "location", "reference"),
    [
        ("app:1.0", InputKind.STORE, "app", "1.0"),
        ("app", InputKind.STORE, "app", "latest"),
        ("registry.local:5000/team/app", InputKind.STORE, "registry.local:5000/team/app", "latest"),
        ("team/app:2", InputKind.STORE, "team/app", "2"),
        ("app@sha256:" + "a" * 64, InputKind.STORE, "app", "sha256:" + "a" * 64),
        ("sha256:" + "b" * 64, InputKind.STORE, "", "sha256:" + "b" * 64),
        ("docker-archive:/tmp/x.tar", InputKind.DOCKER_ARCHIVE, "/tmp/x.tar", None),
        ("dir:/srv/rootfs", InputKind.DIR, "/srv/rootfs", None),
        ("oci:/nonexistent/layout", InputKind.OCI, "/nonexistent/layout", None),
        ("oci:/x@sha256:" + "c" * 64, InputKind.OCI, "/x", "sha256:" + "c" * 64),
    ],
)
def test_parse(text: str, kind: InputKind, location: str, reference: str | None) -> None:
    ref = ImageRef.parse(text)
    assert (ref.kind, ref.location, ref.reference) == (kind, location, reference)


def test_oci_tag_with_colons_splits_at_the_existing_directory(tmp_path: Path) -> None:
    (tmp_path / "lay:out").mkdir()
    ref = ImageRef.parse(f"oci:{tmp_path}/lay:out:app:latest")
    assert (ref.location, ref.reference) == (f"{tmp_path}/lay:out", "app:latest")
    assert str(ref) == f"oci:{tmp_path}/lay:out:app:latest"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "image reference is empty"),
        ("dir:", "names no path"),
        ("oci:", "names no directory"),
        ("app@md5:abc", "digest must be sha256"),
    ],
)
def test_bad_references(text: str, message: str) -> None:
    with pytest.raises(ImageRefError, match=message):
        ImageRef.parse(text)


@pytest.mark.parametrize("text", ["linux", "linux/", "a/b/c/d", "/amd64"])
def test_bad_platform(text: str) -> None:
    with pytest.raises(ImageRefError, match="is not OS/ARCH"):
        parse_platform(text)


def test_oci_layout_single_image(tmp_path: Path) -> None:
    build_image(tmp_path / "l", [[F("etc/os-release", OS_RELEASE)]], tag="app:latest")
    image = open_image(ImageRef.parse(f"oci:{tmp_path / 'l'}"))
    assert (image.name, image.tag, str(image.platform)) == ("app", "app:latest", "linux/amd64")
    assert len(image.layers) == 1
    assert image.layers[0].diff_id is not None
    assert image.config["rootfs"]["type"] == "layers"


def test_multi_image_layout_needs_a_name(tmp_path: Path) -> None:
    layout = build_image(tmp_path / "l", [[F("a", b"1")]], tag="one:1")
    layout.tag("two:1", add_image(layout, [[F("b", b"2")]]))
    with pytest.raises(ImageInputError, match="holds 2 images; name one") as info:
        open_image(ImageRef.parse(f"oci:{tmp_path / 'l'}"))
    assert "one:1, two:1" in info.value.diagnostics()
    assert open_image(ImageRef.parse(f"oci:{tmp_path / 'l'}:two:1")).name == "two"
    with pytest.raises(ImageInputError, match="tag '1' matches several images"):
        open_image(ImageRef.parse(f"oci:{tmp_path / 'l'}:1"))


def test_short_tag_matches_a_unique_name_suffix(tmp_path: Path) -> None:
    layout = build_image(tmp_path / "l", [[F("a", b"1")]], tag="one:1")
    layout.tag("two:2", add_image(layout, [[F("b", b"2")]]))
    assert open_image(ImageRef.parse(f"oci:{tmp_path / 'l'}:2")).tag == "two:2"
    with pytest.raises(ImageInputError, match="no image tagged 'nope'"):
        open_image(ImageRef.parse(f"oci:{tmp_path / 'l'}:nope"))


def test_multi_platform_index(tmp_path: Path) -> None:
    build_index(
        tmp_path / "l",
        {"amd64": [[F("arch", b"amd64")]], "arm64": [[F("arch", b"arm64")]]},
        tag="multi:1",
    )
    ref = ImageRef.parse(f"oci:{tmp_path / 'l'}")
    chosen = open_image(ref, platform="linux/arm64")
    assert str(chosen.platform) == "linux/arm64"
    assert chosen.platforms == ("linux/amd64", "linux/arm64")
    assert chosen.index_digest is not None
    assert chosen.manifest_digest != chosen.index_digest
    with pytest.raises(ImageInputError, match="no manifest for linux/s390x") as info:
        open_image(ref, platform="linux/s390x")
    assert "linux/amd64, linux/arm64" in info.value.diagnostics()


def test_docker_archive(tmp_path: Path) -> None:
    config, digests = docker_archive(tmp_path / "a.tar", [[F("etc/os-release", OS_RELEASE)]])
    image = open_image(ImageRef.parse(f"docker-archive:{tmp_path / 'a.tar'}"))
    assert (image.name, image.tag) == ("arch", "arch:1")
    assert image.config_raw == config
    assert [layer.digest for layer in image.layers] == digests
    assert image.layers[0].digest == image.layers[0].diff_id  # uncompressed


def test_docker_archive_with_gzip_layers(tmp_path: Path) -> None:
    _, digests = docker_archive(tmp_path / "a.tar", [[F("x", b"1")]], gzip_layers=True)
    image = open_image(ImageRef.parse(f"docker-archive:{tmp_path / 'a.tar'}"))
    assert [layer.digest for layer in image.layers] == digests
    assert image.layers[0].digest != image.layers[0].diff_id


def test_docker_archive_layer_not_matching_its_diff_id(tmp_path: Path) -> None:
    docker_archive(tmp_path / "a.tar", [[F("x", b"1")]])
    data = bytearray((tmp_path / "a.tar").read_bytes())
    at = data.index(b"x\x00\x00") + 512 * 1  # somewhere after the layer's first header
    data[at] ^= 1
    (tmp_path / "a.tar").write_bytes(bytes(data))
    image = open_image(ImageRef.parse(f"docker-archive:{tmp_path / 'a.tar'}"))
    with (
        pytest.raises(DigestError, match="layer content is sha256:"),
        image.layers[0].blob.open() as fh,
    ):
        fh.read()


def test_missing_inputs(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="no such file"):
        open_image(ImageRef.parse(f"docker-archive:{tmp_path / 'none.tar'}"))
    with pytest.raises(ImageInputError, match="no such directory"):
        open_image(ImageRef.parse(f"dir:{tmp_path / 'none'}"))
    with pytest.raises(ImageInputError, match="not in the local store"):
        open_image(ImageRef.parse("app:1"), store=tmp_path / "empty-store")


def test_rootfs(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    image = open_image(ImageRef.parse(f"dir:{tmp_path / 'root'}"))
    assert image.rootfs == tmp_path / "root"
    assert image.layers == ()
