"""The one interface every package analyzer implements, and the analyzers' error family.

An analyzer is asked first, cheaply and without I/O, whether it wants a file
(:meth:`Analyzer.required`); the files it wants are then handed over one at a time
(:meth:`Analyzer.analyze`) and each gives a partial :class:`AnalysisResult`. Partial results
are cached per layer under the analyzer's ``name`` and ``version``; bumping ``version``
invalidates them. Once the layers are squashed (upper layers replace lower ones path by path),
:meth:`Analyzer.merge` combines the surviving partials of one image, which is where
several files come together (dpkg ``status`` + ``info/*.list``, ``METADATA`` + ``RECORD``).
"""

from __future__ import annotations

import enum
import io
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Final

from appliance.scanner.model import AnalysisResult
from bundles import limits
from bundles.errors import SizeLimitError, StellaError
from bundles.limits import Cap, Unit

REGULAR_FILE_MODE: Final = 0o100644
FILE_BYTES: Final = limits.cap(
    "scan.file_bytes",
    64 << 20,
    Unit.BYTES,
    "a package database read whole (dpkg status and lists, apk installed)",
)


class AnalyzerError(StellaError):
    """An analyzer could not read a file it asked for; becomes an :class:`Unknown`."""


class ParseError(AnalyzerError):
    """A file's bytes are not in the format its analyzer expects. The message names the
    record or field and the bad value; the path is added by whoever knows it."""


class InputTooLargeError(AnalyzerError, SizeLimitError):
    """A file is larger than its analyzer is willing to read into memory."""


class AnalyzerTableError(AnalyzerError):
    """The analyzer table is inconsistent (a name used twice, an unknown name asked for)."""


class AnalyzerKind(enum.StrEnum):
    """What an analyzer reports, so a scan can choose (an image scan skips lockfiles that
    describe what a build *would* install when the installed packages are there to read)."""

    OS = "os"
    OS_PACKAGES = "os-packages"
    LANGUAGE_PACKAGES = "language-packages"
    LOCKFILE = "lockfile"
    BINARY = "binary"


@dataclass(frozen=True, slots=True)
class AnalyzerInput:
    """One file as an analyzer sees it.

    ``path`` is image-root-relative, POSIX, without a leading slash (``var/lib/dpkg/status``).
    The bytes are opened lazily by ``opener`` so that big files (jars, ELF binaries) can be
    streamed; :meth:`read` reads the whole file under a size limit.
    """

    path: str
    mode: int
    size: int
    opener: Callable[[], BinaryIO]

    @classmethod
    def from_bytes(cls, path: str, data: bytes, mode: int = REGULAR_FILE_MODE) -> AnalyzerInput:
        return cls(path=path, mode=mode, size=len(data), opener=lambda: io.BytesIO(data))

    def open(self) -> BinaryIO:
        return self.opener()

    def read(self, limit: int | Cap = FILE_BYTES) -> bytes:
        """All the bytes, or :class:`InputTooLargeError` when there are more than ``limit``
        (a number, or a cap whose refusal names it)."""
        check_size(self, limit)
        bound = limit.value() if isinstance(limit, Cap) else limit
        with self.open() as fh:
            # the declared size and one byte more: a read as large as the cap would allocate
            # the whole cap for every small file
            data = fh.read(min(self.size, bound) + 1)
            if len(data) > self.size:  # the file grew while being read: read on to the cap
                data += fh.read(bound + 1 - len(data))
        if len(data) > bound:
            if isinstance(limit, Cap):
                raise too_large(limit, self.path)
            raise InputTooLargeError(
                f"{self.path}: more than {bound} bytes", hint="the file grew while being read"
            )
        return data


def too_large(cap: Cap, subject: str, *, found: int | None = None) -> InputTooLargeError:
    """The refusal of ``subject`` for passing ``cap`` (worded as every cap's refusal is), as
    the error a scan reports as an unknown of the file."""
    error = limits.exceeded(cap, subject, found=found)
    return InputTooLargeError(error.message, hint=error.hint)


def check_size(inp: AnalyzerInput, limit: int | Cap) -> None:
    """Refuse a file whose size is over ``limit`` before a byte of it is read."""
    if isinstance(limit, Cap):
        if inp.size > limit.value():
            raise too_large(limit, inp.path, found=inp.size)
        return
    if inp.size > limit:
        raise InputTooLargeError(
            f"{inp.path}: {inp.size} bytes exceeds the {limit}-byte limit for this file",
            hint="raise the analyzer's size_limit if such files are expected",
        )


class Analyzer(ABC):
    """One package manager (or the OS) read from a container file system.

    Subclasses set ``name`` (unique in the registry), ``version`` (bump it whenever the output
    for the same input changes) and ``kind``. ``required`` must do no I/O: it sees only the
    path and the file mode (``st_mode``, type bits included).
    """

    name: ClassVar[str]
    version: ClassVar[int]
    kind: ClassVar[AnalyzerKind]
    size_cap: ClassVar[Cap] = FILE_BYTES
    """The largest file this analyzer reads (a declared cap, docs/limits.md)."""
    databases: ClassVar[tuple[str, ...]] = ()
    """The exact paths of the package database this analyzer reads (if it has one): a scan
    reports such a path that is a link, a directory or reached through a link as an unknown."""

    @abstractmethod
    def required(self, path: str, mode: int) -> bool:
        """Whether this analyzer wants the file at ``path``; no I/O allowed."""

    @abstractmethod
    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        """Read one file. Raise :class:`AnalyzerError` for a file that cannot be read; a
        partial read returns what was found plus its unknowns."""

    @property
    def size_limit(self) -> int:
        return self.size_cap.value()

    def merge(self, partials: Mapping[str, AnalysisResult]) -> AnalysisResult:
        """Combine the per-file results of one squashed image, keyed by path. The default
        concatenates them in path order; analyzers reading several files together override it."""
        return AnalysisResult.combine(partials[p] for p in sorted(partials)).sorted()
