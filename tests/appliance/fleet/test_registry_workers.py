"""``stella worker --registry``: a worker whose home holds no image, only the appliance key,
against Debian's real ``docker-registry`` (distribution 2.8: no referrers API, so referrers
go into the ``sha256-<hex>`` fallback index) and a real PostgreSQL holding the queue and the
stores (tests/postgres.py).

Two homes on this machine stand for two machines: the primary loads the images, pushes them
to the registry (``stella push``) and enqueues; the worker's home is made from nothing but a
copy of the primary's ``keys/`` and ``stella init``. The worker pulls each image by digest,
gates it, and pushes the verdict's referrers back; the tests read them from the registry and
verify them in the primary's home, and find the verdict in the shared state store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import gate_record, verify_rva
from appliance.fleet.queue import JobKind
from appliance.fleet.worker import run_job
from appliance.home import Home
from appliance.keyring import load_ring
from appliance.registry.client import PushClient
from appliance.registry.worker import Published, RegistryImages, RegistryPlace
from appliance.rescan import Outcome
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore.attach import EVIDENCE_ARTIFACT
from bundles import canonical
from bundles.digest import Digest
from bundles.distribution.reference import fallback_tag
from bundles.oci import Descriptor, OCILayout
from bundles.oci.mediatypes import SIGSTORE_BUNDLE_V03
from tests.appliance.fleet.test_worker import (
    QUICK,
    finish,
    gate_records,
    query,
    start_worker,
    stella,
    stella_json,
    verdicts,
    workers,
)
from tests.appliance.homes import KEV, SITE, install_knowledge
from tests.appliance.homes import OSV_UNRATED as OSV
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.mirror.registry_fixture import DockerRegistry

__all__ = ["workers"]  # the fixture, shared with test_worker.py

PREFIX = "site"


@pytest.fixture
def primary(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Home:
    """Two stored images and an active snapshot, the stores in PostgreSQL."""
    monkeypatch.setenv("STELLA_DATABASE_URL", pg_url)
    h = Home(tmp_path / "primary")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    build_image(h.oci, [dist_info("urllib3", "1.26.0", SITE)], tag="api:3")
    install_knowledge(
        h,
        osv=(OSV,),
        kev=(KEV,),
        sequence=1,
        created="2026-11-11T00:00:00Z",
        bundle=Digest.of_bytes(b"bundle 1"),
    )
    return h


@pytest.fixture
def worker_home(tmp_path: Path, primary: Home) -> Home:
    """Another machine's home: the primary's key (as a token would give it), no image."""
    h = Home(tmp_path / "worker")
    h.root.mkdir(mode=0o700)
    shutil.copytree(primary.keys, h.keys)
    h.init()  # keeps the key it finds
    assert h.public_key().keyid == primary.public_key().keyid
    return h


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[DockerRegistry]:
    with DockerRegistry(tmp_path / "registry") as reg:
        yield reg


def push_and_enqueue(primary: Home, url: str, host: str, *images: str) -> dict[str, str]:
    """What the primary does: push each image to PREFIX/NAME, then enqueue its first gate.
    Returns image -> manifest digest."""
    for image in images:
        name = image.partition(":")[0]
        done = stella(primary, url, "push", image, "--to", f"{host}/{PREFIX}/{name}")
        assert done.returncode == 0, done.stderr
    out = stella_json(primary, url, "queue", "add", *images)
    assert [i["outcome"] for i in out["images"]] == ["queued"] * len(images)
    return {i["image"]: i["digest"] for i in out["images"]}


def fallback_referrers(host: str, repository: str, subject: str) -> list[Descriptor]:
    """What any client sees of ``subject``'s referrers on a registry without the API."""
    with PushClient(host) as client:
        assert client.referrers(repository, Digest.parse(subject)) is None  # no API: 2.8
        found = client.find_manifest_bytes(repository, fallback_tag(Digest.parse(subject)))
    assert found is not None, f"no fallback referrers index for {subject}"
    doc = canonical.loads(found[0])
    return [Descriptor.from_dict(d) for d in doc["manifests"]]


def read_rva(host: str, repository: str, referrer: Descriptor) -> bytes:
    """The Sigstore bundle an RVA referrer manifest carries, read from the registry."""
    with PushClient(host) as client:
        manifest = client.get_manifest(repository, str(referrer.digest))
        doc = json.loads(manifest.raw)
        (layer,) = doc["layers"]
        assert doc["subject"]["digest"]
        assert layer["mediaType"] == SIGSTORE_BUNDLE_V03
        return client.read_blob(repository, Descriptor.from_dict(layer), limit=1 << 20)


class RegistryBlobs:
    """Evidence as any client of the registry finds it: the layers of the image's evidence
    referrer, each read by digest and checked by the client against its descriptor."""

    def __init__(self, host: str, repository: str, referrers: list[Descriptor]) -> None:
        self.host, self.repository = host, repository
        (evidence,) = [d for d in referrers if d.artifact_type == EVIDENCE_ARTIFACT]
        with PushClient(host) as client:
            manifest = client.get_manifest(repository, str(evidence.digest))
        layers = json.loads(manifest.raw)["layers"]
        self.layers = {Digest.parse(d["digest"]): Descriptor.from_dict(d) for d in layers}

    @property
    def where(self) -> str:
        return f"registry {self.host}/{self.repository}"

    def read(self, role: str, digest: Digest) -> bytes | None:
        if digest not in self.layers:
            return None
        with PushClient(self.host) as client:
            return client.read_blob(self.repository, self.layers[digest], limit=64 << 20)


def job_at(url: str, digest: str) -> str:
    ((at,),) = query(
        url, "SELECT args->>'at' FROM procrastinate_jobs WHERE args->>'digest' = %s", (digest,)
    )
    return str(at)


# ------------------------------------------------------------------------------ the path


def test_a_worker_without_images_pulls_by_digest_gates_and_pushes_the_referrers(
    primary: Home,
    worker_home: Home,
    registry: DockerRegistry,
    pg_url: str,
    workers: list[subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    digests = push_and_enqueue(primary, pg_url, registry.host, "app:1", "api:3")
    assert (
        not (worker_home.oci / "index.json").is_file() or not OCILayout.open(worker_home.oci).tags()
    )

    worker = start_worker(
        worker_home, pg_url, "--burst", "--registry", f"{registry.host}/{PREFIX}", *QUICK
    )
    workers.append(worker)
    assert finish(worker) == 0
    runs = query(pg_url, "SELECT image, outcome, error FROM stella_job_runs ORDER BY image")
    assert runs == [("api:3", "gated", None), ("app:1", "gated", None)]

    for image, digest in digests.items():
        # the worker's home now caches the image by the job's name, at the job's digest
        assert str(OCILayout.open(worker_home.oci).tags()[image].digest) == digest
        # the verdict is in the shared state: the primary's home reads it
        (row,) = verdicts(primary, digest)
        assert gate_records(primary, digest) == 1
        # and its attestation is a referrer of the image in the registry
        repository = f"{PREFIX}/{image.partition(':')[0]}"
        listed = fallback_referrers(registry.host, repository, digest)
        rva = [
            d
            for d in listed
            if d.annotations.get("dev.sigstore.bundle.predicateType") == PREDICATE_TYPE
        ]
        assert [str(d.digest) for d in rva] == [row.referrer]
        assert {d.artifact_type for d in listed} >= {SIGSTORE_BUNDLE_V03}
        # which verifies from the registry alone: the signature under the primary's key
        # ring, every piece of evidence read from the registry's evidence referrer, and
        # the gate's record in the shared audit log (whose chain verifies)
        data = read_rva(registry.host, repository, rva[0])
        evidence = RegistryBlobs(registry.host, repository, listed)
        checked = verify_rva(
            data,
            TrustPolicy.of_ring(load_ring(primary)),
            subject=Digest.parse(digest),
            blobs=evidence,
        )
        assert checked.is_verdict
        assert all(e.checked for e in checked.evidence)
        assert {e.role for e in checked.evidence} >= {"sbom", "vulnData"}
        assert gate_record(primary, checked.statement_digest).subject == digest
        # and 'stella verify' in the worker's home, which holds what it pulled and attached
        bundle = tmp_path / f"{image.replace(':', '_')}.rva.json"
        bundle.write_bytes(data)
        out = stella_json(worker_home, pg_url, "verify", str(bundle))
        assert out["verdict"] == row.verdict, out


def test_a_job_run_again_pushes_nothing_and_gates_once(
    primary: Home,
    worker_home: Home,
    registry: DockerRegistry,
    pg_url: str,
    workers: list[subprocess.Popen[str]],
) -> None:
    digests = push_and_enqueue(primary, pg_url, registry.host, "app:1")
    digest = digests["app:1"]
    worker = start_worker(
        worker_home, pg_url, "--burst", "--registry", f"{registry.host}/{PREFIX}", *QUICK
    )
    workers.append(worker)
    assert finish(worker) == 0
    before = fallback_referrers(registry.host, f"{PREFIX}/app", digest)

    published: list[Published] = []

    class Recording(RegistryImages):
        def publish(
            self, home: Home, image: str, digest: str, *, verdict: str | None = None
        ) -> Published:
            report = super().publish(home, image, digest, verdict=verdict)
            published.append(report)
            return report

    images = Recording(RegistryPlace(registry.host, PREFIX), skip_predicates=(PREDICATE_TYPE,))
    at = job_at(pg_url, digest)
    for home in (worker_home, fresh_worker(worker_home, primary)):
        outcome = run_job(home, JobKind.SCAN, "app:1", digest, at, images=images)
        assert outcome.outcome is Outcome.SKIPPED
    # pulled again by digest (the second home from nothing), found gated: no new verdict,
    # no new record, and the registry already listed every referrer of the first home
    assert len(verdicts(primary, digest)) == 1
    assert gate_records(primary, digest) == 1
    assert published[0].pushed == ()
    assert published[0].present >= 3
    assert fallback_referrers(registry.host, f"{PREFIX}/app", digest) == before


def fresh_worker(like: Home, primary: Home) -> Home:
    h = Home(like.root.parent / "worker2")
    h.root.mkdir(mode=0o700)
    shutil.copytree(primary.keys, h.keys)
    h.init()
    return h
