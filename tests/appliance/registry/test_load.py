"""``stella images load docker://…``: an image and its referrers from a registry into a home.

Against Debian's real ``docker-registry`` (no referrers API: the ``sha256-<hex>`` fallback
index) and the appliance's own ``stella serve`` (referrers API), both behind a user name and
password (the fixture of tests/appliance/fleet/test_registry_workers.py). A home gates an image
and pushes it with its verdict (``stella push``, the code a registry worker pushes with); a
second, empty home loads it and verifies and explains the verdict under the first home's public
key, with every evidence blob the verdict pins in its store; the first home, its own store
emptied (a primary whose worker gated the image), loads it back and verifies the verdict with
its evidence and its gate record, explains it and exports its audit package. In the fleet as
deployed, a worker home gates and pushes, and the primary loads and verifies what it signed
(PostgreSQL state, the fixtures of the registry-worker tests). A fake registry
injects the faults a real one will not make (an altered blob or manifest).
"""

from __future__ import annotations

import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance import tlog
from appliance.auditor.package import verify_package
from appliance.fleet.queue import JobKind
from appliance.fleet.worker import run_job
from appliance.home import Home
from appliance.registry.worker import RegistryImages, RegistryPlace
from appliance.rescan import Outcome
from appliance.rva.gate import GateResult
from appliance.rva.predicate import PREDICATE_TYPE
from bundles import canonical
from bundles.digest import Digest
from bundles.distribution.credentials import Credentials
from bundles.distribution.reference import fallback_tag
from bundles.keys import PublicKey
from bundles.oci import OCILayout
from bundles.oci.mediatypes import OCI_MANIFEST
from tests.appliance.fleet.test_registry_workers import (
    PASSWORD_ENV,
    PREFIX,
    USER,
    Registry,
    _attach,
    _index,
    primary,
    registry,
    worker_home,
)
from tests.appliance.fleet.test_worker import AT
from tests.appliance.registry.homes import gated_home
from tests.cli import stella, stella_json
from tests.mirror.registry_fixture import (
    DockerRegistry,
    FakeRegistry,
    TokenServer,
    break_image,
    fake_image,
    free_port,
)

__all__ = ["primary", "registry", "worker_home"]  # fixtures: registry is docker-registry, then
# 'stella serve'; primary and worker_home share a PostgreSQL state

CREDENTIALS = ("--user", USER[0], "--password-env", PASSWORD_ENV)


def pinned_evidence(result: GateResult) -> list[Digest]:
    """The evidence digests the verdict's signed predicate pins."""
    return [
        Digest.parse(ref["digest"])
        for ref in result.verdict.predicate["evidence"].values()
        if ref is not None
    ]


@pytest.fixture
def pushed(tmp_path: Path, registry: Registry) -> tuple[Home, GateResult, str]:
    """A home that gated app:1 and pushed it with its referrers to REGISTRY/site/app:1."""
    home, result = gated_home(tmp_path / "gated")
    done = stella(home, "push", "app:1", "--to", f"{registry.host}/site/app:1", *CREDENTIALS)
    assert done.exit_code == 0, done.output
    return home, result, f"docker://{registry.host}/site/app:1"


def test_an_empty_home_loads_a_verdict_with_its_evidence_and_verifies_it(
    tmp_path: Path, pushed: tuple[Home, GateResult, str]
) -> None:
    gated, result, source = pushed
    auditor = Home(tmp_path / "auditor")
    auditor.init()
    loaded = stella_json(auditor, "images", "load", source, *CREDENTIALS)
    image = OCILayout.open(gated.oci).resolve("app:1")
    assert (loaded["name"], loaded["digest"]) == ("app:1", str(image.digest))
    assert loaded["namedFrom"] == "the repository's last part and the tag"
    layout = OCILayout.open(auditor.oci)
    # every referrer the gate attached, byte for byte, listed as a referrer in the store
    attached = {r.digest for r in OCILayout.open(gated.oci).referrers(image.digest)}
    assert {result.referrer.digest, result.evidence.digest} <= attached
    assert {r.digest for r in layout.referrers(image.digest)} == attached
    assert loaded["referrers"] == len(attached)
    for digest in attached:
        assert layout.read_blob(digest) == OCILayout.open(gated.oci).read_blob(digest)
    evidence = pinned_evidence(result)
    assert evidence
    assert all(layout.has_blob(d) for d in evidence)

    pub = str(gated.appliance_pub)
    verified = stella_json(auditor, "verify", "app:1", "--key", pub)
    assert verified["statement"] == str(result.statement_digest)
    assert verified["signer"]["keyid"] == gated.public_key().keyid
    assert verified["verdict"] == result.kind.value
    # not this home's verdict, but attached in its store with the evidence it pins: checked
    assert verified["evidence"]
    assert all(e["checked"] for e in verified["evidence"])
    assert verified["audit"] is None  # no gate record of it in this home's audit log
    explained = stella(auditor, "explain", "app:1", "--key", pub)
    assert explained.exit_code == 0, explained.output
    assert str(image.digest) in explained.stdout
    # under this home's own key the verdict is someone else's: refused
    refused = stella(auditor, "verify", "app:1")
    assert refused.exit_code == 1

    # again: no manifest and no blob fetched, nothing new
    again = stella_json(auditor, "images", "load", source, *CREDENTIALS)
    assert again["digest"] == loaded["digest"]
    assert (again["manifestsFetched"], again["blobs"], again["referrers"]) == (0, 0, 0)
    assert again["referrersPresent"] == len(attached)


def test_the_home_that_recorded_the_verdict_verifies_explains_and_exports_it_after_a_load(
    tmp_path: Path, pushed: tuple[Home, GateResult, str]
) -> None:
    """A primary whose worker gated the image: the gate record is in its audit log, the
    verdict and its evidence only in the registry (here: the home's store is emptied)."""
    home, result, source = pushed
    digest = OCILayout.open(home.oci).resolve("app:1").digest
    shutil.rmtree(home.oci)
    assert stella(home, "verify", "app:1").exit_code == 1  # no image, no verdict here now
    loaded = stella_json(home, "images", "load", source, "--tag", "site/app:1", *CREDENTIALS)
    assert (loaded["name"], loaded["namedFrom"]) == ("site/app:1", "--tag")

    verified = stella_json(home, "verify", "site/app:1")
    assert verified["statement"] == str(result.statement_digest)
    assert verified["evidence"]
    assert all(e["checked"] for e in verified["evidence"])
    assert verified["audit"] is not None  # the gate record of this home's audit log
    checks = len(verified["evidence"])
    text = stella(home, "verify", "site/app:1").stdout
    assert f"evidence {checks} of {checks} checked against the pinned digests" in text
    explained = stella(home, "explain", "site/app:1")
    assert explained.exit_code == 0, explained.output
    out = tmp_path / "audit.zip"
    exported = stella(home, "export-audit-package", "site/app:1", "--out", str(out))
    assert exported.exit_code == 0, exported.output
    checked = stella(home, "verify-audit-package", str(out), "--key", str(home.appliance_pub))
    assert checked.exit_code == 0, checked.output
    assert str(digest) in json.dumps(loaded)
    assert result.referrer.digest in {r.digest for r in OCILayout.open(home.oci).referrers(digest)}


def test_the_primary_verifies_a_verdict_that_a_registry_worker_signed_and_pushed(
    tmp_path: Path,
    primary: Home,
    worker_home: Home,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fleet as deployed: the primary pushes app:1, a worker home holding only the key
    pulls it, gates it and pushes the verdict's referrers (the worker's own code, in this
    process); the verdict row, its gate record and the worker's log key are in the shared
    PostgreSQL state. The primary loads the referrers and verifies, explains and exports the
    verdict, its signing time proven by the worker's own transparency log."""
    done = stella(primary, "push", "app:1", "--to", f"{registry.host}/{PREFIX}/app:1", *CREDENTIALS)
    assert done.exit_code == 0, done.output
    digest = str(OCILayout.open(primary.oci).resolve("app:1").digest)
    images = RegistryImages(
        RegistryPlace(registry.host, PREFIX),
        credentials=Credentials(*USER),
        skip_predicates=(PREDICATE_TYPE,),
    )
    outcome = run_job(worker_home, JobKind.SCAN, "app:1", digest, AT, images=images)
    assert outcome.outcome is Outcome.GATED
    before = stella(primary, "verify", "app:1")
    assert before.exit_code == 1
    assert "has no risk verdict attached" in before.stderr

    loaded = stella_json(
        primary, "images", "load", f"docker://{registry.host}/{PREFIX}/app:1", *CREDENTIALS
    )
    assert (loaded["name"], loaded["digest"]) == ("app:1", digest)
    assert loaded["manifestsFetched"] == 0  # the primary holds the image: only its referrers
    assert loaded["referrers"] == 3  # the worker's RVA, evidence and SBOM attestation
    verified = stella_json(primary, "verify", "app:1")
    assert verified["evidence"]
    assert all(e["checked"] for e in verified["evidence"])
    assert verified["audit"] is not None  # the worker's gate record, in the shared log
    # Each home logs under its own origin; the worker recorded its log key in the shared
    # state at its first append, so the primary (which logged nothing yet) takes the worker's
    # timestamp as proven.
    worker_log = tlog.verifier(worker_home)
    assert worker_log.name != tlog.origin_for(primary)
    assert worker_log.name == f"stella.{primary.public_key().keyid[:16]}/log/home-" + (
        tlog.home_id(worker_home)
    )
    signed = verified["signingTime"]
    assert (signed["basis"], signed["log"]["log"]) == ("transparency-log", worker_log.name)
    assert signed["proven"] == signed["log"]["loggedAt"]
    explained = stella_json(primary, "explain", "app:1")
    assert explained["signingTime"]["log"]["log"] == worker_log.name
    out = tmp_path / "audit.zip"
    assert stella(primary, "export-audit-package", "app:1", "--out", str(out)).exit_code == 0
    with zipfile.ZipFile(out) as package:  # the key of the worker's log, from the shared state
        assert package.read("keys/tlog.vkey").decode().strip() == worker_log.vkey()
    checked = stella(primary, "verify-audit-package", str(out), "--key", str(primary.appliance_pub))
    assert checked.exit_code == 0, checked.output
    # offline, with nothing but the package and the appliance key: the time is proven
    report = verify_package(out.read_bytes(), PublicKey.load(primary.appliance_pub))
    proven = report.verification.signed_at
    assert proven is not None
    assert proven.entry is not None
    assert (proven.basis.value, proven.entry.origin) == ("transparency-log", worker_log.name)
    there = tmp_path / "worker-audit.zip"
    assert stella(worker_home, "export-audit-package", "app:1", "--out", str(there)).exit_code == 0
    checked = stella(
        primary, "verify-audit-package", str(there), "--key", str(primary.appliance_pub)
    )
    assert checked.exit_code == 0, checked.output

    # An auditor outside the fleet (its own embedded home) proves the signing time with the
    # trusted root the primary writes, which lists the worker's log.
    trusted = tmp_path / "trusted_root.json"
    assert stella(primary, "log", "trusted-root", "--out", str(trusted)).exit_code == 0
    assert worker_log in tlog.logs_of_trusted_root(trusted)
    with monkeypatch.context() as outside:
        outside.delenv("STELLA_DATABASE_URL")
        auditor = Home(tmp_path / "auditor")
        auditor.init()
        source = f"docker://{registry.host}/{PREFIX}/app:1"
        stella_json(auditor, "images", "load", source, *CREDENTIALS)
        pub = str(primary.appliance_pub)
        unproven = stella_json(auditor, "verify", "app:1", "--key", pub)
        assert unproven["signingTime"]["basis"] == "claimed"
        rooted = stella_json(
            auditor, "verify", "app:1", "--key", pub, "--trusted-root", str(trusted)
        )
        assert rooted["signingTime"]["log"]["log"] == worker_log.name


def test_no_referrers_and_a_digest_reference(
    tmp_path: Path, pushed: tuple[Home, GateResult, str]
) -> None:
    gated, _, source = pushed
    digest = OCILayout.open(gated.oci).resolve("app:1").digest
    home = Home(tmp_path / "plain")
    home.init()
    by_digest = source.rpartition(":")[0] + f"@{digest}"
    loaded = stella_json(home, "images", "load", by_digest, "--no-referrers", *CREDENTIALS)
    assert loaded["name"] == f"app:{fallback_tag(digest)}"
    assert loaded["referrers"] == 0
    layout = OCILayout.open(home.oci)
    assert layout.resolve(loaded["name"]).digest == digest
    assert not layout.referrers(digest)
    # the referrers later: the image's manifest and blobs are not fetched again
    later = stella_json(home, "images", "load", by_digest, *CREDENTIALS)
    assert (later["manifestsFetched"], later["blobsPresent"] > 0) == (0, True)
    assert later["referrers"] == 3  # the RVA, its evidence and the SBOM attestation


# -- failures: one line naming the registry, the repository and what to do; nothing tagged


@pytest.fixture
def docker_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DockerRegistry]:
    monkeypatch.setenv(PASSWORD_ENV, USER[1])
    with DockerRegistry(tmp_path / "registry", user=USER) as reg:
        yield reg


def _fails(home: Home, source: str, *args: str) -> str:
    done = stella(home, "images", "load", source, *args)
    assert done.exit_code == 1, done.output
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert not OCILayout.open(home.oci).tags() if (home.oci / "oci-layout").exists() else True
    return lines[0]


def test_registry_failures_are_one_line_and_tag_nothing(
    tmp_path: Path, docker_registry: DockerRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = docker_registry.host
    gated, _ = gated_home(tmp_path / "gated")
    assert stella(gated, "push", "app:1", "--to", f"{host}/site/app:1", *CREDENTIALS).exit_code == 0
    home = Home(tmp_path / "empty")
    home.init()

    missing = _fails(home, f"docker://{host}/site/app:2", *CREDENTIALS)
    assert missing.startswith(f"stella: error: registry {host}: cannot load site/app:2: ")
    assert "registry has no manifest" in missing
    assert "check the repository and tag" in missing

    absent = "sha256:" + "0" * 64
    wrong_digest = _fails(home, f"docker://{host}/site/app@{absent}", *CREDENTIALS)
    assert wrong_digest.startswith(f"stella: error: registry {host}: cannot load site/app@{absent}")

    unauthenticated = _fails(home, f"docker://{host}/site/app:1")
    assert "give --user NAME and --password-env VAR" in unauthenticated

    monkeypatch.setenv(PASSWORD_ENV, "not-the-password")
    refused = _fails(home, f"docker://{host}/site/app:1", *CREDENTIALS)
    assert refused == (
        f"stella: error: registry {host}: cannot load site/app:1: registry {host} refused the "
        f"credentials of user '{USER[0]}' for site/app (HTTP 401) (check the user name and the "
        "password in the --password-env variable)"
    )

    closed = f"127.0.0.1:{free_port()}"
    unreachable = _fails(home, f"docker://{closed}/site/app:1")
    assert unreachable.startswith(f"stella: error: registry {closed}: cannot load site/app:1: ")


@pytest.mark.parametrize(
    ("source", "line"),
    [
        (
            "docker://app:1",
            "stella: error: 'docker://app:1' names no registry host (write the registry first, "
            "e.g. docker://registry.enclave:5000/site/app:1 or …/site/app@sha256:HEX)",
        ),
        ("docker://127.0.0.1:5000/Site/App:1", "repository 'Site/App' is not valid"),
    ],
)
def test_bad_sources_are_refused_before_any_request(tmp_path: Path, source: str, line: str) -> None:
    home = Home(tmp_path / "home")
    home.init()
    done = stella(home, "images", "load", source)
    assert done.exit_code == 2  # a usage error
    assert line in done.stderr.strip()


def test_registry_options_go_with_a_registry_source(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    done = stella(home, "images", "load", f"oci:{tmp_path}", "--plain-http", "--no-referrers")
    assert done.exit_code == 2
    assert done.stderr.strip() == (
        f"stella: error: --no-referrers, --plain-http go with a docker://HOST[:PORT]/REPO source, "
        f"not 'oci:{tmp_path}' (an oci: or docker-archive: source is read from this machine)"
    )


@pytest.mark.parametrize("fault", ["corrupt blob", "altered manifest"])
def test_content_that_does_not_match_its_digest_is_refused(tmp_path: Path, fault: str) -> None:
    home = Home(tmp_path / "home")
    home.init()
    with FakeRegistry() as fake:
        image = fake_image(fake, "site/app", "1")
        layer, why = break_image(fake, "site/app", image, fault)
        line = _fails(home, f"docker://{fake.host}/site/app@{image.digest}")
    assert line.startswith(f"stella: error: registry {fake.host}: cannot load site/app@"), line
    assert why in line
    assert not OCILayout.open(home.oci).has_blob(Digest.parse(layer))


def test_loading_again_asks_for_no_manifest_and_no_blob(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    with FakeRegistry() as fake:
        image = fake_image(fake, "site/app", "1")
        source = f"docker://{fake.host}/site/app@{image.digest}"
        first = stella_json(home, "images", "load", source)
        assert (first["manifestsFetched"], first["blobs"]) == (1, 2)
        fake.requests.clear()
        again = stella_json(home, "images", "load", source)
        asked = [p for _, p, _ in fake.requests]
        assert not [p for p in asked if "/blobs/" in p or "/manifests/sha256:" in p], asked
        assert (again["manifestsFetched"], again["blobs"], again["blobsPresent"]) == (0, 0, 2)
    assert canonical.loads(OCILayout.open(home.oci).read_blob(image.digest))


def test_an_index_comes_with_every_platform_every_referrer_and_theirs(tmp_path: Path) -> None:
    """Unlike a worker's pull, a load takes verdicts too, and the signature of a verdict."""
    home = Home(tmp_path / "home")
    home.init()
    with FakeRegistry() as fake:
        digest, children = _index(fake, "site/multi", "1")
        other = _attach(fake, "site/multi", digest, "https://slsa.dev/provenance/v1")
        verdict = _attach(fake, "site/multi", digest, PREDICATE_TYPE)
        signature = _attach(fake, "site/multi", verdict.digest, "a signature of the verdict")
        loaded = stella_json(home, "images", "load", f"docker://{fake.host}/site/multi:1")
    assert (loaded["name"], loaded["digest"]) == ("multi:1", str(digest))
    assert (loaded["manifestsFetched"], loaded["referrers"]) == (3, 3)
    layout = OCILayout.open(home.oci)
    assert all(layout.has_blob(c.digest) for c in children)
    assert {r.digest for r in layout.referrers(digest)} == {other.digest, verdict.digest}
    assert [r.digest for r in layout.referrers(verdict.digest)] == [signature.digest]
    assert layout.verify().ok


def test_a_manifest_that_cannot_be_read_is_one_line_naming_the_registry(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    with FakeRegistry() as fake:
        raw = canonical.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "x", "digest": "sha256:not-hex", "size": 2},
                "layers": [],
            }
        )
        fake.add_manifest("site/bad", ["1"], raw, OCI_MANIFEST)
        line = _fails(home, f"docker://{fake.host}/site/bad:1")
    assert line.startswith(f"stella: error: registry {fake.host}: cannot load site/bad:1: "), line
    assert "field 'mediaType' is not a media type" in line, line


def test_a_token_registry_is_asked_for_pull_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load never asks for push: a read-only account of a token registry will do."""
    monkeypatch.setenv(PASSWORD_ENV, USER[1])
    gated, result = gated_home(tmp_path / "gated")
    home = Home(tmp_path / "home")
    home.init()
    with (
        TokenServer(tmp_path / "token", USER) as tokens,
        DockerRegistry(tmp_path / "registry", token=tokens) as reg,
    ):
        done = stella(gated, "push", "app:1", "--to", f"{reg.host}/tok/app:1", *CREDENTIALS)
        assert done.exit_code == 0, done.output
        tokens.issued.clear()
        loaded = stella_json(home, "images", "load", f"docker://{reg.host}/tok/app:1", *CREDENTIALS)
    assert loaded["referrers"] == 3
    assert set(tokens.issued) == {"repository:tok/app:pull"}
    assert result.referrer.digest in {
        r.digest for r in OCILayout.open(home.oci).referrers(Digest.parse(loaded["digest"]))
    }
