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
)
from appliance.scanner.model import AnalysisResult, Package, PackageType, Unknown

ARCHIVE_SUFFIXES: Final = (".jar", ".war", ".ear", ".par", ".jpi", ".hpi")
MAX_DEPTH: Final = 4
MAX_NESTED_SIZE: Final = 128 << 20
MAX_METADATA_SIZE: Final = 1 << 20
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


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    if info.file_size > limit:
        raise InputTooLargeError(f"{info.filename}: {info.file_size} bytes exceeds {limit}")
    with archive.open(info) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise InputTooLargeError(f"{info.filename}: more than {limit} bytes when inflated")
    return data


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
                props = parse_properties(_read_member(archive, info, MAX_METADATA_SIZE))
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
                manifest = parse_manifest(_read_member(archive, info, MAX_METADATA_SIZE))
            elif name.lower().endswith(ARCHIVE_SUFFIXES):
                inner = f"{location}!/{name}"
                if depth >= MAX_DEPTH:
                    raise ParseError(f"archives nested deeper than {MAX_DEPTH} are not opened")
                nested = _read_member(archive, info, MAX_NESTED_SIZE)
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
    size_limit: ClassVar[int] = 512 << 20

    def required(self, path: str, mode: int) -> bool:
        return stat.S_ISREG(mode) and path.lower().endswith(ARCHIVE_SUFFIXES)

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        if inp.size > self.size_limit:
            raise InputTooLargeError(f"{inp.path}: {inp.size} bytes exceeds {self.size_limit}")
        with inp.open() as fh:
            stream: BinaryIO = fh if fh.seekable() else io.BytesIO(inp.read(self.size_limit))
            found = scan_jar(stream, inp.path)
        return AnalysisResult(packages=found.packages, unknowns=found.unknowns)
