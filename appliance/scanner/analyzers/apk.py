"""Alpine packages from apk's database ``lib/apk/db/installed``.

Each record is a block of ``X:value`` lines (``P`` name, ``V`` version, ``A`` arch, ``o``
origin = source package, ``L`` license, ``D`` dependencies, ``p`` provides, ``F`` directory
then ``R`` files in it). Dependencies on sonames and commands (``so:``, ``cmd:``) are
resolved to the package that provides them, so the graph names packages only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import ClassVar, Final

from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.model import AnalysisResult, Package, PackageType, Unknown

INSTALLED: Final = "lib/apk/db/installed"
_CONSTRAINT = re.compile(r"[<>=~].*$")


@dataclass(slots=True)
class _Record:
    line: int
    fields: dict[str, str] = field(default_factory=dict)
    depends: list[str] = field(default_factory=list)
    provides: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    error: str | None = None


def _token_name(token: str) -> str:
    return _CONSTRAINT.sub("", token.lstrip("!"))


def _records(text: str) -> list[_Record]:
    records: list[_Record] = []
    current: _Record | None = None
    directory = ""
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            current = None
            continue
        if current is None:
            current = _Record(number)
            records.append(current)
            directory = ""
        if current.error:
            continue
        if len(line) < 2 or line[1] != ":":
            current.error = f"line {number}: not an 'X:value' line: {line!r}"
            continue
        key, value = line[0], line[2:]
        if key == "D":
            current.depends.extend(value.split())
        elif key == "p":
            current.provides.extend(value.split())
        elif key == "F":
            directory = value.strip("/")
        elif key == "R":
            current.files.append(f"{directory}/{value}" if directory else value)
        elif key in "PVALo" and key in current.fields:
            current.error = f"line {number}: field {key!r} appears twice in one record"
        else:
            current.fields.setdefault(key, value)
    return records


def parse_installed(data: bytes) -> tuple[list[Package], list[str]]:
    """Packages of an apk ``installed`` database, and the reasons records were skipped."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"apk database is not UTF-8: {e}") from e
    problems: list[str] = []
    good: list[_Record] = []
    for record in _records(text):
        name, version = record.fields.get("P"), record.fields.get("V")
        if record.error:
            problems.append(record.error)
        elif not name or not version:
            problems.append(f"record at line {record.line} lacks P: (name) or V: (version)")
        else:
            good.append(record)
    provider: dict[str, str] = {}
    for record in good:
        name = record.fields["P"]
        provider.setdefault(name, name)
        for token in record.provides:
            provider.setdefault(_token_name(token), name)
    packages = []
    for record in good:
        f = record.fields
        depends = {
            provider[_token_name(t)]
            for t in record.depends
            if not t.startswith("!") and _token_name(t) in provider
        }
        depends.discard(f["P"])
        packages.append(
            Package(
                type=PackageType.APK,
                name=f["P"],
                version=f["V"],
                arch=f.get("A") or None,
                source_name=f.get("o") or f["P"],
                source_version=f["V"],
                licenses=(f["L"],) if f.get("L") else (),
                installed_files=tuple(record.files),
                dependencies=tuple(sorted(depends)),
            )
        )
    return packages, problems


class ApkAnalyzer(Analyzer):
    name: ClassVar[str] = "apk"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.OS_PACKAGES

    databases = (INSTALLED,)

    def required(self, path: str, mode: int) -> bool:
        return path == INSTALLED

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        packages, problems = parse_installed(inp.read(self.size_cap))
        if not packages and problems:
            raise ParseError(f"no package could be read: {problems[0]}")
        return AnalysisResult(
            packages=tuple(replace(p, locations=(inp.path,)) for p in packages),
            unknowns=tuple(Unknown(inp.path, reason, self.name) for reason in problems),
        )
