"""``stella serve``: an OCI distribution endpoint (distribution-spec v1.1) over the store.

Pull: ``/v2/`` ping, manifests by tag and digest (GET, HEAD), blobs (GET, HEAD, ``Range``,
streamed with ``sendfile``), tags list, catalog, and the referrers API with ``artifactType``
filtering (answered with ``OCI-Filters-Applied``). With ``allow_push`` it also accepts
uploads (monolithic POST, POST + PATCH... + PUT, cross-repository mount of a blob the store
has) and manifest PUTs; every blob is verified by :meth:`OCILayout.put_blob` before it lands,
every manifest must name blobs already present, a tag PUT tags the store as ``REPO:TAG``, and
a manifest with a ``subject`` is answered with ``OCI-Subject``. Received images are recorded
in the audit log (``image.load`` by ``serve``).

The store is one content-addressed layout, so repository names only scope tags; a digest is
served under any repository name. A mirrored image's name keeps its registry
(``127.0.0.1:22775/hidden/app``); it is served under its repository path (``hidden/app``), or as
``--map`` says (:mod:`appliance.registry.names`). Built on the standard library's
``ThreadingHTTPServer``.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, quote, urlsplit

from appliance.home import Home
from appliance.imagestore.catalog import open_store
from appliance.registry.auth import Authenticator
from appliance.registry.bodies import BodyError, body_stream
from appliance.registry.errors import ServeConfigError
from appliance.registry.names import NameCollisionError, PrefixMap, ServedNames
from appliance.store import record_decision
from appliance.store.audit import AuditAction
from bundles import __version__, canonical
from bundles.digest import CHUNK, Digest
from bundles.distribution.reference import REPOSITORY, is_loopback_host
from bundles.errors import (
    BlobNotFoundError,
    DigestError,
    OCILayoutError,
    SizeLimitError,
    StellaError,
)
from bundles.oci import Descriptor, OCILayout, check_tag, parse_manifest
from bundles.oci.layout import DEFAULT_BLOB_LIMIT
from bundles.oci.manifest import MAX_MANIFEST_SIZE, ManifestError
from bundles.oci.mediatypes import ANNOTATION_CREATED, OCI_INDEX

DEFAULT_LISTEN: Final = "127.0.0.1:5000"
_NAME: Final = REPOSITORY.pattern
_ROUTES: Final = (
    ("ping", re.compile(r"/v2/?")),
    ("catalog", re.compile(r"/v2/_catalog")),
    ("tags", re.compile(rf"/v2/(?P<name>{_NAME})/tags/list")),
    ("manifest", re.compile(rf"/v2/(?P<name>{_NAME})/manifests/(?P<ref>[^/]+)")),
    ("upload_start", re.compile(rf"/v2/(?P<name>{_NAME})/blobs/uploads/?")),
    ("upload", re.compile(rf"/v2/(?P<name>{_NAME})/blobs/uploads/(?P<uuid>[0-9a-f]{{32}})")),
    ("blob", re.compile(rf"/v2/(?P<name>{_NAME})/blobs/(?P<digest>[^/]+)")),
    ("referrers", re.compile(rf"/v2/(?P<name>{_NAME})/referrers/(?P<digest>[^/]+)")),
    # the appliance's transparency log, read-only at the C2SP tlog-tiles paths under /tlog/
    (
        "tlog",
        re.compile(
            r"/tlog/(?P<path>checkpoint|tile/(?:entries|\d{1,2})(?:/x\d{3})*/\d{3}(?:\.p/\d{1,3})?)"
        ),
    ),
)
_RANGE: Final = re.compile(r"bytes=(\d+)-(\d*)")
_CONTENT_RANGE: Final = re.compile(r"(?:bytes )?(\d+)-(\d+)")
_API_HEADER: Final = ("Docker-Distribution-API-Version", "registry/2.0")
_TLOG_FILE_LIMIT: Final = 256 * (2 + 0xFFFF)  # the largest entry bundle


# ------------------------------------------------------------------------------ options


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit() or int(port_text) > 65535:
            raise ServeConfigError(
                f"--listen {text!r} is not HOST:PORT", hint="e.g. --listen 127.0.0.1:5000"
            )
        host = host.strip("[]") or "127.0.0.1"
        return cls(host, int(port_text))

    @property
    def loopback(self) -> bool:
        return is_loopback_host(self.host)


@dataclass(frozen=True, slots=True)
class ServeOptions:
    listen: ListenAddress
    allow_push: bool = False
    auth: Authenticator | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    maps: tuple[PrefixMap, ...] = ()

    def check(self) -> None:
        """Refuse unsafe combinations: push without authentication, credentials sent in
        clear text to a non-loopback address, half a TLS configuration."""
        if self.allow_push and self.auth is None:
            raise ServeConfigError(
                "--allow-push requires authentication",
                hint="give --htpasswd FILE, or --user NAME --password-env VAR",
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ServeConfigError("--tls-cert and --tls-key go together")
        if self.auth is not None and self.tls_cert is None and not self.listen.loopback:
            raise ServeConfigError(
                f"refusing to accept passwords in clear text on {self.listen.host} "
                "(not a loopback address)",
                hint="give --tls-cert FILE --tls-key FILE, or listen on 127.0.0.1",
            )


# ------------------------------------------------------------------------------ uploads


@dataclass(slots=True)
class _Upload:
    uuid: str
    name: str
    path: Path
    size: int
    lock: threading.Lock


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


# ------------------------------------------------------------------------------ server


class RegistryServer:
    """The endpoint: the store, the options, live upload sessions, and the HTTP server.

    ``start()`` serves from a background thread (tests, benchmarks); ``serve_forever()``
    blocks (the command). ``address`` is the bound ``host:port`` (port 0 picks a free one).
    """

    def __init__(
        self,
        home: Home,
        options: ServeOptions,
        *,
        log: Callable[[str], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        options.check()
        self.home = home.require()
        self.store: OCILayout = open_store(home)
        self.options = options
        self.log = log
        self.clock = clock
        self.uploads: dict[str, _Upload] = {}
        self._uploads_lock = threading.Lock()
        self._audit_lock = threading.Lock()
        self.upload_dir = home.staging / "registry-uploads"
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        for stale in self.upload_dir.glob("*.part"):  # sessions of an earlier run are gone
            stale.unlink(missing_ok=True)
        self.httpd = _Server(self, options.listen)
        if options.tls_cert is not None and options.tls_key is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            try:
                context.load_cert_chain(options.tls_cert, options.tls_key)
            except (OSError, ssl.SSLError) as e:
                self.httpd.server_close()
                raise ServeConfigError(
                    f"cannot load TLS certificate {options.tls_cert} / key {options.tls_key}: {e}"
                ) from e
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        host, port = self.httpd.server_address[:2]
        host = str(host)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def scheme(self) -> str:
        return "https" if self.options.tls_cert is not None else "http"

    def start(self) -> RegistryServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self.httpd.serve_forever()
        finally:
            self.close()

    def stop(self) -> None:
        self.httpd.shutdown()
        if self._thread is not None:
            self._thread.join(10)
        self.close()

    def close(self) -> None:
        self.httpd.server_close()
        with self._uploads_lock:
            for upload in self.uploads.values():
                upload.path.unlink(missing_ok=True)
            self.uploads.clear()

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers used by the handler --------------------------------------------------------

    def served_names(self) -> tuple[ServedNames, dict[str, list[str]]]:
        """The served names of the store's repositories now, and each stored repository's
        tags."""
        tags: dict[str, list[str]] = {}
        for tag in self.store.tags():
            name, sep, ref = tag.rpartition(":")
            if sep and "/" not in ref and "@" not in name:
                tags.setdefault(name, []).append(ref)
        return ServedNames.build(tags, self.options.maps), tags

    def record(
        self, digest: Digest, name: str, reference: str, user: str, result: dict[str, Any]
    ) -> None:
        with self._audit_lock:
            record_decision(
                self.home,
                AuditAction.IMAGE_LOAD,
                str(digest),
                command="serve",
                time=self.clock(),
                inputs={"source": f"push:{name}:{reference}", "user": user},
                result=result,
            )

    def new_upload(self, name: str) -> _Upload:
        uuid = secrets.token_hex(16)
        fd, tmp = tempfile.mkstemp(dir=self.upload_dir, prefix=f"{uuid}-", suffix=".part")
        os.close(fd)
        upload = _Upload(uuid, name, Path(tmp), 0, threading.Lock())
        with self._uploads_lock:
            self.uploads[uuid] = upload
        return upload

    def get_upload(self, name: str, uuid: str) -> _Upload:
        with self._uploads_lock:
            upload = self.uploads.get(uuid)
        if upload is None or upload.name != name:
            raise _ApiError(404, "BLOB_UPLOAD_UNKNOWN", f"no upload {uuid} in {name}")
        return upload

    def is_open(self, upload: _Upload) -> bool:
        """Whether ``upload`` is still a live session (not finished, cancelled or dropped)."""
        with self._uploads_lock:
            return self.uploads.get(upload.uuid) is upload

    def drop_upload(self, uuid: str) -> None:
        with self._uploads_lock:
            upload = self.uploads.pop(uuid, None)
        if upload is not None:
            upload.path.unlink(missing_ok=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: RegistryServer, listen: ListenAddress) -> None:
        self.app = app
        if ":" in listen.host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((listen.host, listen.port), _Handler)
        except OSError as e:
            raise ServeConfigError(
                f"cannot listen on {listen.host}:{listen.port}: {e.strerror}",
                hint="choose another --listen address or port",
            ) from e


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"stella-serve/{__version__}"
    server: _Server
    timeout = 300  # seconds a client may stay silent mid-request before it is dropped

    # -- plumbing ---------------------------------------------------------------------------

    def log_message(self, format: str, *args: Any) -> None:
        log = self.server.app.log
        if log is not None:
            log(f"{self.address_string()} {format % args}")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        content_type: str | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header(*_API_HEADER)
        if self.close_connection:
            self.send_header("Connection", "close")  # so the client does not reuse it
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, canonical.dumps(doc), headers, content_type="application/json")

    def _error(self, err: _ApiError) -> None:
        body = {"errors": [{"code": err.code, "message": err.message, "detail": {}}]}
        self._json(err.status, body, dict(err.headers))

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.user = "anonymous"
        try:
            if app.options.auth is not None:
                user = app.options.auth.check(self.headers.get("Authorization"))
                if user is None:
                    self.close_connection = self._has_body()  # a body would stay unread
                    raise _ApiError(
                        401,
                        "UNAUTHORIZED",
                        "authentication required",
                        **{"WWW-Authenticate": app.options.auth.challenge()},
                    )
                self.user = user
            for route, pattern in _ROUTES:
                match = pattern.fullmatch(url.path)
                if match is not None:
                    getattr(self, f"_{route}")(method, **match.groupdict())
                    return
            raise _ApiError(404, "NAME_INVALID", f"no such endpoint {url.path}")
        except _ApiError as e:
            if e.status >= 400 and method in ("POST", "PUT", "PATCH"):
                self.close_connection = True
            self._error(e)
        except BodyError as e:
            self.close_connection = True
            self._error(_ApiError(400, "BLOB_UPLOAD_INVALID", str(e)))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except StellaError as e:  # the store or the audit log failed under the request
            self.close_connection = True
            self._error(_ApiError(500, "UNKNOWN", e.diagnostics()))
        except OSError as e:  # the disk failed under the request: full, EIO, EACCES
            self.close_connection = True
            where = f"{e.filename}: " if e.filename is not None else ""
            message = f"{where}{e.strerror or e}"
            self.log_message("%s %s failed: %s", method, url.path, message)
            with contextlib.suppress(OSError):  # the client may be gone as well
                self._error(_ApiError(500, "UNKNOWN", message))

    def _has_body(self) -> bool:
        return "Transfer-Encoding" in self.headers or self.headers.get(
            "Content-Length", "0"
        ) not in ("", "0")

    def _require_push(self, method: str) -> None:
        if not self.server.app.options.allow_push:
            raise _ApiError(
                405,
                "UNSUPPORTED",
                f"{method} refused: this endpoint is read-only (start 'stella serve' with "
                "--allow-push to accept pushes)",
            )

    # -- read side --------------------------------------------------------------------------

    def _tlog(self, method: str, path: str) -> None:
        if method not in ("GET", "HEAD"):
            raise _ApiError(405, "UNSUPPORTED", f"{method} refused: the log is read-only")
        try:
            with open(self.server.app.home.root / "tlog" / path, "rb") as fh:
                data = fh.read(_TLOG_FILE_LIMIT)
        except (FileNotFoundError, IsADirectoryError) as e:
            raise _ApiError(404, "NOT_FOUND", f"no {path} in the transparency log") from e
        immutable = path != "checkpoint" and ".p/" not in path
        self._send(
            200,
            data,
            {"Cache-Control": "max-age=31536000, immutable" if immutable else "no-cache"},
            content_type="text/plain; charset=utf-8"
            if path == "checkpoint"
            else "application/octet-stream",
        )

    def _ping(self, method: str) -> None:
        if method not in ("GET", "HEAD"):
            raise _ApiError(405, "UNSUPPORTED", f"{method} /v2/ is not supported")
        self._json(200, {})

    def _stored_repository(
        self, name: str, *, code: str = "NAME_UNKNOWN", status: int = 404
    ) -> tuple[str | None, list[str]]:
        """The stored repository served as ``name`` (None when there is none) and its tags."""
        served, tags = self.server.app.served_names()
        try:
            stored = served.resolve(name)
        except NameCollisionError as e:
            raise _ApiError(status, code, e.diagnostics()) from e
        return stored, tags.get(stored, []) if stored else []

    def _page(self, items: list[str], path: str) -> tuple[list[str], dict[str, str]]:
        """``n``/``last`` pagination with a ``Link`` header to the next page."""
        items = sorted(items)
        last = self.query.get("last")
        if last:
            items = [i for i in items if i > last]
        headers: dict[str, str] = {}
        n_text = self.query.get("n")
        if n_text is not None:
            if not n_text.isdigit():
                raise _ApiError(400, "PAGINATION_NUMBER_INVALID", f"n={n_text!r} is not a number")
            n = int(n_text)
            if len(items) > n:
                items = items[:n]
                if items:
                    headers["Link"] = f'<{path}?n={n}&last={quote(items[-1])}>; rel="next"'
        return items, headers

    def _catalog(self, method: str) -> None:
        served, _ = self.server.app.served_names()
        items, headers = self._page(list(served.repositories), "/v2/_catalog")
        self._json(200, {"repositories": items}, headers)

    def _tags(self, method: str, name: str) -> None:
        stored, tags = self._stored_repository(name)
        if stored is None:
            raise _ApiError(404, "NAME_UNKNOWN", f"repository {name} is not known")
        items, headers = self._page(tags, f"/v2/{name}/tags/list")
        self._json(200, {"name": name, "tags": items}, headers)

    def _manifest(self, method: str, name: str, ref: str) -> None:
        if method in ("GET", "HEAD"):
            self._get_manifest(name, ref)
        elif method == "PUT":
            self._require_push(method)
            self._put_manifest(name, ref)
        else:
            raise _ApiError(405, "UNSUPPORTED", f"{method} of manifests is not supported")

    def _get_manifest(self, name: str, ref: str) -> None:
        store = self.server.app.store
        if ref.startswith("sha256:"):
            digest = _digest(ref, "MANIFEST_UNKNOWN")
            if not store.has_blob(digest):
                raise _ApiError(404, "MANIFEST_UNKNOWN", f"manifest {ref} is not in the store")
            raw = _read_manifest(store, digest)
            try:
                media_type = parse_manifest(raw, source=f"blob {digest}").media_type
            except ManifestError as e:
                raise _ApiError(404, "MANIFEST_UNKNOWN", f"{ref} is not a manifest") from e
        else:
            stored, _ = self._stored_repository(name, code="MANIFEST_UNKNOWN")
            descriptor = store.tags().get(f"{stored}:{ref}") if stored else None
            if descriptor is None:
                raise _ApiError(404, "MANIFEST_UNKNOWN", f"no tag {ref} in {name}")
            digest, media_type = descriptor.digest, descriptor.media_type
            raw = _read_manifest(store, digest)
        self._send(
            200,
            raw,
            {"Docker-Content-Digest": str(digest), "ETag": f'"{digest}"'},
            content_type=media_type,
        )

    def _blob(self, method: str, name: str, digest: str) -> None:
        if method not in ("GET", "HEAD"):
            if method == "DELETE":
                raise _ApiError(405, "UNSUPPORTED", "blobs are never deleted through the API")
            raise _ApiError(405, "UNSUPPORTED", f"{method} of blobs is not supported")
        store = self.server.app.store
        parsed = _digest(digest, "BLOB_UNKNOWN")
        path = store.blob_path(parsed)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as e:
            raise _ApiError(404, "BLOB_UNKNOWN", f"blob {digest} is not in the store") from e
        with handle:
            size = os.fstat(handle.fileno()).st_size
            start, end, status = 0, size - 1, 200
            headers = {
                "Docker-Content-Digest": str(parsed),
                "Accept-Ranges": "bytes",
                "ETag": f'"{parsed}"',
            }
            match = _RANGE.fullmatch(self.headers.get("Range", "").strip())
            if match is not None:
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
                if start >= size or end < start:
                    raise _ApiError(
                        416,
                        "BLOB_UNKNOWN",
                        f"range {start}-{end} outside {size} bytes",
                        **{"Content-Range": f"bytes */{size}"},
                    )
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            count = end - start + 1 if size else 0
            self.send_response(status)
            self.send_header(*_API_HEADER)
            self.send_header("Content-Type", "application/octet-stream")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(count))
            self.end_headers()
            if method == "HEAD" or count == 0:
                return
            self.wfile.flush()
            sent = self.connection.sendfile(handle, start, count)
            if sent != count:
                self.close_connection = True

    def _referrers(self, method: str, name: str, digest: str) -> None:
        if method not in ("GET", "HEAD"):
            raise _ApiError(405, "UNSUPPORTED", f"{method} of referrers is not supported")
        subject = _digest(digest, "DIGEST_INVALID", status=400)
        artifact_type = self.query.get("artifactType")
        found = self.server.app.store.referrers(subject, artifact_type=artifact_type)
        # newest first (by creation annotation, then digest): a client that takes the first
        # attestation of a kind, as trivy's --vex oci does, takes the current one
        found = sorted(found, key=lambda d: d.annotations.get(ANNOTATION_CREATED, ""), reverse=True)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [d.to_dict() for d in found],
        }
        headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
        self._send(200, canonical.dumps(doc), headers, content_type=OCI_INDEX)

    # -- push side --------------------------------------------------------------------------

    def _upload_start(self, method: str, name: str) -> None:
        if method != "POST":
            raise _ApiError(405, "UNSUPPORTED", f"{method} of an upload is not supported")
        self._require_push(method)
        app = self.server.app
        mount = self.query.get("mount")
        if mount is not None:
            digest = _digest(mount, "DIGEST_INVALID", status=400)
            if app.store.has_blob(digest):
                self._drain()
                self._created(name, digest)
                return
        expected = self.query.get("digest")
        if expected is not None:  # monolithic: the whole blob in the POST
            digest = _digest(expected, "DIGEST_INVALID", status=400)
            body, length = body_stream(self.headers, self.rfile)  # type: ignore[arg-type]
            self._store_blob(body, digest, length)
            self._created(name, digest)
            return
        self._drain()
        upload = app.new_upload(name)
        self._send(202, b"", self._upload_headers(name, upload))

    def _upload_headers(self, name: str, upload: _Upload) -> dict[str, str]:
        return {
            "Location": f"/v2/{name}/blobs/uploads/{upload.uuid}",
            "Docker-Upload-UUID": upload.uuid,
            "Range": f"0-{max(upload.size - 1, 0)}",
        }

    def _drain(self) -> None:
        body, _ = body_stream(self.headers, self.rfile)  # type: ignore[arg-type]
        while body.read(CHUNK):
            pass

    def _store_blob(self, stream: Any, digest: Digest, size: int | None) -> None:
        try:
            self.server.app.store.put_blob(stream, expected=digest, size=size)
            while stream.read(CHUNK):  # a blob already present is not read: drain the body
                pass
        except DigestError as e:
            raise _ApiError(400, "DIGEST_INVALID", e.diagnostics()) from e
        except SizeLimitError as e:
            raise _ApiError(400, "SIZE_INVALID", e.diagnostics()) from e

    def _created(self, name: str, digest: Digest) -> None:
        self._send(
            201,
            b"",
            {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest)},
        )

    def _upload(self, method: str, name: str, uuid: str) -> None:
        app = self.server.app
        if method not in ("GET", "HEAD"):
            self._require_push(method)
        upload = app.get_upload(name, uuid)
        if method in ("GET", "HEAD"):
            self._send(204, b"", self._upload_headers(name, upload))
            return
        if method == "DELETE":
            app.drop_upload(uuid)
            self._send(204)
            return
        if method not in ("PATCH", "PUT"):
            raise _ApiError(405, "UNSUPPORTED", f"{method} of an upload is not supported")
        digest: Digest | None = None
        if method == "PUT":  # refused before its body is appended to the session
            expected = self.query.get("digest")
            if expected is None:
                raise _ApiError(400, "DIGEST_INVALID", "PUT to finish an upload needs ?digest=")
            digest = _digest(expected, "DIGEST_INVALID", status=400)
        with upload.lock:
            if not app.is_open(upload):  # finished or cancelled while this request waited
                raise _ApiError(404, "BLOB_UPLOAD_UNKNOWN", f"no upload {uuid} in {name}")
            content_range = self.headers.get("Content-Range")
            if method == "PATCH" and content_range:
                match = _CONTENT_RANGE.fullmatch(content_range.strip())
                if match is None or int(match.group(1)) != upload.size:
                    raise _ApiError(
                        416,
                        "BLOB_UPLOAD_INVALID",
                        f"Content-Range {content_range!r} does not continue at {upload.size}",
                        **self._upload_headers(name, upload),
                    )
            body, _ = body_stream(self.headers, self.rfile)  # type: ignore[arg-type]
            with open(upload.path, "ab") as out:
                while chunk := body.read(CHUNK):
                    upload.size += len(chunk)
                    if upload.size > DEFAULT_BLOB_LIMIT:
                        app.drop_upload(uuid)
                        raise _ApiError(400, "SIZE_INVALID", "blob over the store's size limit")
                    out.write(chunk)
            if digest is None:  # PATCH
                self._send(202, b"", self._upload_headers(name, upload))
                return
            try:
                with open(upload.path, "rb") as stream:
                    self._store_blob(stream, digest, upload.size)
            finally:
                app.drop_upload(uuid)
        self._created(name, digest)

    def _put_manifest(self, name: str, ref: str) -> None:
        app = self.server.app
        body, length = body_stream(self.headers, self.rfile)  # type: ignore[arg-type]
        if length is not None and length > MAX_MANIFEST_SIZE:
            raise _ApiError(413, "SIZE_INVALID", f"manifest over {MAX_MANIFEST_SIZE} bytes")
        raw = body.read(MAX_MANIFEST_SIZE + 1)
        if len(raw) > MAX_MANIFEST_SIZE:
            raise _ApiError(413, "SIZE_INVALID", f"manifest over {MAX_MANIFEST_SIZE} bytes")
        digest = Digest.of_bytes(raw)
        is_digest = ref.startswith("sha256:")
        if is_digest and _digest(ref, "DIGEST_INVALID", status=400) != digest:
            raise _ApiError(400, "DIGEST_INVALID", f"manifest bytes hash to {digest}, not {ref}")
        stored = (
            None if is_digest else self._stored_repository(name, code="NAME_INVALID", status=400)[0]
        )
        store_tag = None if is_digest else f"{stored or name}:{ref}"
        if store_tag is not None:  # the store's rules, checked before anything is stored
            try:
                check_tag(store_tag)
            except OCILayoutError as e:
                raise _ApiError(400, "TAG_INVALID", f"{ref!r} is not a valid tag: {e.hint}") from e
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip() or None
        try:
            manifest = parse_manifest(raw, media_type, source=f"manifest {name}:{ref}")
            descriptor = app.store.put_manifest(raw, manifest.media_type)
        except BlobNotFoundError as e:
            raise _ApiError(400, "MANIFEST_BLOB_UNKNOWN", e.diagnostics()) from e
        except (ManifestError, OCILayoutError) as e:
            raise _ApiError(400, "MANIFEST_INVALID", e.diagnostics()) from e
        result: dict[str, Any] = {"mediaType": manifest.media_type, "size": len(raw)}
        if store_tag is not None:
            result["tag"] = store_tag
        headers = {
            "Location": f"/v2/{name}/manifests/{digest}",
            "Docker-Content-Digest": str(digest),
        }
        if manifest.subject is not None:
            headers["OCI-Subject"] = str(manifest.subject.digest)
            result["subject"] = str(manifest.subject.digest)
            result["artifactType"] = descriptor.artifact_type
        # A referrer is indexed by put_manifest above, so its record follows it (a failure
        # here answers 500 with the referrer already in the store); a tag is recorded before
        # it takes effect.
        if store_tag is not None or manifest.subject is not None:
            app.record(digest, name, ref, self.user, result)
        if store_tag is not None:
            app.store.tag(store_tag, Descriptor(manifest.media_type, digest, len(raw)))
        self._send(201, b"", headers)


def _digest(text: str, code: str, *, status: int = 404) -> Digest:
    try:
        return Digest.parse(text)
    except DigestError as e:
        raise _ApiError(status, code, f"{text!r} is not a sha256 digest") from e


def _read_manifest(store: OCILayout, digest: Digest) -> bytes:
    try:
        return store.read_blob(digest, limit=MAX_MANIFEST_SIZE)
    except BlobNotFoundError as e:
        raise _ApiError(404, "MANIFEST_UNKNOWN", f"manifest {digest} is not in the store") from e
    except (SizeLimitError, DigestError) as e:
        raise _ApiError(404, "MANIFEST_UNKNOWN", e.diagnostics()) from e
