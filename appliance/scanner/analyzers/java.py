"""Java archives (jar, war, ear, ...): Maven coordinates from ``META-INF/maven/**/pom.properties``
(one per bundled artifact, shaded ones included), else from the manifest's
``Implementation-Vendor-Id`` / ``Implementation-Title`` / ``Implementation-Version``, and the
same again for every archive nested inside (``WEB-INF/lib/*.jar``, ``BOOT-INF/lib/*.jar``).

A nested archive's location is written ``outer.war!/WEB-INF/lib/inner.jar``. An archive
without any coordinates is an unknown: there is no offline checksum index to ask.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Final

from appliance.scanner.analyzers.interface import (
    Analyzer,
    AnalyzerInput,
    AnalyzerKind,
    InputTooLargeError,
    ParseError,
    too_large,
)
from appliance.scanner.model import AnalysisResult, Package, PackageType, Unknown
from bundles import limits
from bundles.bounded import zip_directory
from bundles.limits import Unit

ARCHIVE_SUFFIXES: Final = (".jar", ".war", ".ear", ".par", ".jpi", ".hpi")
MAX_DEPTH: Final = 4
NESTED_BYTES: Final = limits.cap(
    "scan.jar_nested_bytes",
    64 << 20,
    Unit.BYTES,
    "an archive nested in a Java archive, inflated into memory (up to 4 levels deep)",
)
MEMBER_BYTES: Final = limits.cap(
    "scan.jar_member_bytes", 1 << 20, Unit.BYTES, "a pom.properties or manifest in a Java archive"
)
ENTRIES: Final = limits.cap(
    "scan.jar_entries", 200_000, Unit.COUNT, "the entries a Java archive's directory lists"
)
MANIFEST: Final = "META-INF/MANIFEST.MF"
NAME: Final = "java"


@dataclass(frozen=True, slots=True)
class _Found:
    packages: tuple[Package, ...]
    unknowns: tuple[Unknown, ...]


def parse_properties(data: bytes) -> dict[str, str]:
    """Java ``.properties``: ``key=value`` or ``key: value``; ``#``/``!`` comments."""
    text = data.decode("latin-1")  # the format's defined encoding
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        cut = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if cut < 0:
            continue
        values[line[:cut].strip()] = line[cut + 1 :].strip()
    return values


def parse_manifest(data: bytes) -> dict[str, str]:
    """The main section of a JAR manifest (72-byte lines, continuation lines start with a space)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"{MANIFEST} is not UTF-8: {e}") from e
    attributes: dict[str, str] = {}
    last: str | None = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if not line:
            break  # the main section ends at the first blank line
        if line.startswith(" ") and last is not None:
            attributes[last] += line[1:]
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ParseError(f"{MANIFEST} line {line!r} is not 'Name: value'")
        last = name.strip()
        attributes[last] = value.strip()
    return attributes


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: limits.Cap) -> bytes:
    limit = cap.value()
    if info.file_size > limit:
        raise too_large(cap, info.filename, found=info.file_size)
    with archive.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise too_large(cap, info.filename + " (inflated)")
    return data


def _entry_count(stream: BinaryIO) -> int | None:
    """What the archive's end record says its directory lists, read before :mod:`zipfile`
    builds an object per entry (None when there is no end record: zipfile refuses it)."""
    directory = zip_directory(stream)
    return None if directory is None else directory.entries


def _from_manifest(attributes: dict[str, str]) -> Package | None:
    group = attributes.get("Implementation-Vendor-Id")
    artifact = attributes.get("Implementation-Title")
    version = attributes.get("Implementation-Version")
    if group and artifact and version and " " not in artifact:
        return Package(PackageType.MAVEN, f"{group}:{artifact}", version)
    return None


def _scan_archive(archive: zipfile.ZipFile, location: str, depth: int) -> _Found:
    packages: list[Package] = []
    unknowns: list[Unknown] = []
    manifest: dict[str, str] = {}
    for info in sorted(archive.infolist(), key=lambda i: i.filename):
        name = info.filename
        if info.is_dir():
            continue
        try:
            if name.startswith("META-INF/maven/") and name.endswith("/pom.properties"):
                props = parse_properties(_read_member(archive, info, MEMBER_BYTES))
                group, artifact = props.get("groupId"), props.get("artifactId")
                version = props.get("version")
                if not (group and artifact and version):
                    raise ParseError(f"{name} lacks groupId, artifactId or version")
                packages.append(
                    Package(
                        PackageType.MAVEN, f"{group}:{artifact}", version, locations=(location,)
                    )
                )
            elif name == MANIFEST:
                manifest = parse_manifest(_read_member(archive, info, MEMBER_BYTES))
            elif name.lower().endswith(ARCHIVE_SUFFIXES):
                inner = f"{location}!/{name}"
                if depth >= MAX_DEPTH:
                    raise ParseError(f"archives nested deeper than {MAX_DEPTH} are not opened")
                nested = _read_member(archive, info, NESTED_BYTES)
                found = scan_jar(io.BytesIO(nested), inner, depth + 1)
                packages.extend(found.packages)
                unknowns.extend(found.unknowns)
        except (ParseError, InputTooLargeError) as e:
            unknowns.append(Unknown(f"{location}!/{name}", e.diagnostics(), NAME))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
            unknowns.append(Unknown(f"{location}!/{name}", f"unreadable member: {e}", NAME))
    own = [p for p in packages if location in p.locations]
    if not own:
        package = _from_manifest(manifest)
        if package is not None:
            packages.append(
                Package(package.type, package.name, package.version, locations=(location,))
            )
        elif not any(p.locations[0].startswith(location + "!/") for p in packages):
            unknowns.append(
                Unknown(location, "no Maven coordinates (pom.properties or manifest)", NAME)
            )
    return _Found(tuple(packages), tuple(unknowns))


def scan_jar(stream: BinaryIO, location: str, depth: int = 0) -> _Found:
    """Packages of one archive and everything nested in it; ``location`` names the archive
    in the results (the parser itself opens no paths)."""
    try:
        entries = _entry_count(stream)
        if entries is not None and entries > ENTRIES.value():
            raise too_large(ENTRIES, location, found=entries)
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        if depth == 0:
            raise ParseError(f"not a readable zip archive: {e}") from e
        return _Found((), (Unknown(location, f"not a readable zip archive: {e}", NAME),))
    with archive:
        return _scan_archive(archive, location, depth)


class JavaAnalyzer(Analyzer):
    name: ClassVar[str] = NAME
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LANGUAGE_PACKAGES
    size_cap = limits.cap(
        "scan.jar_bytes",
        512 << 20,
        Unit.BYTES,
        "a Java archive (jar, war, ear)",
    )

    def required(self, path: str, mode: int) -> bool:
        return stat.S_ISREG(mode) and path.lower().endswith(ARCHIVE_SUFFIXES)

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        with inp.open() as fh:  # run_analyzer refused it unopened if over size_cap
            stream: BinaryIO = fh if fh.seekable() else io.BytesIO(inp.read(self.size_cap))
            found = scan_jar(stream, inp.path)
        return AnalysisResult(packages=found.packages, unknowns=found.unknowns)
