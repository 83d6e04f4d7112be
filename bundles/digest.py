"""Content digests: the identity of every immutable thing in Stella Ops.

A :class:`Digest` is ``algorithm:hex`` as in the OCI image spec; only ``sha256`` is produced,
and only ``sha256`` is accepted (a digest we cannot compute is a digest we cannot verify).
Hashing streams, and every untrusted stream is read under a size limit.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from bundles.errors import DigestError, SizeLimitError

SHA256: Final = "sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")
CHUNK: Final = 1 << 20


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A SHA-256 content digest, written ``sha256:<64 lowercase hex>``."""

    hex: str
    algorithm: str = SHA256

    def __post_init__(self) -> None:
        if self.algorithm != SHA256:
            raise DigestError(
                f"unsupported digest algorithm {self.algorithm!r}", hint="use sha256 digests"
            )
        if not _HEX64.fullmatch(self.hex):
            raise DigestError(
                f"malformed sha256 digest value {self.hex!r}",
                hint="expected 64 lowercase hexadecimal characters",
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<hex>``; anything else raises :class:`DigestError` quoting the input."""
        if not isinstance(text, str):
            raise DigestError(f"digest must be a string, got {type(text).__name__}")
        algorithm, sep, value = text.partition(":")
        if not sep:
            raise DigestError(
                f"malformed digest {text!r}", hint="expected the form sha256:<64 hex characters>"
            )
        return cls(hex=value, algorithm=algorithm)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        return cls(hashlib.sha256(data).hexdigest())

    @classmethod
    def of_stream(cls, stream: BinaryIO, *, limit: int | None = None) -> tuple[Digest, int]:
        """Hash a stream to its end; returns the digest and the number of bytes read."""
        hasher = Hasher(limit=limit)
        while chunk := stream.read(CHUNK):
            hasher.update(chunk)
        return hasher.digest(), hasher.size

    @classmethod
    def of_file(cls, path: Path, *, limit: int | None = None) -> tuple[Digest, int]:
        with open(path, "rb") as fh:
            return cls.of_stream(fh, limit=limit)

    @property
    def encoded(self) -> str:
        """The hex part, as used in ``blobs/sha256/<hex>`` paths."""
        return self.hex

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def short(self) -> str:
        """A 12-character prefix for tables; never used for identity."""
        return self.hex[:12]

    def verify(self, data: bytes) -> None:
        """Raise :class:`DigestError` unless ``data`` hashes to this digest."""
        actual = Digest.of_bytes(data)
        if actual != self:
            raise DigestError(f"content digest mismatch: expected {self}, got {actual}")


class Hasher:
    """Incremental SHA-256 with a byte limit, for hashing data while it streams elsewhere."""

    __slots__ = ("_h", "limit", "size")

    def __init__(self, *, limit: int | None = None) -> None:
        self._h = hashlib.sha256()
        self.size = 0
        self.limit = limit

    def update(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise SizeLimitError(
                f"stream exceeds its size limit of {self.limit} bytes",
                hint="the input is larger than declared; it may be corrupt or hostile",
            )
        self._h.update(chunk)

    def digest(self) -> Digest:
        return Digest(self._h.hexdigest())

    def check(self, *, expected: Digest | None = None, size: int | None = None) -> Digest:
        """The digest of what was hashed, after comparing it (and the byte count) with what
        was declared."""
        actual = self.digest()
        if size is not None and self.size != size:
            raise SizeLimitError(
                f"stream is {self.size} bytes, expected {size}",
                hint="the input is truncated or corrupt",
            )
        if expected is not None and actual != expected:
            raise DigestError(f"content digest mismatch: expected {expected}, got {actual}")
        return actual


class DigestReader:
    """Wrap a readable stream, hashing what passes through under a limit.

    After the consumer has read to the end, :meth:`check` compares the digest (and, when
    given, the size) with what was expected.
    """

    def __init__(
        self,
        stream: BinaryIO,
        *,
        expected: Digest | None = None,
        size: int | None = None,
        limit: int | None = None,
    ) -> None:
        self._stream = stream
        self.expected = expected
        self.expected_size = size
        self._hasher = Hasher(limit=size if size is not None else limit)

    def read(self, n: int = -1) -> bytes:
        chunk = self._stream.read(n)
        if chunk:
            self._hasher.update(chunk)
        return chunk

    @property
    def size(self) -> int:
        return self._hasher.size

    def digest(self) -> Digest:
        return self._hasher.digest()

    def check(self) -> Digest:
        return self._hasher.check(expected=self.expected, size=self.expected_size)
