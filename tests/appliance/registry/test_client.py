"""The push client against fakes that inject what a real registry rarely does: a 401 in the
middle of an upload, an answer far larger than it announced. Plus which hosts count as
loopback (plain HTTP, credentials in clear) and which do not."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from appliance.registry.client import PushClient
from bundles.digest import CHUNK, Digest
from bundles.distribution.credentials import Challenge, Credentials
from bundles.distribution.errors import RegistryAuthError, RegistryError
from bundles.distribution.reference import is_loopback_host
from bundles.oci import OCILayout
from bundles.oci.manifest import MAX_MANIFEST_SIZE
from tests.loopback import LoopbackHTTP

NOT_LOOPBACK = (
    "localhost.example.com:5000",
    "localhost.example.com",
    "127.example.org",
    "127.0.0.1.nip.io:5000",
    "[::1].example:5000",
    "registry.example:5000",
    "10.0.0.5:5000",
)
LOOPBACK = ("localhost", "localhost:5000", "127.0.0.1", "127.1.2.3:443", "::1", "[::1]:5000")


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_hosts(host: str) -> None:
    assert is_loopback_host(host)
    assert PushClient(host).base_url() == f"http://{host}"


@pytest.mark.parametrize("host", NOT_LOOPBACK)
def test_names_that_only_look_like_loopback_get_https(host: str) -> None:
    assert not is_loopback_host(host)
    assert PushClient(host).base_url() == f"https://{host}"


@pytest.mark.parametrize("realm_host", ["127.0.0.1.nip.io:5000", "localhost.example.com"])
def test_plain_http_token_realm_refused_for_lookalike_hosts(realm_host: str) -> None:
    client = PushClient("registry.example:5000", credentials=Credentials("ci", "pw"))
    challenge = Challenge("bearer", {"realm": f"http://{realm_host}/token"})
    with pytest.raises(RegistryAuthError, match="plain-HTTP realm"):
        client._fetch_token(challenge, "team/app")  # refused before any connection is made


class _Fake:
    """A registry that takes uploads and answers the first blob PUT with 401 (a token that
    expired mid-push), keeping every PUT body it was sent."""

    def __init__(self) -> None:
        self.puts: list[bytes] = []
        self.server = LoopbackHTTP(self.handle, methods=("POST", "PUT", "GET"))
        self.release = threading.Event()

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        if method == "POST":
            self._answer(request, 202, Location="/v2/team/app/blobs/uploads/u1")
        elif method == "PUT":
            self.puts.append(body)
            if len(self.puts) == 1:
                self._answer(request, 401, **{"WWW-Authenticate": 'Basic realm="fake"'})
            else:
                self._answer(request, 201)
        else:  # GET: announces a huge manifest, sends a little over the limit, then stalls
            request.send_response(200)
            request.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            request.send_header("Content-Length", str(1 << 30))
            request.end_headers()
            request.wfile.write(b" " * (MAX_MANIFEST_SIZE + 65536))
            request.wfile.flush()
            self.release.wait(30)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, **headers: str) -> None:
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", "0")
        request.end_headers()


@pytest.fixture
def fake() -> Iterator[_Fake]:
    registry = _Fake()
    registry.server.start()
    try:
        yield registry
    finally:
        registry.release.set()
        registry.server.stop()


def test_blob_put_retried_after_401_resends_the_whole_body(fake: _Fake) -> None:
    data = bytes(range(256)) * 40
    stream = io.BytesIO(b"prefix" + data)
    stream.seek(len(b"prefix"))  # the blob starts where the stream stands
    with PushClient(
        f"127.0.0.1:{fake.server.port}", credentials=Credentials("ci", "pw"), timeout=5
    ) as client:
        client.upload_blob("team/app", Digest.of_bytes(data), len(data), stream)
    assert fake.puts == [data, data]


def test_store_blob_put_retried_after_401_is_read_again(fake: _Fake, tmp_path: Path) -> None:
    """The store's blob stream verifies as it reads and cannot seek: it is opened again."""
    data = os.urandom(3 * CHUNK + 17)
    store = OCILayout.init(tmp_path / "oci")
    digest = store.put_blob(data).digest
    with (
        PushClient(
            f"127.0.0.1:{fake.server.port}", credentials=Credentials("ci", "pw"), timeout=5
        ) as client,
        store.open_blob(digest) as stream,
    ):
        assert not stream.seekable()
        client.upload_blob(
            "team/app", digest, len(data), stream, reopen=lambda: store.open_blob(digest)
        )
    assert fake.puts == [data, data]


def test_oversized_answer_is_refused_without_reading_it_all(fake: _Fake) -> None:
    with (
        PushClient(f"127.0.0.1:{fake.server.port}", timeout=5) as client,
        pytest.raises(RegistryError, match=f"is over {MAX_MANIFEST_SIZE} bytes$"),
    ):
        client.get_manifest("team/app", "1")
