"""Deterministic image layers: file trees read from tars or directories, their differences
with whiteouts, and a layer writer whose bytes depend on nothing but the tree.

A layer is written as a PAX tar with entries sorted by path, numeric owners only (no user or
group names), modification times clamped to the recipe's ``SOURCE_DATE_EPOCH``, no access or
change times, and compressed with gzip with a zero header time and no file name. Hard links
are rewritten so that, in path order, the first member of a link group carries the bytes and
the others link to it (a tar must hold a link's target before the link). So the same tree
gives the same ``diff_id`` and the same blob digest on any machine with the same zlib.

Differences follow the OCI image-spec changeset rules (layer.md): added or modified entries
are stored whole, a removed path becomes ``.wh.<name>`` in its parent directory (only the
topmost removed path is whited out), and every directory above a changed entry is stored too,
with its metadata from the upper tree, so that a layer extracts the same by itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Final

from bundles.digest import CHUNK, Digest
from bundles.errors import StellaError

WHITEOUT_PREFIX: Final = ".wh."
GZIP_LEVEL: Final = 6
_XATTR_PREFIX: Final = "SCHILY.xattr."
_EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


class LayerError(StellaError):
    """A file tree cannot be read, compared or written as an image layer."""


class Kind(StrEnum):
    """The kinds of tar entries an image layer may hold."""

    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


_TAR_KIND: Final = {
    tarfile.REGTYPE: Kind.FILE,
    tarfile.AREGTYPE: Kind.FILE,
    tarfile.CONTTYPE: Kind.FILE,
    tarfile.DIRTYPE: Kind.DIR,
    tarfile.SYMTYPE: Kind.SYMLINK,
    tarfile.LNKTYPE: Kind.HARDLINK,
    tarfile.CHRTYPE: Kind.CHAR,
    tarfile.BLKTYPE: Kind.BLOCK,
    tarfile.FIFOTYPE: Kind.FIFO,
}
_KIND_TAR: Final = {
    Kind.FILE: tarfile.REGTYPE,
    Kind.DIR: tarfile.DIRTYPE,
    Kind.SYMLINK: tarfile.SYMTYPE,
    Kind.HARDLINK: tarfile.LNKTYPE,
    Kind.CHAR: tarfile.CHRTYPE,
    Kind.BLOCK: tarfile.BLKTYPE,
    Kind.FIFO: tarfile.FIFOTYPE,
}


@dataclass(frozen=True, slots=True)
class Content:
    """Where a regular file's bytes are: ``size`` bytes at ``offset`` of the file ``source``
    (a tar archive or the file itself), hashed when the tree was read."""

    source: Path
    offset: int
    size: int
    sha256: str

    @classmethod
    def empty(cls) -> Content:
        return cls(Path(os.devnull), 0, 0, _EMPTY_SHA256)


@dataclass(frozen=True, slots=True)
class Entry:
    """One path of a root file system, as a layer stores it. ``path`` is relative and
    normalized (``usr/bin/env``); ``link`` is a symlink's target or, for a hard link, the
    normalized path of the entry it links to."""

    path: str
    kind: Kind
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    content: Content | None = None
    link: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: tuple[tuple[str, str], ...] = ()

    def same_as(self, other: Entry) -> bool:
        """Equal as file-system state: everything but where the bytes happen to be stored."""
        mine = self.content.sha256 if self.content else None
        theirs = other.content.sha256 if other.content else None
        return mine == theirs and replace(self, content=None) == replace(other, content=None)

    @property
    def size(self) -> int:
        return self.content.size if self.content is not None else 0


Tree = Mapping[str, Entry]


def normalize_path(name: str, *, source: str = "tree") -> str:
    """``./usr/bin/`` -> ``usr/bin``; the root itself -> ``""``. Refuses ``..`` components."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(
            f"{source}: path {name!r} climbs out of the root with '..'",
            hint="a root file system tree may not hold such names; check how it was made",
        )
    return "/".join(parts)


def parents(path: str) -> Iterator[str]:
    """Every ancestor directory of ``path``, nearest first, the root excluded."""
    parent = posixpath.dirname(path)
    while parent:
        yield parent
        parent = posixpath.dirname(parent)


def whiteout(path: str, *, mtime: int = 0) -> Entry:
    """The entry that deletes ``path`` from the layers below (layer.md "Whiteouts")."""
    head, base = posixpath.split(path)
    return Entry(posixpath.join(head, WHITEOUT_PREFIX + base), Kind.FILE, mode=0o644, mtime=mtime)


def _hash_range(handle: BinaryIO, offset: int, size: int) -> str:
    handle.seek(offset)
    h = hashlib.sha256()
    left = size
    while left:
        chunk = handle.read(min(CHUNK, left))
        if not chunk:
            raise LayerError(f"{handle.name}: truncated at offset {offset + size - left}")
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()


def read_tar(path: Path, *, exclude: Iterable[str] = ()) -> dict[str, Entry]:
    """Read an uncompressed tar of a root file system into a tree, hashing every file.

    ``exclude`` names paths whose contents (not the paths themselves) are left out, such as
    ``dev`` whose device nodes a container runtime provides.
    """
    skip = tuple(normalize_path(e) + "/" for e in exclude)
    tree: dict[str, Entry] = {}
    try:
        with tarfile.open(path, mode="r:") as archive, open(path, "rb") as raw:
            for member in archive:
                name = normalize_path(member.name, source=str(path))
                if not name or name.startswith(skip):
                    continue
                kind = _TAR_KIND.get(member.type)
                if kind is None:
                    raise LayerError(
                        f"{path}: member {member.name!r} has tar type {member.type!r}, "
                        "which an image layer cannot hold"
                    )
                content = None
                if kind is Kind.FILE:
                    digest = _hash_range(raw, member.offset_data, member.size)
                    content = Content(path, member.offset_data, member.size, digest)
                link = member.linkname
                if kind is Kind.HARDLINK:
                    link = normalize_path(link, source=str(path))
                xattrs = tuple(
                    sorted(
                        (k[len(_XATTR_PREFIX) :], v)
                        for k, v in member.pax_headers.items()
                        if k.startswith(_XATTR_PREFIX)
                    )
                )
                tree[name] = Entry(
                    name,
                    kind,
                    mode=stat.S_IMODE(member.mode),
                    uid=member.uid,
                    gid=member.gid,
                    mtime=int(member.mtime),
                    content=content,
                    link=link,
                    devmajor=member.devmajor,
                    devminor=member.devminor,
                    xattrs=xattrs,
                )
    except (OSError, tarfile.TarError) as e:
        raise LayerError(f"cannot read the root file system tar {path}: {e}") from e
    return tree


def read_dir(root: Path, *, mtime: int) -> dict[str, Entry]:
    """Read a staging directory (what an installer wrote) as root-owned entries.

    Owners become 0:0 and times ``mtime``; modes keep only what matters for a fixture:
    directories 0755, files 0755 when any execute bit is set, else 0644. Hard links are
    stored as separate files (installers do not make them).
    """
    tree: dict[str, Entry] = {}
    try:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in [*dirnames, *sorted(filenames)]:
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                info = full.lstat()
                if stat.S_ISLNK(info.st_mode):
                    tree[rel] = Entry(
                        rel, Kind.SYMLINK, mode=0o777, mtime=mtime, link=os.readlink(full)
                    )
                elif stat.S_ISDIR(info.st_mode):
                    tree[rel] = Entry(rel, Kind.DIR, mode=0o755, mtime=mtime)
                elif stat.S_ISREG(info.st_mode):
                    mode = 0o755 if info.st_mode & 0o111 else 0o644
                    with open(full, "rb") as fh:
                        digest = _hash_range(fh, 0, info.st_size)
                    content = Content(full, 0, info.st_size, digest)
                    tree[rel] = Entry(rel, Kind.FILE, mode=mode, mtime=mtime, content=content)
                else:
                    raise LayerError(
                        f"{full} is neither a file, a directory nor a symbolic link",
                        hint="the staging directory may only hold what an installer writes",
                    )
    except OSError as e:
        raise LayerError(f"cannot read the staging directory {root}: {e}") from e
    return tree


def with_parents(changes: Iterable[Entry], upper: Tree) -> list[Entry]:
    """``changes`` plus every directory above them, taken from ``upper``; sorted by path."""
    out = {e.path: e for e in changes}
    for entry in list(out.values()):
        for parent in parents(entry.path):
            if parent in out:
                continue
            directory = upper.get(parent)
            if directory is None or directory.kind is not Kind.DIR:
                raise LayerError(
                    f"the tree has {entry.path!r} but no directory {parent!r} above it",
                    hint="every parent of an entry must be a directory in the same tree",
                )
            out[parent] = directory
    return [out[p] for p in sorted(out)]


def diff_trees(lower: Tree, upper: Tree) -> list[Entry]:
    """The changeset that turns ``lower`` into ``upper``: entries new or changed in
    ``upper``, whiteouts for paths gone from it, and the directories above both; sorted."""
    changed = {p: e for p, e in upper.items() if p not in lower or not lower[p].same_as(e)}
    # A hard link whose target changed must be stored again, or it keeps the old inode.
    for path, entry in upper.items():
        if entry.kind is Kind.HARDLINK and entry.link in changed:
            changed[path] = entry
    outs: list[Entry] = []
    for path in sorted(p for p in lower if p not in upper):
        ancestors = list(parents(path))
        # Covered by a whiteout of an ancestor, or by an ancestor that is no longer a directory.
        if any(a not in upper or upper[a].kind is not Kind.DIR for a in ancestors):
            continue
        outs.append(whiteout(path, mtime=upper[ancestors[0]].mtime if ancestors else 0))
    return with_parents([*changed.values(), *outs], upper)


def overlay(lower: Tree, changes: Iterable[Entry]) -> dict[str, Entry]:
    """Apply a changeset to a tree, as a runtime extracting the layer would."""
    tree = dict(lower)
    for entry in changes:
        head, base = posixpath.split(entry.path)
        if base.startswith(WHITEOUT_PREFIX):
            gone = posixpath.join(head, base[len(WHITEOUT_PREFIX) :])
            for path in [p for p in tree if p == gone or p.startswith(gone + "/")]:
                del tree[path]
            continue
        old = tree.get(entry.path)
        if old is not None and old.kind is Kind.DIR and entry.kind is not Kind.DIR:
            for path in [p for p in tree if p.startswith(entry.path + "/")]:
                del tree[path]
        tree[entry.path] = entry
    return tree


def _link_groups(entries: list[Entry]) -> list[Entry]:
    """Rewrite hard links so that each group's first path (in path order) holds the bytes.

    A hard link whose target is not in ``entries`` points into a lower layer and is kept.
    """
    by_path = {e.path: e for e in entries}
    groups: dict[str, list[str]] = {}
    for entry in entries:
        if entry.kind is Kind.HARDLINK and entry.link in by_path:
            if by_path[entry.link].kind is Kind.HARDLINK:
                raise LayerError(
                    f"hard link {entry.path!r} points at {entry.link!r}, itself a hard link",
                    hint="a tar's hard links must name the file that carries the bytes",
                )
            groups.setdefault(entry.link, [entry.link]).append(entry.path)
    rewritten = dict(by_path)
    for target, members in groups.items():
        first, *rest = sorted(members)
        source = by_path[target]
        rewritten[first] = replace(source, path=first)
        for path in rest:
            rewritten[path] = replace(
                by_path[path],
                path=path,
                kind=Kind.HARDLINK,
                content=None,
                link=first,
            )
    return [rewritten[e.path] for e in entries]


def _tarinfo(entry: Entry, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.type = _KIND_TAR[entry.kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = min(entry.mtime, epoch)
    info.size = entry.size if entry.kind is Kind.FILE else 0
    info.linkname = entry.link if entry.kind in (Kind.SYMLINK, Kind.HARDLINK) else ""
    info.devmajor, info.devminor = entry.devmajor, entry.devminor
    info.pax_headers = {_XATTR_PREFIX + k: v for k, v in entry.xattrs}
    return info


class _HashingWriter(io.RawIOBase):
    """Pass bytes on to ``sink`` while hashing and counting them."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self._h = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._h.update(data)
        self.size += len(data)
        self._sink.write(data)
        return len(data)

    def digest(self) -> Digest:
        return Digest(self._h.hexdigest())


@dataclass(frozen=True, slots=True)
class LayerBlob:
    """A written layer: its compressed file, the blob digest and size, and the ``diff_id``
    (digest of the uncompressed tar) that the image config lists."""

    path: Path
    digest: Digest
    size: int
    diff_id: Digest
    entries: int


def write_layer(entries: Iterable[Entry], out: Path, *, epoch: int) -> LayerBlob:
    """Write ``entries`` as a gzip-compressed layer to ``out`` (sorted by path, times clamped
    to ``epoch``)."""
    ordered = sorted(entries, key=lambda e: e.path)
    for previous, entry in itertools.pairwise(ordered):
        if previous.path == entry.path:
            raise LayerError(f"the layer for {out} holds {entry.path!r} twice")
    ordered = _link_groups(ordered)
    try:
        with ExitStack() as stack:
            raw = stack.enter_context(open(out, "wb"))
            compressed = _HashingWriter(raw)
            gz = stack.enter_context(
                gzip.GzipFile(
                    filename="", mode="wb", fileobj=compressed, compresslevel=GZIP_LEVEL, mtime=0
                )
            )
            plain = _HashingWriter(gz)  # type: ignore[arg-type]
            handles: dict[Path, BinaryIO] = {}
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for entry in ordered:
                    info = _tarinfo(entry, epoch)
                    if entry.kind is Kind.FILE and entry.content is not None and entry.size:
                        content = entry.content
                        handle = handles.get(content.source)
                        if handle is None:
                            handle = stack.enter_context(open(content.source, "rb"))
                            handles[content.source] = handle
                        handle.seek(content.offset)
                        tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
    except OSError as e:
        out.unlink(missing_ok=True)
        raise LayerError(f"cannot write the layer {out}: {e}") from e
    return LayerBlob(out, compressed.digest(), compressed.size, plain.digest(), len(ordered))
