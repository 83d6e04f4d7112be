"""The registry client and the copier against a fake registry: reference parsing, the
docker config, bearer and basic challenges, corrupt blobs, cut connections resumed by Range."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from bundles.digest import Digest
from bundles.distribution.client import RegistryOptions
from bundles.distribution.credentials import Challenge, Credentials, load_docker_credentials
from bundles.distribution.errors import ImageReferenceError, RegistryAuthError
from bundles.distribution.reference import ImageReference, is_loopback_host
from bundles.oci import OCILayout
from mirror.cli import cli
from mirror.image_copy import ImagesError, PlatformSpec, copy_image, parse_platforms, ref_name_for
from mirror.registry import PullClient
from tests.mirror.registry_fixture import FakeRegistry, fake_image, layer_digests

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

# ------------------------------------------------------------------------------ references


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.20", "docker.io", "library/alpine", "3.20", None),
        ("bitnami/redis:7", "docker.io", "bitnami/redis", "7", None),
        ("ghcr.io/org/app/sub:v1.2_rc", "ghcr.io", "org/app/sub", "v1.2_rc", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("127.0.0.1:5000/a/b:c", "127.0.0.1:5000", "a/b", "c", None),
        ("reg.example:443/x@sha256:" + "a" * 64, "reg.example:443", "x", None, "a" * 64),
        ("reg.example/x:t@sha256:" + "b" * 64, "reg.example", "x", "t", "b" * 64),
        ("[::1]:5000/x:y", "[::1]:5000", "x", "y", None),
    ],
)
def test_reference_parse(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = ImageReference.parse(text)
    assert (ref.registry, ref.repository, ref.tag) == (registry, repository, tag)
    assert ref.digest == (Digest(digest) if digest else None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty or has surrounding spaces"),
        ("reg.example/App:1", "repository 'App' is not valid"),
        ("reg.example/app:-bad", "tag '-bad' is not valid"),
        ("reg.example/app@sha256:zz", "malformed sha256 digest value 'zz'"),
        ("reg.example/app@md5:" + "a" * 32, "unsupported digest algorithm 'md5'"),
        ("reg_bad:5000/app", "registry 'reg_bad:5000' is not a host[:port]"),
    ],
)
def test_reference_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ImageReferenceError) as info:
        ImageReference.parse(text)
    assert message in info.value.message
    assert repr(text) in info.value.message


def test_ref_name_encoding() -> None:
    digest = Digest("c" * 64)
    ref = ImageReference.parse("127.0.0.1:5000/org/app:1.0")
    assert ref_name_for(ref, digest) == "127.0.0.1:5000/org/app:1.0"
    odd_tag = ImageReference.parse("reg.example/app:v1..2")  # valid tag, not a valid ref.name
    assert ref_name_for(odd_tag, digest) == f"reg.example/app@sha256:{'c' * 64}"
    assert ref_name_for(ImageReference.parse(f"reg.example/app@{digest}"), digest) == (
        f"reg.example/app@{digest}"
    )
    with pytest.raises(ImagesError, match="cannot be written as an OCI ref.name"):
        ref_name_for(ImageReference.parse("[::1]:5000/app:1"), digest)


def test_platforms_parse() -> None:
    assert parse_platforms(["linux/amd64,linux/arm64/v8", "linux/amd64"]) == (
        PlatformSpec("linux", "amd64"),
        PlatformSpec("linux", "arm64", "v8"),
    )
    with pytest.raises(Exception, match="platform 'linux' is not OS/ARCH"):
        parse_platforms(["linux"])


def test_loopback_and_http_policy() -> None:
    assert is_loopback_host("127.0.0.1:5000")
    assert is_loopback_host("localhost")
    assert is_loopback_host("[::1]:5000")
    assert not is_loopback_host("registry.example:5000")
    options = RegistryOptions(allow_http=frozenset({"registry.lan:5000"}))
    assert options.http_allowed("registry.lan:5000")
    assert not options.http_allowed("registry.example:5000")


def test_challenge_parse() -> None:
    c = Challenge.parse(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }
    assert Challenge.parse('Basic realm="x"').scheme == "basic"


# ------------------------------------------------------------------------------ docker config


def test_docker_config_entries(tmp_path: Path) -> None:
    auth = base64.b64encode(b"bob:pa:ss").decode()
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "auths": {
                    "https://reg.example/": {"auth": auth},
                    "other.example": {"username": "carol", "password": "pw"},
                    "https://index.docker.io/v1/": {"auth": auth},
                    "bad.example": {"auth": "***"},
                    "tok.example": {"identitytoken": "abc"},
                },
                "credHelpers": {"helper.example": "ecr-login"},
            }
        )
    )
    creds = load_docker_credentials(path, "reg.example")
    assert creds is not None
    assert (creds.username, creds.password) == ("bob", "pa:ss")
    assert creds.source == f"{path} auths['https://reg.example']"
    other = load_docker_credentials(path, "other.example")
    assert other is not None
    assert other.username == "carol"
    hub = load_docker_credentials(path, "docker.io")
    assert hub is not None
    assert hub.username == "bob"
    assert load_docker_credentials(path, "none.example") is None
    with pytest.raises(RegistryAuthError, match="field 'auth' is not base64"):
        load_docker_credentials(path, "bad.example")
    with pytest.raises(RegistryAuthError, match="identity token"):
        load_docker_credentials(path, "tok.example")
    with pytest.raises(RegistryAuthError, match="credential helper 'ecr-login'"):
        load_docker_credentials(path, "helper.example")


# ------------------------------------------------------------------------------ the copier


def _client(fake: FakeRegistry, credentials: Credentials | None = None) -> PullClient:
    session_options = RegistryOptions(retries=2, backoff=0.0)
    return PullClient(fake.host, session_options, credentials=credentials, sleep=lambda _s: None)


def test_bearer_challenge_gets_a_scoped_token(tmp_path: Path) -> None:
    with FakeRegistry(auth=("bearer", "dave", "hunter2")) as fake:
        image = fake_image(fake, "team/app", "v1")
        layout = OCILayout.init(tmp_path / "oci")
        with _client(fake, Credentials("dave", "hunter2", "test")) as client:
            result = copy_image(
                client, ImageReference.parse(f"{fake.host}/team/app:v1"), layout, clock=lambda: NOW
            )
        assert result.descriptor.digest == image.digest
        assert result.mirrored_at == "2026-03-01T12:00:00Z"
        assert layout.verify().ok
        token_requests = [r for r in fake.requests if r[1].startswith("/token")]
        assert len(token_requests) == 1  # one token per repository, reused for every request
        assert "scope=repository%3Ateam%2Fapp%3Apull" in token_requests[0][1]
        assert "service=fake-registry" in token_requests[0][1]
        blob_gets = [r for r in fake.requests if "/blobs/" in r[1]]
        assert blob_gets
        assert all(r[2].get("Authorization") == f"Bearer {fake.token}" for r in blob_gets)


def test_bearer_wrong_password_is_one_clear_line(tmp_path: Path) -> None:
    with FakeRegistry(auth=("bearer", "dave", "hunter2")) as fake:
        fake_image(fake, "team/app", "v1")
        config = tmp_path / "config.json"
        auth = base64.b64encode(b"dave:wrong").decode()
        config.write_text(json.dumps({"auths": {fake.host: {"auth": auth}}}))
        result = CliRunner().invoke(
            cli,
            [
                "--home",
                str(tmp_path / "home"),
                "images",
                "add",
                "--docker-config",
                str(config),
                f"{fake.host}/team/app:v1",
            ],
        )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"stella-mirror: error: token server http://{fake.host}/token refused the credentials "
        f"of user 'dave' from {config} auths['{fake.host}'] (HTTP 401) (check the user name "
        "and password, or log in again)"
    )


def test_bearer_realm_over_plain_http_elsewhere_is_refused(tmp_path: Path) -> None:
    with FakeRegistry(auth=("bearer", "u", "p"), realm="http://auth.example/token") as fake:
        fake_image(fake, "team/app", "v1")
        with (
            _client(fake, Credentials("u", "p")) as client,
            pytest.raises(RegistryAuthError, match="plain-HTTP realm http://auth.example/token"),
        ):
            copy_image(
                client, ImageReference.parse(f"{fake.host}/team/app:v1"), OCILayout.init(tmp_path)
            )


def test_basic_auth_against_fake(tmp_path: Path) -> None:
    with FakeRegistry(auth=("basic", "erin", "pw")) as fake:
        image = fake_image(fake, "app", "1")
        layout = OCILayout.init(tmp_path / "oci")
        with _client(fake, Credentials("erin", "pw")) as client:
            result = copy_image(client, ImageReference.parse(f"{fake.host}/app:1"), layout)
        assert result.descriptor.digest == image.digest
        with _client(fake) as anonymous, pytest.raises(RegistryAuthError) as info:
            copy_image(anonymous, ImageReference.parse(f"{fake.host}/app:1"), layout)
        assert info.value.message == (
            f"registry {fake.host} requires a user name and password (Basic) for app and none "
            "were found"
        )


def test_corrupt_blob_is_detected_and_nothing_lands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with FakeRegistry() as fake:
        image = fake_image(fake, "app", "1")
        layer = Digest.parse(layer_digests(fake.manifests[f"app/{image.digest}"][0])[1])
        fake.corrupt.add(str(layer))
        result = CliRunner().invoke(
            cli, ["--home", str(home), "images", "add", f"{fake.host}/app:1"]
        )
    assert result.exit_code == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith(
        f"stella-mirror: error: registry {fake.host} served blob {layer} of app with the "
        "wrong content: blob refused by"
    )
    assert "nothing of this image was stored" in last
    layout = OCILayout.open(home / "mirror" / "oci")
    assert not layout.has_blob(layer)
    assert not layout.has_blob(image.digest)
    assert layout.entries() == ()
    assert layout.verify().ok
    assert not list((layout.path / ".stella" / "tmp").iterdir())
    assert not (home / "mirror" / "images.json").exists()


def test_corrupt_manifest_is_refused(tmp_path: Path) -> None:
    with FakeRegistry() as fake:
        image = fake_image(fake, "app", "1")
        raw, media_type = fake.manifests["app/1"]
        tampered = raw.replace(b'"schemaVersion":2', b'"schemaVersion":2 ')
        fake.manifests[f"app/{image.digest}"] = (tampered, media_type)
        layout = OCILayout.init(tmp_path / "oci")
        ref = ImageReference.parse(f"{fake.host}/app@{image.digest}")
        with _client(fake) as client, pytest.raises(Exception, match="hashes to") as info:
            copy_image(client, ref, layout)
        assert "but the requested digest says" in str(info.value)
        assert layout.entries() == ()


def test_cut_connection_resumes_with_range(tmp_path: Path) -> None:
    with FakeRegistry() as fake:
        image = fake_image(fake, "app", "1", size=2_000_000)
        layer = layer_digests(fake.manifests["app/1"][0])[1]
        fake.cut_once.add(layer)
        layout = OCILayout.init(tmp_path / "oci")
        with _client(fake) as client:
            result = copy_image(client, ImageReference.parse(f"{fake.host}/app:1"), layout)
        assert result.descriptor.digest == image.digest
        assert result.blobs_fetched == 2
        layer_gets = [r for r in fake.requests if r[1].endswith(f"/blobs/{layer}")]
        assert len(layer_gets) == 2
        assert "Range" not in layer_gets[0][2]
        size = len(fake.blobs[layer])
        assert layer_gets[1][2]["Range"] == f"bytes={size // 2}-"
        assert layout.verify().ok
        assert layout.resolve(f"{fake.host}/app:1").digest == image.digest


def test_missing_tag_is_one_clear_error(tmp_path: Path) -> None:
    with FakeRegistry() as fake:
        fake_image(fake, "app", "1")
        result = CliRunner().invoke(
            cli,
            ["--home", str(tmp_path), "images", "add", f"{fake.host}/app:1", f"{fake.host}/app:2"],
        )
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        f"stella-mirror: error: 1 of 2 images failed; {fake.host}/app:2: registry has no "
        f"manifest {fake.host}/app:2 (check the repository and tag (or digest))"
    )
    images = json.loads((tmp_path / "mirror" / "images.json").read_text())["images"]
    assert list(images) == [f"{fake.host}/app:1"]
