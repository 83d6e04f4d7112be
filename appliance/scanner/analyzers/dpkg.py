"""Debian packages from dpkg's database.

Reads ``var/lib/dpkg/status``, the one-file-per-package ``var/lib/dpkg/status.d/*`` that
distroless images carry instead, and the file lists ``var/lib/dpkg/info/<pkg>[:<arch>].list``,
which the merge step attaches to their packages as ``installed_files``.

The deb822 reader is strict on purpose: a general-purpose reader that skips a malformed line
would turn a damaged database into a silently shorter package list; here a bad paragraph
becomes an unknown and the other paragraphs are still reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import ClassVar, Final

from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.model import AnalysisResult, FileOwnership, Package, PackageType, Unknown

STATUS: Final = "var/lib/dpkg/status"
STATUS_D: Final = "var/lib/dpkg/status.d/"
INFO: Final = "var/lib/dpkg/info/"
_SOURCE = re.compile(r"^(?P<name>[^\s(]+)(?:\s*\((?P<version>[^)\s]+)\))?$")
_DEP_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]*")
_PKG_NAME = re.compile(r"^[a-z0-9][a-z0-9+.\-]+$")


@dataclass(frozen=True, slots=True)
class Paragraph:
    """One deb822 stanza: its first line number and its fields (names as written)."""

    line: int
    fields: dict[str, str]


def parse_deb822(data: bytes) -> tuple[list[Paragraph], list[str]]:
    """Split deb822 text into paragraphs; a malformed paragraph is reported, not returned."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")  # dpkg itself does not enforce an encoding
    paragraphs: list[Paragraph] = []
    problems: list[str] = []
    fields: dict[str, str] = {}
    start = 0
    error: str | None = None
    last: str | None = None

    def flush() -> None:
        if error is not None:
            problems.append(error)
        elif fields:
            paragraphs.append(Paragraph(start, dict(fields)))

    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            flush()
            fields, error, last, start = {}, None, None, 0
            continue
        if not start:
            start = number
        if error is not None or line.startswith("#"):
            continue
        if line[0] in " \t":
            if last is None:
                error = f"line {number}: continuation line before any field: {line!r}"
                continue
            fields[last] += "\n" + line.strip()
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or " " in name:
            error = f"line {number}: not a 'Field: value' line: {line!r}"
            continue
        if name in fields:
            error = f"line {number}: field {name!r} appears twice in one paragraph"
            continue
        fields[name] = value.strip()
        last = name
    flush()
    return paragraphs, problems


def split_version(text: str) -> tuple[int | None, str]:
    """``[epoch:]rest`` -> (epoch, rest); a bad epoch raises :class:`ParseError`."""
    epoch, sep, rest = text.partition(":")
    if not sep:
        return None, text
    if not epoch.isdigit() or not rest:
        raise ParseError(f"version {text!r} has a malformed epoch")
    return int(epoch), rest


def dependency_names(value: str) -> tuple[str, ...]:
    """Package names from a Depends-style field (alternatives kept, versions dropped)."""
    names: set[str] = set()
    for clause in value.replace("\n", " ").split(","):
        for alternative in clause.split("|"):
            match = _DEP_NAME.match(alternative.strip())
            if match:
                names.add(match.group(0))
    return tuple(sorted(names))


def _installed(status: str | None) -> bool:
    if status is None:  # distroless status.d files carry no Status field
        return True
    words = status.split()
    return len(words) == 3 and words[2] == "installed"


def package_from_paragraph(p: Paragraph) -> Package | None:
    """The installed package a paragraph describes, None if it is not installed."""
    f = p.fields
    if not _installed(f.get("Status")):
        return None
    name, version = f.get("Package"), f.get("Version")
    if not name or not _PKG_NAME.match(name):
        raise ParseError(f"paragraph at line {p.line}: bad or missing Package {name!r}")
    if not version:
        raise ParseError(f"paragraph at line {p.line}: package {name!r} has no Version")
    source_name, source_version = name, version
    if source := f.get("Source"):
        match = _SOURCE.match(source)
        if not match:
            raise ParseError(f"paragraph at line {p.line}: malformed Source {source!r}")
        source_name = match["name"]
        source_version = match["version"] or version
    try:
        epoch, plain = split_version(version)
        split_version(source_version)
    except ParseError as e:
        raise ParseError(f"paragraph at line {p.line}: {e.message}") from e
    depends = f.get("Depends", "") + "," + f.get("Pre-Depends", "")
    return Package(
        type=PackageType.DEB,
        name=name,
        version=plain,
        epoch=epoch,
        arch=f.get("Architecture") or None,
        source_name=source_name,
        source_version=source_version,
        dependencies=dependency_names(depends),
    )


def parse_status(data: bytes) -> tuple[list[Package], list[str]]:
    """Installed packages of a status file, and the reasons paragraphs were skipped."""
    paragraphs, problems = parse_deb822(data)
    packages: list[Package] = []
    for paragraph in paragraphs:
        try:
            package = package_from_paragraph(paragraph)
        except ParseError as e:
            problems.append(e.message)
            continue
        if package is not None:
            packages.append(package)
    return packages, problems


def parse_list(data: bytes) -> tuple[str, ...]:
    """A ``.list`` file: absolute paths, one a line; returned root-relative, ``/.`` dropped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"file list is not UTF-8: {e}") from e
    files: list[str] = []
    for line in text.splitlines():
        if not line:
            continue
        if not line.startswith("/"):
            raise ParseError(f"file list entry is not an absolute path: {line!r}")
        if line != "/.":
            files.append(line.lstrip("/"))
    return tuple(files)


class DpkgAnalyzer(Analyzer):
    name: ClassVar[str] = "dpkg"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.OS_PACKAGES

    databases = (STATUS,)

    def required(self, path: str, mode: int) -> bool:
        if path == STATUS:
            return True
        if path.startswith(STATUS_D):
            rest = path[len(STATUS_D) :]
            return bool(rest) and "/" not in rest and not rest.endswith(".md5sums")
        if path.startswith(INFO) and path.endswith(".list"):
            return "/" not in path[len(INFO) :]
        return False

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        data = inp.read(self.size_cap)
        if inp.path.startswith(INFO):
            owner = inp.path[len(INFO) : -len(".list")]
            return AnalysisResult(ownership=(FileOwnership(owner, parse_list(data), inp.path),))
        packages, problems = parse_status(data)
        if not packages and problems and inp.path == STATUS:
            raise ParseError(f"no package could be read: {problems[0]}")
        return AnalysisResult(
            packages=tuple(replace(p, locations=(inp.path,)) for p in packages),
            unknowns=tuple(Unknown(inp.path, reason, self.name) for reason in problems),
        )

    def merge(self, partials: Mapping[str, AnalysisResult]) -> AnalysisResult:
        combined = AnalysisResult.combine(partials[p] for p in sorted(partials))
        by_owner = {o.owner: o for o in combined.ownership}
        packages = []
        for package in combined.packages:
            owned = by_owner.get(f"{package.name}:{package.arch}") or by_owner.get(package.name)
            if owned is not None:
                package = replace(package, installed_files=owned.files)
            packages.append(package)
        return AnalysisResult(tuple(packages), None, combined.unknowns, ()).sorted()
