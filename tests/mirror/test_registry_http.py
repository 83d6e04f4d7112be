"""The registry client's HTTP plumbing against loopback servers: redirects of blobs to
storage on another origin (credentials stay behind), proxies from the environment, the
User-Agent, and how failed connections are reported."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from bundles.distribution.client import RegistryOptions
from bundles.distribution.credentials import Credentials
from bundles.distribution.errors import RegistryError
from bundles.distribution.reference import ImageReference
from bundles.distribution.transport import MAX_REDIRECTS, proxy_for
from bundles.oci import OCILayout
from mirror.image_copy import copy_image
from mirror.registry import PullClient
from tests.mirror.registry_fixture import FakeRegistry, ForwardProxy, fake_image, layer_digests

PROXY_VARS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "REQUEST_METHOD",
)


@pytest.fixture(autouse=True)
def _clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)


def _client(
    registry: str, options: RegistryOptions | None = None, credentials: Credentials | None = None
) -> PullClient:
    options = options or RegistryOptions(retries=2, backoff=0.0)
    return PullClient(registry, options, credentials=credentials, sleep=lambda _s: None)


def _blob_gets(requests: list[tuple[str, str, dict[str, str]]]) -> list[dict[str, str]]:
    return [headers for method, path, headers in requests if method == "GET" and "/blobs/" in path]


def _header(headers: dict[str, str], name: str) -> str | None:
    """A header as a server received it, whatever case the client wrote its name in."""
    return next((v for k, v in headers.items() if k.lower() == name.lower()), None)


# ------------------------------------------------------------------------------ redirects


def test_blob_redirect_to_another_origin_drops_authorization(tmp_path: Path) -> None:
    """Registries answer blob GETs with a redirect to storage elsewhere; the bearer token is
    for the registry only. Another port on the same address is another origin."""
    with FakeRegistry() as storage, FakeRegistry(auth=("bearer", "dave", "pw")) as registry:
        registry.redirect_blobs = f"http://{storage.host}"
        image = fake_image(registry, "team/app", "v1")
        storage.blobs.update(registry.blobs)
        layer = layer_digests(registry.manifests["team/app/v1"][0])[1]
        storage.cut_once.add(layer)  # the resumed request is redirected too, Range and all
        layout = OCILayout.init(tmp_path / "oci")
        with _client(registry.host, credentials=Credentials("dave", "pw")) as client:
            result = copy_image(
                client, ImageReference.parse(f"{registry.host}/team/app:v1"), layout
            )
    assert result.descriptor.digest == image.digest
    assert layout.verify().ok
    at_registry = _blob_gets(registry.requests)
    at_storage = _blob_gets(storage.requests)
    assert len(at_registry) == len(at_storage) == 3  # config, layer, layer resumed
    assert all(h.get("Authorization") == f"Bearer {registry.token}" for h in at_registry)
    assert all(_header(h, "Authorization") is None for h in at_storage)
    assert [h.get("Range") for h in at_storage].count(f"bytes={len(storage.blobs[layer]) // 2}-")


def test_redirect_loop_is_cut_off_and_same_origin_keeps_authorization(tmp_path: Path) -> None:
    with FakeRegistry(auth=("bearer", "u", "p")) as registry:
        registry.redirect_blobs = f"http://{registry.host}"  # every blob GET redirects to itself
        fake_image(registry, "app", "1")
        with (
            _client(registry.host, credentials=Credentials("u", "p")) as client,
            pytest.raises(RegistryError) as info,
        ):
            copy_image(
                client, ImageReference.parse(f"{registry.host}/app:1"), OCILayout.init(tmp_path)
            )
    assert info.value.message.startswith(
        f"registry {registry.host}: over {MAX_REDIRECTS} redirects, the last to "
        f"http://{registry.host}/v2/app/blobs/sha256:"
    )
    assert info.value.hint == "the registry or its storage is misconfigured (a redirect loop)"
    gets = _blob_gets(registry.requests)
    assert len(gets) == MAX_REDIRECTS + 1
    assert all(h.get("Authorization") == f"Bearer {registry.token}" for h in gets)


def test_user_agent_is_sent() -> None:
    with FakeRegistry() as registry:
        fake_image(registry, "app", "1")
        with _client(registry.host) as client:
            assert client.find_manifest("app", "1") is not None
    agents = {headers.get("User-Agent") for _m, _p, headers in registry.requests}
    assert agents == {client.user_agent}
    assert client.user_agent.startswith("stella-mirror/")


# ------------------------------------------------------------------------------ proxies


def test_environment_proxy_is_used_for_a_non_loopback_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``registry.test`` resolves nowhere: only the proxy can reach it. HTTPS through the
    proxy fails (CONNECT refused), so the allowed plain-HTTP fallback is taken, through the
    proxy too; the blob's storage, on loopback, is reached directly."""
    with (
        FakeRegistry() as storage,
        FakeRegistry() as registry,
        ForwardProxy(registry.host) as proxy,
    ):
        registry.redirect_blobs = f"http://{storage.host}"
        image = fake_image(registry, "app", "1")
        storage.blobs.update(registry.blobs)
        address = proxy.url.removeprefix("http://")
        monkeypatch.setenv("HTTP_PROXY", f"http://carol:s%40cret@{address}")
        monkeypatch.setenv("HTTPS_PROXY", f"http://carol:s%40cret@{address}")
        monkeypatch.setenv("NO_PROXY", "elsewhere.test")
        options = RegistryOptions(allow_http=frozenset({"registry.test"}), retries=0)
        layout = OCILayout.init(tmp_path / "oci")
        with _client("registry.test", options) as client:
            result = copy_image(client, ImageReference.parse("registry.test/app:1"), layout)
    assert result.descriptor.digest == image.digest
    assert layout.verify().ok
    assert proxy.requests[0][:2] == ("CONNECT", "registry.test:443")
    targets = [(method, target) for method, target, _h in proxy.requests[1:]]
    assert targets[0] == ("GET", "http://registry.test/v2/app/manifests/1")
    assert all(target.startswith("http://registry.test/") for _m, target in targets)
    credentials = "Basic " + base64.b64encode(b"carol:s@cret").decode()
    assert all(_header(h, "Proxy-Authorization") == credentials for _m, _t, h in proxy.requests)
    assert {h.get("Host") for _m, _p, h in registry.requests} == {"registry.test"}
    assert len(_blob_gets(storage.requests)) == 2  # direct: loopback never uses the proxy


def test_no_connection_through_the_proxy_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeRegistry() as registry, ForwardProxy(registry.host) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with _client("registry.test") as client, pytest.raises(RegistryError) as info:
            client.base_url()
    assert info.value.message == "cannot reach registry registry.test: ProxyError"
    assert info.value.hint == "check the registry name and the network"
    assert [(m, t) for m, t, _h in proxy.requests] == [("CONNECT", "registry.test:443")]


def test_loopback_registry_never_uses_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRegistry() as registry, ForwardProxy(registry.host) as proxy:
        fake_image(registry, "app", "1")
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with _client(registry.host) as client:
            assert client.find_manifest("app", "1") is not None
    assert proxy.requests == []


def test_a_proxy_that_is_not_http_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://user:pw@127.0.0.1:1080")
    with _client("registry.test") as client, pytest.raises(RegistryError) as info:
        client.base_url()
    assert info.value.message == (
        "proxy socks5://127.0.0.1 from the environment (for registry.test) is not an http:// "
        "or https:// proxy"
    )
    assert "pw" not in info.value.message


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({"HTTP_PROXY": "http://p:3128"}, "http://registry.test/v2/", "http://p:3128"),
        ({"HTTP_PROXY": "http://p:3128"}, "https://registry.test/v2/", None),
        ({"HTTPS_PROXY": "p:3128"}, "https://registry.test/v2/", "http://p:3128"),
        ({"ALL_PROXY": "http://a:1"}, "https://registry.test/v2/", "http://a:1"),
        (
            {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://up:1"},
            "https://r.test/",
            "http://low:1",
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "registry.test"},
            "https://registry.test/",
            None,
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".test"}, "https://registry.test/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "test"}, "https://registry.test/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "a.b, .test"}, "https://r.test/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://registry.test/", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.test"},
            "https://reg.test/",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "r.test:5000"}, "https://r.test:5000/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"}, "https://10.1.2.3:5000/", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "10.0.0.0/8"},
            "https://11.1.2.3/",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1"}, "https://127.0.0.1:5000/v2/", None),
        ({"HTTPS_PROXY": "http://p:1"}, "https://localhost/v2/", None),
        ({"HTTPS_PROXY": "http://p:1"}, "https://[::1]:5000/v2/", None),
    ],
)
def test_proxy_selection(
    env: dict[str, str], url: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert proxy_for(url) == expected


# ------------------------------------------------------------------------------ failures


def test_refused_connection_is_named_briefly() -> None:
    options = RegistryOptions(retries=1, backoff=0.0, timeout=5.0)
    with _client("127.0.0.1:9", options) as client, pytest.raises(RegistryError) as info:
        client.find_manifest("app", "1")
    assert info.value.message == (
        "cannot reach registry 127.0.0.1:9 (GET http://127.0.0.1:9/v2/app/manifests/1): "
        "NewConnectionError"
    )
    assert info.value.hint == "check the network and try again"


def test_trust_store_is_the_ca_bundle_else_certifis(tmp_path: Path) -> None:
    import certifi

    bundle = tmp_path / "ca.pem"
    assert _client("r.test", RegistryOptions(ca_bundle=bundle))._ca_certs() == str(bundle)
    assert _client("r.test")._ca_certs() == certifi.where()
