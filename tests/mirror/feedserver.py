"""A loopback HTTP server for feed files, with ETag, Last-Modified, Range and fault injection.

Tests put bytes under a path, optionally queue faults for that path (consumed one per request),
and point the real fetch code at :meth:`FeedServer.url`. Every request is recorded with its
headers so tests can assert what the client sent.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

from tests.loopback import LoopbackHTTP

_RANGE = re.compile(r"bytes=(\d+)-")


@dataclass(frozen=True, slots=True)
class Seen:
    path: str
    headers: dict[str, str]
    status: int


class FeedServer:
    FAULTS: ClassVar[frozenset[str]] = frozenset({"500", "503", "404", "truncate"})

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = {}
        self.seen: list[Seen] = []
        self.modified = formatdate(1_700_000_000, usegmt=True)
        self._lock = threading.Lock()
        self.http = LoopbackHTTP(lambda request, _: self._handle(request))

    def __enter__(self) -> FeedServer:
        self.http.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.stop()

    def url(self, path: str) -> str:
        host, port = "127.0.0.1", self.http.port
        return f"http://{host!s}:{port}/{path}"

    def put(self, path: str, data: bytes) -> None:
        self.files[path] = data

    def fail(self, path: str, *faults: str) -> None:
        assert set(faults) <= self.FAULTS
        self.faults.setdefault(path, []).extend(faults)

    def statuses(self, path: str) -> list[int]:
        return [s.status for s in self.seen if s.path == path]

    def requests_for(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]

    @staticmethod
    def etag(data: bytes) -> str:
        return '"' + hashlib.sha256(data).hexdigest()[:20] + '"'

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.lstrip("/")
        headers = {k: v for k, v in h.headers.items()}
        with self._lock:
            queue = self.faults.get(path, [])
            fault = queue.pop(0) if queue else None
        data = self.files.get(path)

        def reply(status: int, body: bytes = b"", extra: dict[str, str] | None = None) -> None:
            self.seen.append(Seen(path, headers, status))
            h.send_response(status)
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

        if fault in ("500", "503"):
            reply(int(fault), b"upstream is having a bad day\n")
            return
        if data is None or fault == "404":
            reply(404, b"not found\n")
            return
        etag = self.etag(data)
        validators = {"ETag": etag, "Last-Modified": self.modified}
        if headers.get("If-None-Match") == etag or (
            "If-None-Match" not in headers and headers.get("If-Modified-Since") == self.modified
        ):
            self.seen.append(Seen(path, headers, 304))
            h.send_response(304)
            for k, v in validators.items():
                h.send_header(k, v)
            h.end_headers()
            return
        start = 0
        m = _RANGE.fullmatch(headers.get("Range", ""))
        if m and headers.get("If-Range", etag) in (etag, self.modified):
            start = int(m.group(1))
            body = data[start:]
            status = 206
            validators["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        else:
            body, status = data, 200
        if fault == "truncate":
            # announce the full length, send half, then drop the connection
            self.seen.append(Seen(path, headers, status))
            h.send_response(status)
            for k, v in validators.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        reply(status, body, validators)
