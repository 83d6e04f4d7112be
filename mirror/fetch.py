"""Downloading upstream feeds: the only module of the mirror that imports an HTTP client.

:class:`HttpFetcher` guarantees one error type, :class:`~mirror.errors.FetchError` (its
``kind`` says why). It uses timeouts, retries with exponential backoff on connection errors,
truncation, 429 and 5xx; conditional requests (``If-None-Match`` / ``If-Modified-Since``);
resumes a partial download with ``Range`` + ``If-Range``; enforces the per-source size cap;
verifies an upstream checksum when the config names one (``sha256`` or ``checksum_url``); and
honours ``HTTP(S)_PROXY`` / ``NO_PROXY`` from the environment (requests' ``trust_env``).
A progress line is drawn on stderr only when stderr is a terminal.
"""

from __future__ import annotations

import json
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

import requests

from bundles import __version__
from bundles.digest import Digest
from mirror.config import SourceConfig
from mirror.errors import FailureKind, FetchError

CHUNK: Final = 1 << 16
_HEX64 = re.compile(r"\b([0-9a-fA-F]{64})\b")
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True, slots=True)
class Validators:
    """What upstream said about its bytes, for the next conditional request."""

    etag: str | None = None
    last_modified: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"etag": self.etag, "last_modified": self.last_modified}

    @classmethod
    def from_json(cls, data: Any) -> Validators:
        if not isinstance(data, dict):
            return cls()
        return cls(etag=data.get("etag"), last_modified=data.get("last_modified"))


@dataclass(frozen=True, slots=True)
class Fetched:
    """A completed download at ``path`` (or ``not_modified`` with no new bytes)."""

    path: Path | None
    validators: Validators
    not_modified: bool = False
    sha256: Digest | None = None
    size: int = 0


class Fetcher(ABC):
    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def fetch(self, source: SourceConfig, dest: Path, previous: Validators | None) -> Fetched:
        """Download ``source.url`` completely to ``dest`` (replacing it), or report that the
        copy described by ``previous`` is still current. Raises only FetchError."""


class _Retry(Exception):
    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class _Progress:
    def __init__(self, label: str, total: int | None, stream: TextIO | None) -> None:
        self.label, self.total, self.stream = label, total, stream
        self._last = 0.0

    def update(self, done: int) -> None:
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self._last < 0.2:
            return
        self._last = now
        mib = done / (1 << 20)
        if self.total:
            pct = 100 * done / self.total
            text = f"{mib:8.1f} / {self.total / (1 << 20):.1f} MiB ({pct:3.0f}%)"
        else:
            text = f"{mib:8.1f} MiB"
        self.stream.write(f"\r{self.label}: {text}")
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self._last:
            self.stream.write("\n")
            self.stream.flush()


class HttpFetcher(Fetcher):
    """Fetch over HTTP(S) with requests. ``sleep`` and ``backoff`` are injectable for tests."""

    def __init__(
        self,
        *,
        session: requests.Session | None = None,
        backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        progress: TextIO | None = None,
    ) -> None:
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"stella-mirror/{__version__}"
        self.backoff = backoff
        self.sleep = sleep
        if progress is None and sys.stderr.isatty():
            progress = sys.stderr
        self.progress = progress

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> HttpFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, source: SourceConfig, dest: Path, previous: Validators | None) -> Fetched:
        assert source.url is not None
        expected = source.sha256 or (
            self._checksum(source) if source.checksum_url is not None else None
        )
        attempt = 0
        while True:
            try:
                fetched = self._attempt(source, dest, previous)
            except _Retry as e:
                attempt += 1
                if attempt > source.retries:
                    raise FetchError(
                        f"source {source.name!r}: {e.message} (gave up after {attempt} attempts)",
                        kind=e.kind,
                        hint="the last good data of this source is kept; try again later",
                    ) from None
                self.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if fetched.not_modified or expected is None:
                return fetched
            assert fetched.sha256 is not None
            assert fetched.path is not None
            if fetched.sha256.hex != expected.lower():
                fetched.path.unlink(missing_ok=True)
                raise FetchError(
                    f"source {source.name!r}: {source.url} has sha256 {fetched.sha256.hex}, "
                    f"upstream published {expected}",
                    kind=FailureKind.CHECKSUM,
                    hint="the download is corrupt or the published checksum is for other bytes",
                )
            return fetched

    # -- one request -----------------------------------------------------------------------

    def _attempt(self, source: SourceConfig, dest: Path, previous: Validators | None) -> Fetched:
        url = source.url
        assert url is not None
        part = dest.with_name(dest.name + ".part")
        part_meta = dest.with_name(dest.name + ".part.json")
        headers = {"Accept-Encoding": "identity"}
        offset = 0
        partial = _read_meta(part_meta)
        if part.is_file() and partial is not None and (partial.etag or partial.last_modified):
            offset = part.stat().st_size
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = partial.etag or partial.last_modified or ""
        elif previous is not None and dest.is_file():
            if previous.etag:
                headers["If-None-Match"] = previous.etag
            if previous.last_modified:
                headers["If-Modified-Since"] = previous.last_modified
        timeout = (min(15.0, source.timeout), source.timeout)
        try:
            resp = self.session.get(url, headers=headers, stream=True, timeout=timeout)
        except requests.RequestException as e:
            raise _Retry(FailureKind.CONNECTION, f"cannot reach {url}: {type(e).__name__}") from e
        with resp:
            status = resp.status_code
            if status == 304:
                if not dest.is_file() or previous is None:
                    raise FetchError(
                        f"source {source.name!r}: {url} answered 304 Not Modified "
                        "but there is no earlier copy",
                        kind=FailureKind.HTTP_STATUS,
                    )
                return Fetched(dest, previous, not_modified=True)
            if status == 429 or status >= 500:
                raise _Retry(FailureKind.HTTP_STATUS, f"{url} answered HTTP {status}")
            if status not in (200, 206):
                raise FetchError(
                    f"source {source.name!r}: {url} answered HTTP {status}",
                    kind=FailureKind.HTTP_STATUS,
                    hint="check the url in mirror.toml",
                )
            validators = Validators(resp.headers.get("ETag"), resp.headers.get("Last-Modified"))
            length = resp.headers.get("Content-Length")
            if status == 206:
                m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", ""))
                if not m or int(m.group(1)) != offset:
                    part.unlink(missing_ok=True)
                    part_meta.unlink(missing_ok=True)
                    raise _Retry(FailureKind.TRUNCATED, f"{url}: unusable Content-Range")
                total = int(m.group(3)) if m.group(3) != "*" else None
                validators = partial or validators
            else:
                offset = 0
                total = int(length) if length and length.isdigit() else None
            if total is not None and total > source.max_size:
                raise FetchError(
                    f"source {source.name!r}: {url} is {total} bytes, over max_size "
                    f"{source.max_size}",
                    kind=FailureKind.SIZE_LIMIT,
                    hint="raise max_size for this source in mirror.toml if that is expected",
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            part_meta.write_text(json.dumps(validators.to_json()))
            done = self._stream(resp, part, offset, source, url)
        if total is not None and done != total:
            raise _Retry(FailureKind.TRUNCATED, f"{url}: got {done} of {total} bytes")
        sha256, size = Digest.of_file(part)
        new = dest.with_name(dest.name + ".new")
        part.replace(new)
        part_meta.unlink(missing_ok=True)
        return Fetched(new, validators, sha256=sha256, size=size)

    def _stream(
        self, resp: requests.Response, part: Path, offset: int, source: SourceConfig, url: str
    ) -> int:
        done = offset
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        bar = _Progress(source.name, total, self.progress)
        try:
            with open(part, "ab" if offset else "wb") as out:
                for chunk in resp.iter_content(CHUNK):
                    done += len(chunk)
                    if done > source.max_size:
                        out.close()
                        part.unlink(missing_ok=True)
                        raise FetchError(
                            f"source {source.name!r}: {url} sent more than max_size "
                            f"{source.max_size} bytes",
                            kind=FailureKind.SIZE_LIMIT,
                        )
                    out.write(chunk)
                    bar.update(done)
        except requests.RequestException as e:
            raise _Retry(FailureKind.TRUNCATED, f"{url}: transfer broke after {done} bytes") from e
        finally:
            bar.close()
        return done

    def _checksum(self, source: SourceConfig) -> str:
        """The SHA-256 published at ``checksum_url`` (``sha256sum`` format or a bare digest;
        the line naming the feed's file wins when there are several)."""
        assert source.checksum_url is not None
        assert source.url is not None
        try:
            resp = self.session.get(source.checksum_url, timeout=source.timeout)
        except requests.RequestException as e:
            raise FetchError(
                f"source {source.name!r}: cannot fetch checksum {source.checksum_url}: "
                f"{type(e).__name__}"
            ) from e
        if resp.status_code != 200:
            raise FetchError(
                f"source {source.name!r}: {source.checksum_url} answered HTTP {resp.status_code}",
                kind=FailureKind.HTTP_STATUS,
            )
        text = resp.content[: 1 << 16].decode("utf-8", "replace")
        filename = urlsplit(source.url).path.rsplit("/", 1)[-1]
        digests = []
        for line in text.splitlines():
            m = _HEX64.search(line)
            if m:
                digests.append(m.group(1))
                if filename and line.rstrip().endswith(filename):
                    return m.group(1).lower()
        if not digests:
            raise FetchError(
                f"source {source.name!r}: no sha256 digest in {source.checksum_url}",
                kind=FailureKind.CHECKSUM,
            )
        return digests[0].lower()


def _read_meta(path: Path) -> Validators | None:
    try:
        return Validators.from_json(json.loads(path.read_text()))
    except (OSError, ValueError):
        return None
