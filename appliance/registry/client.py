"""A small push client for OCI distribution registries (distribution-spec v1.1).

It does what ``stella push`` needs and no more: the ``/v2/`` ping, Basic and Bearer (token)
authentication with ``push,pull`` scope, blob existence checks and monolithic uploads
streamed from the store, manifest PUT (returning the ``OCI-Subject`` answer that says whether
the registry keeps a referrers index), manifest GET by tag or digest with the digest checked,
and the referrers API. Plain HTTP is used only for loopback registries or when asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, Final
from urllib.parse import urlencode, urljoin, urlsplit

import requests
import urllib3

from appliance.registry.auth import Credentials
from appliance.registry.errors import RegistryAuthError, RegistryError
from bundles import __version__
from bundles.digest import CHUNK, Digest
from bundles.distribution.credentials import Challenge
from bundles.distribution.reference import is_loopback_host
from bundles.errors import DigestError
from bundles.oci.manifest import MAX_MANIFEST_SIZE
from bundles.oci.mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

MANIFEST_ACCEPT: Final = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
ERROR_BODY_LIMIT: Final = 64 << 10  # an error answer's body is read only this far
TOKEN_LIMIT: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class Reply:
    """A registry's answer, its body read up to a limit (``request``'s ``limit``)."""

    status: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    body: bytes


@dataclass(frozen=True, slots=True)
class PushedManifest:
    """The registry's answer to a manifest PUT."""

    digest: Digest
    subject: Digest | None  # the OCI-Subject header: the registry indexed the referrer


class PushClient:
    """Pushes to one registry (``host[:port]``). Thread-safe for token handling."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credentials | None = None,
        plain_http: bool = False,
        ca_bundle: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.registry = registry
        self.credentials = credentials
        scheme = "http" if plain_http or is_loopback_host(registry) else "https"
        self.base = f"{scheme}://{registry}"
        self.session = requests.Session()
        self.session.trust_env = False  # the enclave's registry is reached directly
        self.session.headers["User-Agent"] = f"stella/{__version__}"
        self.verify: str | bool = ca_bundle if ca_bundle is not None else True
        self.timeout = timeout
        self._auth: dict[str, str] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> PushClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        repository: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | BinaryIO | _Sized | None = None,
        ok: tuple[int, ...] = (200,),
        limit: int = ERROR_BODY_LIMIT,
    ) -> Reply:
        """One authenticated request; a 401 is answered once with credentials (a stream body
        is rewound to where it started). Statuses in ``ok`` are returned with their body read
        up to ``limit`` bytes (a longer one is refused); anything else raises naming the
        request."""
        url = path if path.startswith(("http://", "https://")) else self.base + path
        for attempt in range(2):
            sent = dict(headers or {})
            with self._lock:
                auth = self._auth.get(repository) or self._auth.get("*")
            if auth:
                sent["Authorization"] = auth
            if attempt and not isinstance(data, bytes | None):
                data.seek(0)
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=sent,
                    data=data,
                    timeout=self.timeout,
                    verify=self.verify,
                    stream=True,
                )
            except requests.exceptions.SSLError as e:
                raise RegistryError(
                    f"TLS with registry {self.registry} failed: {_brief(e)}",
                    hint="pass --ca-bundle FILE with the registry's CA certificate",
                ) from e
            except requests.RequestException as e:
                raise RegistryError(
                    f"cannot reach registry {self.registry} ({method} {url}): {_brief(e)}",
                    hint="check the registry address and that it is running",
                ) from e
            if resp.status_code == 401 and attempt == 0:
                _read_limited(resp, ERROR_BODY_LIMIT)  # lets the connection be reused
                self._authenticate(resp, repository)
                continue
            break
        status = resp.status_code
        if status in ok:
            body = self._body(resp, limit, f"its answer to {method} {urlsplit(url).path}")
            return Reply(status, resp.headers, body)
        error_body, _ = _read_limited(resp, ERROR_BODY_LIMIT)
        resp.close()
        if status == 401:
            raise self._refused(repository)
        if status == 403:
            raise RegistryAuthError(
                f"registry {self.registry} denied {method} on {repository} (HTTP 403)",
                hint="the account lacks push permission on this repository",
            )
        detail = _error_text(error_body, resp.reason)
        raise RegistryError(
            f"registry {self.registry} answered HTTP {status} to {method} "
            f"{urlsplit(url).path}: {detail}",
        )

    def _body(self, resp: requests.Response, limit: int, what: str) -> bytes:
        body, complete = _read_limited(resp, limit)
        if not complete:
            raise RegistryError(f"registry {self.registry}: {what} is over {limit} bytes")
        return body

    def _refused(self, repository: str) -> RegistryAuthError:
        if self.credentials is None:
            return RegistryAuthError(
                f"registry {self.registry} requires credentials for {repository}",
                hint="give --user NAME and --password-env VAR",
            )
        return RegistryAuthError(
            f"registry {self.registry} refused the credentials of user "
            f"{self.credentials.username!r} for {repository} (HTTP 401)",
            hint="check the user name and the password in the --password-env variable",
        )

    def _authenticate(self, resp: requests.Response, repository: str) -> None:
        header = resp.headers.get("WWW-Authenticate", "")
        challenge = Challenge.parse(header)
        if self.credentials is None and challenge.scheme != "bearer":
            raise self._refused(repository)
        if challenge.scheme == "basic":
            assert self.credentials is not None
            with self._lock:
                self._auth["*"] = self.credentials.basic_header()
            return
        if challenge.scheme == "bearer":
            self._token(challenge, repository)
            return
        raise RegistryAuthError(
            f"registry {self.registry} asks for authentication scheme {challenge.scheme!r}",
            hint="only Basic and Bearer (token) authentication are supported",
        )

    def _token(self, challenge: Challenge, repository: str) -> None:
        realm = challenge.params.get("realm")
        if not realm or urlsplit(realm).scheme not in ("http", "https"):
            raise RegistryAuthError(
                f"registry {self.registry} sent a Bearer challenge without a usable realm",
                hint="the registry's token authentication is misconfigured",
            )
        realm_host = urlsplit(realm).netloc
        if (
            urlsplit(realm).scheme == "http"
            and not is_loopback_host(realm_host)
            and self.base.startswith("https://")
        ):
            raise RegistryAuthError(
                f"registry {self.registry} sends tokens from plain-HTTP realm {realm}",
                hint="credentials are only sent over HTTPS or to loopback",
            )
        params = {"scope": f"repository:{repository}:pull,push"}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        auth = None
        if self.credentials is not None:
            auth = (self.credentials.username, self.credentials.password)
        try:
            resp = self.session.get(
                f"{realm}?{urlencode(params)}",
                auth=auth,
                timeout=self.timeout,
                verify=self.verify,
                stream=True,
            )
            body, complete = _read_limited(resp, TOKEN_LIMIT)
        except requests.RequestException as e:
            raise RegistryAuthError(f"cannot get a token from {realm}: {_brief(e)}") from e
        if resp.status_code in (401, 403):
            raise self._refused(repository)
        if resp.status_code != 200:
            raise RegistryAuthError(f"token server {realm} answered HTTP {resp.status_code}")
        if not complete:
            raise RegistryAuthError(f"token server {realm} answered over {TOKEN_LIMIT} bytes")
        try:
            doc = json.loads(body)
        except ValueError as e:
            raise RegistryAuthError(f"token server {realm} answered with non-JSON") from e
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryAuthError(f"token server {realm} answered without a token")
        with self._lock:
            self._auth[repository] = f"Bearer {token}"

    # -- operations -------------------------------------------------------------------------

    def ping(self, repository: str) -> None:
        """``GET /v2/``: reachable, speaks the distribution API, and the credentials work."""
        self.request("GET", "/v2/", repository)

    def has_blob(self, repository: str, digest: Digest) -> bool:
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", repository, ok=(200, 404))
        return resp.status == 200

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
        stream's current position. A PUT retried after a 401 sends it again from there: a
        seekable stream is sought back, another one is opened again with ``reopen``."""
        start = self.request(
            "POST", f"/v2/{repository}/blobs/uploads/", repository, ok=(202,), data=b""
        )
        location = start.headers.get("Location")
        if not location:
            raise RegistryError(
                f"registry {self.registry} started an upload for {repository} without a Location"
            )
        url = urljoin(self.base + "/", location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": str(digest)})
        body = _Sized(stream, size, reopen)
        try:
            self.request(
                "PUT",
                url,
                repository,
                headers={"Content-Type": "application/octet-stream"},
                data=body,
                ok=(201,),
            )
        finally:
            body.close()

    def put_manifest(
        self, repository: str, reference: str, raw: bytes, media_type: str
    ) -> PushedManifest:
        resp = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Content-Type": media_type},
            data=raw,
            ok=(201,),
        )
        digest = Digest.of_bytes(raw)
        answered = resp.headers.get("Docker-Content-Digest")
        if answered and answered != str(digest):
            raise RegistryError(
                f"registry {self.registry} stored the manifest for {repository}:{reference} "
                f"as {answered}, but its bytes hash to {digest}",
                hint="the registry rewrote the manifest; it cannot keep signed references",
            )
        subject_header = resp.headers.get("OCI-Subject")
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

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        """A manifest's exact bytes and media type, or None if the registry has none. A
        by-digest reference must match the bytes."""
        resp = self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            repository,
            headers={"Accept": MANIFEST_ACCEPT},
            ok=(200, 404),
            limit=MAX_MANIFEST_SIZE,
        )
        if resp.status == 404:
            return None
        raw = resp.body
        digest = Digest.of_bytes(raw)
        if reference.startswith("sha256:") and str(digest) != reference:
            raise RegistryError(
                f"registry {self.registry} served {repository}@{reference} with bytes hashing "
                f"to {digest}",
                hint="the registry is corrupt or not trustworthy",
            )
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return raw, media_type

    def referrers(self, repository: str, subject: Digest) -> dict[str, object] | None:
        """The referrers API's image index, or None where the registry has no referrers API."""
        resp = self.request(
            "GET",
            f"/v2/{repository}/referrers/{subject}",
            repository,
            ok=(200, 404),
            limit=MAX_MANIFEST_SIZE,
        )
        if resp.status == 404:
            return None
        try:
            doc = json.loads(resp.body)
        except ValueError as e:
            raise RegistryError(
                f"registry {self.registry}: referrers of {subject} are not JSON"
            ) from e
        if not isinstance(doc, dict):
            raise RegistryError(f"registry {self.registry}: referrers of {subject} not an index")
        return doc


class _Sized:
    """A stream with a known length, so the body is sent with ``Content-Length`` (requests
    would otherwise announce a chunked body for a stream it cannot measure).

    It is read from the stream's position when wrapped; ``tell`` counts from there (requests
    measures the body as ``len - tell``) and ``seek(0)`` rewinds to it for a retried request:
    a seekable stream is sought back, another one (the store's verifying blob stream) is
    opened again with ``reopen``. Streams it opened are closed by :meth:`close`."""

    def __init__(
        self, stream: BinaryIO, size: int, reopen: Callable[[], BinaryIO] | None = None
    ) -> None:
        self._stream = stream
        self._size = size
        self._reopen = reopen
        self._start = stream.tell() if stream.seekable() else 0
        self._read = 0
        self._opened: list[BinaryIO] = []

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self._read += len(data)
        return data

    def tell(self) -> int:
        return self._read

    def seek(self, offset: int, whence: int = 0) -> int:
        if offset != 0 or whence != 0:
            raise ValueError("a request body can only be rewound to its start")
        if self._read:
            if self._stream.seekable():
                self._stream.seek(self._start)
            elif self._reopen is not None:
                self._stream = self._reopen()
                self._opened.append(self._stream)
            else:
                raise RegistryError("cannot send the blob again: its stream cannot be rewound")
            self._read = 0
        return 0

    def close(self) -> None:
        for stream in self._opened:
            stream.close()
        self._opened.clear()


def _read_limited(resp: requests.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of an untrusted body, and whether that was all of it. A body
    over the limit is not read further: the connection is closed instead."""
    parts: list[bytes] = []
    total = 0
    try:
        while chunk := resp.raw.read(min(CHUNK, limit + 1 - total), decode_content=True):
            total += len(chunk)
            if total > limit:
                resp.close()
                return b"".join(parts), False
            parts.append(chunk)
    except (urllib3.exceptions.HTTPError, OSError) as e:
        resp.close()
        host = urlsplit(resp.url).netloc
        raise RegistryError(f"the answer of {host} broke off: {_brief(e)}") from e
    return b"".join(parts), True


def _error_text(body: bytes, reason: str | None) -> str:
    try:
        doc = json.loads(body)
        errors = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return f"{first.get('code', '?')}: {first.get('message', '')}".strip()
    except ValueError:
        pass
    text = body[:200].decode("utf-8", "replace").strip()
    return text or reason or "no detail"


def _brief(e: BaseException) -> str:
    text = str(e)
    return text if len(text) <= 200 else text[:197] + "..."
