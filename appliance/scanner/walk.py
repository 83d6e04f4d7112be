"""The layer walk: each layer's tar is read once, as a stream, and each analyzer is handed only
the files it asks for (:func:`walk_blob`, :func:`walk_tar`; a root file system directory with
:func:`walk_rootfs`).

Hard links are analyzed with their target's bytes; symbolic links are recorded, never followed
while walking, and resolved later only inside the image root
(:meth:`appliance.scanner.filetree.FileTree.resolve`).
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO, Final

from appliance.scanner.analyzers.interface import (
    Analyzer,
    AnalyzerInput,
    AnalyzerKind,
    InputTooLargeError,
)
from appliance.scanner.analyzers.table import AnalyzerTable
from appliance.scanner.collect import run_analyzer
from appliance.scanner.entrytrace import python_imports
from appliance.scanner.image import LayerBlob
from appliance.scanner.layers import (
    LAYER_BYTES,
    LAYER_RATIO,
    Entry,
    EntryKind,
    LayerError,
    LayerRecord,
)
from appliance.scanner.model import AnalysisResult, Unknown
from bundles import limits
from bundles.decompress import Budget, DecompressError, open_bounded
from bundles.limits import LimitError
from bundles.tarstream import TarError, TarMember, read_tar

_LAYER_ERRORS: Final[tuple[type[Exception], ...]] = (TarError, DecompressError, EOFError)

WHITEOUT: Final = ".wh."
OPAQUE: Final = ".wh..wh..opq"
SCRIPT_LIMIT: Final = 64 << 10  # executable scripts kept for the entry trace
PYTHON_SOURCE_LIMIT: Final = 4 << 20
PYTHON_FACTS_BYTES: Final = limits.cap(
    "scan.python_facts_bytes",
    2 << 20,
    limits.Unit.BYTES,
    "a Python source file parsed for function-level reachability (a larger one is not parsed: "
    "the trace is not complete there)",
)
RETAIN_LIMIT: Final = 1 << 20  # wanted files kept in memory while a layer is walked (hard links)
SPOOL_LIMIT: Final = 32 << 20  # larger wanted files go to a temporary file, not memory
_CHUNK: Final = 1 << 20
_STDLIB_PREFIXES: Final = ("usr/lib/python", "usr/local/lib/python")

# ---------------------------------------------------------------- decompression


def open_tar_stream(
    raw: BinaryIO, *, subject: str = "layer", budget: Budget | None = None, close: bool = False
) -> io.BufferedReader:
    """The uncompressed tar bytes of a layer blob, whatever it is compressed with, within the
    layer caps (``scan.layer_bytes``, ``scan.layer_ratio``) and ``budget``; ``close`` closes
    ``raw`` with the stream."""
    return open_bounded(
        raw,
        subject=subject,
        total=LAYER_BYTES,
        ratio=LAYER_RATIO,
        budget=budget,
        close_source=close,
    )


# ---------------------------------------------------------------- paths


def clean_path(name: str) -> str | None:
    """A tar member name as a root-relative POSIX path; None when it is the root itself or
    would leave the root (``../``), which no image may contain."""
    path = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    if path in ("", "."):
        return None
    if any(part == ".." for part in name.split("/")):
        # normpath already clamped it at the root; refuse such an entry instead of guessing
        return None
    return path


def is_python_source(path: str) -> bool:
    """Python files whose imports the entry trace may follow: everything but the standard
    library's own directories (site- and dist-packages below them are included)."""
    if not path.endswith(".py"):
        return False
    if path.startswith(_STDLIB_PREFIXES):
        return "/site-packages/" in path or "/dist-packages/" in path
    return True


# ---------------------------------------------------------------- the walk


class _Walk:
    """State of one layer's walk."""

    def __init__(self, registry: AnalyzerTable) -> None:
        self.registry = registry
        self.entries: list[Entry] = []
        self.whiteouts: list[str] = []
        self.opaque: list[str] = []
        self.results: dict[str, dict[str, AnalysisResult]] = {}
        self.scripts: dict[str, str] = {}
        self.imports: dict[str, tuple[str, ...]] = {}
        self.pysource: dict[str, str | None] = {}
        self.unknowns: list[Unknown] = []
        self.retained: dict[str, bytes] = {}
        self.pending: dict[str, list[Entry]] = {}  # hard-link target -> links needing its bytes
        self.analyzed: dict[str, frozenset[str]] = {}  # path -> analyzers that read it

    def analyze(self, path: str, mode: int, size: int, opener: Callable[[], BinaryIO]) -> None:
        wanted = self.registry.required(path, mode)
        results = {}
        inp = AnalyzerInput(path=path, mode=mode, size=size, opener=opener)
        for analyzer in wanted:
            result = run_analyzer(analyzer, inp)
            if not result.is_empty():
                results[analyzer.name] = result
        if results:
            self.results[path] = results
        else:
            self.results.pop(path, None)
        if wanted:
            self.analyzed[path] = frozenset(a.name for a in wanted)

    def regular(self, path: str, mode: int, size: int, read: Callable[[], BinaryIO]) -> None:
        """A regular file's bytes are read at most once, only when someone wants them."""
        wanted = self.registry.required(path, mode)
        wants_analysis = bool(wanted)
        executable = bool(mode & 0o111)
        wants_script = executable and size <= SCRIPT_LIMIT
        wants_imports = size <= PYTHON_SOURCE_LIMIT and is_python_source(path)
        needed = wants_analysis or wants_script or wants_imports
        if not needed:
            self.results.pop(path, None)
            return
        if not (wants_script or wants_imports) and _over_every_cap(size, wanted):
            # each analyzer that wants it refuses it on its size: not a byte is read (nor
            # spooled to disk)
            self.analyze(path, mode, size, _never_opened)
            return
        spool: Any = None
        if size > SPOOL_LIMIT:
            spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
            with read() as src:
                while chunk := src.read(_CHUNK):
                    spool.write(chunk)
            data = b""
        else:
            with read() as src:
                data = src.read()
        try:
            if wants_script and data.startswith(b"#!"):
                self.scripts[path] = data.decode("utf-8", "replace")
            if wants_imports:
                found = python_imports(data.decode("utf-8", "replace")) if b"import" in data else ()
                self.imports[path] = found
                # kept for the function-level trace, which parses only the files the
                # entrypoint's imports reach (None: over the cap, never parsed)
                self.pysource[path] = (
                    data.decode("utf-8", "replace") if size <= PYTHON_FACTS_BYTES.value() else None
                )
            if spool is not None:

                def reopen() -> BinaryIO:
                    spool.seek(0)
                    return _Unclosable(spool)

                self.analyze(path, mode, size, reopen)
            else:
                self.analyze(path, mode, size, lambda: io.BytesIO(data))
                # kept for hard links to it; binary analyzers' results are reused instead
                if size <= RETAIN_LIMIT and any(a.kind is not AnalyzerKind.BINARY for a in wanted):
                    self.retained[path] = data
        finally:
            if spool is not None:
                spool.close()

    def link_from_target(self, entry: Entry) -> bool:
        """A hard link wanted only by content-only (binary) analyzers that already read the
        target: their results are the target's, at the link's path. No bytes needed."""
        wanted = self.registry.required(entry.path, entry.mode)
        done = self.analyzed.get(entry.link, frozenset())
        if not wanted or any(
            a.kind is not AnalyzerKind.BINARY or a.name not in done for a in wanted
        ):
            return False
        source = self.results.get(entry.link, {})
        results = {
            a.name: replace(
                source[a.name],
                packages=tuple(
                    replace(p, locations=(entry.path,)) for p in source[a.name].packages
                ),
            )
            for a in wanted
            if a.name in source
        }
        if results:
            self.results[entry.path] = results
        return True

    def hardlink(self, entry: Entry, data: bytes) -> None:
        if not self.registry.required(entry.path, entry.mode):
            return
        self.analyze(entry.path, entry.mode, len(data), lambda: io.BytesIO(data))


def _over_every_cap(size: int, wanted: Iterable[Analyzer]) -> bool:
    """Whether a file of ``size`` bytes is over the size cap of every analyzer in ``wanted``."""
    return size > max((a.size_limit for a in wanted), default=0)


def _never_opened() -> BinaryIO:
    raise InputTooLargeError("the file is over the size cap of every analyzer that wants it")


class _Unclosable(io.BufferedReader):
    """A view of a spooled file that analyzers may close without closing the spool."""

    def __init__(self, handle: Any) -> None:
        super().__init__(handle)
        self._handle = handle

    def close(self) -> None:
        self.detach()


def walk_tar(
    stream: BinaryIO,
    registry: AnalyzerTable,
    *,
    source: str = "layer",
    reopen: Callable[[], BinaryIO] | None = None,
) -> LayerRecord:
    """Walk one layer's uncompressed tar stream once (see the module docstring).

    ``reopen`` gives the same tar stream again; it is used only when a hard link that an
    analyzer wants points at a file whose bytes were not kept (a large or unwanted file).
    """
    walk = _Walk(registry)
    entries: dict[str, Entry] = {}
    try:
        _read_members(stream, walk, entries)
        if walk.pending:
            _resolve_pending(walk, entries, reopen)
    except _LAYER_ERRORS as e:  # raised while a member's content was being read
        raise LayerError(
            f"{source}: the layer is not a readable tar stream: {e}",
            hint="the image is damaged; copy it again",
        ) from e
    return LayerRecord(
        entries=tuple(entries.values()),
        whiteouts=tuple(walk.whiteouts),
        opaque=tuple(walk.opaque),
        results=walk.results,
        scripts=walk.scripts,
        imports=walk.imports,
        pysource=walk.pysource,
        unknowns=tuple(walk.unknowns),
    )


def _members(stream: BinaryIO) -> Iterator[tuple[TarMember, Callable[[], BinaryIO]]]:
    """The members of a tar stream, each with a function that opens its content (valid only
    until the next member is asked for); the stream is read to its end afterwards, so that a
    verifying reader below checks the blob's digest."""
    yield from read_tar(stream)
    while stream.read(_CHUNK):
        pass


def _read_members(stream: BinaryIO, walk: _Walk, entries: dict[str, Entry]) -> None:
    registry = walk.registry
    for member, read in _members(stream):
        path = clean_path(member.name)
        if path is None:
            if member.name.strip("./"):
                walk.unknowns.append(Unknown(member.name, "tar entry leaves the image root"))
            continue
        directory, _, base = path.rpartition("/")
        if base == OPAQUE:
            walk.opaque.append(directory)
            continue
        if base.startswith(WHITEOUT):
            walk.whiteouts.append(posixpath.join(directory, base[len(WHITEOUT) :]))
            continue
        mode = member.st_mode
        walk.results.pop(path, None)  # a later entry for a path replaces an earlier one
        if member.isdir():
            entries[path] = Entry(path, EntryKind.DIR, mode)
        elif member.issym():
            entries[path] = Entry(path, EntryKind.SYMLINK, mode, 0, member.linkname)
        elif member.islnk():
            target = clean_path(member.linkname)
            if target is None:
                walk.unknowns.append(Unknown(path, "hard link target leaves the image root"))
                continue
            mode = stat.S_IFREG | (member.mode & 0o7777)
            entry = Entry(path, EntryKind.HARDLINK, mode, 0, target)
            entries[path] = entry
            if walk.link_from_target(entry):
                pass
            elif target in walk.retained:
                walk.hardlink(entry, walk.retained[target])
            elif registry.required(path, mode):
                walk.pending.setdefault(target, []).append(entry)
        elif member.isreg():
            entries[path] = Entry(path, EntryKind.FILE, mode, member.size)
            walk.regular(path, mode, member.size, read)
        else:
            entries[path] = Entry(path, EntryKind.OTHER, mode)


def _resolve_pending(
    walk: _Walk,
    entries: dict[str, Entry],
    reopen: Callable[[], BinaryIO] | None,
) -> None:
    """The rare second read: bytes for hard links whose targets were not kept."""
    missing = {t for t in walk.pending if t not in entries or entries[t].kind is not EntryKind.FILE}
    for target in missing:
        for link in walk.pending.pop(target):
            walk.unknowns.append(
                Unknown(link.path, f"hard link to {target}, which is not a file of this layer")
            )
    if not walk.pending:
        return
    if reopen is None:
        for target, links in walk.pending.items():
            walk.unknowns.extend(
                Unknown(link.path, f"hard link to {target}: its bytes were not kept")
                for link in links
            )
        return
    with reopen() as again:
        for member, read in _members(again):
            path = clean_path(member.name)
            if path is None or path not in walk.pending or not member.isreg():
                continue
            links = walk.pending[path]
            wanted = [a for link in links for a in walk.registry.required(link.path, link.mode)]
            if _over_every_cap(member.size, wanted):
                for link in walk.pending.pop(path):  # refused on its size
                    walk.analyze(link.path, link.mode, member.size, _never_opened)
                continue
            with read() as handle:
                data = handle.read()
            for link in walk.pending.pop(path):
                walk.hardlink(link, data)


LAYERS: Final = "layers"  # the analyzer name of unknowns about a whole layer


def over_cap(digest: object, cap: limits.Cap, message: str, size: int = 0) -> LayerRecord:
    """A layer left out of the scan because it passed a cap: nothing but its unknown.

    Nothing of a layer cut short is kept (a half-read layer would squash into a file system
    that never existed); the unknown names the layer, the cap and how to raise it."""
    reason = f"{message}; the layer is left out (raise the cap with {cap.env})"
    return LayerRecord(unknowns=(Unknown(str(digest), reason, LAYERS),), size=size)


def walk_blob(blob: LayerBlob, registry: AnalyzerTable) -> LayerRecord:
    """Walk a layer blob: decompress (within the layer caps), walk, and check the digest at
    the end. A layer over a cap is returned as :func:`over_cap`; a damaged one raises."""
    subject = f"layer {blob.digest}"
    try:
        limits.check(LAYER_BYTES, blob.size, subject)  # a stored (uncompressed) tar's own size
        with blob.open() as raw:
            stream = open_tar_stream(raw, subject=subject)
            record = walk_tar(
                stream,
                registry,
                source=subject,
                reopen=lambda: open_tar_stream(blob.open(), subject=subject, close=True),
            )
            produced = stream.raw.produced  # type: ignore[attr-defined]
    except LimitError as e:
        return over_cap(blob.digest, e.cap, _without_subject(e.message, subject))
    except LayerError as e:
        cause = e.__cause__
        if isinstance(cause, TarError) and cause.cap is not None:
            refused = limits.exceeded(cause.cap, subject, found=cause.found)
            return over_cap(blob.digest, cause.cap, _without_subject(refused.message, subject))
        raise
    return replace(record, size=produced)


def _without_subject(message: str, subject: str) -> str:
    return message.removeprefix(subject + ": ")


def walk_rootfs(root: Path, registry: AnalyzerTable) -> LayerRecord:
    """An unpacked root file system (``dir:``) as a single layer; symlinks are not followed."""
    base = Path(root)
    walk = _Walk(registry)
    for directory, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        here = Path(directory)
        rel_dir = here.relative_to(base).as_posix()
        for name in sorted(dirnames + filenames):
            real = here / name
            path = name if rel_dir == "." else f"{rel_dir}/{name}"
            info = real.lstat()
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                walk.entries.append(Entry(path, EntryKind.DIR, mode))
            elif stat.S_ISLNK(mode):
                walk.entries.append(Entry(path, EntryKind.SYMLINK, mode, 0, os.readlink(real)))
            elif stat.S_ISREG(mode):
                walk.entries.append(Entry(path, EntryKind.FILE, mode, info.st_size))

                def opener(real: Path = real) -> BinaryIO:
                    return open(real, "rb")

                walk.regular(path, mode, info.st_size, opener)
            else:
                walk.entries.append(Entry(path, EntryKind.OTHER, mode))
    return LayerRecord(
        entries=tuple(walk.entries),
        results=walk.results,
        scripts=walk.scripts,
        imports=walk.imports,
        pysource=walk.pysource,
        unknowns=tuple(walk.unknowns),
    )
