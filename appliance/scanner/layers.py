"""The layer walk: each layer's tar is read once, as a stream, and each analyzer is handed only
the files it asks for; the layers are then squashed into one file system.

What one layer yields (:class:`LayerRecord`) depends on the layer's bytes and the analyzers'
versions only, never on the image it came from, so it is cached by layer digest
(:mod:`appliance.scanner.cache`) and reused by every image that shares the layer.

Squashing follows the image-spec's changeset rules: ``.wh.NAME`` deletes ``NAME`` (and
everything below it) from lower layers, ``.wh..wh..opq`` empties its directory of lower layers'
content, and a non-directory replacing a directory hides what was below it. Hard links are
analyzed with their target's bytes; symbolic links are recorded, never followed while walking,
and resolved later only inside the image root (:meth:`FileTree.resolve`): an absolute target
is taken from the root and ``..`` stops at the root, as when a container runs.
"""

from __future__ import annotations

import enum
import io
import os
import posixpath
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Final

from appliance.scanner.analyzers.interface import (
    Analyzer,
    AnalyzerInput,
    AnalyzerKind,
    InputTooLargeError,
)
from appliance.scanner.analyzers.registry import Registry
from appliance.scanner.collect import Collector, run_analyzer
from appliance.scanner.entrytrace import python_imports
from appliance.scanner.image import LayerBlob
from appliance.scanner.model import AnalysisResult, Package, Unknown
from bundles import limits
from bundles.decompress import Budget, DecompressError, open_bounded
from bundles.errors import StellaError
from bundles.limits import LimitError, Unit
from bundles.tarstream import TarError, TarMember, read_tar

_LAYER_ERRORS: Final[tuple[type[Exception], ...]] = (TarError, DecompressError, EOFError)

LAYER_BYTES: Final = limits.cap(
    "scan.layer_bytes", 16 << 30, Unit.BYTES, "the uncompressed tar of one image layer"
)
LAYER_RATIO: Final = limits.cap(
    "scan.layer_ratio",
    200,
    Unit.RATIO,
    "the expansion of a compressed layer (uncompressed bytes per compressed byte)",
)
IMAGE_BYTES: Final = limits.cap(
    "scan.image_bytes", 64 << 30, Unit.BYTES, "the uncompressed layers of one image together"
)

WALK_VERSION: Final = 2
"""Bumped whenever what a walk records changes; part of every layer-cache key."""

WHITEOUT: Final = ".wh."
OPAQUE: Final = ".wh..wh..opq"
SCRIPT_LIMIT: Final = 64 << 10  # executable scripts kept for the entry trace
PYTHON_SOURCE_LIMIT: Final = 4 << 20
RETAIN_LIMIT: Final = 1 << 20  # wanted files kept in memory while a layer is walked (hard links)
SPOOL_LIMIT: Final = 32 << 20  # larger wanted files go to a temporary file, not memory
_CHUNK: Final = 1 << 20
_STDLIB_PREFIXES: Final = ("usr/lib/python", "usr/local/lib/python")


class LayerError(StellaError):
    """A layer cannot be read as a tar stream (damaged, truncated, unknown compression)."""


class EntryKind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"  # devices, fifos


_NOTHING: Final[frozenset[str]] = frozenset()
_KINDS: Final = {kind.value: kind for kind in EntryKind}


@dataclass(frozen=True, slots=True)
class Entry:
    """One file-system entry a layer adds or changes. ``link`` is a symlink's target as
    written, or a hard link's target path (root-relative)."""

    path: str
    kind: EntryKind
    mode: int
    size: int = 0
    link: str = ""

    def to_list(self) -> list[Any]:
        return [self.path, self.kind.value, self.mode, self.size, self.link]

    @classmethod
    def from_list(cls, item: list[Any]) -> Entry:
        return cls(item[0], _KINDS[item[1]], item[2], item[3], item[4])


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """Everything a scan needs from one layer, without reading it again.

    ``results``: path -> analyzer name -> that analyzer's partial result for the file.
    ``scripts``: executable files starting with ``#!`` (small ones), for the entry trace.
    ``imports``: Python source files outside the standard library -> the modules they import.
    """

    entries: tuple[Entry, ...] = ()
    whiteouts: tuple[str, ...] = ()
    opaque: tuple[str, ...] = ()
    results: Mapping[str, Mapping[str, AnalysisResult]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    scripts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    imports: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    unknowns: tuple[Unknown, ...] = ()
    size: int = 0  # uncompressed bytes of the layer's tar

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": [e.to_list() for e in self.entries],
            "whiteouts": list(self.whiteouts),
            "opaque": list(self.opaque),
            "results": {
                path: {name: r.to_dict() for name, r in sorted(by.items())}
                for path, by in sorted(self.results.items())
            },
            "scripts": dict(sorted(self.scripts.items())),
            "imports": {p: list(v) for p, v in sorted(self.imports.items())},
            "unknowns": [u.to_dict() for u in self.unknowns],
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerRecord:
        return cls(
            entries=tuple(Entry.from_list(e) for e in data["entries"]),
            whiteouts=tuple(data["whiteouts"]),
            opaque=tuple(data["opaque"]),
            results={
                path: {name: AnalysisResult.from_dict(r) for name, r in by.items()}
                for path, by in data["results"].items()
            },
            scripts=dict(data["scripts"]),
            imports={p: tuple(v) for p, v in data["imports"].items()},
            unknowns=tuple(Unknown.from_dict(u) for u in data["unknowns"]),
            size=int(data.get("size", 0)),
        )


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

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.entries: list[Entry] = []
        self.whiteouts: list[str] = []
        self.opaque: list[str] = []
        self.results: dict[str, dict[str, AnalysisResult]] = {}
        self.scripts: dict[str, str] = {}
        self.imports: dict[str, tuple[str, ...]] = {}
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
    registry: Registry,
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


def walk_blob(blob: LayerBlob, registry: Registry) -> LayerRecord:
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


def walk_rootfs(root: Path, registry: Registry) -> LayerRecord:
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
        unknowns=tuple(walk.unknowns),
    )


# ---------------------------------------------------------------- squashing


@dataclass(frozen=True, slots=True)
class Located:
    """An entry of the squashed file system and the layer it comes from."""

    entry: Entry
    layer: int


class FileTree:
    """The squashed file system: path -> the entry that wins, with its layer."""

    __slots__ = ("_children", "_parents", "entries")

    MAX_LINKS: Final = 40

    def __init__(self) -> None:
        self.entries: dict[str, Located] = {}
        self._children: dict[str, set[str]] | None = None
        # every directory some entry was ever below (may outlive deletions; only a hint)
        self._parents: set[str] = set()

    def _remove_below(self, path: str, *, keep_self: bool) -> list[str]:
        prefix = path + "/" if path else ""
        gone = [p for p in self.entries if p.startswith(prefix)]
        if not keep_self and path in self.entries:
            gone.append(path)
        for p in gone:
            del self.entries[p]
        return gone

    def apply(self, index: int, record: LayerRecord, collector: Collector | None = None) -> None:
        """Put one layer on top: its deletions first, then what it adds. ``collector``
        (the analyzers' per-path results) follows the same changes."""
        self._children = None
        gone: list[str] = []
        for directory in record.opaque:
            gone += self._remove_below(directory, keep_self=True)
        for path in record.whiteouts:
            gone += self._remove_below(path, keep_self=False)
        parents = self._parents
        for entry in record.entries:
            if entry.kind is not EntryKind.DIR:
                previous = self.entries.get(entry.path)
                was_dir = (
                    previous.entry.kind is EntryKind.DIR
                    if previous is not None
                    else entry.path in parents  # a directory implied by lower entries
                )
                if was_dir:
                    gone += self._remove_below(entry.path, keep_self=True)
            self.entries[entry.path] = Located(entry, index)
        for entry in record.entries:
            parent = entry.path.rpartition("/")[0]
            while parent and parent not in parents:
                parents.add(parent)
                parent = parent.rpartition("/")[0]
        if collector is None:
            return
        for path in gone:
            collector.set(path, {})
        for entry in record.entries:
            if entry.kind is not EntryKind.DIR:
                collector.set(entry.path, record.results.get(entry.path, {}))

    def get(self, path: str) -> Located | None:
        return self.entries.get(path)

    def resolve(self, path: str, *, cwd: str = "") -> tuple[str, tuple[str, ...]] | None:
        """Follow symbolic links (in every component) inside the root.

        Returns the final root-relative path and the chain of symlinks passed through, or None
        when a component is missing or links loop. An absolute target restarts at the image
        root and ``..`` never climbs above it, so the result is always inside the image.
        """
        start = path if path.startswith("/") else posixpath.join("/" + cwd, path)
        pending = [p for p in start.split("/") if p]
        resolved: list[str] = []
        chain: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part == ".":
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            located = self.entries.get(candidate)
            if located is None:
                if self._implied_dir(candidate):
                    resolved.append(part)
                    continue
                return None
            if located.entry.kind is EntryKind.SYMLINK:
                hops += 1
                if hops > self.MAX_LINKS:
                    return None
                chain.append(candidate)
                target = located.entry.link
                if target.startswith("/"):
                    resolved = []
                pending = [p for p in target.split("/") if p] + pending
                continue
            resolved.append(part)
        return "/".join(resolved), tuple(chain)

    def _index(self) -> dict[str, set[str]]:
        if self._children is None:
            children: dict[str, set[str]] = {}
            for p in self.entries:
                parent, _, name = p.rpartition("/")
                while True:
                    known = parent in children
                    children.setdefault(parent, set()).add(name)
                    if known or not parent:
                        break
                    parent, _, name = parent.rpartition("/")
            self._children = children
        return self._children

    def _implied_dir(self, path: str) -> bool:
        """Tars may omit a directory's own entry; a directory exists if something is below."""
        return path in self._index()

    def is_file(self, path: str) -> bool:
        located = self.entries.get(path)
        return located is not None and located.entry.kind in (EntryKind.FILE, EntryKind.HARDLINK)

    def is_dir(self, path: str) -> bool:
        located = self.entries.get(path)
        if located is not None:
            return located.entry.kind is EntryKind.DIR
        return self._implied_dir(path)

    def listdir(self, path: str) -> frozenset[str] | set[str]:
        """Names directly below ``path`` (no symlinks followed)."""
        return self._index().get(path, _NOTHING)


@dataclass(frozen=True, slots=True)
class Squashed:
    """The image's file system and the analyzers' merged findings."""

    tree: FileTree
    analysis: AnalysisResult
    scripts: Mapping[str, str]
    imports: Mapping[str, tuple[str, ...]]
    unknowns: tuple[Unknown, ...]


_DATABASE_KINDS: Final = (AnalyzerKind.OS, AnalyzerKind.OS_PACKAGES)
_AS_FILE: Final = stat.S_IFREG | 0o644


def link_problem(tree: FileTree, path: str) -> str:
    """Follow the symbolic links of ``path`` as its own last component (each target taken
    inside the image root): "" when they end on a path that is not a link, else why they
    never do (a loop, too many links)."""
    chain = [path]
    current = path
    for _ in range(FileTree.MAX_LINKS):
        located = tree.get(current)
        if located is None or located.entry.kind is not EntryKind.SYMLINK:
            return ""
        target = located.entry.link
        base = "/" if target.startswith("/") else "/" + posixpath.dirname(current)
        current = posixpath.normpath(posixpath.join(base, target)).lstrip("/")
        if current in chain:
            return "symbolic link loop: " + " -> ".join([*chain, current])
        chain.append(current)
    located = tree.get(current)
    if located is not None and located.entry.kind is EntryKind.SYMLINK:
        return f"a chain of more than {FileTree.MAX_LINKS} symbolic links"
    return ""


def _database_problem(tree: FileTree, path: str, registry: Registry) -> str:
    """Why the package database at ``path`` was not read, or "" when it was (or is absent)."""
    located = tree.get(path)
    if located is None:
        resolved = tree.resolve(path)
        if resolved is None or resolved[0] == path or not tree.is_file(resolved[0]):
            return ""  # absent: an image without this package manager
        return (
            f"reached through the symbolic link {resolved[1][0]} (it is {resolved[0]}); "
            "a package database is read only at its own path"
        )
    kind = located.entry.kind
    if kind in (EntryKind.FILE, EntryKind.HARDLINK):
        return ""
    if kind is EntryKind.DIR:
        return "is a directory, not the package database file"
    if kind is EntryKind.OTHER:
        return "is a device, socket or pipe, not the package database file"
    link = located.entry.link
    stopped = link_problem(tree, path)
    if stopped:
        return stopped
    resolved = tree.resolve(path)
    if resolved is None:
        return f"symbolic link to {link}, which is not in the image (links resolve inside it)"
    target = resolved[0]
    if tree.is_file(target) and registry.required(target, _AS_FILE):
        return ""  # read at its own path (etc/os-release -> ../usr/lib/os-release)
    if tree.is_dir(target):
        return f"symbolic link to {link}, which is a directory"
    return (
        f"symbolic link to {link} ({target}); a package database is read only at its "
        "own path, never through a link"
    )


def unread_databases(tree: FileTree, registry: Registry) -> list[Unknown]:
    """Package databases (dpkg status, apk installed, rpmdb, os-release) that exist in some
    form but could not be read as files: a link (loop, long chain, dangling, absolute, to
    another file), a directory, a device, or a path reached through a linked directory. An
    image that hides its package database this way must not look clean."""
    databases = registry.select(_DATABASE_KINDS)
    out = []
    paths = {p for a in databases for p in a.databases}
    paths |= {
        path
        for path, located in tree.entries.items()
        if located.entry.kind is not EntryKind.FILE
        and located.entry.kind is not EntryKind.HARDLINK
        and databases.required(path, _AS_FILE)
    }
    for path in sorted(paths):
        reason = _database_problem(tree, path, databases)
        if reason:
            analyzer = databases.required(path, _AS_FILE)
            out.append(Unknown(path, reason, analyzer[0].name if analyzer else ""))
    return out


def squash(records: Iterable[LayerRecord], registry: Registry) -> Squashed:
    """Apply the layers bottom-up and merge the analyzers' surviving partial results."""
    tree = FileTree()
    collector = Collector(registry)
    scripts: dict[str, str] = {}
    imports: dict[str, tuple[str, ...]] = {}
    unknowns: list[Unknown] = []
    for index, record in enumerate(records):
        tree.apply(index, record, collector)
        scripts.update(record.scripts)
        imports.update(record.imports)
        unknowns.extend(record.unknowns)
    scripts = {p: s for p, s in scripts.items() if tree.is_file(p)}
    imports = {p: i for p, i in imports.items() if tree.is_file(p)}
    unknowns.extend(unread_databases(tree, registry))
    return Squashed(tree, collector.finish(), scripts, imports, tuple(unknowns))


def package_key(package: Package) -> tuple[str, str, str, str]:
    return (package.type.value, package.name, package.full_version, package.arch or "")


def origin_layers(records: Iterable[LayerRecord]) -> dict[tuple[str, str, str, str], int]:
    """For each package identity, the lowest layer whose files report it: the layer that
    introduced that version (an upper layer rewriting ``status`` does not re-introduce it)."""
    origin: dict[tuple[str, str, str, str], int] = {}
    for index, record in enumerate(records):
        for by_analyzer in record.results.values():
            for result in by_analyzer.values():
                for package in result.packages:
                    origin.setdefault(package_key(package), index)
    return origin
