"""Squashing: the records of an image's layers become one file system and one analysis.

Squashing follows the image-spec's changeset rules: ``.wh.NAME`` deletes ``NAME`` (and
everything below it) from lower layers, ``.wh..wh..opq`` empties its directory of lower layers'
content, and a non-directory replacing a directory hides what was below it.
"""

from __future__ import annotations

import posixpath
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from appliance.scanner.analyzers.interface import (
    AnalyzerKind,
)
from appliance.scanner.analyzers.table import AnalyzerTable
from appliance.scanner.collect import Collector
from appliance.scanner.filetree import FileTree
from appliance.scanner.layers import EntryKind, LayerRecord
from appliance.scanner.model import AnalysisResult, Package, Unknown


@dataclass(frozen=True, slots=True)
class Squashed:
    """The image's file system and the analyzers' merged findings."""

    tree: FileTree
    analysis: AnalysisResult
    scripts: Mapping[str, str]
    imports: Mapping[str, tuple[str, ...]]
    unknowns: tuple[Unknown, ...]
    pysource: Mapping[str, str | None] = field(default_factory=dict)
    pylayer: Mapping[str, int] = field(default_factory=dict)  # the layer each text comes from


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


def _database_problem(tree: FileTree, path: str, registry: AnalyzerTable) -> str:
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


def unread_databases(tree: FileTree, registry: AnalyzerTable) -> list[Unknown]:
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


def _topmost(tree: FileTree, path: str, layers: Mapping[str, int]) -> bool:
    """Whether ``path`` is a file of the image that comes from the layer ``layers`` names."""
    located = tree.get(path)
    return located is not None and located.layer == layers.get(path) and tree.is_file(path)


def squash(records: Iterable[LayerRecord], registry: AnalyzerTable) -> Squashed:
    """Apply the layers bottom-up and merge the analyzers' surviving partial results."""
    tree = FileTree()
    collector = Collector(registry)
    scripts: dict[str, str] = {}
    imports: dict[str, tuple[str, ...]] = {}
    pysource: dict[str, str | None] = {}
    pylayer: dict[str, int] = {}
    unknowns: list[Unknown] = []
    for index, record in enumerate(records):
        tree.apply(index, record, collector)
        scripts.update(record.scripts)
        imports.update(record.imports)
        pysource.update(record.pysource)
        pylayer.update(dict.fromkeys(record.imports, index))
        unknowns.extend(record.unknowns)
    scripts = {p: s for p, s in scripts.items() if tree.is_file(p)}
    # a Python file's imports and text are those of the layer its path comes from: whatever
    # an upper layer puts at the path (another file too large to read, a hard link) replaces
    # a lower layer's copy, and a deletion removes it
    imports = {p: i for p, i in imports.items() if _topmost(tree, p, pylayer)}
    unknowns.extend(unread_databases(tree, registry))
    pysource = {p: f for p, f in pysource.items() if p in imports}
    pylayer = {p: pylayer[p] for p in pysource}
    return Squashed(tree, collector.finish(), scripts, imports, tuple(unknowns), pysource, pylayer)


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
