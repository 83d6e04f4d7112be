"""HTTP for the registry client, through urllib3 directly (connection pools, TLS, timeouts).

What requests would do for free is done here explicitly: redirects are followed hop by hop
(credentials never go to another origin, each hop picks its own proxy) and the proxy
environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) is honoured, except
for loopback hosts. Plus the helpers that read, release and describe urllib3's responses and
failures for the client's one-line errors.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import threading
from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol
from urllib.parse import unquote, urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ClosedPoolError,
    MaxRetryError,
    ProtocolError,
    ProxyError,
    ResponseError,
)

from bundles.distribution.errors import RegistryError
from bundles.distribution.reference import is_loopback_host

CHUNK: Final = 1 << 20
MAX_JOBS: Final = 32  # concurrent blob transfers one client keeps connections for
MAX_REDIRECTS: Final = 30  # as requests allowed; a registry sends one (blob -> storage)
_REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
# urllib3's own list of headers that must not follow a redirect to another origin.
_CROSS_ORIGIN_DROP: Final = frozenset(
    h.lower() for h in urllib3.Retry.DEFAULT_REMOVE_HEADERS_ON_REDIRECT
)
# What requests asked of urllib3: no retries of its own (this module retries with back-off),
# failed connections reported as MaxRetryError naming the cause, read errors raised as is.
_NO_RETRIES: Final = urllib3.Retry(0, read=False, redirect=False)
_BODY_HEADERS: Final = frozenset({"content-length", "content-type", "transfer-encoding"})
_DRAIN_LIMIT: Final = 1 << 16  # unread body bytes worth reading to keep a connection


class Transport:
    """Connection pools for one registry's requests (and its redirects' targets), direct or
    through the environment's proxy. Thread-safe: urllib3's pools hand each thread its own
    connection (up to ``MAX_JOBS`` kept per host)."""

    def __init__(
        self,
        registry: str,
        *,
        timeout: float,
        ca_certs: str | None,
        user_agent: str,
        proxies: bool = True,
    ) -> None:
        self.registry = registry
        self.proxies = proxies  # honour the proxy environment (else always connect directly)
        self.timeout = timeout
        self.ca_certs = ca_certs  # a CA bundle file, or None for the system's trust store
        self.user_agent = user_agent
        self._pools: dict[str, urllib3.PoolManager] = {}  # by proxy URL, "" for direct
        self._pools_lock = threading.Lock()

    def close(self) -> None:
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.clear()

    @property
    def _timeout(self) -> urllib3.Timeout:
        return urllib3.Timeout(connect=min(15.0, self.timeout), read=self.timeout)

    def _pool(self, url: str) -> urllib3.PoolManager:
        """The connection pools for ``url``: direct, or through the environment's proxy."""
        proxy = proxy_for(url) if self.proxies else None
        key = proxy or ""
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is not None:
                return pool
            settings: dict[str, Any] = {
                "maxsize": MAX_JOBS,
                "ca_certs": self.ca_certs,
                "timeout": self._timeout,
                "retries": _NO_RETRIES,
            }
            if proxy is None:
                pool = urllib3.PoolManager(**settings)
            else:
                parsed = urllib3.util.parse_url(proxy)
                if parsed.scheme not in ("http", "https") or not parsed.host:
                    raise RegistryError(
                        f"proxy {parsed.scheme}://{parsed.host or ''} from the environment "
                        f"(for {urlsplit(url).netloc}) is not an http:// or https:// proxy",
                        hint="point HTTPS_PROXY / HTTP_PROXY at an HTTP proxy, or add the "
                        "registry to NO_PROXY",
                    )
                headers = None
                if parsed.auth:
                    headers = urllib3.make_headers(proxy_basic_auth=unquote(parsed.auth))
                pool = urllib3.ProxyManager(proxy, proxy_headers=headers, **settings)
            self._pools[key] = pool
            return pool

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        *,
        decode: bool = True,
        body: bytes | Rewindable | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One request, redirects followed; the body is left unread (``preload_content``
        off). ``decode`` off keeps the body as the registry sent it (blobs). The response's
        ``url`` is the last hop's. Raises urllib3's (and the OS's) exceptions.

        A request ``body`` (an upload) follows a 307 or 308 redirect, sent again from its
        start; the other redirects turn a POST, PUT or PATCH into a GET without a body, as
        browsers and requests do.

        Redirects are followed here rather than by urllib3 so that each hop gets its own
        proxy decision (a registry's storage may be on the other side of the proxy), and so
        that the cross-origin rule is urllib3's (scheme, host and port; see
        ``Retry.remove_headers_on_redirect``) also through a proxy, where urllib3 compares
        with the proxy's pool instead of the registry's.
        """
        sent = {"User-Agent": self.user_agent, **headers}
        for hop in range(MAX_REDIRECTS + 1):
            if hop and body is not None and not isinstance(body, bytes):
                body.seek(0)
            resp = self._pool(url).urlopen(
                method,
                url,
                body=body,
                headers=sent,
                redirect=False,
                preload_content=False,
                decode_content=decode,
            )
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECT_STATUSES or not location:
                resp.url = url
                return resp
            release(resp)
            target = urljoin(url, location)
            if urlsplit(target).scheme not in ("http", "https"):
                raise RegistryError(
                    f"registry {self.registry} redirected {method} {url} to {target!r}, "
                    "which is not an http(s) URL"
                )
            if _origin(target) != _origin(url):
                sent = {k: v for k, v in sent.items() if k.lower() not in _CROSS_ORIGIN_DROP}
            if resp.status not in (307, 308) and method not in ("GET", "HEAD"):
                method, body = "GET", None
                sent = {k: v for k, v in sent.items() if k.lower() not in _BODY_HEADERS}
            elif resp.status == 303 and method != "HEAD":
                method = "GET"
            url = target
        raise RegistryError(
            f"registry {self.registry}: over {MAX_REDIRECTS} redirects, the last to {url}",
            hint="the registry or its storage is misconfigured (a redirect loop)",
        )


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for ``url``, or None to connect directly.

    Read as requests read it: the scheme's variable (``HTTPS_PROXY``, ``HTTP_PROXY``), else
    ``ALL_PROXY``; ``NO_PROXY`` names hosts (and domain suffixes, ``host:port`` pairs, CIDR
    ranges for IP addresses, or ``*``) to reach directly. Loopback hosts never use a proxy:
    their traffic does not leave the machine.
    """
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    if not netloc or is_loopback_host(netloc):
        return None
    import urllib.request  # here, not at the top: loopback-only runs never pay for it

    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy:
        return None
    if urllib.request.proxy_bypass(netloc) or _in_no_proxy_range(
        parts.hostname or "", proxies.get("no", "")
    ):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _in_no_proxy_range(host: str, no_proxy: str) -> bool:
    """``NO_PROXY`` entries that are CIDR ranges (``10.0.0.0/8``), which the standard
    library's matching of names and suffixes does not cover."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    for entry in no_proxy.split(","):
        try:
            if address in ipaddress.ip_network(entry.strip(), strict=False):
                return True
        except ValueError:
            continue
    return False


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port with the scheme's default port filled in: the unit urllib3's
    ``is_same_host`` compares before it lets ``Authorization`` follow a redirect."""
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


class Rewindable(Protocol):
    """A request body streamed from a file: read in blocks, and rewound to its start when the
    request is sent again (after a 401, or to a redirect's target)."""

    def read(self, n: int = -1, /) -> bytes: ...
    def seek(self, offset: int, whence: int = 0, /) -> int: ...
    def tell(self) -> int: ...


def read_limited(resp: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytes:
    """An untrusted body whole, refused once it passes ``limit`` bytes: no more than one byte
    over the limit is read (the connection is then closed, not drained)."""
    body, complete = read_some(resp, limit, what)
    if not complete:
        raise RegistryError(f"{what} is over {limit} bytes")
    return body


def read_some(resp: urllib3.BaseHTTPResponse, limit: int, what: str) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a body, and whether that was all of it."""
    parts: list[bytes] = []
    total = 0
    try:
        while chunk := resp.read(min(CHUNK, limit + 1 - total)):
            total += len(chunk)
            if total > limit:
                return b"".join(parts), False
            parts.append(chunk)
    except NETWORK as e:
        raise RegistryError(f"{what}: the transfer broke: {brief(e)}") from e
    return b"".join(parts), True


def release(resp: urllib3.BaseHTTPResponse) -> None:
    """Hand the response's connection back to its pool. A small unread rest of the body is
    read so the connection can be reused; a large one (a blob left half-read) is not worth
    reading, and the connection is closed instead."""
    left = resp.length_remaining
    if left is not None and left <= _DRAIN_LIMIT:
        resp.drain_conn()  # a body read to its end gives the connection back by itself
    resp.close()  # closes the connection if it is still held: unread bytes remain
    resp.release_conn()


@contextlib.contextmanager
def holding(resp: urllib3.BaseHTTPResponse) -> Iterator[urllib3.BaseHTTPResponse]:
    try:
        yield resp
    finally:
        release(resp)


NETWORK: Final = (urllib3.exceptions.HTTPError, OSError)


def is_tls_failure(e: BaseException) -> bool:
    """A TLS handshake or certificate failure (what requests raised as ``SSLError``)."""
    reason = e.reason if isinstance(e, MaxRetryError) else e
    return isinstance(reason, urllib3.exceptions.SSLError)


def is_connection_failure(e: BaseException) -> bool:
    """No connection was made or it was dropped before an answer (what requests raised as
    ``ConnectionError``): not a read timeout or a malformed URL or answer."""
    if isinstance(e, MaxRetryError):
        return not isinstance(e.reason, ResponseError)
    if isinstance(e, ProtocolError | ClosedPoolError | ProxyError):
        return True
    return isinstance(e, OSError) and not isinstance(e, urllib3.exceptions.HTTPError)


def brief(e: BaseException | None) -> str:
    """A foreign exception as a short phrase (urllib3 nests long reprs)."""
    if e is None:
        return "connection ended early"
    text = str(e)
    m = re.search(r"\(Caused by (\w+)\(", text)
    if m:
        return m.group(1)
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__
