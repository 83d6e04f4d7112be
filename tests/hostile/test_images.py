"""``stella images load`` of broken and hostile OCI layouts and docker-archives, and a property
test over the OCI layout and manifest parsers.

Each load runs the real command in a child capped at 768 MiB of address space and asserts the
exact one-line error, exit code 1, that the store holds no new blob, tag or temporary file, and
the memory ceiling. The property test feeds arbitrary documents to the parsers: only the
project's own errors may come out.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundles import canonical
from bundles.errors import StellaError
from bundles.oci import OCILayout
from bundles.oci.manifest import parse_manifest
from bundles.tarstream import EXTENDED_HEADER
from tests.appliance.scanner.layouts import OS_RELEASE, F, build_image, tar_bytes
from tests.hostile.harness import RSS_CEILING, Run, leftovers, run
from tests.hostile.imagekit import MiB, docker_archive, header

BASE = [F("etc/os-release", OS_RELEASE)]
LAYER = tar_bytes(BASE)
DIFF_ID = "sha256:" + hashlib.sha256(LAYER).hexdigest()
CONFIG = json.dumps(
    {"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": [DIFF_ID]}}
).encode()
LISTING = [{"Config": "config.json", "RepoTags": ["a:1"], "Layers": ["l/layer.tar"]}]
DEEP = b"[" * 200_000 + b"]" * 200_000


def good_layout(where: Path) -> OCILayout:
    return build_image(where / "src", [BASE, [F("opt/x", b"x" * 1000)]], tag="good:1")


def blob_of(layout: OCILayout, kind: str) -> Path:
    """The path of the image's manifest, config or (last) layer blob."""
    tagged = layout.tags()["good:1"]
    manifest: Any = layout.get_manifest(tagged).manifest
    digest = {
        "manifest": tagged.digest,
        "config": manifest.config.digest,
        "layer": manifest.layers[-1].digest,
    }[kind]
    return layout.blob_path(digest)


def archive(
    where: Path,
    *,
    listing: bytes | None = None,
    config: bytes = CONFIG,
    layer: bytes = LAYER,
    extra: tuple[tuple[str, bytes], ...] = (),
    drop: str = "",
) -> str:
    members = [
        ("config.json", config),
        ("l/layer.tar", layer),
        ("manifest.json", json.dumps(LISTING).encode() if listing is None else listing),
        *extra,
    ]
    path = docker_archive(where / "a.tar", [m for m in members if m[0] != drop])
    return f"docker-archive:{path}"


def oci(where: Path) -> str:
    return f"oci:{where / 'src'}:good:1"


def _corrupt(kind: str) -> Callable[[Path], str]:
    def build(where: Path) -> str:
        path = blob_of(good_layout(where), kind)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
        return oci(where)

    return build


def _missing(kind: str) -> Callable[[Path], str]:
    def build(where: Path) -> str:
        blob_of(good_layout(where), kind).unlink()
        return oci(where)

    return build


def _layout_file(name: str, data: bytes) -> Callable[[Path], str]:
    def build(where: Path) -> str:
        (good_layout(where).path / name).write_bytes(data)
        return oci(where)

    return build


def _no_index(where: Path) -> str:
    (good_layout(where).path / "index.json").unlink()
    return oci(where)


def _pax_archive(where: Path) -> str:
    info = tarfile.TarInfo("config.json")
    info.pax_headers = {"comment": "A" * (2 * MiB)}
    path = where / "a.tar"
    path.write_bytes(info.tobuf(format=tarfile.PAX_FORMAT) + bytes(1024))
    return f"docker-archive:{path}"


def _claims_past_end(where: Path) -> str:
    path = where / "a.tar"
    path.write_bytes(header("manifest.json", 1 << 30) + b"[]" + bytes(1024))
    return f"docker-archive:{path}"


def _garbage(where: Path) -> str:
    path = where / "a.tar"
    path.write_bytes(b"this is not a tar archive\n" * 100)
    return f"docker-archive:{path}"


LOADS: dict[str, tuple[Callable[[Path], str], dict[str, str]]] = {
    "oci-corrupt-layer": (_corrupt("layer"), {}),
    "oci-corrupt-config": (_corrupt("config"), {}),
    "oci-corrupt-manifest": (_corrupt("manifest"), {}),
    "oci-missing-layer": (_missing("layer"), {}),
    "oci-missing-config": (_missing("config"), {}),
    "oci-no-index": (_no_index, {}),
    "oci-index-not-json": (_layout_file("index.json", b"{not json"), {}),
    "oci-index-deep": (_layout_file("index.json", DEEP), {}),
    "oci-index-not-an-index": (_layout_file("index.json", b'{"manifests": 7}'), {}),
    "oci-layout-version": (_layout_file("oci-layout", b'{"imageLayoutVersion":"9.9"}'), {}),
    "archive-not-a-tar": (_garbage, {}),
    "archive-no-manifest": (lambda w: archive(w, drop="manifest.json"), {}),
    "archive-manifest-not-json": (lambda w: archive(w, listing=b"[{"), {}),
    "archive-manifest-deep": (lambda w: archive(w, listing=DEEP), {}),
    "archive-manifest-not-a-list": (lambda w: archive(w, listing=b'{"Config": 1}'), {}),
    "archive-entry-not-an-object": (lambda w: archive(w, listing=b"[[1, 2]]"), {}),
    "archive-tags-not-names": (
        lambda w: archive(w, listing=json.dumps([{**LISTING[0], "RepoTags": 5}]).encode()),
        {},
    ),
    "archive-missing-layer": (lambda w: archive(w, drop="l/layer.tar"), {}),
    "archive-layer-not-its-diff-id": (lambda w: archive(w, layer=tar_bytes([F("x", b"y")])), {}),
    "archive-config-not-json": (lambda w: archive(w, config=b"\xff\xfe"), {}),
    "archive-config-deep": (lambda w: archive(w, config=DEEP), {}),
    "archive-config-over-its-cap": (
        lambda w: archive(w, config=CONFIG + b" " * 4096),
        {"STELLA_LIMIT_IMAGE_CONFIG_BYTES": "4K"},
    ),
    "archive-too-many-members": (
        lambda w: archive(w, extra=tuple((f"pad/{i}", b"") for i in range(10))),
        {"STELLA_LIMIT_IMAGE_ARCHIVE_MEMBERS": "8"},
    ),
    "archive-huge-pax-header": (_pax_archive, {}),
    "archive-claims-past-its-end": (_claims_past_end, {}),
}

_CORRUPT = "stella: error: blob sha256:"
_DEPTH = (
    "the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 "
    "(found 200,000) (if this input is trusted and that large, raise the cap with "
    "STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))"
)
_A = "stella: error: docker-archive:{w}/a.tar"
EXPECT: dict[str, str] = {
    "oci-corrupt-layer": _CORRUPT + "…",
    "oci-corrupt-config": _CORRUPT + "…",
    "oci-corrupt-manifest": _CORRUPT + "…",
    "oci-missing-layer": _CORRUPT + "…",
    "oci-missing-config": _CORRUPT + "…",
    "oci-no-index": "stella: error: {w}/src is not a complete OCI image layout: index.json is "
    "missing (the layout was copied incompletely; copy it again)",
    "oci-index-not-json": "stella: error: {w}/src/index.json: not valid JSON: …",
    "oci-index-deep": "stella: error: {w}/src/index.json: " + _DEPTH,
    "oci-index-not-an-index": "stella: error: {w}/src/index.json: not an image index (no "
    "'manifests' array) (the layout's index.json is damaged)",
    "oci-layout-version": "stella: error: {w}/src/oci-layout: imageLayoutVersion is '9.9', "
    "expected '1.0.0' (this layout was written for a different version of the image-layout "
    "spec)",
    "archive-not-a-tar": _A + ": not a tar archive (a header's size field is not a number) (a "
    "docker-archive is what 'docker save' or 'skopeo copy' writes)",
    "archive-no-manifest": _A + ": member 'manifest.json' is missing",
    "archive-manifest-not-json": _A + ": manifest.json is not JSON: Expecting property name "
    "enclosed in double quotes: line 1 column 3 (char 2)",
    "archive-manifest-deep": _A + ": manifest.json: " + _DEPTH,
    "archive-manifest-not-a-list": _A + ": manifest.json lists no image",
    "archive-entry-not-an-object": _A + ": manifest.json holds an entry that is not an object",
    "archive-tags-not-names": _A + ": manifest.json RepoTags is not a list of names",
    "archive-missing-layer": _A + ": layer 'l/layer.tar' is missing from the archive",
    "archive-layer-not-its-diff-id": _A + ": layer 'l/layer.tar' is not the layer the image "
    "names: blob refused by {w}/home/oci: content digest mismatch: …",
    "archive-config-not-json": _A + ": image config is not JSON: Expecting value: line 1 column "
    "1 (char 0)",
    "archive-config-deep": _A + " config: " + _DEPTH,
    "archive-config-over-its-cap": _A + ": member 'config.json': an image's config blob, read "
    "whole is over the image.config_bytes cap of 4 KiB (found 4,255 bytes) (if this input is "
    "trusted and that large, raise the cap with STELLA_LIMIT_IMAGE_CONFIG_BYTES=N "
    "(docs/limits.md))",
    "archive-too-many-members": _A + ": the members of a docker-archive is over the "
    "image.archive_members cap of 8 (found 9) (if this input is trusted and that large, raise "
    "the cap with STELLA_LIMIT_IMAGE_ARCHIVE_MEMBERS=N (docs/limits.md))",
    "archive-huge-pax-header": _A + f": an extended tar header: {EXTENDED_HEADER.what} is over "
    "the tar.extended_header_bytes cap of 1 MiB (found 2,097,169 bytes) (if this input is "
    "trusted and that large, raise the cap with "
    "STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md))",
    "archive-claims-past-its-end": _A + ": a tar header claims 1073741824 bytes, past the end of "
    "the archive (the archive is damaged or truncated; write it again)",
}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Run]]:
    """Every case loaded into a copy of one initialized home (with one image already in it)."""
    root = tmp_path_factory.mktemp("loads")
    template = root / "template"
    prepared = []
    for name, (build, env) in LOADS.items():
        where = root / name
        where.mkdir()
        prepared.append((name, where, build(where), env))
    first = run("stella", "init", home=template)
    assert first.code == 0, first.describe()

    def one(item: tuple[str, Path, str, dict[str, str]]) -> tuple[str, Run]:
        name, where, source, env = item
        shutil.copytree(template, where / "home")
        return name, run("stella", "images", "load", source, home=where / "home", env=env)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return root, dict(pool.map(one, prepared))


def test_every_case_has_its_expected_line() -> None:
    assert sorted(EXPECT) == sorted(LOADS)


@pytest.mark.parametrize("name", sorted(LOADS))
def test_refused_load_changes_nothing(name: str, loaded: tuple[Path, dict[str, Run]]) -> None:
    root, runs = loaded
    where = root / name
    result = runs[name]
    line = EXPECT[name].replace("{w}", str(where))
    assert "Traceback" not in result.err, result.describe()
    assert result.code == 1, result.describe()
    assert len(result.error_lines) == 1, result.describe()
    if line.endswith("…"):
        assert result.error_lines[0].startswith(line[:-1]), result.describe()
    else:
        assert result.error_lines[0] == line, result.describe()
    assert result.peak_rss <= RSS_CEILING, result.describe()
    store = where / "home" / "oci"
    blob_dir = store / "blobs" / "sha256"
    blobs = sorted(blob_dir.iterdir()) if blob_dir.exists() else []
    assert blobs == [], "a refused load left blobs in the store"
    if (store / "oci-layout").exists():
        assert OCILayout.open(store).tags() == {}
    assert leftovers(where / "home") == []


# ---------------------------------------------------------------- the parsers, fuzzed

_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_DIGEST = "sha256:" + "a" * 64
_KEYS = ["schemaVersion", "mediaType", "config", "layers", "manifests", "digest", "size",
         "subject", "artifactType", "annotations", "platform", "urls"]  # fmt: skip
_descriptor = st.fixed_dictionaries(
    {},
    optional={
        "mediaType": st.sampled_from(["application/vnd.oci.image.layer.v1.tar", "x", ""]) | _json,
        "digest": st.sampled_from([_DIGEST, "sha256:zz", "md5:0"]) | _json,
        "size": st.integers(min_value=-(2**70), max_value=2**70) | _json,
        "annotations": _json,
        "platform": _json,
        "urls": _json,
    },
)
_manifest = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.sampled_from([2, 1, "2"]) | _json,
        "mediaType": st.sampled_from(
            [
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
            ]
        )
        | _json,
        "config": _descriptor | _json,
        "layers": st.lists(_descriptor, max_size=3) | _json,
        "manifests": st.lists(_descriptor, max_size=3) | _json,
        "subject": _descriptor | _json,
        "artifactType": _json,
        "annotations": _json,
    },
)
_MEDIA = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    None,
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=_manifest | _json, media=st.sampled_from(_MEDIA), raw=st.binary(max_size=64))
def test_manifest_parser_raises_only_its_own_errors(
    doc: Any, media: str | None, raw: bytes
) -> None:
    for data in (canonical.dumps(doc) if _canonical(doc) else json.dumps(doc).encode(), raw):
        try:
            if media is None:
                parse_manifest(data, source="fuzz")
            else:
                parse_manifest(data, media, source="fuzz")
        except StellaError:
            pass


def _canonical(doc: Any) -> bool:
    try:
        canonical.dumps(doc)
    except StellaError:
        return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(index=_manifest | _json, marker=_json, name=st.sampled_from(["good:1", "x", "sha256:0"]))
def test_layout_reader_raises_only_its_own_errors(
    tmp_path_factory: pytest.TempPathFactory, index: Any, marker: Any, name: str
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    layout = good_layout(root)
    (layout.path / "index.json").write_text(json.dumps(index))
    if isinstance(marker, dict):
        (layout.path / "oci-layout").write_text(json.dumps(marker))
    try:
        opened = OCILayout.open(layout.path)
        for entry in opened.entries():
            for stored in opened.walk(entry):
                stored.manifest.children()
        opened.tags()
        opened.resolve(name)
    except StellaError:
        pass


_listing_entry = st.fixed_dictionaries(
    {},
    optional={
        "Config": st.sampled_from(["config.json", "nope.json", "l/layer.tar"]) | _json,
        "RepoTags": st.lists(st.sampled_from(["a:1", "b:2"]), max_size=2) | _json,
        "Layers": st.lists(st.sampled_from(["l/layer.tar", "x", "blobs/sha256/zz"]), max_size=2)
        | _json,
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    listing=st.lists(_listing_entry, max_size=3) | _json,
    config=st.sampled_from([CONFIG, b"{}", b"[]", b'{"rootfs": 1}']),
    tag=st.sampled_from([None, "a:1", "zz:9"]),
)
def test_docker_archive_reader_raises_only_its_own_errors(
    tmp_path_factory: pytest.TempPathFactory, listing: Any, config: bytes, tag: str | None
) -> None:
    from appliance.scanner.image import ImageRef, open_docker_archive, read_docker_archive

    where = tmp_path_factory.mktemp("fuzz-archive")
    source = archive(where, listing=json.dumps(listing).encode(), config=config)
    try:
        read_docker_archive(Path(source.removeprefix("docker-archive:")), tag)
        open_docker_archive(ImageRef.parse(source))
    except StellaError:
        pass
