"""Pulling from OCI distribution registries: the mirror's one registry client.

This is, with ``mirror.fetch``, the only module of the connected side that speaks HTTP. It
knows the distribution API's read side: manifests (Docker schema 2 and OCI, kept as the exact
bytes the registry served), blobs (streamed, resumed with ``Range`` when a connection breaks),
tags and the referrers API. It authenticates anonymously, with HTTP Basic, or with a bearer
token obtained from the ``WWW-Authenticate`` challenge's realm; credentials come from a docker
``config.json``. TLS is verified (optionally against a CA bundle); plain HTTP is used only for
loopback registries or registries the caller explicitly allows, as docker does for
"insecure registries": HTTPS first, HTTP when the TLS handshake fails.

It talks through urllib3 directly (connection pools, TLS, timeouts), not requests: requests
adds nothing the client uses and costs a noticeable share of the command's start-up. What
requests did for free is done here explicitly: redirects are followed hop by hop (credentials
never go to another origin, each hop picks its own proxy) and the proxy environment
(``HTTPS_PROXY``, ``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``) is honoured, except for
loopback hosts.

oras-py was weighed for this and not used for transfers: its client parses manifests into
dicts (the bytes are the identity here), does not verify blobs while they stream, cannot
resume a blob, and keeps one token for all repositories. See docs/images.md.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, urlencode, urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ClosedPoolError,
    MaxRetryError,
    ProtocolError,
    ProxyError,
    ResponseError,
)

from bundles import __version__
from bundles.digest import Digest
from bundles.errors import DigestError, StellaError, UsageError
from bundles.oci import Descriptor, ManifestError, parse_manifest
from bundles.oci.distribution import REPOSITORY, TAG, Challenge, is_loopback_host
from bundles.oci.manifest import MAX_MANIFEST_SIZE
from bundles.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"
MANIFEST_ACCEPT: Final = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
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
_DRAIN_LIMIT: Final = 1 << 16  # unread body bytes worth reading to keep a connection

# distribution/reference grammar (reference/regexp.go): the registry part; the repository
# and tag grammar is shared (bundles.oci.distribution).
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_CONTENT_RANGE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_LINK_NEXT: Final = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class RegistryError(StellaError):
    """A registry could not be reached, refused a request, or served something unusable."""


class RegistryAuthError(RegistryError):
    """A registry asked for credentials that are missing, or refused the ones sent."""


class NotFoundError(RegistryError):
    """The registry does not have the requested manifest, tag or blob."""


class ImageReferenceError(UsageError):
    """An image reference is not of the form ``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]``."""


# ------------------------------------------------------------------------------ references


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference, normalized as docker does (``alpine`` is
    ``docker.io/library/alpine:latest``). ``tag`` and ``digest`` may both be set; the digest
    is then what is fetched and the tag is recorded alongside it."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse ``text``; errors quote it and say which part is wrong."""
        original = text
        if not text or text != text.strip():
            raise ImageReferenceError(
                f"image reference {original!r} is empty or has surrounding spaces",
                hint="write it as REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:HEX",
            )
        digest: Digest | None = None
        if "@" in text:
            text, _, digest_text = text.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except DigestError as e:
                raise ImageReferenceError(
                    f"image reference {original!r}: {e.message}", hint=e.hint
                ) from e
        tag: str | None = None
        last_slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > last_slash:
            text, tag = text[:colon], text[colon + 1 :]
            if not TAG.fullmatch(tag):
                raise ImageReferenceError(
                    f"image reference {original!r}: tag {tag!r} is not valid",
                    hint="a tag is up to 128 letters, digits, '_', '.' or '-', not starting "
                    "with '.' or '-'",
                )
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
            registry, repository = first, rest
        else:
            registry, repository = DOCKER_HUB, text
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if not _DOMAIN.fullmatch(registry):
            raise ImageReferenceError(
                f"image reference {original!r}: registry {registry!r} is not a host[:port]"
            )
        if not REPOSITORY.fullmatch(repository):
            raise ImageReferenceError(
                f"image reference {original!r}: repository {repository!r} is not valid",
                hint="repository names are lowercase letters and digits separated by "
                "'.', '_', '__', '-' or '/'",
            )
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def fetch_reference(self) -> str:
        """What goes after ``/manifests/``: the digest when known, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        assert self.tag is not None
        return self.tag


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


# ------------------------------------------------------------------------------ credentials


@dataclass(frozen=True, slots=True)
class Credentials:
    """A username and password (or identity token) for one registry, and where it came from."""

    username: str
    password: str = field(repr=False)
    source: str = "command line"


def default_docker_config() -> Path | None:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``, if the file exists."""
    base = os.environ.get("DOCKER_CONFIG")
    path = Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
    return path if path.is_file() else None


def _auth_keys(registry: str) -> tuple[str, ...]:
    if registry == DOCKER_HUB:
        return (
            "https://index.docker.io/v1/",
            "index.docker.io",
            "docker.io",
            DOCKER_HUB_API,
        )
    return (registry, f"https://{registry}", f"http://{registry}")


def load_docker_credentials(path: Path, registry: str) -> Credentials | None:
    """The credentials ``config.json`` holds for ``registry`` (``auths`` entries only), or None.

    Credential helpers (``credsStore``, ``credHelpers``) run external programs and are not
    used; an entry that needs one is reported so the user can write a plain ``auths`` entry.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RegistryAuthError(
            f"cannot read docker config {path}: {e}",
            hint="fix the file or point --docker-config at another one",
        ) from e
    auths = doc.get("auths") if isinstance(doc, dict) else None
    if not isinstance(auths, dict):
        auths = {}
    normalized = {k.rstrip("/"): v for k, v in auths.items() if isinstance(v, dict)}
    for key in _auth_keys(registry):
        entry = normalized.get(key.rstrip("/"))
        if entry is None:
            continue
        where = f"{path} auths[{key!r}]"
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, password = (
                    base64.b64decode(entry["auth"], validate=True).decode("utf-8").partition(":")
                )
            except (binascii.Error, UnicodeDecodeError) as e:
                raise RegistryAuthError(
                    f"{where}: field 'auth' is not base64 of user:password",
                    hint="run docker login again or rewrite the entry",
                ) from e
            if not sep:
                raise RegistryAuthError(f"{where}: field 'auth' has no ':' after the user name")
            return Credentials(user, password, where)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"], where)
        if isinstance(entry.get("identitytoken"), str):
            raise RegistryAuthError(
                f"{where} holds an identity token, which the mirror does not use",
                hint="add 'auth' (base64 user:password) to this entry",
            )
    helpers = doc.get("credHelpers") if isinstance(doc, dict) else None
    if isinstance(helpers, dict) and registry in helpers:
        raise RegistryAuthError(
            f"{path}: credentials for {registry} are kept by credential helper "
            f"{helpers[registry]!r}, which the mirror does not run",
            hint="add an 'auths' entry with 'auth' (base64 user:password) for this registry",
        )
    return None


# ------------------------------------------------------------------------------ options


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach registries: credentials file, CA bundle, which may use plain HTTP."""

    docker_config: Path | None = None
    ca_bundle: Path | None = None
    allow_http: frozenset[str] = frozenset()
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5

    def http_allowed(self, registry: str) -> bool:
        return is_loopback_host(registry) or registry in self.allow_http


@dataclass(frozen=True, slots=True)
class RegistryManifest:
    """A manifest exactly as the registry served it: bytes, media type, digest of the bytes."""

    raw: bytes
    media_type: str
    digest: Digest

    @property
    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, len(self.raw))

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


# ------------------------------------------------------------------------------ the client


class RegistryClient:
    """A pull client for one registry (host[:port]); it serves every repository there.

    Thread-safe for concurrent blob transfers: tokens are obtained under a lock and kept per
    repository scope, and urllib3's pools hand each thread its own connection (up to
    ``MAX_JOBS`` kept per host). ``sleep`` is injectable so tests do not wait for back-off.
    """

    def __init__(
        self,
        registry: str,
        options: RegistryOptions | None = None,
        *,
        credentials: Credentials | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.options = options or RegistryOptions()
        if credentials is None and self.options.docker_config is not None:
            credentials = load_docker_credentials(self.options.docker_config, registry)
        self.credentials = credentials
        self.user_agent = f"stella-mirror/{__version__}"
        self.sleep = sleep
        self._host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self._base: str | None = None
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._pools: dict[str, urllib3.PoolManager] = {}  # by proxy URL, "" for direct
        self._pools_lock = threading.Lock()

    def close(self) -> None:
        with self._pools_lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.clear()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------

    @property
    def _timeout(self) -> urllib3.Timeout:
        return urllib3.Timeout(connect=min(15.0, self.options.timeout), read=self.options.timeout)

    def _ca_certs(self) -> str | None:
        """``--ca-bundle`` if given; else certifi's bundle, which requests verified with,
        when it is installed; else None, for the system's trust store."""
        if self.options.ca_bundle is not None:
            return str(self.options.ca_bundle)
        try:
            import certifi
        except ImportError:
            return None
        return str(certifi.where())

    def _pool(self, url: str) -> urllib3.PoolManager:
        """The connection pools for ``url``: direct, or through the environment's proxy."""
        proxy = proxy_for(url)
        key = proxy or ""
        with self._pools_lock:
            pool = self._pools.get(key)
            if pool is not None:
                return pool
            settings: dict[str, Any] = {
                "maxsize": MAX_JOBS,
                "ca_certs": self._ca_certs(),
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

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], *, decode: bool = True
    ) -> urllib3.BaseHTTPResponse:
        """One request, redirects followed; the body is left unread (``preload_content``
        off). ``decode`` off keeps the body as the registry sent it (blobs). The response's
        ``url`` is the last hop's. Raises urllib3's (and the OS's) exceptions.

        Redirects are followed here rather than by urllib3 so that each hop gets its own
        proxy decision (a registry's storage may be on the other side of the proxy), and so
        that the cross-origin rule is urllib3's (scheme, host and port; see
        ``Retry.remove_headers_on_redirect``) also through a proxy, where urllib3 compares
        with the proxy's pool instead of the registry's.
        """
        sent = {"User-Agent": self.user_agent, **headers}
        for _hop in range(MAX_REDIRECTS + 1):
            resp = self._pool(url).urlopen(
                method,
                url,
                headers=sent,
                redirect=False,
                preload_content=False,
                decode_content=decode,
            )
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECT_STATUSES or not location:
                resp.url = url
                return resp
            _release(resp)
            target = urljoin(url, location)
            if urlsplit(target).scheme not in ("http", "https"):
                raise RegistryError(
                    f"registry {self.registry} redirected {method} {url} to {target!r}, "
                    "which is not an http(s) URL"
                )
            if _origin(target) != _origin(url):
                sent = {k: v for k, v in sent.items() if k.lower() not in _CROSS_ORIGIN_DROP}
            if resp.status == 303 and method != "HEAD":
                method = "GET"
            url = target
        raise RegistryError(
            f"registry {self.registry}: over {MAX_REDIRECTS} redirects, the last to {url}",
            hint="the registry or its storage is misconfigured (a redirect loop)",
        )

    # -- base URL ---------------------------------------------------------------------------

    def base_url(self) -> str:
        """``https://host`` or, for a loopback or explicitly allowed registry whose TLS
        handshake fails, ``http://host``. Decided once, by ``GET /v2/``.

        A loopback registry is asked over plain HTTP first (its traffic never leaves the
        host, and a failed TLS handshake costs more than the rest of a small copy); only an
        answer that is a registry's (the distribution API header, or 200/401/403) is taken."""
        with self._lock:
            if self._base is not None:
                return self._base
            loopback = is_loopback_host(self.registry)
            if loopback and self._speaks_plain_http():
                self._base = f"http://{self._host}"
                return self._base
            https = f"https://{self._host}"
            try:
                _release(self._send("GET", f"{https}/v2/", {}))
                self._base = https
            except _NETWORK as e:
                if _is_tls_failure(e):
                    # a loopback registry has already been asked over plain HTTP
                    if loopback or not self.options.http_allowed(self.registry):
                        raise RegistryError(
                            f"TLS with registry {self.registry} failed: {_brief(e)}",
                            hint="pass --ca-bundle FILE with the registry's CA certificate",
                        ) from e
                elif not _is_connection_failure(e) or not self.options.http_allowed(self.registry):
                    raise RegistryError(
                        f"cannot reach registry {self.registry}: {_brief(e)}",
                        hint="check the registry name and the network",
                    ) from e
                self._base = f"http://{self._host}"
            return self._base

    def _speaks_plain_http(self) -> bool:
        try:
            response = self._send("GET", f"http://{self._host}/v2/", {})
        except _NETWORK:
            return False
        try:
            return bool(
                response.headers.get("Docker-Distribution-API-Version")
                or response.status in (200, 401, 403)
            )
        finally:
            _release(response)

    # -- authentication ---------------------------------------------------------------------

    def _auth_header(self, repository: str) -> str | None:
        token = self._tokens.get(repository)
        if token is not None:
            return f"Bearer {token}"
        if self._basic and self.credentials is not None:
            return _basic_auth(self.credentials)
        return None

    def _authenticate(
        self, response: urllib3.BaseHTTPResponse, repository: str, retried: bool
    ) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        challenge = Challenge.parse(header)
        creds = self.credentials
        if retried or not header:
            if creds is None:
                raise RegistryAuthError(
                    f"registry {self.registry} requires credentials for {repository} and none "
                    "were found",
                    hint="add an 'auths' entry for this registry to the docker config "
                    "(--docker-config FILE)",
                )
            raise RegistryAuthError(
                f"registry {self.registry} refused the credentials of user "
                f"{creds.username!r} from {creds.source} for {repository} (HTTP 401)",
                hint="check the user name and password, or log in again",
            )
        if challenge.scheme == "basic":
            if creds is None:
                raise RegistryAuthError(
                    f"registry {self.registry} requires a user name and password (Basic) "
                    f"for {repository} and none were found",
                    hint="add an 'auths' entry for this registry to the docker config "
                    "(--docker-config FILE)",
                )
            with self._lock:
                self._basic = True
            return
        if challenge.scheme == "bearer":
            self._fetch_token(challenge, repository)
            return
        raise RegistryAuthError(
            f"registry {self.registry} asks for authentication scheme "
            f"{challenge.scheme or header!r}, which is not supported",
            hint="only Basic and Bearer (token) authentication are supported",
        )

    def _fetch_token(self, challenge: Challenge, repository: str) -> None:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryAuthError(
                f"registry {self.registry} sent a Bearer challenge without a realm",
                hint="the registry's token authentication is misconfigured",
            )
        realm_parts = urlsplit(realm)
        realm_host = realm_parts.netloc.rpartition("@")[2]
        if realm_parts.scheme == "http" and not self.options.http_allowed(realm_host):
            raise RegistryAuthError(
                f"registry {self.registry} sends tokens from plain-HTTP realm {realm}",
                hint="credentials are only sent over HTTPS, or to loopback or --allow-http hosts",
            )
        if realm_parts.scheme not in ("http", "https"):
            raise RegistryAuthError(f"registry {self.registry}: token realm {realm!r} is not a URL")
        params = {"scope": challenge.params.get("scope") or f"repository:{repository}:pull"}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        headers = {}
        if self.credentials is not None:
            headers["Authorization"] = _basic_auth(self.credentials)
        url = f"{realm}{'&' if realm_parts.query else '?'}{urlencode(params)}"
        try:
            resp = self._send("GET", url, headers)
        except _NETWORK as e:
            raise RegistryAuthError(
                f"cannot get a token for {self.registry}/{repository} from {realm}: {_brief(e)}"
            ) from e
        with _holding(resp):
            if resp.status in (401, 403):
                if self.credentials is None:
                    raise RegistryAuthError(
                        f"token server {realm} refused anonymous access to "
                        f"{self.registry}/{repository} (HTTP {resp.status})",
                        hint="add an 'auths' entry for this registry to the docker config "
                        "(--docker-config FILE)",
                    )
                raise RegistryAuthError(
                    f"token server {realm} refused the credentials of user "
                    f"{self.credentials.username!r} from {self.credentials.source} "
                    f"(HTTP {resp.status})",
                    hint="check the user name and password, or log in again",
                )
            if resp.status != 200:
                raise RegistryAuthError(
                    f"token server {realm} answered HTTP {resp.status} for "
                    f"{self.registry}/{repository}"
                )
            body = _read_limited(resp, 1 << 20, f"the answer of token server {realm}")
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise RegistryAuthError(f"token server {realm} answered with non-JSON") from e
        token = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(f"token server {realm} answered without a token")
        with self._lock:
            self._tokens[repository] = token

    # -- requests ---------------------------------------------------------------------------

    def _request(
        self,
        path: str,
        repository: str,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        decode: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """One authenticated request, retried on connection errors, 429 and 5xx. The body
        is left to the caller, who releases the response (``_release``)."""
        url = path if path.startswith(("http://", "https://")) else self.base_url() + path
        attempt = 0
        retried_auth = False
        while True:
            sent = dict(headers or {})
            auth = self._auth_header(repository)
            if auth is not None:
                sent["Authorization"] = auth
            try:
                resp = self._send(method, url, sent, decode=decode)
            except _NETWORK as e:
                attempt += 1
                if attempt > self.options.retries:
                    raise RegistryError(
                        f"cannot reach registry {self.registry} ({method} {url}): {_brief(e)}",
                        hint="check the network and try again",
                    ) from e
                self.sleep(self.options.backoff * 2 ** (attempt - 1))
                continue
            if resp.status == 401:
                _release(resp)
                self._authenticate(resp, repository, retried_auth)
                retried_auth = True
                continue
            if resp.status == 429 or resp.status >= 500:
                _release(resp)
                attempt += 1
                if attempt > self.options.retries:
                    raise RegistryError(
                        f"registry {self.registry} answered HTTP {resp.status} to "
                        f"{method} {url} (gave up after {attempt} attempts)",
                        hint="the registry is overloaded or failing; try again later",
                    )
                self.sleep(self.options.backoff * 2 ** (attempt - 1))
                continue
            if resp.status == 403:
                _release(resp)
                raise RegistryAuthError(
                    f"registry {self.registry} denied access to {repository} (HTTP 403)",
                    hint="the account lacks pull permission on this repository",
                )
            return resp

    # -- manifests --------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, reference: str, *, expected: Descriptor | None = None
    ) -> RegistryManifest:
        """Fetch a manifest by tag or digest, byte for byte.

        The digest is computed from the bytes received; by-digest requests (and
        ``expected``) must match it, and a ``Docker-Content-Digest`` header must agree.
        """
        resp = self._request(
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        separator = "@" if reference.startswith("sha256:") else ":"
        where = f"{self.registry}/{repository}{separator}{reference}"
        with _holding(resp):
            if resp.status == 404:
                raise NotFoundError(
                    f"registry has no manifest {where}",
                    hint="check the repository and tag (or digest)",
                )
            if resp.status != 200:
                raise RegistryError(f"registry answered HTTP {resp.status} for manifest {where}")
            raw = _read_limited(resp, MAX_MANIFEST_SIZE, f"manifest {where}")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            header_digest = resp.headers.get("Docker-Content-Digest")
        digest = Digest.of_bytes(raw)
        wanted: list[tuple[str, str]] = []
        if reference.startswith("sha256:"):
            wanted.append(("the requested digest", reference))
        if expected is not None:
            wanted.append(("its descriptor", str(expected.digest)))
        if header_digest:
            wanted.append(("Docker-Content-Digest", header_digest))
        for what, value in wanted:
            if value != str(digest):
                raise RegistryError(
                    f"manifest {where} from the registry hashes to {digest}, but {what} says "
                    f"{value}",
                    hint="the registry or something between it and the mirror altered the "
                    "manifest; nothing was stored",
                )
        if expected is not None and expected.size != len(raw):
            raise RegistryError(
                f"manifest {where} is {len(raw)} bytes, its descriptor says {expected.size}"
            )
        media_type = self._manifest_type(raw, content_type, expected, where)
        return RegistryManifest(raw=raw, media_type=media_type, digest=digest)

    def _manifest_type(
        self, raw: bytes, content_type: str, expected: Descriptor | None, where: str
    ) -> str:
        known = MANIFEST_TYPES | INDEX_TYPES
        media_type = expected.media_type if expected is not None else None
        if media_type is None and content_type in known:
            media_type = content_type
        try:
            parsed = parse_manifest(raw, media_type, source=f"manifest {where}")
        except ManifestError as e:
            raise RegistryError(
                e.message,
                hint="only Docker schema 2 and OCI manifests and indexes can be mirrored",
            ) from e
        return parsed.media_type

    def manifest_digest(self, repository: str, tag: str) -> Digest | None:
        """The digest a tag points at (``HEAD``), or None when the tag does not exist."""
        resp = self._request(
            f"/v2/{repository}/manifests/{tag}",
            repository,
            headers={"Accept": MANIFEST_ACCEPT},
            method="HEAD",
        )
        with _holding(resp):
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise RegistryError(
                    f"registry answered HTTP {resp.status} for HEAD of "
                    f"{self.registry}/{repository}:{tag}"
                )
            header = resp.headers.get("Docker-Content-Digest")
        if header:
            try:
                return Digest.parse(header)
            except DigestError:
                pass
        return self.get_manifest(repository, tag).digest

    def find_manifest(self, repository: str, tag: str) -> RegistryManifest | None:
        """The manifest a tag points at, or None when the tag does not exist."""
        try:
            return self.get_manifest(repository, tag)
        except NotFoundError:
            return None

    # -- referrers --------------------------------------------------------------------------

    def referrers(self, repository: str, subject: Digest) -> list[Descriptor] | None:
        """The referrers API's answer for ``subject`` (all pages), or None when the registry
        has no referrers API (it answers 404, the signal to use the fallback tag)."""
        url = f"/v2/{repository}/referrers/{subject}"
        found: list[Descriptor] = []
        pages = 0
        while url:
            pages += 1
            if pages > 100:
                raise RegistryError(
                    f"referrers of {self.registry}/{repository}@{subject} span over 100 pages"
                )
            resp = self._request(url, repository, headers={"Accept": OCI_INDEX})
            with _holding(resp):
                if resp.status in (404, 405) and pages == 1:
                    return None
                if resp.status != 200:
                    raise RegistryError(
                        f"registry answered HTTP {resp.status} to the referrers of "
                        f"{self.registry}/{repository}@{subject}"
                    )
                raw = _read_limited(resp, MAX_MANIFEST_SIZE, f"referrers of {subject}")
                link = resp.headers.get("Link", "")
                current = resp.url or url
            try:
                index = parse_manifest(raw, OCI_INDEX, source=f"referrers of {subject}")
            except ManifestError as e:
                raise RegistryError(e.message, hint="the registry's referrers API is broken") from e
            found.extend(index.children())
            m = _LINK_NEXT.search(link)
            url = urljoin(current, m.group(1)) if m else ""
        return found

    # -- blobs ------------------------------------------------------------------------------

    def open_blob(self, repository: str, descriptor: Descriptor) -> BlobStream:
        """A stream of the blob's bytes that resumes with ``Range`` when the connection
        breaks. It does not verify: hand it to ``OCILayout.put_blob`` with the digest."""
        return BlobStream(self, repository, descriptor)

    def read_blob(self, repository: str, descriptor: Descriptor, *, limit: int) -> bytes:
        """A small blob (a config), read whole and verified against its descriptor."""
        if descriptor.size > limit:
            raise RegistryError(
                f"blob {descriptor.digest} in {self.registry}/{repository} is "
                f"{descriptor.size} bytes, over the limit of {limit}"
            )
        stream = self.open_blob(repository, descriptor)
        parts: list[bytes] = []
        try:
            while chunk := stream.read(CHUNK):
                parts.append(chunk)
                if sum(map(len, parts)) > descriptor.size:
                    break
        finally:
            stream.close()
        data = b"".join(parts)
        actual = Digest.of_bytes(data)
        if actual != descriptor.digest or len(data) != descriptor.size:
            raise RegistryError(
                f"blob {descriptor.digest} served by {self.registry}/{repository} hashes to "
                f"{actual} ({len(data)} bytes)",
                hint="the registry served corrupt data; nothing was stored",
            )
        return data


_BROKEN: Final = (
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


class BlobStream:
    """Reads one blob from a registry, reopening at the current offset with ``Range`` when
    the connection breaks or ends early. Anything it yields is still to be verified by the
    consumer (the layout hashes while writing)."""

    def __init__(self, client: RegistryClient, repository: str, descriptor: Descriptor) -> None:
        self.client = client
        self.repository = repository
        self.descriptor = descriptor
        self.offset = 0
        self.resumes = 0
        self._resp: urllib3.BaseHTTPResponse | None = None
        self._where = f"blob {descriptor.digest} of {client.registry}/{repository}"

    def _open(self) -> None:
        headers = {"Accept-Encoding": "identity"}
        if self.offset:
            headers["Range"] = f"bytes={self.offset}-"
        resp = self.client._request(
            f"/v2/{self.repository}/blobs/{self.descriptor.digest}",
            self.repository,
            headers=headers,
            decode=False,
        )
        if resp.status == 404:
            _release(resp)
            raise NotFoundError(
                f"registry has no {self._where}",
                hint="the image is incomplete in the registry",
            )
        if resp.status == 206:
            m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", ""))
            if m is None or int(m.group(1)) != self.offset:
                _release(resp)
                raise RegistryError(
                    f"{self._where}: resumed at byte {self.offset} but the registry sent "
                    f"Content-Range {resp.headers.get('Content-Range')!r}"
                )
        elif resp.status == 200:
            skip = self.offset
            while skip:  # the server ignored Range: drop what was already received
                try:
                    chunk = resp.read(min(skip, CHUNK), decode_content=False)
                except _BROKEN:
                    _release(resp)
                    raise
                if not chunk:
                    _release(resp)
                    raise RegistryError(f"{self._where}: ended before byte {self.offset}")
                skip -= len(chunk)
        else:
            _release(resp)
            raise RegistryError(f"registry answered HTTP {resp.status} for {self._where}")
        self._resp = resp

    def _resume(self, cause: BaseException | None) -> None:
        self.close()
        self.resumes += 1
        if self.resumes > max(self.client.options.retries, 1) * 2:
            raise RegistryError(
                f"{self._where}: the transfer broke {self.resumes} times, last at byte "
                f"{self.offset} of {self.descriptor.size}"
                + (f" ({_brief(cause)})" if cause is not None else ""),
                hint="check the network and run the command again; verified blobs are kept",
            )
        self.client.sleep(self.client.options.backoff * 2 ** (self.resumes - 1))

    def read(self, n: int = -1) -> bytes:
        size = n if n > 0 else CHUNK
        while True:
            if self._resp is None:
                if self.offset >= self.descriptor.size and self.offset > 0:
                    return b""
                self._open()
            assert self._resp is not None
            try:
                chunk = self._resp.read(size, decode_content=False)
            except _BROKEN as e:
                self._resume(e)
                continue
            if not chunk:
                if self.offset < self.descriptor.size:
                    self._resume(None)
                    continue
                self.close()
                return b""
            self.offset += len(chunk)
            return bytes(chunk)

    def close(self) -> None:
        if self._resp is not None:
            _release(self._resp)
            self._resp = None


def _read_limited(resp: urllib3.BaseHTTPResponse, limit: int, what: str) -> bytes:
    parts: list[bytes] = []
    total = 0
    try:
        for chunk in resp.stream(CHUNK):
            total += len(chunk)
            if total > limit:
                raise RegistryError(f"{what} is over the size limit of {limit} bytes")
            parts.append(chunk)
    except _NETWORK as e:
        raise RegistryError(f"{what}: the transfer broke: {_brief(e)}") from e
    return b"".join(parts)


def _release(resp: urllib3.BaseHTTPResponse) -> None:
    """Hand the response's connection back to its pool. A small unread rest of the body is
    read so the connection can be reused; a large one (a blob left half-read) is not worth
    reading, and the connection is closed instead."""
    left = resp.length_remaining
    if left is not None and left <= _DRAIN_LIMIT:
        resp.drain_conn()  # a body read to its end gives the connection back by itself
    resp.close()  # closes the connection if it is still held: unread bytes remain
    resp.release_conn()


@contextlib.contextmanager
def _holding(resp: urllib3.BaseHTTPResponse) -> Iterator[urllib3.BaseHTTPResponse]:
    try:
        yield resp
    finally:
        _release(resp)


def _basic_auth(credentials: Credentials) -> str:
    """An HTTP Basic ``Authorization`` value (UTF-8, as docker sends it)."""
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


_NETWORK: Final = (urllib3.exceptions.HTTPError, OSError)


def _is_tls_failure(e: BaseException) -> bool:
    """A TLS handshake or certificate failure (what requests raised as ``SSLError``)."""
    reason = e.reason if isinstance(e, MaxRetryError) else e
    return isinstance(reason, urllib3.exceptions.SSLError)


def _is_connection_failure(e: BaseException) -> bool:
    """No connection was made or it was dropped before an answer (what requests raised as
    ``ConnectionError``): not a read timeout or a malformed URL or answer."""
    if isinstance(e, MaxRetryError):
        return not isinstance(e.reason, ResponseError)
    if isinstance(e, ProtocolError | ClosedPoolError | ProxyError):
        return True
    return isinstance(e, OSError) and not isinstance(e, urllib3.exceptions.HTTPError)


def _brief(e: BaseException | None) -> str:
    """A foreign exception as a short phrase (urllib3 nests long reprs)."""
    if e is None:
        return "connection ended early"
    text = str(e)
    m = re.search(r"\(Caused by (\w+)\(", text)
    if m:
        return m.group(1)
    return f"{type(e).__name__}: {text[:160]}" if text else type(e).__name__
