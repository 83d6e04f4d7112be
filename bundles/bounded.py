"""Bounded reads of untrusted bytes: streams, JSON documents and lines, each under a cap.

Every read of bytes that did not come from this machine's own stores goes through one of these
(docs/limits.md):

- :class:`Section` is the next ``size`` bytes of a stream (a tar member, a blob at an offset of a
  file, a request body), optionally hashed as they pass and checked against a digest at their
  end. It never reads past ``size``, and a stream that ends early is an error, not a short read.
- :func:`read_capped` reads a stream of unknown length to its end in chunks, refusing it as soon
  as it passes a cap (decompressed output, chunked bodies), so it never holds more than the cap.
- :func:`check_json` refuses a JSON document over the size cap or nested deeper than the depth
  cap before a parser sees it: Python's and orjson's parsers recurse once per level, and a
  200,000-deep array is a ``RecursionError``, not an error message.
- :func:`capped_lines` passes a stream of chunks through while refusing any line longer than a
  cap, so a consumer that joins chunks into lines never grows one line without bound.

Errors are the caller's to word: each reader takes small callables that build the exception it
raises (a tar error, an HTTP body error, a layer the scanner reports as unknown), so the same
reader serves every boundary and each refusal still names its file.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, BinaryIO, Final

from bundles import limits
from bundles.digest import CHUNK, Digest, Hasher
from bundles.errors import DigestError, SizeLimitError, StellaError
from bundles.limits import Cap, Unit

JSON_BYTES: Final = limits.cap(
    "json.document_bytes", 64 << 20, Unit.BYTES, "a JSON document read whole"
)
JSON_DEPTH: Final = limits.cap(
    "json.depth", 128, Unit.DEPTH, "the nesting of arrays and objects in a JSON document"
)

ShortError = Callable[[int, int], Exception]
"""Builds the error for a section that ended after ``got`` of its ``size`` bytes."""
MismatchError = Callable[[Digest, int], Exception]
"""Builds the error for a section whose bytes hash to ``actual`` (``size`` bytes read)."""


class TruncatedError(StellaError):
    """A bounded stream ended before the bytes it declared."""


def _short(got: int, size: int) -> Exception:
    return TruncatedError(f"stream ended after {got} of its {size} bytes")


def _long(got: int, size: int) -> Exception:
    return TruncatedError(f"stream holds more than its {size} bytes")


class Section(io.RawIOBase):
    """The next ``size`` bytes of ``source``, read at most once, in the caller's chunks.

    With ``expected``, the bytes are hashed as they pass and checked by the read that finds
    their end (``mismatch`` builds the error). ``short`` builds the error for a source that ends
    early. With ``to_eof``, the source must end exactly where the section does (a whole file
    whose size was declared): a byte more is refused with ``long``. ``close_source`` closes the
    source with the section (a file opened for it); otherwise the source stays open, positioned
    after whatever was read.
    """

    def __init__(
        self,
        source: Any,
        size: int,
        *,
        expected: Digest | None = None,
        hash: bool = False,
        short: ShortError = _short,
        mismatch: MismatchError | None = None,
        long: ShortError = _long,
        to_eof: bool = False,
        close_source: bool = False,
    ) -> None:
        super().__init__()
        if size < 0:
            raise ValueError(f"a section cannot be {size} bytes")
        self._source = source
        self.size = size
        self.left = size
        self.expected = expected
        self._hasher = Hasher() if (expected is not None or hash) else None
        self._short = short
        self._long = long
        self._mismatch = mismatch
        self._to_eof = to_eof
        self._close_source = close_source
        self._checked = False

    @property
    def read_so_far(self) -> int:
        return self.size - self.left

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            self._finish()
            return 0
        view = memoryview(buffer).cast("B")[: min(len(buffer), self.left)]
        count = self._source.readinto(view)
        if not count:
            raise self._short(self.read_so_far, self.size)
        if self._hasher is not None:
            self._hasher.update(view[:count])  # type: ignore[arg-type]
        self.left -= count
        return int(count)

    def digest(self) -> Digest:
        """The digest of the bytes read so far (the whole section once it is read)."""
        if self._hasher is None:
            raise ValueError("this section is not hashed")
        return self._hasher.digest()

    def _finish(self) -> None:
        if self._checked:
            return
        self._checked = True
        if self._to_eof and self._source.read(1):
            raise self._long(self.size + 1, self.size)
        if self.expected is not None and self._hasher is not None:
            actual = self._hasher.digest()
            if actual != self.expected:
                if self._mismatch is not None:
                    raise self._mismatch(actual, self.size)
                raise DigestError(
                    f"content is {actual}, expected {self.expected}",
                    hint="the input is corrupt or was tampered with",
                )

    def skip(self) -> None:
        """Read and drop the rest of the section (checking it, if it is verified)."""
        while self.readinto(_SCRATCH):
            pass

    def close(self) -> None:
        if self._close_source and not self.closed:
            self._source.close()
        super().close()

    def buffered(self, size: int = CHUNK) -> BinaryIO:
        """The section behind a read buffer of ``size`` bytes (``read(n)``, ``readline``)."""
        return io.BufferedReader(self, size)


_SCRATCH: Final = bytearray(CHUNK)


def read_exact(source: Any, size: int, short: ShortError = _short) -> bytes:
    """Exactly ``size`` bytes of ``source`` (a size already checked against its cap), read in
    chunks so that a source that lies about its length costs what it holds, not what it
    claims."""
    if size <= CHUNK:
        data = source.read(size)
        if len(data) != size:
            raise short(len(data), size)
        return bytes(data)
    out = bytearray()
    while len(out) < size:
        chunk = source.read(min(CHUNK, size - len(out)))
        if not chunk:
            raise short(len(out), size)
        out += chunk
    return bytes(out)


def read_capped(
    source: Any,
    cap: Cap,
    subject: str,
    *,
    limit: int | None = None,
    chunk: int = CHUNK,
) -> bytes:
    """Read ``source`` to its end, refusing it (``cap`` named) as soon as it passes the cap in
    force (or ``limit``, when the caller's bound is smaller), never holding more than that."""
    bound = cap.value() if limit is None else limit
    out = bytearray()
    while data := source.read(min(chunk, bound + 1 - len(out))):
        out += data
        if len(out) > bound:
            raise limits.exceeded(cap, subject)
    return bytes(out)


def read_open_file(fh: Any, cap: Cap, subject: str) -> bytes:
    """The whole of an open file: refused by its size (``cap`` named) before anything is read,
    then read in chunks so that only what it holds is allocated, and refused again if it grew
    past the cap meanwhile. The caller turns ``OSError`` into its own one-line error."""
    limits.check(cap, os.fstat(fh.fileno()).st_size, subject)
    return read_capped(fh, cap, subject)


@dataclass(frozen=True, slots=True)
class ZipDirectory:
    """What a ZIP archive's end record declares of its central directory."""

    entries: int
    size: int


def zip_directory(fh: BinaryIO) -> ZipDirectory | None:
    """The end record of a ZIP archive (zip64 too), read before :mod:`zipfile` builds an object
    per directory entry, so a caller can refuse a directory past its caps first; None when
    there is no end record (not a ZIP). The stream is left at its start."""
    record = zipfile._EndRecData(fh)  # type: ignore[attr-defined]  # zipfile's own end-record reader
    fh.seek(0)
    if not record:
        return None
    entries, size = zipfile._ECD_ENTRIES_TOTAL, zipfile._ECD_SIZE  # type: ignore[attr-defined]
    return ZipDirectory(int(record[entries]), int(record[size]))


def printable(name: str) -> str:
    """A name from outside (a file name, a member name) as text that can be printed and
    written in JSON: bytes that are not UTF-8 (kept as surrogates) become ``\\xNN``."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        raw = name.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


# --- JSON ---------------------------------------------------------------------------------

_STRING: Final = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKETS: Final = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS: Final = bytes(b for b in range(256) if b not in b"[]{}")
_STEP: Final = [0] * 256
_STEP[ord("[")] = 1
_STEP[ord("]")] = -1


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in ``data`` (brackets inside strings do not count);
    a cheap scan in C loops, for refusing a document before a recursive parser sees it."""
    if data.count(b"[") + data.count(b"{") == 0:
        return 0
    bare = _STRING.sub(b"", data) if b'"' in data else data
    brackets = bare.translate(_BRACKETS, _NOT_BRACKETS)
    if not brackets:
        return 0
    return max(0, max(accumulate(map(_STEP.__getitem__, brackets))))


def check_json(
    data: bytes | str,
    *,
    source: str,
    limit: int | None = None,
    depth: Cap = JSON_DEPTH,
    size_cap: Cap = JSON_BYTES,
) -> bytes | str:
    """Refuse ``data`` over the size cap (or ``limit``) or nested deeper than the depth cap,
    before any parser allocates for it. Returns ``data``."""
    if limit is not None and len(data) > limit:  # the caller's own, smaller bound
        raise SizeLimitError(
            f"{source}: {len(data)} bytes exceeds the JSON size limit of {limit} bytes"
        )
    limits.check(size_cap, len(data), source)
    deepest = depth.value()
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    # Only a document with more brackets than the cap can nest deeper than it.
    if raw.count(b"[") + raw.count(b"{") > deepest:
        found = json_depth(raw)
        if found > deepest:
            raise limits.exceeded(depth, source, found=found)
    return data


# --- lines --------------------------------------------------------------------------------


def capped_lines(
    chunks: Iterable[bytes], cap: Cap, subject: str, *, limit: int | None = None
) -> Iterator[bytes]:
    """Pass ``chunks`` through unchanged, refusing (``cap`` named) the first line longer than
    the cap in force before the chunk that would make it so is passed on: whatever joins the
    chunks into lines holds at most one cap's worth of a line."""
    bound = cap.value() if limit is None else limit
    run = 0  # bytes since the last newline
    for chunk in chunks:
        last = chunk.rfind(b"\n")
        if last < 0:
            run += len(chunk)
            if run > bound:
                raise limits.exceeded(cap, subject, found=run)
        else:
            first = chunk.find(b"\n")
            if run + first > bound:
                raise limits.exceeded(cap, subject, found=run + first)
            if last - first > bound and _longest_inner(chunk, first, last) > bound:
                raise limits.exceeded(cap, subject)
            run = len(chunk) - last - 1
            if run > bound:
                raise limits.exceeded(cap, subject, found=run)
        yield chunk


def _longest_inner(chunk: bytes, first: int, last: int) -> int:
    """The longest line wholly inside ``chunk`` between its first and last newline."""
    if last - first - 1 <= 0:
        return 0
    return max(map(len, chunk[first + 1 : last].split(b"\n")))
