"""Mirrored images' upstream signatures are verified at import against the operator's upstream
signer policy, and the result is evidence: in the import's audit record and as an OCI
referrer of each image that ``stella images inspect`` shows. A required signer no signature
satisfies refuses the bundle before anything is activated."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from appliance.sigstore.bundle import sign
from appliance.sigstore.upstream import (
    COSIGN_SIGNATURE,
    COSIGN_SIMPLESIGNING,
    VERIFICATION_ARTIFACT,
)
from bundles import canonical
from bundles.digest import Digest
from bundles.intoto import Statement, Subject
from bundles.keys import PrivateKey
from bundles.oci import OCILayout
from bundles.oci.mediatypes import EMPTY_JSON, OCI_EMPTY, OCI_MANIFEST
from tests.bundles.oci_helpers import attach, build_image
from tests.flow.conftest import Appliance, Mirror, copy_home

APP = "registry.example/team/app"
TAMPERED = "registry.example/team/tampered"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def _bundle(key: PrivateKey, repository: str, digest: Digest) -> bytes:
    statement = Statement(
        subjects=(Subject.of(repository, digest),),
        predicate_type="https://slsa.dev/provenance/v1",
        predicate={"builder": {"id": "upstream-ci"}},
    )
    return sign(statement, key).to_json()


def _tamper(bundle: bytes) -> bytes:
    doc = json.loads(bundle)
    payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload["predicate"]["builder"]["id"] = "someone-else"
    doc["dsseEnvelope"]["payload"] = base64.b64encode(canonical.dumps(payload)).decode()
    return canonical.dumps(doc)


def _legacy_sig(layout: OCILayout, key: PrivateKey, repository: str, digest: Digest) -> None:
    """cosign's legacy ``sha256-<hex>.sig`` tag: a simple-signing payload, signed."""
    payload = json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": repository},
                "image": {"docker-manifest-digest": str(digest)},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()
    layer = layout.put_blob(payload, media_type=COSIGN_SIMPLESIGNING)
    config = layout.put_blob(EMPTY_JSON, media_type=OCI_EMPTY)
    signature = base64.b64encode(key.sign(payload)).decode()
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_dict(),
        "layers": [{**layer.to_dict(), "annotations": {COSIGN_SIGNATURE: signature}}],
    }
    manifest = layout.put_manifest(canonical.dumps(doc), OCI_MANIFEST)
    layout.tag(f"{repository}:sha256-{digest.hex}.sig", manifest)


@pytest.fixture(scope="module")
def upstream_key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture(scope="module")
def signed(
    mirror: Mirror, upstream_key: PrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A mirror workspace with two images: ``app`` signed by the upstream key (a Sigstore
    bundle referrer and a legacy cosign .sig tag), ``tampered`` with a bundle whose statement
    was edited after signing; exported as a full bundle of the second snapshot."""
    root = tmp_path_factory.mktemp("upstream")
    home = root / "home"
    copy_home(mirror.home, home)
    layout = OCILayout.init(home / "mirror" / "oci", exist_ok=True)
    records = {}
    for repository, files in ((APP, {"app/bin": b"app"}), (TAMPERED, {"app/bin": b"other"})):
        reference = f"{repository}:1.0"
        image = build_image(layout, {"etc/os-release": b"ID=debian\n", **files}, tag=reference)
        digest = image.manifest.digest
        bundle = _bundle(upstream_key, repository, digest)
        if repository == TAMPERED:
            bundle = _tamper(bundle)
        else:
            _legacy_sig(layout, upstream_key, repository, digest)
        attach(layout, image.manifest, bundle, artifact_type=BUNDLE_TYPE)
        records[reference] = {"reference": reference, "digest": str(digest)}
    (home / "mirror" / "images.json").write_bytes(
        canonical.dumps({"version": 1, "images": records})
    )
    image_mirror = Mirror(home=home, keys=mirror.keys, feeds=mirror.feeds, snapshots=[])
    # A bundle without images, logged before the one with them (appliances import a channel's
    # bundles in the order the mirror logged them).
    plain = root / "plain.stella.tar.zst"
    mirror.export(plain, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    out = root / "images.stella.tar.zst"
    image_mirror.export(out, "--snapshot", mirror.snapshots[1], "--sequence", "2")
    pub = root / "upstream.pub"
    upstream_key.public_key.save(pub)
    other = root / "other.pub"
    PrivateKey.generate().public_key.save(other)
    return {"bundle": out, "plain": plain, "key": pub, "other": other, "records": records}


def _by_reference(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["reference"]: v for v in result["upstreamSignatures"]}


def test_signatures_verified_with_the_key_rule_are_evidence(
    appliance: Appliance, signed: dict[str, Any]
) -> None:
    added = appliance.run(
        "trust", "upstream", "add", "--repository", "registry.example/team/*",
        "--key", str(signed["key"]),
    )  # fmt: skip
    assert added["added"] is True
    result = appliance.run("import", str(signed["bundle"]))
    checks = _by_reference(result)
    app = checks[f"{APP}:1.0"]
    assert app["result"] == "verified"
    forms = sorted((s["form"], s["kind"], s["result"]) for s in app["signatures"])
    assert forms == [
        ("cosign-legacy", "simplesigning", "verified"),
        ("sigstore-bundle", "dsse", "verified"),
    ]
    assert {s["signer"] for s in app["signatures"]} == {f"key {added['keyid']}"}
    assert app["policy"]["rules"][0]["repository"] == "registry.example/team/*"
    tampered = checks[f"{TAMPERED}:1.0"]
    (bad,) = tampered["signatures"]
    assert (tampered["result"], bad["result"], bad["signer"]) == ("failed", "failed", None)
    assert "signature" in bad["reason"]
    assert TAMPERED in bad["reason"]

    # The audit record of the import carries the same results.
    (record,) = appliance.run("audit", "list", "--action", "import")["records"]
    assert record["result"]["upstreamSignatures"] == result["upstreamSignatures"]
    # Each image holds its verification as a referrer; inspect shows it.
    inspected = appliance.run("images", "inspect", f"{APP}:1.0")
    (evidence,) = inspected["upstreamSignatures"]
    assert evidence["result"] == "verified"
    assert evidence["signatures"] == app["signatures"]
    (referrer,) = inspected["referrers"][VERIFICATION_ARTIFACT]
    assert referrer["digest"] == evidence["evidence"]
    assert appliance.run("audit", "verify")["ok"] is True


def test_another_key_fails(appliance: Appliance, signed: dict[str, Any]) -> None:
    appliance.run(
        "trust", "upstream", "add", "--repository", f"{APP}", "--key", str(signed["other"])
    )
    app = _by_reference(appliance.run("import", str(signed["bundle"])))[f"{APP}:1.0"]
    assert app["result"] == "failed"
    for check in app["signatures"]:
        assert check["result"] == "failed"
        assert "does not verify" in check["reason"] or "not trusted" in check["reason"]


def test_without_a_rule_every_signature_is_unverifiable(
    appliance: Appliance, signed: dict[str, Any]
) -> None:
    app = _by_reference(appliance.run("import", str(signed["bundle"])))[f"{APP}:1.0"]
    assert app["policy"] is None
    assert app["result"] == "unverifiable"
    assert {(s["result"], s["reason"]) for s in app["signatures"]} == {
        ("unverifiable", "no upstream trust rule matches the repository")
    }


def test_required_rule_unmet_refuses_the_bundle_and_keeps_the_previous_state(
    appliance: Appliance, signed: dict[str, Any], mirror: Mirror, tmp_path: Path
) -> None:
    appliance.run("import", str(signed["plain"]))
    before = appliance.active()
    appliance.run(
        "trust", "upstream", "add", "--repository", TAMPERED, "--key", str(signed["key"]),
        "--required",
    )  # fmt: skip
    code, err = appliance.fail("import", str(signed["bundle"]))
    assert code == 1
    assert f"image {TAMPERED}:1.0 (sha256:" in err
    assert f"required upstream signature rule '{TAMPERED} key " in err
    assert "is not satisfied: no signature verifies: " in err
    assert appliance.active() == before
    store = OCILayout.open(appliance.home / "oci")
    assert f"{APP}:1.0" not in store.tags()
    digest = Digest.parse(signed["records"][f"{APP}:1.0"]["digest"])
    assert store.referrers(digest) == []
    (refused,) = appliance.run("audit", "list", "--action", "import.refused")["records"]
    assert "required upstream signature rule" in refused["result"]["reason"]

    # Once the rule is lifted the same bundle imports.
    removed = appliance.run("trust", "upstream", "remove", TAMPERED)["removed"]
    assert [r["repository"] for r in removed] == [TAMPERED]
    assert appliance.run("trust", "upstream", "list")["rules"] == []
    assert appliance.run("import", str(signed["bundle"]))["snapshot"] == mirror.snapshots[1]
    actions = [r["action"] for r in appliance.run("audit", "list", "--action", "trust")["records"]]
    assert actions == ["trust.add", "trust.add", "trust.remove"]


def test_required_rule_satisfied_imports(appliance: Appliance, signed: dict[str, Any]) -> None:
    appliance.run(
        "trust", "upstream", "add", "--repository", APP, "--key", str(signed["key"]),
        "--required",
    )  # fmt: skip
    result = appliance.run("import", str(signed["bundle"]))
    assert _by_reference(result)[f"{APP}:1.0"]["result"] == "verified"


def test_dry_run_says_upstream_signatures_were_not_checked(
    appliance: Appliance, signed: dict[str, Any]
) -> None:
    """A dry run does not store the image blobs, so it cannot check their signatures: it says
    so instead of reporting them, even when a required rule would refuse the real import."""
    appliance.run(
        "trust", "upstream", "add", "--repository", TAMPERED, "--key", str(signed["key"]),
        "--required",
    )  # fmt: skip
    result = appliance.run("import", "--dry-run", str(signed["bundle"]))
    assert (result["dryRun"], result["upstreamSignatures"]) == (True, None)
    text = CliRunner().invoke(
        stella, ["--home", str(appliance.home), "import", "--dry-run", str(signed["bundle"])]
    )
    assert text.exit_code == 0, text.stderr
    assert "upstream signatures: not checked in a dry run\n" in text.stdout
    assert "upstream signatures verified" not in text.stdout
    assert appliance.active() is None
    code, _ = appliance.fail("import", str(signed["bundle"]))
    assert code == 1


def test_trust_upstream_usage_errors(appliance: Appliance, signed: dict[str, Any]) -> None:
    code, err = appliance.fail(
        "trust", "upstream", "add", "--repository", APP, "--key", str(signed["key"]),
        "--certificate-identity", "me",
    )  # fmt: skip
    assert code == 2
    assert "--key and --certificate-identity/--certificate-oidc-issuer exclude each other" in err
    code, err = appliance.fail(
        "trust", "upstream", "add", "--repository", APP, "--certificate-identity", "me"
    )
    assert code == 2
    assert f"keyless rule for '{APP}' needs both an identity and an issuer" in err
    code, err = appliance.fail("trust", "upstream", "add", "--repository", APP)
    assert code == 2
    assert f"rule for '{APP}' must name either a key or a keyless identity" in err
    code, err = appliance.fail("trust", "upstream", "remove", "nothing/*")
    assert "no upstream signer rule has the repository pattern 'nothing/*'" in err
    keyless = appliance.run(
        "trust", "upstream", "add", "--repository", "ghcr.io/acme/*",
        "--certificate-identity", "https://github.com/acme/app/.github/workflows/release.yml@refs/heads/main",
        "--certificate-oidc-issuer", "https://token.actions.githubusercontent.com",
    )  # fmt: skip
    assert keyless["keyless"]["issuer"] == "https://token.actions.githubusercontent.com"
    (listed,) = appliance.run("trust", "upstream", "list")["rules"]
    assert listed == {k: v for k, v in keyless.items() if k not in ("added", "policy")}
