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

import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance import tlog
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import gate_record, verify_rva
from appliance.cli import cli
from appliance.fleet.queue import JobKind
from appliance.fleet.worker import run_job
from appliance.home import Home
from appliance.keyring import load_ring
from appliance.registry.client import PushClient
from appliance.registry.worker import (
    ANNOTATION_PREDICATE,
    Published,
    RegistryImages,
    RegistryPlace,
    configured,
)
from appliance.rescan import Outcome
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore.attach import EVIDENCE_ARTIFACT
from appliance.store import known_logs, recorded_logs
from bundles import canonical
from bundles.digest import Digest
from bundles.distribution.credentials import Credentials
from bundles.distribution.errors import RegistryError
from bundles.distribution.reference import fallback_tag
from bundles.errors import ConfigError, UsageError
from bundles.oci import Descriptor, OCILayout
from bundles.oci.mediatypes import EMPTY_JSON, OCI_INDEX, OCI_MANIFEST, SIGSTORE_BUNDLE_V03
from tests.appliance.fleet.test_worker import (
    AT,
    QUICK,
    REPO,
    finish,
    fleet_home,
    gate_records,
    jobs,
    query,
    start_worker,
    stella,
    stella_json,
    stop,
    verdicts,
    wait_for,
    workers,
)
from tests.mirror.registry_fixture import (
    DockerRegistry,
    FakeRegistry,
    artifact_manifest,
    break_image,
    clean_env,
    fake_image,
    free_port,
)

__all__ = ["workers"]  # the fixture, shared with test_worker.py

PREFIX = "site"
USER = ("worker", "a registry password")
PASSWORD_ENV = "STELLA_TEST_REGISTRY_PASSWORD"


@pytest.fixture
def primary(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Home:
    """Two stored images and an active snapshot, the stores in PostgreSQL."""
    monkeypatch.setenv("STELLA_DATABASE_URL", pg_url)
    return fleet_home(
        tmp_path / "primary", [("requests", "2.19.0", "app:1"), ("urllib3", "1.26.0", "api:3")]
    )


@pytest.fixture
def worker_home(tmp_path: Path, primary: Home) -> Home:
    """Another machine's home: the primary's key (as a token would give it), no image."""
    h = Home(tmp_path / "worker")
    h.root.mkdir(mode=0o700)
    shutil.copytree(primary.keys, h.keys)
    h.init()  # keeps the key it finds
    assert h.public_key().keyid == primary.public_key().keyid
    return h


@dataclass(frozen=True)
class Registry:
    kind: str
    host: str

    def client(self) -> PushClient:
        return PushClient(self.host, credentials=Credentials(*USER))

    @property
    def options(self) -> tuple[str, ...]:
        """The options a worker or a push reaches it with."""
        return ("--user", USER[0], "--password-env", PASSWORD_ENV)


@pytest.fixture(params=["docker-registry", "stella-serve"])
def registry(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Registry]:
    """Debian's docker-registry (no referrers API), or the appliance's own 'stella serve' of
    a third home (referrers API), each behind a user name and password."""
    monkeypatch.setenv(PASSWORD_ENV, USER[1])
    if request.param == "docker-registry":
        with DockerRegistry(tmp_path / "registry", user=USER) as reg:
            yield Registry("docker-registry", reg.host)
        return
    served = Home(tmp_path / "served")
    served.init()
    env = {k: v for k, v in clean_env().items() if k not in ("STELLA_DATABASE_URL", "STELLA_HOME")}
    env |= {PASSWORD_ENV: USER[1], "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(  # port 0: the kernel picks a free one and the first line names it
        [sys.executable, "-m", "appliance.cli", "--home", str(served.root), "--json", "serve",
         "--listen", "127.0.0.1:0", "--allow-push", "--user", USER[0],
         "--password-env", PASSWORD_ENV],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        yield Registry("stella-serve", started["listen"])
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def push_and_enqueue(primary: Home, url: str, reg: Registry, *images: str) -> dict[str, str]:
    """What the primary does: push each image to PREFIX/NAME, then enqueue its first gate.
    Returns image -> manifest digest."""
    for image in images:
        name = image.partition(":")[0]
        to = f"{reg.host}/{PREFIX}/{name}"
        done = stella(primary, url, "push", image, "--to", to, *reg.options)
        assert done.returncode == 0, done.stderr
    out = stella_json(primary, url, "queue", "add", *images)
    assert [i["outcome"] for i in out["images"]] == ["queued"] * len(images)
    return {i["image"]: i["digest"] for i in out["images"]}


def referrers(reg: Registry, repository: str, subject: str) -> list[Descriptor]:
    """What any client sees of ``subject``'s referrers: the referrers API of 'stella serve',
    the fallback tag index of docker-registry 2.8."""
    with reg.client() as client:
        listed = client.referrers(repository, Digest.parse(subject))
        if reg.kind == "stella-serve":
            assert listed is not None
            # found through the API: no fallback index was written beside it
            tag = fallback_tag(Digest.parse(subject))
            assert client.find_manifest_bytes(repository, tag) is None
            return sorted(listed, key=lambda d: str(d.digest))
        assert listed is None  # no referrers API
        found = client.find_manifest_bytes(repository, fallback_tag(Digest.parse(subject)))
    assert found is not None, f"no fallback referrers index for {subject}"
    doc = canonical.loads(found[0])
    return sorted((Descriptor.from_dict(d) for d in doc["manifests"]), key=lambda d: str(d.digest))


def read_rva(reg: Registry, repository: str, referrer: Descriptor) -> bytes:
    """The Sigstore bundle an RVA referrer manifest carries, read from the registry."""
    with reg.client() as client:
        manifest = client.get_manifest(repository, str(referrer.digest))
        doc = json.loads(manifest.raw)
        (layer,) = doc["layers"]
        assert doc["subject"]["digest"]
        assert layer["mediaType"] == SIGSTORE_BUNDLE_V03
        return client.read_blob(repository, Descriptor.from_dict(layer), limit=1 << 20)


class RegistryBlobs:
    """Evidence as any client of the registry finds it: the layers of the image's evidence
    referrer, each read by digest and checked by the client against its descriptor."""

    def __init__(self, reg: Registry, repository: str, referrers: list[Descriptor]) -> None:
        self.reg, self.repository = reg, repository
        (evidence,) = [d for d in referrers if d.artifact_type == EVIDENCE_ARTIFACT]
        with reg.client() as client:
            manifest = client.get_manifest(repository, str(evidence.digest))
        layers = json.loads(manifest.raw)["layers"]
        self.layers = {Digest.parse(d["digest"]): Descriptor.from_dict(d) for d in layers}

    @property
    def where(self) -> str:
        return f"registry {self.reg.host}/{self.repository}"

    def read(self, role: str, digest: Digest) -> bytes | None:
        if digest not in self.layers:
            return None
        with self.reg.client() as client:
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
    registry: Registry,
    pg_url: str,
    workers: list[subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    digests = push_and_enqueue(primary, pg_url, registry, "app:1", "api:3")
    assert (
        not (worker_home.oci / "index.json").is_file() or not OCILayout.open(worker_home.oci).tags()
    )

    worker = start_worker(  # two processes: each is given the registry and its credentials
        worker_home,
        pg_url,
        "--concurrency",
        "2",
        "--burst",
        "--registry",
        f"{registry.host}/{PREFIX}",
        *registry.options,
        *QUICK,
    )
    workers.append(worker)
    assert finish(worker) == 0
    runs = query(pg_url, "SELECT image, outcome, error FROM stella_job_runs ORDER BY image")
    assert runs == [("api:3", "gated", None), ("app:1", "gated", None)]
    # the worker's log, under its home's own origin, recorded once in the shared state by the
    # first of its two processes to append
    worker_log = tlog.verifier(worker_home)
    assert worker_log.name.endswith(f"/log/home-{tlog.home_id(worker_home)}")
    assert [r.log for r in recorded_logs(primary)].count(worker_log) == 1
    assert worker_log in known_logs(primary)

    for image, digest in digests.items():
        # the worker's home now caches the image by the job's name, at the job's digest
        assert str(OCILayout.open(worker_home.oci).tags()[image].digest) == digest
        # the verdict is in the shared state: the primary's home reads it
        (row,) = verdicts(primary, digest)
        assert gate_records(primary, digest) == 1
        # and its attestation is a referrer of the image in the registry
        repository = f"{PREFIX}/{image.partition(':')[0]}"
        listed = referrers(registry, repository, digest)
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
        data = read_rva(registry, repository, rva[0])
        evidence = RegistryBlobs(registry, repository, listed)
        checked = verify_rva(
            data,
            TrustPolicy.of_ring(load_ring(primary)),
            subject=Digest.parse(digest),
            blobs=evidence,
            logs=known_logs(primary),
        )
        assert checked.is_verdict
        # signed when the worker's log says: the primary knows that log from the state
        assert checked.signed_at is not None
        assert checked.signed_at.entry is not None
        assert checked.signed_at.entry.origin == worker_log.name
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
    registry: Registry,
    pg_url: str,
    workers: list[subprocess.Popen[str]],
) -> None:
    digests = push_and_enqueue(primary, pg_url, registry, "app:1")
    digest = digests["app:1"]
    worker = start_worker(
        worker_home,
        pg_url,
        "--burst",
        "--registry",
        f"{registry.host}/{PREFIX}",
        *registry.options,
        *QUICK,
    )
    workers.append(worker)
    assert finish(worker) == 0
    before = referrers(registry, f"{PREFIX}/app", digest)

    published: list[Published] = []

    class Recording(RegistryImages):
        def publish(
            self, home: Home, image: str, digest: str, *, verdict: str | None = None
        ) -> Published:
            report = super().publish(home, image, digest, verdict=verdict)
            published.append(report)
            return report

    images = Recording(
        RegistryPlace(registry.host, PREFIX),
        credentials=Credentials(*USER),
        skip_predicates=(PREDICATE_TYPE,),
    )
    at = job_at(pg_url, digest)
    for home in (worker_home, fresh_worker(worker_home, primary)):
        outcome = run_job(home, JobKind.SCAN, "app:1", digest, at, images=images)
        assert outcome.outcome is Outcome.SKIPPED
    # pulled again by digest (the second home from nothing), found gated: no new verdict,
    # no new record, and the registry already listed every referrer of the first home
    assert len(verdicts(primary, digest)) == 1
    assert gate_records(primary, digest) == 1
    assert [p.pushed for p in published] == [(), ()]
    assert published[0].present >= 3  # the RVA, its evidence, the SBOM attestation
    assert published[1].present >= 1  # the SBOM attestation it pulled with the image
    assert referrers(registry, f"{PREFIX}/app", digest) == before


def fresh_worker(like: Home, primary: Home) -> Home:
    h = Home(like.root.parent / "worker2")
    h.root.mkdir(mode=0o700)
    shutil.copytree(primary.keys, h.keys)
    h.init()
    return h


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("refusal", ["unreachable", "wrong password"])
def test_a_registry_that_refuses_fails_the_job_in_one_line_after_its_retries(
    primary: Home,
    worker_home: Home,
    pg_url: str,
    workers: list[subprocess.Popen[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refusal: str,
) -> None:
    (queued,) = stella_json(primary, pg_url, "queue", "add", "app:1")["images"]
    with contextlib.ExitStack() as stack:
        if refusal == "unreachable":
            host = f"127.0.0.1:{free_port()}"
        else:
            host = stack.enter_context(DockerRegistry(tmp_path / "registry", user=USER)).host
        monkeypatch.setenv(PASSWORD_ENV, "not the password")
        worker = start_worker(
            worker_home,
            pg_url,
            "--registry",
            f"{host}/{PREFIX}",
            "--user",
            USER[0],
            "--password-env",
            PASSWORD_ENV,
            "--attempts",
            "2",
            *QUICK,
        )
        workers.append(worker)
        wait_for("the job to fail", lambda: jobs(pg_url)[0][3] == "failed")
        code, err = stop(worker)
    assert code == 0, err
    runs = query(pg_url, "SELECT attempt, outcome, error FROM stella_job_runs ORDER BY attempt")
    assert [r[:2] for r in runs] == [(0, "failed"), (1, "failed")]
    where = f"registry {host}: cannot pull {PREFIX}/app@{queued['digest']} for image app:1: "
    for _, _, error in runs:
        assert error.startswith(where), error
        assert "\n" not in error
    assert verdicts(primary, queued["digest"]) == []
    assert not OCILayout.open(worker_home.oci).tags()  # nothing half-pulled is named


def test_registry_place_and_repository() -> None:
    place = RegistryPlace.parse("registry.enclave:5000/site/team")
    assert (place.registry, place.prefix, str(place)) == (
        "registry.enclave:5000",
        "site/team",
        "registry.enclave:5000/site/team",
    )
    assert place.repository("app:1") == "site/team/app"
    assert place.repository("lib/web@sha256:" + "a" * 64) == "site/team/lib/web"
    assert RegistryPlace.parse("127.0.0.1:5000").repository("app:1") == "app"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "--registry '' is not HOST[:PORT][/PREFIX]"),
        ("host:port:x/y", "--registry 'host:port:x/y' is not HOST[:PORT][/PREFIX]"),
        ("host:5000/Site", "--registry 'host:5000/Site': prefix 'Site' is not a repository path"),
    ],
)
def test_a_bad_registry_is_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        RegistryPlace.parse(text)
    assert caught.value.message == message


def test_the_home_setting_names_the_registry_when_no_option_does(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    home.init()
    assert configured(home, None) is None
    home.write_settings({"registry": "127.0.0.1:5000/site"})
    assert configured(home, None) == RegistryPlace("127.0.0.1:5000", "site")
    assert configured(home, "other:5000") == RegistryPlace("other:5000", "")
    home.write_settings({"registry": 5000})
    with pytest.raises(ConfigError, match="registry must be HOST"):
        configured(home, None)
    home.write_settings({"registry": "Bad Host"})
    with pytest.raises(UsageError, match="config.json: registry 'Bad Host' is not HOST"):
        configured(home, None)


# ------------------------------------------------------------------------------ the pull


def _index(fake: FakeRegistry, repo: str, tag: str) -> tuple[Digest, list[Descriptor]]:
    """A two-platform image index in ``fake``; its digest and its platform manifests."""
    children = [fake_image(fake, repo, f"{tag}-{n}", size=n) for n in (100_000, 120_000)]
    raw = canonical.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {**c.to_dict(), "platform": {"architecture": arch, "os": "linux"}}
                for c, arch in zip(children, ("amd64", "arm64"), strict=True)
            ],
        }
    )
    return fake.add_manifest(repo, [tag], raw, OCI_INDEX), children


def _attach(fake: FakeRegistry, repo: str, subject: Digest, predicate: str) -> Descriptor:
    """A Sigstore-bundle referrer of ``subject`` in ``fake``, listed in its fallback index."""
    raw = canonical.dumps(  # a manifest's own shape; its payload need not verify here
        json.loads(
            artifact_manifest(
                Descriptor(OCI_INDEX, subject, 1),
                predicate.encode(),
                SIGSTORE_BUNDLE_V03,
                artifact_type=SIGSTORE_BUNDLE_V03,
            )[0]
        )
        | {"annotations": {ANNOTATION_PREDICATE: predicate}}
    )
    for blob in (EMPTY_JSON, predicate.encode()):
        fake.add_blob(blob)
    digest = fake.add_manifest(repo, [], raw, OCI_MANIFEST)
    descriptor = Descriptor(
        OCI_MANIFEST,
        digest,
        len(raw),
        artifact_type=SIGSTORE_BUNDLE_V03,
        annotations={ANNOTATION_PREDICATE: predicate},
    )
    tag = fallback_tag(subject)
    listed = json.loads(fake.manifests.get(f"{repo}/{tag}", (b'{"manifests": []}', ""))[0])
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX}
    index["manifests"] = [*listed["manifests"], descriptor.to_dict()]
    fake.add_manifest(repo, [tag], canonical.dumps(index), OCI_INDEX)
    return descriptor


def test_a_pull_takes_every_platform_and_the_attestations_of_others_but_not_verdicts(
    tmp_path: Path,
) -> None:
    home = Home(tmp_path / "worker")
    home.init()
    with FakeRegistry() as fake:
        digest, children = _index(fake, "site/multi", "1")
        # the fake's manifest ids, as the subject the referrers name: the index itself
        other = _attach(fake, "site/multi", digest, "https://slsa.dev/provenance/v1")
        verdict = _attach(fake, "site/multi", digest, PREDICATE_TYPE)
        images = RegistryImages(RegistryPlace(fake.host, "site"), skip_predicates=[PREDICATE_TYPE])
        first = images.fetch(home, "multi:1", str(digest))
        layout = OCILayout.open(home.oci)
        assert layout.tags()["multi:1"].digest == digest
        assert all(layout.has_blob(c.digest) for c in children)
        assert (first.manifests, first.blobs_fetched, first.referrers) == (3, 5, 1)
        # the referrer pulled is reachable in the store, the verdict was left in the registry
        assert layout.has_blob(other.digest)
        assert not layout.has_blob(verdict.digest)
        # again: every blob is stored, so only manifests and listings are asked for
        fake.requests.clear()
        again = images.fetch(home, "multi:1", str(digest))
        assert (again.blobs_fetched, again.blobs_present) == (0, 4)
        assert not [p for m, p, _ in fake.requests if "/blobs/" in p]


@pytest.mark.parametrize("fault", ["corrupt blob", "altered manifest", "missing image"])
def test_a_pull_that_cannot_be_checked_names_nothing_and_says_why_in_one_line(
    tmp_path: Path, fault: str
) -> None:
    home = Home(tmp_path / "worker")
    home.init()
    with FakeRegistry() as fake:
        image = fake_image(fake, "site/app", "1")
        layer, why = break_image(fake, "site/app", image, fault)
        images = RegistryImages(RegistryPlace(fake.host, "site"))
        with pytest.raises(RegistryError) as caught:
            images.fetch(home, "app:1", str(image.digest))
    line = caught.value.diagnostics()
    assert line.startswith(
        f"registry {fake.host}: cannot pull site/app@{image.digest} for image app:1: "
    ), line
    assert why in line
    assert "\n" not in line
    assert not OCILayout.open(home.oci).tags()
    assert not OCILayout.open(home.oci).has_blob(Digest.parse(layer))


@pytest.mark.parametrize(
    ("args", "env", "line"),
    [
        (
            ["--registry", "Bad Host/x"],
            None,
            "stella: error: --registry 'Bad Host/x' is not HOST[:PORT][/PREFIX] "
            "(e.g. registry.enclave:5000/stella)",
        ),
        (
            [],
            "h:5000/Site",
            "stella: error: STELLA_REGISTRY 'h:5000/Site': prefix 'Site' is not a repository "
            "path (lower-case letters, digits and . _ - separated by /)",
        ),
        (
            ["--registry", "h:5000/site", "--user", "worker"],
            None,
            "stella: error: --user and --password-env go together",
        ),
    ],
)
def test_a_bad_registry_option_is_a_usage_error_before_the_queue_is_reached(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: str | None,
    line: str,
) -> None:
    home = Home(tmp_path / "home")
    home.init()
    monkeypatch.delenv("STELLA_DATABASE_URL", raising=False)
    if env is not None:
        monkeypatch.setenv("STELLA_REGISTRY", env)
    result = CliRunner().invoke(cli, ["--home", str(home.root), "worker", *args])
    assert result.exit_code == 2
    (said,) = result.stderr.splitlines()
    assert said.startswith(line), said


def test_a_verdict_recorded_by_a_worker_that_stopped_before_pushing_is_pushed_by_its_retry(
    primary: Home, worker_home: Home, pg_url: str, tmp_path: Path
) -> None:
    """The run that records a verdict stops before it pushes (as a kill there would): a
    retry on another machine cannot push what it never had and says so in one line; a retry
    on the machine that has it pushes it."""
    with DockerRegistry(tmp_path / "registry") as reg:
        pushed = stella(primary, pg_url, "push", "app:1", "--to", f"{reg.host}/{PREFIX}/app")
        assert pushed.returncode == 0, pushed.stderr
        digest = str(OCILayout.open(primary.oci).tags()["app:1"].digest)
        place = RegistryPlace(reg.host, PREFIX)

        class Stopped(RegistryImages):
            def publish(
                self, home: Home, image: str, digest: str, *, verdict: str | None = None
            ) -> Published:
                raise RuntimeError("stopped before pushing")

        with pytest.raises(RuntimeError):
            run_job(worker_home, JobKind.SCAN, "app:1", digest, AT, images=Stopped(place))
        (row,) = verdicts(primary, digest)
        images = RegistryImages(place, skip_predicates=(PREDICATE_TYPE,))
        other = fresh_worker(worker_home, primary)
        with pytest.raises(RegistryError) as caught:
            run_job(other, JobKind.SCAN, "app:1", digest, AT, images=images)
        assert caught.value.diagnostics().startswith(
            f"registry {reg.host}: cannot push the referrers of {PREFIX}/app@{digest} for image "
            f"app:1: the verdict's attestation {row.referrer} is neither in the registry nor in "
            "this worker's store"
        )
        again = run_job(worker_home, JobKind.SCAN, "app:1", digest, AT, images=images)
        assert again.outcome is Outcome.SKIPPED
        listed = {
            str(d.digest)
            for d in referrers(Registry("docker-registry", reg.host), f"{PREFIX}/app", digest)
        }
        assert row.referrer in listed
        assert run_job(other, JobKind.SCAN, "app:1", digest, AT, images=images).outcome is (
            Outcome.SKIPPED
        )
    assert len(verdicts(primary, digest)) == 1
