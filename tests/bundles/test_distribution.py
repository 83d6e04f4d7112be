"""The shared registry client's rules that only a scripted registry shows: an upload body
follows a 307 whole and turns into a GET on a 303, a failure names the registry's own error,
a 403 says which permission is missing, a fixed scheme is taken without asking, and the proxy
environment can be ignored. (The pull side runs against fakes and Debian's docker-registry in
tests/mirror, the push side in tests/appliance/registry.)"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pytest
import urllib3

from bundles.digest import Digest
from bundles.distribution.client import RegistryClient, RegistryOptions
from bundles.distribution.errors import RegistryAuthError, RegistryError
from bundles.distribution.transport import Transport
from tests.loopback import LoopbackHTTP

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class _Scripted:
    """A registry whose answers the test writes: ``(method, path)`` to status, headers and
    body. It records every request: method, path (with query), headers, body."""

    script: dict[tuple[str, str], Answer]
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length)
        self.seen.append((method, request.path, dict(request.headers.items()), body))
        status, headers, answer = self.script.get(
            (method, request.path.partition("?")[0]), (404, {}, b"")
        )
        request.send_response(status)
        for key, value in headers.items():
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(answer)))
        request.end_headers()
        request.wfile.write(answer)


@pytest.fixture
def scripted() -> Iterator[Callable[[dict[tuple[str, str], Answer]], tuple[_Scripted, str]]]:
    servers: list[LoopbackHTTP] = []

    def start(script: dict[tuple[str, str], Answer]) -> tuple[_Scripted, str]:
        fake = _Scripted(script)
        server = LoopbackHTTP(fake.handle, methods=("GET", "HEAD", "POST", "PUT"))
        server.start()
        servers.append(server)
        return fake, f"127.0.0.1:{server.port}"

    yield start
    for server in servers:
        server.stop()


def _client(host: str) -> RegistryClient:
    return RegistryClient(host, RegistryOptions(scheme="http", retries=0, timeout=5))


def test_upload_follows_a_307_with_the_whole_body_again(
    scripted: Callable[[dict[tuple[str, str], Answer]], tuple[_Scripted, str]],
) -> None:
    data = bytes(range(256)) * 300
    digest = Digest.of_bytes(data)
    fake, host = scripted(
        {
            ("POST", "/v2/app/blobs/uploads/"): (202, {"Location": "/upload/1"}, b""),
            ("PUT", "/upload/1"): (307, {"Location": "/storage/1"}, b""),
            ("PUT", "/storage/1"): (201, {}, b""),
        }
    )
    with _client(host) as client:
        client.upload_blob("app", digest, len(data), io.BytesIO(data))
    puts = [(path.partition("?")[0], body) for m, path, _h, body in fake.seen if m == "PUT"]
    assert puts == [("/upload/1", data), ("/storage/1", data)]


def test_a_303_after_a_put_is_followed_by_a_get_without_the_body(
    scripted: Callable[[dict[tuple[str, str], Answer]], tuple[_Scripted, str]],
) -> None:
    fake, host = scripted(
        {
            ("PUT", "/v2/app/manifests/1"): (303, {"Location": "/elsewhere"}, b""),
            ("GET", "/elsewhere"): (200, {}, b"{}"),
        }
    )
    transport = Transport(host, timeout=5, ca_certs=None, user_agent="test")
    resp = transport.send(
        "PUT",
        f"http://{host}/v2/app/manifests/1",
        {"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        body=b'{"schemaVersion":2}',
    )
    assert resp.status == 200
    resp.release_conn()
    transport.close()
    method, path, headers, body = fake.seen[1]
    assert (method, path, body) == ("GET", "/elsewhere", b"")
    assert "Content-Type" not in headers


def test_a_failure_names_the_registrys_own_error(
    scripted: Callable[[dict[tuple[str, str], Answer]], tuple[_Scripted, str]],
) -> None:
    error = b'{"errors":[{"code":"UNKNOWN","message":"storage is full"}]}'
    _fake, host = scripted({("PUT", "/v2/app/manifests/1"): (500, {}, error)})
    with _client(host) as client, pytest.raises(RegistryError) as info:
        client.put_manifest("app", "1", b"{}", "application/vnd.oci.image.manifest.v1+json")
    assert info.value.message == (
        f"registry {host} answered HTTP 500 to PUT http://{host}/v2/app/manifests/1: "
        "UNKNOWN: storage is full"
    )


@pytest.mark.parametrize(
    ("method", "permission"), [("GET", "pull"), ("HEAD", "pull"), ("PUT", "push")]
)
def test_a_403_says_which_permission_is_missing(
    scripted: Callable[[dict[tuple[str, str], Answer]], tuple[_Scripted, str]],
    method: str,
    permission: str,
) -> None:
    _fake, host = scripted({(method, "/v2/team/app/manifests/1"): (403, {}, b"")})
    calls: dict[str, Callable[[RegistryClient], object]] = {
        "GET": lambda c: c.get_manifest("team/app", "1"),
        "HEAD": lambda c: c.manifest_digest("team/app", "1"),
        "PUT": lambda c: c.put_manifest("team/app", "1", b"{}", "application/json"),
    }
    with _client(host) as client, pytest.raises(RegistryAuthError) as info:
        calls[method](client)
    assert info.value.message == f"registry {host} denied {method} on team/app (HTTP 403)"
    assert info.value.hint == f"the account lacks {permission} permission on this repository"


def test_a_fixed_scheme_is_taken_without_asking_the_registry() -> None:
    """``registry.test`` resolves nowhere: any probe would fail."""
    for scheme in ("http", "https"):
        client = RegistryClient("registry.test", RegistryOptions(scheme=scheme))
        assert client.base_url() == f"{scheme}://registry.test"


def test_the_proxy_environment_can_be_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = "https://registry.test/v2/"
    honoured = Transport("registry.test", timeout=5, ca_certs=None, user_agent="t")
    ignored = Transport("registry.test", timeout=5, ca_certs=None, user_agent="t", proxies=False)
    assert isinstance(honoured._pool(url), urllib3.ProxyManager)
    assert not isinstance(ignored._pool(url), urllib3.ProxyManager)
