"""Red Hat-family packages from rpm's database.

rpm keeps one header blob per installed package. Three containers exist, all read here: SQLite
(``rpmdb.sqlite``, rpm >= 4.16, table ``Packages(hnum, blob)``), Berkeley DB hash
(``Packages``, older releases) and rpm's own "ndb" (``Packages.db``, SUSE). The blobs are
decoded by :mod:`appliance.scanner.analyzers.rpmheader`; the containers by
:mod:`appliance.scanner.analyzers.rpmdb`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar, Final

from appliance.scanner.analyzers import rpmdb
from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.analyzers.rpmheader import Header, Tag, parse_header
from appliance.scanner.model import AnalysisResult, Package, PackageType, Unknown
from bundles import limits
from bundles.limits import Unit

_DIRS: Final = ("var/lib/rpm/", "usr/lib/sysimage/rpm/", "usr/share/rpm/")
_READERS: Final = {
    "rpmdb.sqlite": rpmdb.sqlite_blobs,
    "Packages": rpmdb.bdb_blobs,
    "Packages.db": rpmdb.ndb_blobs,
}
_SKIPPED_NAMES: Final = frozenset({"gpg-pubkey"})  # imported signing keys, not software


def split_source_rpm(text: str) -> tuple[str, str, str]:
    """``name-version-release.src.rpm`` -> (name, version, release)."""
    for suffix in (".src.rpm", ".nosrc.rpm"):
        if text.endswith(suffix):
            stem = text[: -len(suffix)]
            break
    else:
        raise ParseError(f"SOURCERPM {text!r} does not end in .src.rpm")
    parts = stem.rsplit("-", 2)
    if len(parts) != 3 or not all(parts):
        raise ParseError(f"SOURCERPM {text!r} is not name-version-release.src.rpm")
    return parts[0], parts[1], parts[2]


def package_from_header(header: Header) -> Package | None:
    name, version = header.string(Tag.NAME), header.string(Tag.VERSION)
    if not name or not version:
        raise ParseError("rpm header has no NAME or VERSION")
    if name in _SKIPPED_NAMES:
        return None
    epochs = header.ints(Tag.EPOCH)
    source_name = source_version = None
    if source_rpm := header.string(Tag.SOURCERPM):
        source_name, src_version, src_release = split_source_rpm(source_rpm)
        source_version = f"{src_version}-{src_release}"
    qualifiers: tuple[tuple[str, str], ...] = ()
    if label := header.string(Tag.MODULARITYLABEL):
        qualifiers = (("modularitylabel", label),)
    license_ = header.string(Tag.LICENSE)
    return Package(
        type=PackageType.RPM,
        name=name,
        version=version,
        epoch=epochs[0] if epochs else None,
        release=header.string(Tag.RELEASE),
        arch=header.string(Tag.ARCH),
        source_name=source_name,
        source_version=source_version,
        licenses=(license_,) if license_ else (),
        qualifiers=qualifiers,
        installed_files=header.files(),
    )


def parse_blobs(blobs: list[bytes]) -> tuple[list[Package], list[str]]:
    """Packages from header blobs, with requirements resolved to package names."""
    packages: list[tuple[Package, tuple[str, ...]]] = []
    problems: list[str] = []
    provider: dict[str, str] = {}
    for number, blob in enumerate(blobs, 1):
        try:
            header = parse_header(blob)
            package = package_from_header(header)
        except ParseError as e:
            problems.append(f"header #{number}: {e.message}")
            continue
        if package is None:
            continue
        packages.append((package, header.strings(Tag.REQUIRENAME)))
        for provided in (package.name, *header.strings(Tag.PROVIDENAME)):
            provider.setdefault(provided, package.name)
        for path in package.installed_files:
            provider.setdefault("/" + path, package.name)
    result = []
    for package, requires in packages:
        depends = {provider[r] for r in requires if r in provider} - {package.name}
        result.append(replace(package, dependencies=tuple(sorted(depends))))
    return result, problems


class RpmAnalyzer(Analyzer):
    name: ClassVar[str] = "rpm"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.OS_PACKAGES
    size_cap = limits.cap(
        "scan.rpmdb_bytes",
        256 << 20,
        Unit.BYTES,
        "an rpm database (sqlite, BerkeleyDB or ndb), read whole",
    )

    databases = tuple(d + name for d in _DIRS for name in _READERS)

    def required(self, path: str, mode: int) -> bool:
        directory, _, base = path.rpartition("/")
        return base in _READERS and directory + "/" in _DIRS

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        reader = _READERS[inp.path.rpartition("/")[2]]
        blobs, skipped = reader(inp.read(self.size_cap))
        packages, problems = parse_blobs(blobs)
        problems = skipped + problems
        if not packages and problems:
            raise ParseError(f"no package could be read: {problems[0]}")
        return AnalysisResult(
            packages=tuple(replace(p, locations=(inp.path,)) for p in packages),
            unknowns=tuple(Unknown(inp.path, reason, self.name) for reason in problems),
        )
