"""The registry client: the distribution API for one registry, both directions.

Reading (``stella-mirror images add``): manifests (Docker schema 2 and OCI, kept as the exact
bytes the registry served), blobs (streamed, resumed with ``Range`` when a connection breaks),
tags and the referrers API. Writing (``stella push``): the ``/v2/`` ping, blob existence checks
and monolithic uploads streamed from the store, manifest PUT (returning the ``OCI-Subject``
answer that says whether the registry keeps a referrers index).

It authenticates anonymously, with HTTP Basic, or with a bearer token obtained from the
``WWW-Authenticate`` challenge's realm. TLS is verified (optionally against a CA bundle); plain
HTTP is used only for loopback registries or registries the caller explicitly allows, as docker
does for "insecure registries": HTTPS first, HTTP when the TLS handshake fails (unless the
options fix the scheme).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, Final, Literal, Self, cast
from urllib.parse import urlencode, urljoin, urlsplit

import urllib3

from bundles import __version__
from bundles.digest import Digest
from bundles.distribution.blobs import BlobStream, UploadBody
from bundles.distribution.credentials import (
    Challenge,
    Credentials,
    basic_auth,
    load_docker_credentials,
)
from bundles.distribution.errors import NotFoundError, RegistryAuthError, RegistryError
from bundles.distribution.reference import DOCKER_HUB, DOCKER_HUB_API, is_loopback_host
from bundles.distribution.transport import (
    CHUNK,
    NETWORK,
    Rewindable,
    Transport,
    brief,
    holding,
    is_connection_failure,
    is_tls_failure,
    read_limited,
    read_some,
    release,
)
from bundles.errors import DigestError
from bundles.oci import Descriptor, ManifestError, OCILayout, parse_manifest
from bundles.oci.manifest import MAX_MANIFEST_SIZE
from bundles.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

ERROR_BODY_LIMIT: Final = 64 << 10  # an error answer's body is read only this far
MANIFEST_ACCEPT: Final = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
_LINK_NEXT: Final = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


@dataclass(frozen=True, slots=True)
class RegistryOptions:
    """How to reach registries: credentials file, CA bundle, which may use plain HTTP.

    ``scheme`` fixes ``http`` or ``https`` instead of asking the registry (``stella push``
    knows which it wants); ``proxies`` off ignores the proxy environment (the enclave's
    registry is reached directly); ``retries`` counts attempts after the first for connection
    errors, 429 and 5xx."""

    docker_config: Path | None = None
    ca_bundle: Path | None = None
    allow_http: frozenset[str] = frozenset()
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5
    scheme: Literal["http", "https"] | None = None
    proxies: bool = True

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


@dataclass(frozen=True, slots=True)
class PushedManifest:
    """The registry's answer to a manifest PUT."""

    digest: Digest
    subject: Digest | None  # the OCI-Subject header: the registry indexed the referrer


@dataclass(frozen=True, slots=True)
class Reply:
    """A registry's answer whose body was read whole (``_call``)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    body: bytes


@dataclass(frozen=True, slots=True)
class Advice:
    """What each side tells its user when a registry wants credentials: the two command lines
    take them differently (a docker config file; ``--user`` and ``--password-env``)."""

    missing: str  # the registry needs credentials and none were given
    refused: str  # the credentials given were refused


# ------------------------------------------------------------------------------ the client


class RegistryClient:
    """A client for one registry (host[:port]); it serves every repository there. Each side
    subclasses it to name itself (``user_agent``), say what it asks tokens for (``actions``)
    and how its user gives credentials (``advice``).

    Thread-safe for concurrent blob transfers: tokens are obtained under a lock and kept per
    repository scope, and urllib3's pools hand each thread its own connection (up to
    ``MAX_JOBS`` kept per host). ``sleep`` is injectable so tests do not wait for back-off.
    """

    user_agent: ClassVar[str] = f"stella/{__version__}"
    actions: ClassVar[str] = "pull"  # what a token is asked for: "pull" or "pull,push"
    advice: ClassVar[Advice] = Advice(
        missing="give the registry's user name and password",
        refused="check the user name and password",
    )

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
        self.sleep = sleep
        self._transport = Transport(
            registry,
            timeout=self.options.timeout,
            ca_certs=self._ca_certs(),
            user_agent=self.user_agent,
            proxies=self.options.proxies,
        )
        self._host = DOCKER_HUB_API if registry == DOCKER_HUB else registry
        self._base: str | None = None
        self._lock = threading.Lock()
        self._tokens: dict[str, str] = {}
        self._basic = False

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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

    # -- base URL ---------------------------------------------------------------------------

    def base_url(self) -> str:
        """``https://host`` or, for a loopback or explicitly allowed registry whose TLS
        handshake fails, ``http://host``. Decided once, by ``GET /v2/``.

        A loopback registry is asked over plain HTTP first (its traffic never leaves the
        host, and a failed TLS handshake costs more than the rest of a small copy); only an
        answer that is a registry's (the distribution API header, or 200/401/403) is taken.
        A ``scheme`` in the options is taken as it is, without asking."""
        with self._lock:
            if self._base is not None:
                return self._base
            if self.options.scheme is not None:
                self._base = f"{self.options.scheme}://{self._host}"
                return self._base
            loopback = is_loopback_host(self.registry)
            if loopback and self._speaks_plain_http():
                self._base = f"http://{self._host}"
                return self._base
            https = f"https://{self._host}"
            try:
                release(self._transport.send("GET", f"{https}/v2/", {}))
                self._base = https
            except NETWORK as e:
                if is_tls_failure(e):
                    # a loopback registry has already been asked over plain HTTP
                    if loopback or not self.options.http_allowed(self.registry):
                        raise RegistryError(
                            f"TLS with registry {self.registry} failed: {brief(e)}",
                            hint="pass --ca-bundle FILE with the registry's CA certificate",
                        ) from e
                elif not is_connection_failure(e) or not self.options.http_allowed(self.registry):
                    raise RegistryError(
                        f"cannot reach registry {self.registry}: {brief(e)}",
                        hint="check the registry name and the network",
                    ) from e
                self._base = f"http://{self._host}"
            return self._base

    def _speaks_plain_http(self) -> bool:
        try:
            response = self._transport.send("GET", f"http://{self._host}/v2/", {})
        except NETWORK:
            return False
        try:
            return bool(
                response.headers.get("Docker-Distribution-API-Version")
                or response.status in (200, 401, 403)
            )
        finally:
            release(response)

    # -- authentication ---------------------------------------------------------------------

    def _auth_header(self, repository: str) -> str | None:
        token = self._tokens.get(repository)
        if token is not None:
            return f"Bearer {token}"
        if self._basic and self.credentials is not None:
            return basic_auth(self.credentials)
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
                    hint=self.advice.missing,
                )
            raise RegistryAuthError(
                f"registry {self.registry} refused the credentials of {creds.described} "
                f"for {repository} (HTTP 401)",
                hint=self.advice.refused,
            )
        if challenge.scheme == "basic":
            if creds is None:
                raise RegistryAuthError(
                    f"registry {self.registry} requires a user name and password (Basic) "
                    f"for {repository} and none were found",
                    hint=self.advice.missing,
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
                hint="credentials are only sent over HTTPS, or to loopback hosts and hosts "
                "allowed plain HTTP",
            )
        if realm_parts.scheme not in ("http", "https"):
            raise RegistryAuthError(f"registry {self.registry}: token realm {realm!r} is not a URL")
        # A pull asks for the scope the challenge names; a push asks for pull and push at
        # once, so that one token serves the whole upload (a HEAD's challenge names pull).
        named = challenge.params.get("scope") if self.actions == "pull" else None
        params = {"scope": named or f"repository:{repository}:{self.actions}"}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        headers = {}
        if self.credentials is not None:
            headers["Authorization"] = basic_auth(self.credentials)
        url = f"{realm}{'&' if realm_parts.query else '?'}{urlencode(params)}"
        try:
            resp = self._transport.send("GET", url, headers)
        except NETWORK as e:
            raise RegistryAuthError(
                f"cannot get a token for {self.registry}/{repository} from {realm}: {brief(e)}"
            ) from e
        with holding(resp):
            if resp.status in (401, 403):
                if self.credentials is None:
                    raise RegistryAuthError(
                        f"token server {realm} refused anonymous access to "
                        f"{self.registry}/{repository} (HTTP {resp.status})",
                        hint=self.advice.missing,
                    )
                raise RegistryAuthError(
                    f"token server {realm} refused the credentials of "
                    f"{self.credentials.described} (HTTP {resp.status})",
                    hint=self.advice.refused,
                )
            if resp.status != 200:
                raise RegistryAuthError(
                    f"token server {realm} answered HTTP {resp.status} for "
                    f"{self.registry}/{repository}"
                )
            body = read_limited(resp, 1 << 20, f"the answer of token server {realm}")
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
        body: bytes | Rewindable | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """One authenticated request, retried on connection errors, 429 and 5xx; a request
        ``body`` is sent again from its start. The answer's body is left to the caller, who
        releases the response (``release``)."""
        url = path if path.startswith(("http://", "https://")) else self.base_url() + path
        attempt = 0
        retried_auth = False
        while True:
            sent = dict(headers or {})
            auth = self._auth_header(repository)
            if auth is not None:
                sent["Authorization"] = auth
            if (attempt or retried_auth) and body is not None and not isinstance(body, bytes):
                body.seek(0)
            try:
                resp = self._transport.send(method, url, sent, decode=decode, body=body)
            except NETWORK as e:
                attempt += 1
                if is_tls_failure(e):
                    raise RegistryError(
                        f"TLS with registry {self.registry} failed: {brief(e)}",
                        hint="pass --ca-bundle FILE with the registry's CA certificate",
                    ) from e
                if attempt > self.options.retries:
                    raise RegistryError(
                        f"cannot reach registry {self.registry} ({method} {url}): {brief(e)}",
                        hint="check the network and try again",
                    ) from e
                self.sleep(self.options.backoff * 2 ** (attempt - 1))
                continue
            if resp.status == 401:
                release(resp)
                self._authenticate(resp, repository, retried_auth)
                retried_auth = True
                continue
            if resp.status == 429 or resp.status >= 500:
                attempt += 1
                if attempt > self.options.retries:
                    detail = self._error_detail(resp, url)
                    tries = f" (gave up after {attempt} attempts)" if attempt > 1 else ""
                    raise RegistryError(
                        f"registry {self.registry} answered HTTP {resp.status} to "
                        f"{method} {url}: {detail}{tries}",
                        hint="the registry is overloaded or failing; try again later",
                    )
                release(resp)
                self.sleep(self.options.backoff * 2 ** (attempt - 1))
                continue
            if resp.status == 403:
                release(resp)
                wanted = "pull" if method in ("GET", "HEAD") else "push"
                raise RegistryAuthError(
                    f"registry {self.registry} denied {method} on {repository} (HTTP 403)",
                    hint=f"the account lacks {wanted} permission on this repository",
                )
            return resp

    def _error_detail(self, resp: urllib3.BaseHTTPResponse, url: str) -> str:
        """The registry's own words for a failure: the first of the distribution API's
        ``errors`` (``CODE: message``), else the start of the body, else the reason phrase.
        The response is released."""
        with holding(resp):
            body, _ = read_some(resp, ERROR_BODY_LIMIT, f"the answer of {urlsplit(url).netloc}")
        try:
            doc = json.loads(body)
            errors = doc.get("errors") if isinstance(doc, dict) else None
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                first = errors[0]
                return f"{first.get('code', '?')}: {first.get('message', '')}".strip()
        except ValueError:
            pass
        text = body[:200].decode("utf-8", "replace").strip()
        return " ".join(text.split()) or resp.reason or "no detail"

    def _call(
        self,
        method: str,
        path: str,
        repository: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | Rewindable | None = None,
        ok: tuple[int, ...] = (200,),
        limit: int = ERROR_BODY_LIMIT,
    ) -> Reply:
        """A request whose answer must have a status in ``ok``; its body is read whole up
        to ``limit`` bytes (a longer one is refused). Any other status raises naming the
        request and the registry's error."""
        resp = self._request(path, repository, headers=headers, method=method, body=body)
        url = resp.url or path
        if resp.status not in ok:
            detail = self._error_detail(resp, url)
            raise RegistryError(
                f"registry {self.registry} answered HTTP {resp.status} to {method} "
                f"{urlsplit(url).path}: {detail}"
            )
        with holding(resp):
            what = f"registry {self.registry}: its answer to {method} {urlsplit(url).path}"
            data = read_limited(resp, limit, what)
            return Reply(resp.status, resp.headers, data)

    # -- manifests --------------------------------------------------------------------------

    def get_manifest(
        self, repository: str, reference: str, *, expected: Descriptor | None = None
    ) -> RegistryManifest:
        """Fetch a manifest by tag or digest, byte for byte.

        The digest is computed from the bytes received; by-digest requests (and
        ``expected``) must match it, and a ``Docker-Content-Digest`` header must agree.
        """
        raw, content_type, digest, where = self._read_manifest(repository, reference, expected)
        media_type = self._manifest_type(raw, content_type, expected, where)
        return RegistryManifest(raw=raw, media_type=media_type, digest=digest)

    def find_manifest_bytes(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        """A manifest's exact bytes and the media type the registry named, checked against
        its digest as :meth:`get_manifest` does but not parsed, or None when the registry has
        none (the referrers fallback index is read this way; its reader judges its content)."""
        try:
            raw, content_type, _, _ = self._read_manifest(repository, reference, None)
        except NotFoundError:
            return None
        return raw, content_type

    def _read_manifest(
        self, repository: str, reference: str, expected: Descriptor | None
    ) -> tuple[bytes, str, Digest, str]:
        """Bytes, Content-Type, digest and a name for messages of a manifest, verified."""
        resp = self._request(
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Accept": MANIFEST_ACCEPT},
        )
        separator = "@" if reference.startswith("sha256:") else ":"
        where = f"{self.registry}/{repository}{separator}{reference}"
        with holding(resp):
            if resp.status == 404:
                raise NotFoundError(
                    f"registry has no manifest {where}",
                    hint="check the repository and tag (or digest)",
                )
            if resp.status != 200:
                raise RegistryError(f"registry answered HTTP {resp.status} for manifest {where}")
            raw = read_limited(resp, MAX_MANIFEST_SIZE, f"manifest {where}")
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
                    hint="the registry or something between it and this machine altered the "
                    "manifest; nothing was stored",
                )
        if expected is not None and expected.size != len(raw):
            raise RegistryError(
                f"manifest {where} is {len(raw)} bytes, its descriptor says {expected.size}"
            )
        return raw, content_type, digest, where

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
        with holding(resp):
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
            with holding(resp):
                if resp.status in (404, 405) and pages == 1:
                    return None
                if resp.status != 200:
                    raise RegistryError(
                        f"registry answered HTTP {resp.status} to the referrers of "
                        f"{self.registry}/{repository}@{subject}"
                    )
                raw = read_limited(resp, MAX_MANIFEST_SIZE, f"referrers of {subject}")
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

    def copy_blob(self, repository: str, descriptor: Descriptor, layout: OCILayout) -> None:
        """Stream the blob into ``layout``, which verifies it by the descriptor's digest and
        size (raising :class:`~bundles.errors.DigestError` or
        :class:`~bundles.limits.SizeLimitError`, for the caller to name, when it does not
        match) and stores nothing it refuses."""
        stream = self.open_blob(repository, descriptor)
        try:
            layout.put_blob(
                cast(BinaryIO, stream),
                expected=descriptor.digest,
                size=descriptor.size,
                media_type=descriptor.media_type,
            )
        finally:
            stream.close()

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

    # -- pushing ----------------------------------------------------------------------------

    def ping(self, repository: str) -> None:
        """``GET /v2/``: reachable, speaks the distribution API, and the credentials work
        (for ``repository``'s token scope)."""
        self._call("GET", "/v2/", repository)

    def has_blob(self, repository: str, digest: Digest) -> bool:
        reply = self._call("HEAD", f"/v2/{repository}/blobs/{digest}", repository, ok=(200, 404))
        return reply.status == 200

    def upload_blob(
        self,
        repository: str,
        digest: Digest,
        size: int,
        stream: BinaryIO,
        *,
        reopen: Callable[[], BinaryIO] | None = None,
    ) -> None:
        """POST an upload session, then PUT the whole blob streamed (monolithic) from the
        stream's current position. A PUT sent again (after a 401) starts there again: a
        seekable stream is sought back, another one is opened again with ``reopen``."""
        start = self._call(
            "POST", f"/v2/{repository}/blobs/uploads/", repository, ok=(202,), body=b""
        )
        location = start.headers.get("Location")
        if not location:
            raise RegistryError(
                f"registry {self.registry} started an upload for {repository} without a Location"
            )
        url = urljoin(self.base_url() + "/", location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": str(digest)})
        body = UploadBody(stream, reopen)
        try:
            self._call(
                "PUT",
                url,
                repository,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                body=body,
                ok=(201,),
            )
        finally:
            body.close()

    def put_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> PushedManifest:
        """PUT a manifest's exact bytes by tag or digest; the registry must store them as
        they are (its ``Docker-Content-Digest`` must be theirs)."""
        reply = self._call(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Content-Type": media_type},
            body=raw,
            ok=(201,),
        )
        digest = Digest.of_bytes(raw)
        answered = reply.headers.get("Docker-Content-Digest")
        if answered and answered != str(digest):
            raise RegistryError(
                f"registry {self.registry} stored the manifest for {repository}:{reference} "
                f"as {answered}, but its bytes hash to {digest}",
                hint="the registry rewrote the manifest; it cannot keep signed references",
            )
        subject_header = reply.headers.get("OCI-Subject")
        subject = None
        if subject_header:
            try:
                subject = Digest.parse(subject_header)
            except DigestError as e:
                raise RegistryError(
                    f"registry {self.registry} answered OCI-Subject {subject_header!r}, "
                    "not a sha256 digest"
                ) from e
        return PushedManifest(digest, subject)
