"""``stella push`` to Debian's real docker-registry (distribution 2.8: no referrers API), so
the referrers go into the ``sha256-<hex>`` fallback tag index, found again with skopeo; the
index keeps a referrer another client had put there. Plus destinations and credentials."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.registry.client import PushClient
from appliance.registry.push import (
    Destination,
    ReferrersMethod,
    _merge_fallback,
    push,
)
from appliance.rva.gate import GateResult
from appliance.store import open_state
from appliance.store.audit import AuditLog
from bundles.digest import Digest
from bundles.distribution.client import PushedManifest
from bundles.distribution.credentials import Credentials
from bundles.distribution.errors import RegistryAuthError, RegistryError
from bundles.distribution.reference import fallback_tag
from bundles.errors import UsageError
from bundles.oci import Descriptor, OCILayout
from bundles.oci.mediatypes import OCI_INDEX, SIGSTORE_BUNDLE_V03
from tests.appliance.registry.homes import gated_home
from tests.mirror.registry_fixture import (
    SPDX_JSON,
    DockerRegistry,
    TokenServer,
    artifact_manifest,
    clean_env,
)

USER = ("alice", "s3cret-pass")
RVA_TYPE = "https://stella-ops.org/attestations/risk-verdict/v1"


@pytest.fixture
def gated(tmp_path: Path) -> tuple[Home, GateResult]:
    return gated_home(tmp_path / "home")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path / "registry", user=USER) as reg:
        yield reg


def _skopeo_raw(registry: DockerRegistry, ref: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            "skopeo", "inspect", "--raw", "--tls-verify=false",
            f"--creds={USER[0]}:{USER[1]}", f"docker://{registry.host}/{ref}",
        ],
        capture_output=True, text=True, env=clean_env(), timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def test_push_falls_back_to_tag_index_and_keeps_other_referrers(
    gated: tuple[Home, GateResult], registry: DockerRegistry
) -> None:
    home, result = gated
    image = OCILayout.open(home.oci).resolve("app:1")
    subject = image.bare()
    # Another client attached an SPDX SBOM and listed it in the fallback index first.
    other_raw, other_blobs = artifact_manifest(
        subject, b'{"spdxVersion":"SPDX-2.3"}', SPDX_JSON, artifact_type=SPDX_JSON
    )
    other = registry.push_manifest(
        "team/app", "x", other_raw, "application/vnd.oci.image.manifest.v1+json", other_blobs
    )
    other_entry = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": str(other),
        "size": len(other_raw),
        "artifactType": SPDX_JSON,
        "annotations": {"org.example.tool": "other-client"},
    }
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [other_entry]}
    registry.push_manifest(
        "team/app", fallback_tag(image.digest), json.dumps(index).encode(), OCI_INDEX, {}
    )

    pushed = push(home, "app:1", f"{registry.host}/team/app:1", credentials=Credentials(*USER))
    assert pushed.digest == image.digest
    assert dict(pushed.methods) == {image.digest: ReferrersMethod.FALLBACK}
    assert pushed.blobs_uploaded >= 2

    # discovered through the fallback tag, with skopeo
    found = _skopeo_raw(registry, f"team/app:{fallback_tag(image.digest)}")
    entries = {e["digest"]: e for e in found["manifests"]}
    assert entries[str(other)] == other_entry  # the other client's referrer, untouched
    rva = entries[str(result.referrer.digest)]
    assert rva["artifactType"] == SIGSTORE_BUNDLE_V03
    assert rva["annotations"]["dev.sigstore.bundle.predicateType"] == RVA_TYPE
    assert str(result.evidence.digest) in entries
    assert len(entries) == 4  # other SBOM, RVA, SBOM attestation, evidence
    # the RVA manifest itself is in the registry, byte for byte
    raw, _ = registry.manifest("team/app", str(result.referrer.digest))
    assert raw == OCILayout.open(home.oci).read_blob(result.referrer.digest)
    assert _skopeo_raw(registry, "team/app:1")["config"]  # the image is there too

    # pushing again changes nothing and lists nothing twice
    again = push(home, "app:1", f"{registry.host}/team/app:1", credentials=Credentials(*USER))
    assert again.blobs_uploaded == 0
    assert len(_skopeo_raw(registry, f"team/app:{fallback_tag(image.digest)}")["manifests"]) == 4
    with open_state(home) as db:
        records = [r for r in AuditLog(db).records() if r.action == "push"]
    assert len(records) == 2
    assert records[0].subject == str(image.digest)


def test_cli_push_and_wrong_credentials(
    gated: tuple[Home, GateResult], registry: DockerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = gated
    runner = CliRunner()
    argv = ["--home", str(home.root), "push", "app:1", "--to", f"{registry.host}/cli/app:2"]
    monkeypatch.setenv("REG_PASSWORD", "not-the-password")
    wrong = runner.invoke(cli, [*argv, "--user", USER[0], "--password-env", "REG_PASSWORD"])
    assert wrong.exit_code == 1
    assert wrong.stderr.strip() == (
        f"stella: error: registry {registry.host} refused the credentials of user 'alice' for "
        "cli/app (HTTP 401) (check the user name and the password in the --password-env variable)"
    )
    missing = runner.invoke(cli, argv)
    assert missing.exit_code == 1
    assert "requires a user name and password (Basic) for cli/app" in missing.stderr
    monkeypatch.setenv("REG_PASSWORD", USER[1])
    ok = runner.invoke(cli, ["--json", *argv, "--user", USER[0], "--password-env", "REG_PASSWORD"])
    assert ok.exit_code == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["destination"] == f"{registry.host}/cli/app:2"
    assert set(doc["subjects"].values()) == {"fallback-tag"}


def test_unreachable_registry_is_one_line(gated: tuple[Home, GateResult]) -> None:
    home, _ = gated
    with pytest.raises(RegistryError, match="cannot reach registry 127.0.0.1:9"):
        push(home, "app:1", "127.0.0.1:9/app:1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("reg:5000/team/app:1", Destination("reg:5000", "team/app", "1")),
        ("reg/app", Destination("reg", "app", None)),
        ("127.0.0.1:5000/a/b/c", Destination("127.0.0.1:5000", "a/b/c", None)),
    ],
)
def test_destination_parse(text: str, expected: Destination) -> None:
    assert Destination.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app", "is not REGISTRY/REPO"),
        ("reg/App", "'App' is not a valid repository name"),
        ("reg/app:-bad", "'-bad' is not a valid tag"),
    ],
)
def test_destination_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        Destination.parse(text)


class _RacingRegistry:
    """Implements the two calls the fallback merge makes; after our first PUT another client
    overwrites the index with its own read-modify-write (which lost our entry)."""

    registry = "racing"

    def __init__(self, start: dict[str, Any]) -> None:
        self.doc: dict[str, Any] = start
        self.puts = 0

    def find_manifest_bytes(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        return json.dumps(self.doc).encode(), OCI_INDEX

    def put_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> PushedManifest:
        self.puts += 1
        self.doc = json.loads(raw)
        if self.puts == 1:
            late = {"mediaType": OCI_INDEX, "digest": "sha256:" + "c" * 64, "size": 3}
            self.doc = {**self.doc, "manifests": [self.doc["manifests"][0], late]}
        return PushedManifest(Digest.of_bytes(raw), None)


def test_fallback_merge_redone_when_another_client_races() -> None:
    first = {"mediaType": OCI_INDEX, "digest": "sha256:" + "a" * 64, "size": 1}
    fake = _RacingRegistry({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [first]})
    ours = Descriptor(OCI_INDEX, Digest("b" * 64), 2, artifact_type=SIGSTORE_BUNDLE_V03)
    # the stand-in answers the two calls the merge makes of a PushClient
    _merge_fallback(cast(PushClient, fake), "app", Digest("d" * 64), [ours])
    assert fake.puts == 2
    digests = [e["digest"] for e in fake.doc["manifests"]]
    assert digests == ["sha256:" + "a" * 64, "sha256:" + "c" * 64, str(ours.digest)]


def test_push_with_token_authentication(gated: tuple[Home, GateResult], tmp_path: Path) -> None:
    home, result = gated
    with (
        TokenServer(tmp_path / "token", USER) as tokens,
        DockerRegistry(tmp_path / "registry", token=tokens) as registry,
    ):
        pushed = push(home, "app:1", f"{registry.host}/tok/app", credentials=Credentials(*USER))
        assert result.referrer.digest in pushed.referrers
        assert "repository:tok/app:pull,push" in tokens.issued
        with pytest.raises(RegistryAuthError, match="refused the credentials of user 'alice'"):
            push(home, "app:1", f"{registry.host}/tok/app", credentials=Credentials("alice", "x"))
