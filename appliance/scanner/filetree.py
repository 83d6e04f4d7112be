"""The squashed file system of an image (:class:`FileTree`): each path's winning entry and
the layer it comes from.

Symbolic links are resolved only inside the image root (:meth:`FileTree.resolve`): an absolute
target is taken from the root and ``..`` stops at the root, as when a container runs.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Final

from appliance.scanner.collect import Collector
from appliance.scanner.layers import Entry, EntryKind, LayerRecord

_NOTHING: Final[frozenset[str]] = frozenset()


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
