"""``stella-mirror images add`` against Debian's real docker-registry (distribution 2.8.2),
seeded with skopeo from layouts built here: a two-platform OCI index, a Docker schema 2
image, an OCI 1.1 referrer with its fallback tag, an SBOM referrer of one platform and a
cosign ``.sig`` tag."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundles.digest import Digest
from bundles.oci import Descriptor, OCILayout, parse_manifest
from bundles.oci.mediatypes import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from mirror.cli import cli
from tests.conftest import require_tools
from tests.mirror.registry_fixture import (
    SIGSTORE_BUNDLE_V03,
    SPDX_JSON,
    DockerRegistry,
    TokenServer,
    artifact_manifest,
    build_image,
    build_index,
    cosign_signature,
    layer_digests,
    loopback_certificate,
)

pytestmark = pytest.mark.tools


@dataclass(frozen=True)
class Seeded:
    registry: DockerRegistry
    index: Digest
    amd64: Digest
    arm64: Digest
    bundle_referrer: Digest
    sbom_referrer: Digest
    signature: Digest
    docker_image: Digest

    @property
    def host(self) -> str:
        return self.registry.host


def _push_referrer(
    reg: DockerRegistry,
    repo: str,
    subject: Digest,
    raw: bytes,
    blobs: dict[str, bytes],
    artifact_type: str,
) -> Digest:
    """Push a referrer by digest and, as distribution 2.8 has no referrers API, the fallback
    tag ``sha256-<hex>`` index listing it (what ORAS and cosign do against such registries)."""
    digest = reg.push_manifest(repo, str(Digest.of_bytes(raw)), raw, OCI_MANIFEST, blobs)
    parsed = parse_manifest(raw, OCI_MANIFEST)
    entry = Descriptor(
        OCI_MANIFEST, digest, len(raw), annotations=parsed.annotations, artifact_type=artifact_type
    )
    index = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry.to_dict()]}
    ).encode()
    reg.push_manifest(repo, f"sha256-{subject.hex}", index, OCI_INDEX, {})
    return digest


def descriptor_of(raw: bytes, media_type: str) -> Descriptor:
    return Descriptor(media_type, Digest.of_bytes(raw), len(raw))


def seed(reg: DockerRegistry, work: Path) -> Seeded:
    layout = OCILayout.init(work / "src")
    amd64 = build_image(
        layout, [{"etc/os-release": b"ID=debian\n"}, {"app/amd64": b"x" * 5000}], arch="amd64"
    )
    arm64 = build_image(
        layout,
        [{"etc/os-release": b"ID=debian\n"}, {"app/arm64": b"y" * 7000}],
        arch="arm64",
        variant="v8",
    )
    index = build_index(layout, [amd64, arm64])
    layout.tag("multi", index)
    single = build_image(layout, [{"srv/data": b"single image\n"}], arch="amd64")
    layout.tag("single", single)
    reg.skopeo_copy(layout.path, "multi", "stella/multi:1.0", "--all", "--preserve-digests")
    reg.skopeo_copy(layout.path, "single", "stella/docker:2.0", "--format", "v2s2")

    index_raw, index_type = reg.manifest("stella/multi", "1.0")
    assert index_type == OCI_INDEX
    index_digest = Digest.of_bytes(index_raw)
    children = {str(c.platform): c.digest for c in parse_manifest(index_raw, OCI_INDEX).children()}
    amd64_raw, _ = reg.manifest("stella/multi", str(children["linux/amd64"]))

    bundle_raw, bundle_blobs = artifact_manifest(
        descriptor_of(index_raw, OCI_INDEX),
        b'{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}',
        SIGSTORE_BUNDLE_V03,
        artifact_type=SIGSTORE_BUNDLE_V03,
        annotations=None,
    )
    bundle = _push_referrer(
        reg, "stella/multi", index_digest, bundle_raw, bundle_blobs, SIGSTORE_BUNDLE_V03
    )
    sbom_raw, sbom_blobs = artifact_manifest(
        descriptor_of(amd64_raw, OCI_MANIFEST),
        b'{"spdxVersion":"SPDX-2.3"}',
        SPDX_JSON,
        artifact_type=SPDX_JSON,
    )
    sbom = _push_referrer(
        reg, "stella/multi", children["linux/amd64"], sbom_raw, sbom_blobs, SPDX_JSON
    )
    sig_raw, sig_blobs = cosign_signature(index_digest)
    signature = reg.push_manifest(
        "stella/multi", f"sha256-{index_digest.hex}.sig", sig_raw, OCI_MANIFEST, sig_blobs
    )
    docker_raw, docker_type = reg.manifest("stella/docker", "2.0")
    assert docker_type == DOCKER_MANIFEST
    return Seeded(
        registry=reg,
        index=index_digest,
        amd64=children["linux/amd64"],
        arm64=children["linux/arm64/v8"],
        bundle_referrer=bundle,
        sbom_referrer=sbom,
        signature=signature,
        docker_image=Digest.of_bytes(docker_raw),
    )


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    require_tools("docker-registry", "skopeo")
    root = tmp_path_factory.mktemp("registry")
    with DockerRegistry(root / "reg") as reg:
        yield seed(reg, root)


def mirror(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), "images", "add", *args])
    return result.exit_code, result.stdout, result.stderr


def layout_of(home: Path) -> OCILayout:
    return OCILayout.open(home / "mirror" / "oci")


def assert_same_bytes(layout: OCILayout, reg: DockerRegistry, repo: str, digest: Digest) -> None:
    raw, _ = reg.manifest(repo, str(digest))
    assert Digest.of_bytes(raw) == digest
    assert layout.read_blob(digest) == raw


def test_all_platforms_with_referrers(seeded: Seeded, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, out, err = mirror(home, f"{seeded.host}/stella/multi:1.0")
    assert code == 0, err
    assert f"{seeded.host}/stella/multi:1.0 -> {seeded.index}" in out

    layout = layout_of(home)
    tags = layout.tags()
    assert tags[f"{seeded.host}/stella/multi:1.0"].digest == seeded.index
    sig_tag = f"{seeded.host}/stella/multi:sha256-{seeded.index.hex}.sig"
    assert tags[sig_tag].digest == seeded.signature

    for digest in (seeded.index, seeded.amd64, seeded.arm64, seeded.signature):
        assert_same_bytes(layout, seeded.registry, "stella/multi", digest)
    for child in (seeded.amd64, seeded.arm64):
        raw = layout.read_blob(child)
        for blob in layer_digests(raw):
            assert layout.has_blob(Digest.parse(blob))
    report = layout.verify()
    assert report.ok, report
    assert not layout.reachable().missing

    on_index = layout.referrers(seeded.index)
    assert [r.digest for r in on_index] == [seeded.bundle_referrer]
    assert on_index[0].artifact_type == SIGSTORE_BUNDLE_V03
    on_amd64 = layout.referrers(seeded.amd64, artifact_type=SPDX_JSON)
    assert [r.digest for r in on_amd64] == [seeded.sbom_referrer]

    record = json.loads((home / "mirror" / "images.json").read_text())["images"][
        f"{seeded.host}/stella/multi:1.0"
    ]
    assert record["digest"] == str(seeded.index)
    assert record["tag"] == "1.0"
    assert record["platforms"] == ["linux/amd64", "linux/arm64/v8"]
    assert record["omitted"] == []
    sources = {(r["digest"], r["source"]) for r in record["referrers"]}
    assert sources == {
        (str(seeded.bundle_referrer), "fallback-tag"),
        (str(seeded.sbom_referrer), "fallback-tag"),
        (str(seeded.signature), "cosign-tag"),
    }
    assert record["mirroredAt"].endswith("Z")


def test_platform_filter_keeps_index_bytes_and_leaves_other_platform_out(
    seeded: Seeded, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    code, _, err = mirror(home, "--platform", "linux/arm64", f"{seeded.host}/stella/multi:1.0")
    assert code == 0, err
    layout = layout_of(home)
    assert layout.resolve(f"{seeded.host}/stella/multi:1.0").digest == seeded.index
    assert_same_bytes(layout, seeded.registry, "stella/multi", seeded.index)
    assert_same_bytes(layout, seeded.registry, "stella/multi", seeded.arm64)
    assert not layout.has_blob(seeded.amd64)
    assert layout.reachable().missing == {seeded.amd64}  # the sparse index names it
    assert not layout.verify().bad
    assert layout.referrers(seeded.amd64) == []  # its SBOM stayed behind
    assert [r.digest for r in layout.referrers(seeded.index)] == [seeded.bundle_referrer]
    record = json.loads((home / "mirror" / "images.json").read_text())["images"][
        f"{seeded.host}/stella/multi:1.0"
    ]
    assert record["platforms"] == ["linux/arm64/v8"]
    assert record["omitted"] == [{"digest": str(seeded.amd64), "platform": "linux/amd64"}]


def test_unknown_platform_is_one_clear_line(seeded: Seeded, tmp_path: Path) -> None:
    home = tmp_path / "home"
    code, _, err = mirror(home, "--platform", "linux/s390x", f"{seeded.host}/stella/multi:1.0")
    assert code == 1
    assert err.splitlines()[-1] + "\n" == (
        f"stella-mirror: error: image {seeded.host}/stella/multi:1.0 ({seeded.index}) has no "
        "manifest for linux/s390x (available platforms: linux/amd64, linux/arm64/v8)\n"
    )
    assert layout_of(home).tags() == {}


def test_docker_schema2_image_by_digest_and_idempotent(seeded: Seeded, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ref = f"{seeded.host}/stella/docker:2.0"
    code, _, err = mirror(home, "--no-referrers", ref)
    assert code == 0, err
    layout = layout_of(home)
    tagged = layout.resolve(ref)
    assert tagged.media_type == DOCKER_MANIFEST
    assert tagged.digest == seeded.docker_image
    assert_same_bytes(layout, seeded.registry, "stella/docker", seeded.docker_image)
    assert layout.verify().ok

    by_digest = f"{seeded.host}/stella/docker@{seeded.docker_image}"
    result = CliRunner().invoke(cli, ["--home", str(home), "--json", "images", "add", by_digest])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    (image,) = doc["images"]
    assert image["blobsFetched"] == 0  # every blob was already in the layout
    assert image["refName"] == by_digest
    assert image["platforms"] == ["linux/amd64"]
    assert doc["failed"] == []


def _docker_config(path: Path, host: str, user: str, password: str) -> Path:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return path


def test_htpasswd_basic_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_tools("docker-registry", "skopeo", "htpasswd")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    with DockerRegistry(tmp_path / "reg", user=("alice", "s3cret")) as reg:
        layout = OCILayout.init(tmp_path / "src")
        layout.tag("v1", build_image(layout, [{"a": b"auth test"}]))
        reg.skopeo_copy(layout.path, "v1", "private/app:v1")
        ref = f"{reg.host}/private/app:v1"

        good = _docker_config(tmp_path / "good.json", reg.host, "alice", "s3cret")
        code, _, err = mirror(tmp_path / "h1", "--docker-config", str(good), ref)
        assert code == 0, err
        raw, _ = reg.manifest("private/app", "v1")
        assert layout_of(tmp_path / "h1").resolve(ref).digest == Digest.of_bytes(raw)

        bad = _docker_config(tmp_path / "bad.json", reg.host, "alice", "wrong")
        code, _, err = mirror(tmp_path / "h2", "--docker-config", str(bad), ref)
        assert code == 1
        assert err.splitlines()[0] == f"copying {ref}"
        assert err.count("\n") == 2
        assert err.splitlines()[1].startswith(
            f"stella-mirror: error: registry {reg.host} refused the credentials of user "
            f"'alice' from {bad} auths['{reg.host}'] for private/app (HTTP 401)"
        )

        code, _, err = mirror(tmp_path / "h3", ref)
        assert code == 1
        assert err.splitlines()[-1].startswith(
            f"stella-mirror: error: registry {reg.host} requires a user name and password"
        )
        assert not (tmp_path / "h3" / "mirror" / "images.json").exists()


def test_bearer_token_auth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry's own ``auth: token``: a 401 Bearer challenge, a token from the realm
    (Basic credentials, scope ``repository:private/app:pull``), then the pull with it."""
    require_tools("docker-registry", "skopeo")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    with (
        TokenServer(tmp_path / "token", ("frank", "t0ken-pw")) as tokens,
        DockerRegistry(tmp_path / "reg", token=tokens) as reg,
    ):
        layout = OCILayout.init(tmp_path / "src")
        layout.tag("v1", build_image(layout, [{"a": b"token auth test"}]))
        reg.skopeo_copy(layout.path, "v1", "private/app:v1")
        ref = f"{reg.host}/private/app:v1"
        tokens.issued.clear()

        good = _docker_config(tmp_path / "good.json", reg.host, "frank", "t0ken-pw")
        code, _, err = mirror(tmp_path / "h1", "--docker-config", str(good), ref)
        assert code == 0, err
        assert "repository:private/app:pull" in tokens.issued
        assert layout_of(tmp_path / "h1").verify().ok

        bad = _docker_config(tmp_path / "bad.json", reg.host, "frank", "nope")
        code, _, err = mirror(tmp_path / "h2", "--docker-config", str(bad), ref)
        assert code == 1
        assert err.splitlines()[-1] == (
            f"stella-mirror: error: token server {tokens.realm} refused the credentials of "
            f"user 'frank' from {bad} auths['{reg.host}'] (HTTP 401) (check the user name and "
            "password, or log in again)"
        )


def test_tls_registry_with_its_ca_bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A loopback registry that speaks only TLS: plain HTTP is tried first and not taken; the
    copy works with ``--ca-bundle``, and without it fails on one line that names the option."""
    require_tools("docker-registry", "skopeo")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    cert, key = loopback_certificate(tmp_path / "tls")
    with DockerRegistry(tmp_path / "reg", tls=(cert, key)) as reg:
        layout = OCILayout.init(tmp_path / "src")
        layout.tag("v1", build_image(layout, [{"a": b"tls test"}]))
        reg.skopeo_copy(layout.path, "v1", "secure/app:v1")
        ref = f"{reg.host}/secure/app:v1"

        code, _, err = mirror(tmp_path / "h1", "--ca-bundle", str(cert), ref)
        assert code == 0, err
        raw, _ = reg.manifest("secure/app", "v1")
        assert layout_of(tmp_path / "h1").resolve(ref).digest == Digest.of_bytes(raw)

        code, _, err = mirror(tmp_path / "h2", ref)
        assert code == 1
        last = err.splitlines()[-1]
        assert last.startswith(f"stella-mirror: error: TLS with registry {reg.host} failed: ")
        assert "--ca-bundle FILE" in last, last
        assert not (tmp_path / "h2" / "mirror" / "images.json").exists()
