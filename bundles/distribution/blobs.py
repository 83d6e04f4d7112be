"""Blob bodies: one streamed from a registry and resumed with ``Range`` when the connection
breaks; one streamed to a registry from a file, rewound when the request is sent again."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO, Final, Protocol

import urllib3

from bundles.distribution.errors import NotFoundError, RegistryError
from bundles.distribution.transport import CHUNK, brief, release
from bundles.oci import Descriptor


class _Retries(Protocol):
    @property
    def retries(self) -> int: ...

    @property
    def backoff(self) -> float: ...


class Requester(Protocol):
    """What a blob stream needs of the registry client that opens it
    (:class:`bundles.distribution.client.RegistryClient`): named here so that the stream does
    not import the client that imports it."""

    registry: str

    @property
    def options(self) -> _Retries: ...

    def sleep(self, seconds: float) -> None: ...

    def _request(
        self,
        path: str,
        repository: str,
        *,
        headers: Mapping[str, str] | None = None,
        method: str = "GET",
        decode: bool = True,
        body: bytes | Any | None = None,
    ) -> urllib3.BaseHTTPResponse: ...


_CONTENT_RANGE: Final = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_BROKEN: Final = (
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


class BlobStream:
    """Reads one blob from a registry, reopening at the current offset with ``Range`` when
    the connection breaks or ends early. Anything it yields is still to be verified by the
    consumer (the layout hashes while writing)."""

    def __init__(self, client: Requester, repository: str, descriptor: Descriptor) -> None:
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
            release(resp)
            raise NotFoundError(
                f"registry has no {self._where}",
                hint="the image is incomplete in the registry",
            )
        if resp.status == 206:
            m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", ""))
            if m is None or int(m.group(1)) != self.offset:
                release(resp)
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
                    release(resp)
                    raise
                if not chunk:
                    release(resp)
                    raise RegistryError(f"{self._where}: ended before byte {self.offset}")
                skip -= len(chunk)
        else:
            release(resp)
            raise RegistryError(f"registry answered HTTP {resp.status} for {self._where}")
        self._resp = resp

    def _resume(self, cause: BaseException | None) -> None:
        self.close()
        self.resumes += 1
        if self.resumes > max(self.client.options.retries, 1) * 2:
            raise RegistryError(
                f"{self._where}: the transfer broke {self.resumes} times, last at byte "
                f"{self.offset} of {self.descriptor.size}"
                + (f" ({brief(cause)})" if cause is not None else ""),
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
            release(self._resp)
            self._resp = None


class UploadBody:
    """A blob's bytes for a PUT, read from a stream's current position; ``seek(0)`` rewinds
    to that position for a request sent again: a seekable stream is sought back, another one
    (the store's verifying blob stream) is opened again with ``reopen``. Streams it opened
    are closed by :meth:`close`; the caller closes the one it gave."""

    def __init__(self, stream: BinaryIO, reopen: Callable[[], BinaryIO] | None = None) -> None:
        self._stream = stream
        self._reopen = reopen
        self._start = stream.tell() if stream.seekable() else 0
        self._read = 0
        self._opened: list[BinaryIO] = []

    def read(self, n: int = -1, /) -> bytes:
        data = self._stream.read(n)
        self._read += len(data)
        return data

    def tell(self) -> int:
        return self._read

    def seek(self, offset: int, whence: int = 0, /) -> int:
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
