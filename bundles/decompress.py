"""Bounded decompression: a compressed stream read as a stream, never more than its caps.

A few kilobytes of gzip or zstd can claim gigabytes. :class:`BoundedReader` decompresses a
stream (gzip members concatenated, zstd frames concatenated, or nothing) and gives out at most
what each read asks for, so memory stays at one chunk whatever the stream claims. It counts
what it has given out and refuses, with the :class:`~bundles.limits.LimitError` of the cap
passed, as soon as:

- the output passes ``total`` (a cap on one stream's uncompressed bytes);
- the output passes ``ratio`` times the compressed bytes consumed, once it is past
  :data:`RATIO_FLOOR` (small streams of zeros expand a lot and are harmless);
- a shared :class:`Budget` (several streams of one input, e.g. the layers of an image) is
  spent.

The caps themselves are declared by the module that enforces them (``limits.cap``), which
passes them in; nothing here is specific to one kind of input. A damaged stream raises
:class:`DecompressError`.
"""

from __future__ import annotations

import enum
import io
import types
import zlib
from typing import Any, BinaryIO, Final

import zstandard

from bundles import limits
from bundles.errors import StellaError
from bundles.limits import Cap

_inflate: types.ModuleType
try:  # ISA-L inflates gzip about twice as fast as zlib; zlib is the fallback
    from isal import isal_zlib

    _inflate = isal_zlib
except ImportError:  # pragma: no cover - depends on the installation
    _inflate = zlib

GZIP_MAGIC: Final = b"\x1f\x8b"
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
RATIO_FLOOR: Final = 64 << 20
"""Output below this is never refused for its ratio (a small file of zeros compresses 1000:1)."""
ZSTD_WINDOW_LIMIT: Final = 1 << 27
"""The largest zstd window a frame may ask the decoder to allocate (``--long=27``)."""
_CHUNK: Final = 1 << 20
_ERRORS: Final[tuple[type[Exception], ...]] = (
    zlib.error,
    _inflate.error,
    zstandard.ZstdError,
    EOFError,
)


class Format(enum.StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


def sniff(head: bytes) -> Format:
    """What a stream is compressed with, from its first bytes (media types lie)."""
    if head.startswith(GZIP_MAGIC):
        return Format.GZIP
    if head.startswith(ZSTD_MAGIC):
        return Format.ZSTD
    return Format.NONE


class DecompressError(StellaError):
    """A compressed stream is damaged or truncated."""


class Budget:
    """Uncompressed bytes several streams of one input may give out together."""

    __slots__ = ("cap", "subject", "used")

    def __init__(self, cap: Cap, subject: str) -> None:
        self.cap = cap
        self.subject = subject
        self.used = 0

    def charge(self, count: int) -> None:
        self.used += count
        if self.used > self.cap.value():
            raise limits.exceeded(self.cap, self.subject)


class _Counting(io.RawIOBase):
    """Counts the compressed bytes a decoder has taken from ``raw``."""

    def __init__(self, raw: BinaryIO, head: bytes = b"") -> None:
        self._raw = raw
        self._head = head  # bytes already read from ``raw`` (to sniff its format)
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            data, self._head = self._head[: len(buffer)], self._head[len(buffer) :]
        else:
            data = self._raw.read(len(buffer))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


class BoundedReader(io.RawIOBase):
    """The decompressed bytes of ``raw``, within ``total``, ``ratio`` and ``budget``.

    ``subject`` names the input in a refusal (``layer sha256:…``). ``fmt`` None sniffs the
    first bytes. ``produced`` and ``consumed`` count output and input so far.
    """

    def __init__(
        self,
        raw: BinaryIO,
        *,
        subject: str,
        total: Cap,
        ratio: Cap | None = None,
        budget: Budget | None = None,
        fmt: Format | None = None,
        close_source: bool = False,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._close_source = close_source
        head = b""
        if fmt is None:
            if isinstance(raw, io.BufferedReader):
                fmt = sniff(raw.peek(4)[:4])
            else:  # read the magic and hand it back first (wrapping ``raw`` would close it)
                while len(head) < 4 and (more := raw.read(4 - len(head))):
                    head += more
                fmt = sniff(head)
        self.format = fmt
        self.subject = subject
        self._total = total
        self._ratio = ratio
        self._budget = budget
        self._source = _Counting(raw, head)
        self.produced = 0
        self._zstd: Any = None
        self._gzip: Any = None
        self._tail = b""  # gzip input not yet inflated
        self._started = False  # a gzip member has begun and not ended
        self._eof = False
        if self.format is Format.ZSTD:
            decoder = zstandard.ZstdDecompressor(max_window_size=ZSTD_WINDOW_LIMIT)
            self._zstd = decoder.stream_reader(
                self._source,  # type: ignore[arg-type]
                read_size=_CHUNK,
                read_across_frames=True,
                closefd=False,
            )
        elif self.format is Format.GZIP:
            self._gzip = _inflate.decompressobj(31)

    @property
    def consumed(self) -> int:
        return self._source.count

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if want == 0 or self._eof:
            return 0
        try:
            data = self._next(want)
        except _ERRORS as e:
            raise DecompressError(
                f"{self.subject}: the {self.format.value} stream is damaged: {e}",
                hint="the input is damaged or truncated; copy it again",
            ) from e
        if not data:
            self._eof = True
            return 0
        count = len(data)
        buffer[:count] = data
        self._account(count)
        return count

    def _next(self, want: int) -> bytes:
        if self._zstd is not None:
            return bytes(self._zstd.read(want))
        if self._gzip is None:
            return self._source.read(want) or b""
        while True:
            if not self._tail:
                self._tail = self._source.read(_CHUNK) or b""
                if not self._tail:
                    if self._started:
                        raise EOFError("the gzip stream ends inside a member")
                    return b""
            self._started = True
            out: bytes = self._gzip.decompress(self._tail, want)
            self._tail = self._gzip.unconsumed_tail
            if self._gzip.eof:  # another member may follow
                self._tail = self._gzip.unused_data + self._tail
                self._gzip = _inflate.decompressobj(31)
                self._started = False
            if out:
                return out

    def _account(self, count: int) -> None:
        self.produced += count
        if self.produced > self._total.value():
            raise limits.exceeded(self._total, self.subject)
        if self._ratio is not None and self.produced > RATIO_FLOOR:
            ratio = self.produced // max(self.consumed, 1)
            if ratio > self._ratio.value():
                raise limits.exceeded(self._ratio, self.subject, found=ratio)
        if self._budget is not None:
            self._budget.charge(count)

    def close(self) -> None:
        if self._zstd is not None:
            self._zstd.close()
        if self._close_source:
            self._raw.close()
        super().close()


def open_bounded(
    raw: BinaryIO,
    *,
    subject: str,
    total: Cap,
    ratio: Cap | None = None,
    budget: Budget | None = None,
    close_source: bool = False,
) -> io.BufferedReader:
    """A buffered :class:`BoundedReader` (the usual way to read one)."""
    reader = BoundedReader(
        raw, subject=subject, total=total, ratio=ratio, budget=budget, close_source=close_source
    )
    return io.BufferedReader(reader, _CHUNK)
