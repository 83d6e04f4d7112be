"""``stella serve`` against real clients: skopeo (inspect, copy from and to it), oras-py
(pull), the push client of ``stella push`` (referrers through the referrers API), and plain
HTTP requests for the protocol's corners (auth, Range, HEAD, chunked uploads, refusals)."""

from __future__ import annotations

import base64
import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.registry.auth import Authenticator
from appliance.registry.errors import ServeConfigError
from appliance.registry.push import ReferrersMethod, push
from appliance.registry.server import ListenAddress, RegistryServer, ServeOptions
from appliance.rva.gate import GateResult
from appliance.store import open_state
from appliance.store.audit import AuditLog
from bundles.digest import Digest
from bundles.distribution.credentials import Credentials
from bundles.oci import OCILayout
from bundles.oci.mediatypes import OCI_MANIFEST, SIGSTORE_BUNDLE_V03
from tests.appliance.registry.homes import gated_home, make_home
from tests.mirror.registry_fixture import (
    SPDX_JSON,
    artifact_manifest,
    clean_env,
    free_port,
    loopback_certificate,
)

USER = ("builder", "correct horse")
WRONG = ("builder", "wrong horse")


def _server(home: Home, *, allow_push: bool = True, **kw: Any) -> RegistryServer:
    auth = Authenticator.single(Credentials(*USER)) if allow_push else None
    options = ServeOptions(ListenAddress("127.0.0.1", 0), allow_push, auth, **kw)
    return RegistryServer(home, options)


@pytest.fixture
def gated(tmp_path: Path) -> tuple[Home, GateResult]:
    return gated_home(tmp_path / "source")


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Home, RegistryServer]]:
    """An empty appliance home served read-write, for pushing into."""
    home = make_home(tmp_path / "target", tag="base:1")
    with _server(home) as server:
        yield home, server


def _session(auth: tuple[str, str] | None = USER) -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    s.auth = auth
    return s


def _skopeo(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["skopeo", "--insecure-policy", *argv],
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=120,
    )


# ------------------------------------------------------------------------------ full loop


def test_push_to_serve_uses_referrers_api_and_tools_pull(
    gated: tuple[Home, GateResult], served: tuple[Home, RegistryServer], tmp_path: Path
) -> None:
    source, result = gated
    target, server = served
    image = OCILayout.open(source.oci).resolve("app:1")

    pushed = push(source, "app:1", f"{server.address}/team/app:1", credentials=Credentials(*USER))
    assert {m for _, m in pushed.methods} == {ReferrersMethod.API}
    assert result.referrer.digest in pushed.referrers
    # the target store holds the image under REPO:TAG and indexes its referrers
    store = OCILayout.open(target.oci)
    assert store.resolve("team/app:1").digest == image.digest
    base = f"http://{server.address}"
    s = _session()
    every = s.get(f"{base}/v2/team/app/referrers/{image.digest}")
    assert every.status_code == 200
    assert "OCI-Filters-Applied" not in every.headers
    assert every.headers["Content-Type"] == "application/vnd.oci.image.index.v1+json"
    assert len(every.json()["manifests"]) == 3  # RVA, SBOM attestation, evidence
    rvas = s.get(
        f"{base}/v2/team/app/referrers/{image.digest}", params={"artifactType": SIGSTORE_BUNDLE_V03}
    )
    assert rvas.headers["OCI-Filters-Applied"] == "artifactType"
    found = rvas.json()["manifests"]
    assert {d["artifactType"] for d in found} == {SIGSTORE_BUNDLE_V03}
    predicate_types = {d["annotations"]["dev.sigstore.bundle.predicateType"] for d in found}
    assert "https://stella-ops.org/attestations/risk-verdict/v1" in predicate_types
    assert str(result.referrer.digest) in {d["digest"] for d in found}
    none = s.get(
        f"{base}/v2/team/app/referrers/{image.digest}", params={"artifactType": "text/plain"}
    )
    assert none.json()["manifests"] == []
    # receiving was recorded in the target's audit log
    with open_state(target) as db:
        sources = [r.inputs.get("source") for r in AuditLog(db).records()]
    assert "push:team/app:1" in sources

    creds = f"--creds={USER[0]}:{USER[1]}"
    inspected = _skopeo("inspect", "--tls-verify=false", creds, f"docker://{base[7:]}/team/app:1")
    assert inspected.returncode == 0, inspected.stderr
    assert json.loads(inspected.stdout)["Digest"] == str(image.digest)

    out = tmp_path / "copied"
    copied = _skopeo(
        "copy", "--quiet", "--src-tls-verify=false", f"--src-{creds[2:]}",
        f"docker://{base[7:]}/team/app:1", f"oci:{out}:app",
    )  # fmt: skip
    assert copied.returncode == 0, copied.stderr
    assert OCILayout.open(out).resolve("app").digest == image.digest
    assert OCILayout.open(out).verify().ok

    import oras.client

    client = oras.client.OrasClient(hostname=server.address, insecure=True, auth_backend="basic")
    client.auth.set_basic_auth(*USER)
    files = client.pull(
        target=f"{server.address}/team/app@{result.referrer.digest}", outdir=str(tmp_path / "oras")
    )
    (bundle_file,) = files
    assert Digest.of_bytes(Path(bundle_file).read_bytes()) == Digest.parse(
        json.loads(store.read_blob(result.referrer.digest))["layers"][0]["digest"]
    )


def test_skopeo_pushes_into_serve_and_it_is_tagged(
    gated: tuple[Home, GateResult], served: tuple[Home, RegistryServer]
) -> None:
    source, _ = gated
    target, server = served
    image = OCILayout.open(source.oci).resolve("app:1")
    done = _skopeo(
        "copy", "--quiet", "--dest-tls-verify=false", f"--dest-creds={USER[0]}:{USER[1]}",
        f"oci:{source.oci}:app:1", f"docker://{server.address}/ci/app:7",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    store = OCILayout.open(target.oci)
    assert store.resolve("ci/app:7").digest == image.digest
    assert store.verify().ok
    tags = _session().get(f"http://{server.address}/v2/ci/app/tags/list").json()
    assert tags == {"name": "ci/app", "tags": ["7"]}
    catalog = _session().get(f"http://{server.address}/v2/_catalog").json()
    assert catalog == {"repositories": ["base", "ci/app"]}


def test_skopeo_with_wrong_password_is_refused(served: tuple[Home, RegistryServer]) -> None:
    _, server = served
    done = _skopeo(
        "inspect", "--tls-verify=false", f"--creds={WRONG[0]}:{WRONG[1]}",
        f"docker://{server.address}/base:1",
    )  # fmt: skip
    assert done.returncode != 0
    assert "401" in done.stderr or "unauthorized" in done.stderr.lower()


# ------------------------------------------------------------------------------ protocol corners


def test_auth_challenge_and_refusal(served: tuple[Home, RegistryServer]) -> None:
    _, server = served
    base = f"http://{server.address}"
    anonymous = _session(None).get(f"{base}/v2/")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith('Basic realm="stella"')
    assert anonymous.json()["errors"][0]["code"] == "UNAUTHORIZED"
    assert _session(WRONG).get(f"{base}/v2/").status_code == 401
    assert _session().get(f"{base}/v2/").status_code == 200


def test_blob_range_head_and_digest_header(served: tuple[Home, RegistryServer]) -> None:
    home, server = served
    store = OCILayout.open(home.oci)
    manifest = json.loads(store.read_blob(store.resolve("base:1").digest))
    layer = manifest["layers"][0]
    data = store.read_blob(Digest.parse(layer["digest"]))
    url = f"http://{server.address}/v2/base/blobs/{layer['digest']}"
    s = _session()
    head = s.head(url)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == str(len(data))
    assert head.headers["Docker-Content-Digest"] == layer["digest"]
    assert s.get(url).content == data
    part = s.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    tail = s.get(url, headers={"Range": "bytes=5-"})
    assert tail.content == data[5:]
    bad = s.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert bad.status_code == 416
    missing = s.get(f"http://{server.address}/v2/base/blobs/sha256:{'0' * 64}")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    by_digest = s.head(f"http://{server.address}/v2/base/manifests/{layer['digest']}")
    assert by_digest.status_code == 404  # a layer is not a manifest


def test_chunked_upload_patch_put_and_verification(served: tuple[Home, RegistryServer]) -> None:
    home, server = served
    base = f"http://{server.address}"
    s = _session()
    data = os.urandom(300_000)
    digest = Digest.of_bytes(data)
    start = s.post(f"{base}/v2/up/load/blobs/uploads/")
    assert start.status_code == 202
    location = base + start.headers["Location"]
    first = s.patch(
        location,
        data=data[:100_000],
        headers={"Content-Range": "0-99999", "Content-Type": "application/octet-stream"},
    )
    assert first.status_code == 202
    assert first.headers["Range"] == "0-99999"
    out_of_order = s.patch(location, data=b"x", headers={"Content-Range": "5-5"})
    assert out_of_order.status_code == 416
    # Transfer-Encoding: chunked (a generator body), as Go clients stream
    second = s.patch(location, data=(data[i : i + 50_000] for i in range(100_000, 300_000, 50_000)))
    assert second.status_code == 202
    assert second.headers["Range"] == "0-299999"
    done = s.put(f"{location}?digest={digest}")
    assert done.status_code == 201
    assert done.headers["Docker-Content-Digest"] == str(digest)
    assert OCILayout.open(home.oci).read_blob(digest) == data

    # monolithic POST with a wrong digest: refused, nothing stored
    other, claimed = os.urandom(1000), Digest.of_bytes(b"something else")
    wrong = s.post(f"{base}/v2/up/load/blobs/uploads/?digest={claimed}", data=other)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"
    store = OCILayout.open(home.oci)
    assert not store.has_blob(Digest.of_bytes(other))
    assert not store.has_blob(claimed)
    # monolithic POST of a blob the store already has: accepted, the connection stays usable
    again = s.post(f"{base}/v2/up/load/blobs/uploads/?digest={digest}", data=data)
    assert again.status_code == 201
    assert s.get(f"{base}/v2/").status_code == 200
    # mount of a blob the store has
    mounted = s.post(f"{base}/v2/else/where/blobs/uploads/?mount={digest}&from=up/load")
    assert mounted.status_code == 201


def test_manifest_put_refusals(served: tuple[Home, RegistryServer]) -> None:
    _, server = served
    base = f"http://{server.address}"
    s = _session()
    missing = Digest.of_bytes(b"not uploaded")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": str(missing),
            "size": 12,
        },
        "layers": [],
    }
    raw = json.dumps(doc).encode()
    put = s.put(f"{base}/v2/x/manifests/1", data=raw, headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 400
    assert put.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    wrong_digest = s.put(
        f"{base}/v2/x/manifests/sha256:{'1' * 64}", data=raw, headers={"Content-Type": OCI_MANIFEST}
    )
    assert wrong_digest.json()["errors"][0]["code"] == "DIGEST_INVALID"
    garbage = s.put(f"{base}/v2/x/manifests/1", data=b"{", headers={"Content-Type": OCI_MANIFEST})
    assert garbage.json()["errors"][0]["code"] == "MANIFEST_INVALID"


def test_manifest_put_with_a_tag_the_store_refuses_stores_nothing(
    served: tuple[Home, RegistryServer],
) -> None:
    home, server = served
    base = f"http://{server.address}"
    s = _session()
    store = OCILayout.open(home.oci)
    image = store.resolve("base:1")
    subject = image.bare()
    raw, blobs = artifact_manifest(subject, b'{"spdxVersion":"SPDX-2.3"}', SPDX_JSON,
                                   artifact_type=SPDX_JSON)  # fmt: skip
    for digest, data in blobs.items():
        up = s.post(f"{base}/v2/base/blobs/uploads/?digest={digest}", data=data)
        assert up.status_code == 201
    with open_state(home) as db:
        records = len(list(AuditLog(db).records()))
    for tag in ("v1-", "_v1", "v1..2"):  # the route takes them, the store's tag rules do not
        put = s.put(f"{base}/v2/base/manifests/{tag}", data=raw,
                    headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        assert put.status_code == 400
        assert put.json()["errors"][0]["code"] == "TAG_INVALID"
    store = OCILayout.open(home.oci)
    assert not store.has_blob(Digest.of_bytes(raw))
    assert store.referrers(image.digest) == []
    with open_state(home) as db:
        assert len(list(AuditLog(db).records())) == records


def test_disk_failure_answers_500_naming_the_file(
    served: tuple[Home, RegistryServer],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, server = served
    part = str(server.upload_dir / "blob.part")

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), part)

    monkeypatch.setattr(OCILayout, "put_blob", full)
    data = b"a blob that does not fit"
    answer = _session().post(
        f"http://{server.address}/v2/x/blobs/uploads/?digest={Digest.of_bytes(data)}", data=data
    )
    assert answer.status_code == 500
    assert answer.headers["Connection"] == "close"
    (error,) = answer.json()["errors"]
    assert error["code"] == "UNKNOWN"
    assert error["message"] == f"{part}: No space left on device"
    assert "Traceback" not in capsys.readouterr().err


def test_upload_put_without_digest_appends_nothing(served: tuple[Home, RegistryServer]) -> None:
    _, server = served
    base = f"http://{server.address}"
    s = _session()
    location = base + s.post(f"{base}/v2/up/blobs/uploads/").headers["Location"]
    assert s.patch(location, data=b"0123456789").headers["Range"] == "0-9"
    refused = s.put(location, data=b"more")
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert s.get(location).headers["Range"] == "0-9"


def test_upload_dropped_while_a_request_waits_is_unknown(
    served: tuple[Home, RegistryServer],
) -> None:
    _, server = served
    base = f"http://{server.address}"
    s = _session()
    start = s.post(f"{base}/v2/up/blobs/uploads/")
    uuid = start.headers["Docker-Upload-UUID"]
    upload = server.uploads[uuid]
    answers: list[requests.Response] = []
    with upload.lock:  # another request is busy with the session
        location = base + start.headers["Location"]
        waiting = threading.Thread(
            target=lambda: answers.append(_session().patch(location, data=b"late"))
        )
        waiting.start()
        time.sleep(0.5)  # the PATCH is now waiting for the session's lock
        server.drop_upload(uuid)  # ... which finishes (or cancels) the session
    waiting.join(10)
    (answer,) = answers
    assert answer.status_code == 404
    assert answer.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert list(server.upload_dir.iterdir()) == []


def test_read_only_by_default_and_serves_anonymously(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    with _server(home, allow_push=False) as server:
        s = _session(None)
        assert s.get(f"http://{server.address}/v2/app/manifests/1").status_code == 200
        refused = s.post(f"http://{server.address}/v2/app/blobs/uploads/")
        assert refused.status_code == 405
        assert "--allow-push" in refused.json()["errors"][0]["message"]
        assert s.delete(f"http://{server.address}/v2/app/manifests/1").status_code == 405


def test_tls(tmp_path: Path) -> None:
    cert_file, key_file = loopback_certificate(tmp_path / "tls")
    home = make_home(tmp_path / "home")
    with _server(home, tls_cert=cert_file, tls_key=key_file) as server:
        assert server.scheme == "https"
        s = _session()
        s.verify = str(cert_file)
        assert s.get(f"https://{server.address}/v2/_catalog").json() == {"repositories": ["app"]}


# ------------------------------------------------------------------------------ configuration


def test_unsafe_configurations_are_refused(tmp_path: Path) -> None:
    auth = Authenticator.single(Credentials(*USER))
    with pytest.raises(ServeConfigError, match="--allow-push requires authentication"):
        ServeOptions(ListenAddress("127.0.0.1", 0), allow_push=True).check()
    with pytest.raises(ServeConfigError, match="clear text on 0.0.0.0"):
        ServeOptions(ListenAddress.parse("0.0.0.0:5000"), True, auth).check()
    with pytest.raises(ServeConfigError, match="go together"):
        ServeOptions(ListenAddress("127.0.0.1", 0), tls_cert=tmp_path / "c").check()
    with pytest.raises(ServeConfigError, match="not HOST:PORT"):
        ListenAddress.parse("localhost")
    assert ListenAddress.parse("[::1]:5000").loopback
    assert not ListenAddress.parse("10.1.2.3:5000").loopback


def test_cli_serve_refuses_push_without_auth(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    result = CliRunner().invoke(cli, ["--home", str(home.root), "serve", "--allow-push"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "stella: error: --allow-push requires authentication (give --htpasswd FILE, or --user "
        "NAME --password-env VAR)"
    )


def test_htpasswd_bcrypt_and_sha(tmp_path: Path) -> None:
    line = subprocess.run(
        ["htpasswd", "-Bbn", *USER], capture_output=True, check=True, text=True
    ).stdout.strip()
    sha = subprocess.run(
        ["htpasswd", "-sbn", "legacy", "pw"], capture_output=True, check=True, text=True
    ).stdout.strip()
    path = tmp_path / "htpasswd"
    path.write_text(f"# users\n{line}\n{sha}\n")
    auth = Authenticator.from_htpasswd(path)

    def header(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    assert auth.check(header(*USER)) == "builder"
    assert auth.check(header(*USER)) == "builder"  # cached
    assert auth.check(header(*WRONG)) is None
    assert auth.check(header("legacy", "pw")) == "legacy"
    assert auth.check(header("nobody", "pw")) is None
    assert auth.check("Bearer abc") is None
    md5 = subprocess.run(
        ["htpasswd", "-mbn", "old", "pw"], capture_output=True, check=True, text=True
    ).stdout.strip()
    path.write_text(md5 + "\n")
    with pytest.raises(ServeConfigError, match=r"htpasswd:1: user 'old' .* unsupported"):
        Authenticator.from_htpasswd(path)


def test_htpasswd_without_users_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "htpasswd"
    path.write_text("# nobody yet\n\n")
    with pytest.raises(ServeConfigError) as refused:
        Authenticator.from_htpasswd(path)
    assert refused.value.diagnostics() == (
        f"htpasswd file {path} lists no users (add one with 'htpasswd -B {path} NAME')"
    )


def test_bad_tls_certificate_releases_the_port(tmp_path: Path) -> None:
    _, key_file = loopback_certificate(tmp_path / "tls")
    home = make_home(tmp_path / "home")
    port = free_port()
    options = ServeOptions(
        ListenAddress("127.0.0.1", port),
        True,
        Authenticator.single(Credentials(*USER)),
        tls_cert=key_file,  # not a certificate
        tls_key=key_file,
    )
    with pytest.raises(ServeConfigError, match="cannot load TLS certificate"):
        RegistryServer(home, options)
    with socket.socket() as again:  # the port is free again: the socket was closed
        again.bind(("127.0.0.1", port))


def test_cli_serve_runs_and_answers(tmp_path: Path) -> None:
    home = make_home(tmp_path / "home")
    env = {**clean_env(), "SERVE_PASSWORD": USER[1]}
    argv = [str(Path(sys.executable).parent / "stella"), "--home", str(home.root), "--json"]
    proc = subprocess.Popen(  # port 0: the kernel picks a free one and the first line names it
        [*argv, "serve", "--listen", "127.0.0.1:0", "--allow-push", "--user", USER[0],
         "--password-env", "SERVE_PASSWORD"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        started = json.loads(proc.stdout.readline())
        host, _, port = started["listen"].rpartition(":")
        assert (host, int(port) > 0) == ("127.0.0.1", True)
        assert started == {
            "allowPush": True,
            "auth": True,
            "listen": f"127.0.0.1:{port}",
            "scheme": "http",
            "maps": {},
            "repositories": {"app": "app"},
            "collisions": {},
        }
        s = _session()
        assert s.get(f"http://127.0.0.1:{port}/v2/app/tags/list").json()["tags"] == ["1"]
        assert _session(WRONG).get(f"http://127.0.0.1:{port}/v2/").status_code == 401
    finally:
        proc.terminate()
        proc.wait(10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
