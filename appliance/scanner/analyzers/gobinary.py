"""Go modules compiled into ELF executables, from the build information the Go linker embeds.

The linker writes a 32-byte header starting ``\\xff Go buildinf:`` (16-byte aligned), then the
pointer size and a flags byte (bit 0: big-endian; bit 1: the strings follow inline, Go >=
1.18). Inline, the Go version and the module information follow as varint-length-prefixed
strings; before 1.18 the header holds two pointers to Go string headers in the data segment.
The module information is tab-separated lines (``path``, ``mod``, ``dep``, ``=>`` for a
replacement of the line before, ``build``) wrapped in 16-byte sentinels. This follows the
standard library's ``debug/buildinfo`` and ``runtime/debug`` readers.

Besides its modules, a Go program embeds the standard library of the Go release that built it.
That release becomes a ``stdlib`` package at the version Go vulndb's ranges use, and the ``go``
command of a Go installation (build path ``cmd/go``) also becomes a ``toolchain`` package. A Go
version that names no release (a ``devel`` build) is an unknown naming the binary, never
silence.
"""

from __future__ import annotations

import mmap
import re
import stat
import struct
from dataclasses import dataclass
from typing import ClassVar, Final

from appliance.scanner.analyzers import gocalls, gosymbols
from appliance.scanner.analyzers.interface import (
    Analyzer,
    AnalyzerInput,
    AnalyzerKind,
    InputTooLargeError,
    ParseError,
    check_size,
)
from appliance.scanner.model import AnalysisResult, Package, PackageType, Unknown
from bundles import limits
from bundles.limits import Unit

Buffer = gosymbols.Buffer

BUILDINFO_MAGIC: Final = b"\xff Go buildinf:"
_HEADER_SIZE: Final = 32
_ALIGN: Final = 16
_SEARCH_WINDOW: Final = 64 << 10  # debug/buildinfo reads at most this much of the data segment
_MAX_STRING: Final = 16 << 20
_ELF_MAGIC: Final = b"\x7fELF"
_PT_LOAD: Final = 1
_PF_W, _PF_R = 2, 4


@dataclass(frozen=True, slots=True)
class Module:
    path: str
    version: str
    sum: str = ""
    replaced_by: Module | None = None


@dataclass(frozen=True, slots=True)
class BuildInfo:
    go_version: str
    path: str
    main: Module | None
    deps: tuple[Module, ...]
    settings: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class _Segment:
    vaddr: int
    offset: int
    filesz: int
    flags: int


@dataclass(frozen=True, slots=True)
class _Elf:
    little: bool
    is64: bool
    segments: tuple[_Segment, ...]
    sections: dict[str, tuple[int, int, int]]  # name -> (addr, offset, size)
    machine: int = 0  # e_machine
    entry: int = 0  # e_entry
    section_list: tuple[gocalls.Section, ...] = ()


def _parse_elf(data: Buffer) -> _Elf:
    if len(data) < 52 or bytes(data[:4]) != _ELF_MAGIC:
        raise ParseError("not an ELF file")
    cls, endian = data[4], data[5]
    if cls not in (1, 2) or endian not in (1, 2):
        raise ParseError(f"ELF class {cls} / data encoding {endian} is not valid")
    is64, e = cls == 2, "<" if endian == 1 else ">"
    try:
        (machine,) = struct.unpack_from(e + "H", data, 0x12)
        if is64:
            (entry,) = struct.unpack_from(e + "Q", data, 0x18)
            phoff, shoff = struct.unpack_from(e + "QQ", data, 0x20)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(e + "5H", data, 0x36)
        else:
            (entry,) = struct.unpack_from(e + "I", data, 0x18)
            phoff, shoff = struct.unpack_from(e + "II", data, 0x1C)
            phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from(e + "5H", data, 0x2A)
        segments = []
        for i in range(phnum):
            at = phoff + i * phentsize
            if is64:
                p_type, p_flags, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                    e + "IIQQQQ", data, at
                )
            else:
                p_type, p_offset, p_vaddr, _, p_filesz, _, p_flags = struct.unpack_from(
                    e + "7I", data, at
                )
            if p_type == _PT_LOAD:
                segments.append(_Segment(p_vaddr, p_offset, p_filesz, p_flags))
        raw_sections = []
        for i in range(shnum):
            at = shoff + i * shentsize
            if is64:
                name, kind, flags, addr, offset, size = struct.unpack_from(e + "IIQQQQ", data, at)
            else:
                name, kind, flags, addr, offset, size = struct.unpack_from(e + "6I", data, at)
            raw_sections.append((name, kind, flags, addr, offset, size))
    except struct.error as e_:
        raise ParseError(f"ELF headers run past the end of the file: {e_}") from e_
    sections: dict[str, tuple[int, int, int]] = {}
    listed = []
    if raw_sections and shstrndx < len(raw_sections):
        str_offset, str_size = raw_sections[shstrndx][4:6]
        names = bytes(data[str_offset : str_offset + str_size])
        for name_at, kind, flags, addr, offset, size in raw_sections:
            end = names.find(b"\0", name_at)
            if 0 <= name_at < len(names) and end > 0:
                text = names[name_at:end].decode("latin-1")
                sections.setdefault(text, (addr, offset, size))
                listed.append(gocalls.Section(text, kind, flags, addr, offset, size))
    return _Elf(endian == 1, is64, tuple(segments), sections, machine, entry, tuple(listed))


def _find_header(data: Buffer, elf: _Elf) -> int | None:
    """File offset of the build info header, searched as debug/buildinfo does."""
    if ".go.buildinfo" in elf.sections:
        _, offset, size = elf.sections[".go.buildinfo"]
        windows = [(offset, min(size, _SEARCH_WINDOW))]
    else:
        windows = [
            (s.offset, min(s.filesz, _SEARCH_WINDOW))
            for s in elf.segments
            if s.flags & (_PF_R | _PF_W) == (_PF_R | _PF_W)
        ]
    for start, length in windows:
        at = start
        while True:
            at = data.find(BUILDINFO_MAGIC, at, start + length)
            if at < 0:
                break
            if (at - start) % _ALIGN == 0 and at + _HEADER_SIZE <= len(data):
                return at
            at += 1
    return None


def _inline_string(data: Buffer, at: int) -> tuple[bytes, int]:
    length, at = gosymbols.uvarint(data, at, what="build info", width=10)
    if length > _MAX_STRING or at + length > len(data):
        raise ParseError(f"build info: string of {length} bytes runs past the end of the file")
    return bytes(data[at : at + length]), at + length


@dataclass(frozen=True, slots=True)
class _Memory:
    """Reads the executable's memory image (virtual addresses) from its file bytes."""

    data: Buffer
    elf: _Elf
    ptr_size: int

    def offset_of(self, addr: int, length: int) -> int:
        for s in self.elf.segments:
            if s.vaddr <= addr and addr + length <= s.vaddr + s.filesz:
                return s.offset + addr - s.vaddr
        raise ParseError(f"build info: address {addr:#x} is not in any loaded segment")

    def pointer_at_offset(self, offset: int) -> int:
        code = ("<" if self.elf.little else ">") + ("I" if self.ptr_size == 4 else "Q")
        try:
            return int(struct.unpack_from(code, self.data, offset)[0])
        except struct.error as e:
            raise ParseError(f"build info: pointer at offset {offset} is cut off") from e

    def string(self, header_addr: int) -> bytes:
        """A Go string header ``{data *byte; len int}`` at ``header_addr``, dereferenced."""
        at = self.offset_of(header_addr, 2 * self.ptr_size)
        address, length = self.pointer_at_offset(at), self.pointer_at_offset(at + self.ptr_size)
        if length == 0:
            return b""
        if length > _MAX_STRING:
            raise ParseError(f"build info: string of {length} bytes is implausible")
        start = self.offset_of(address, length)
        return bytes(self.data[start : start + length])


def _pointer_strings(data: Buffer, elf: _Elf, ptr_size: int, header_at: int) -> tuple[bytes, bytes]:
    """Pre-1.18 layout: the header holds pointers to the version and module strings."""
    if ptr_size not in (4, 8):
        raise ParseError(f"build info: pointer size {ptr_size} is neither 4 nor 8")
    memory = _Memory(data, elf, ptr_size)
    version = memory.string(memory.pointer_at_offset(header_at + 16))
    modinfo = memory.string(memory.pointer_at_offset(header_at + 16 + ptr_size))
    return version, modinfo


def _strip_sentinels(modinfo: bytes) -> bytes:
    if len(modinfo) >= 33 and modinfo[-17] == ord("\n"):
        return modinfo[16:-16]
    return b""


def parse_modinfo(
    text: str,
) -> tuple[str, Module | None, tuple[Module, ...], tuple[tuple[str, str], ...]]:
    """The ``runtime/debug.BuildInfo`` text: (path, main module, dependencies, settings)."""
    path, main = "", None
    deps: list[Module] = []
    settings: list[tuple[str, str]] = []
    last: str | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        key, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if key == "path":
            path = rest
        elif key in ("mod", "dep"):
            if len(fields) < 2 or not fields[0]:
                raise ParseError(f"build info line {number}: malformed {key} line {line!r}")
            module = Module(fields[0], fields[1], fields[2] if len(fields) > 2 else "")
            if key == "mod":
                main = module
            else:
                deps.append(module)
            last = key
        elif key == "=>":
            if last is None or not fields[0]:
                raise ParseError(f"build info line {number}: replacement without a module")
            replacement = Module(
                fields[0],
                fields[1] if len(fields) > 1 else "",
                fields[2] if len(fields) > 2 else "",
            )
            if last == "mod" and main is not None:
                main = Module(main.path, main.version, main.sum, replacement)
            else:
                old = deps.pop()
                deps.append(Module(old.path, old.version, old.sum, replacement))
            last = None
        elif key == "build":
            name, _, value = rest.partition("=")
            settings.append((name, value))
    return path, main, tuple(deps), tuple(settings)


def parse_buildinfo(data: Buffer) -> BuildInfo | None:
    """Build info of an ELF Go executable; None for an ELF file that is not a Go program."""
    elf = _parse_elf(data)
    at = _find_header(data, elf)
    if at is None:
        return None
    ptr_size, flags = data[at + 14], data[at + 15]
    if flags & 0x2:
        version_bytes, after = _inline_string(data, at + _HEADER_SIZE)
        modinfo_bytes, _ = _inline_string(data, after)
    else:
        version_bytes, modinfo_bytes = _pointer_strings(data, elf, ptr_size, at)
    try:
        go_version = version_bytes.decode("utf-8")
        modinfo = _strip_sentinels(modinfo_bytes).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"build info is not UTF-8: {e}") from e
    if not go_version.startswith(("go", "devel")):
        raise ParseError(f"build info Go version {go_version[:40]!r} is not a Go version")
    path, main, deps, settings = parse_modinfo(modinfo)
    return BuildInfo(go_version, path, main, deps, settings)


#: The names Go vulndb files the Go release's own code under (``affected[].package.name``).
STDLIB: Final = "stdlib"
TOOLCHAIN: Final = "toolchain"
# A Go release tag (golang.org/x/pkgsite's stdlib.VersionForTag): go1, go1.19, go1.19.8,
# go1.21rc2, go1.19beta1; and the BoringCrypto branch's go1.16.15b7 (go1.16.15 with BoringSSL).
_GO_TAG: Final = re.compile(
    r"go(?P<major>0|[1-9][0-9]*)(?:\.(?P<minor>0|[1-9][0-9]*))?(?:\.(?P<patch>0|[1-9][0-9]*))?"
    r"(?:(?P<pre>beta|rc)(?P<number>[0-9]+)|b[0-9]+)?"
)


def stdlib_version(go_version: str) -> str | None:
    """The version Go vulndb's ``stdlib`` ranges compare (SemVer, here with Go's ``v``) for the
    toolchain version a binary records, or None when it names no release.

    ``go1.19.8`` -> ``v1.19.8``; ``go1.19`` -> ``v1.19.0``; ``go1.21rc2`` -> ``v1.21.0-rc.2``;
    GOEXPERIMENT suffixes are dropped (``go1.22.0 X:boringcrypto``, also written
    ``go1.22.0-X:boringcrypto``); ``devel go1.23-abc…`` and ``go1.23-devel_…`` are None.
    """
    words = go_version.split()
    if not words:
        return None
    tag = words[0].partition("-X:")[0]
    m = _GO_TAG.fullmatch(tag)
    if m is None:
        return None
    version = f"v{m['major']}.{m['minor'] or 0}.{m['patch'] or 0}"
    if m["pre"]:
        version += f"-{m['pre']}.{m['number']}"
    return version


def packages_from_buildinfo(info: BuildInfo) -> tuple[Package, ...]:
    """The main module, each dependency (replacements applied), ``stdlib`` at the Go release
    that built the program, and ``toolchain`` at that release for the ``go`` command itself."""
    packages = []
    if info.main is not None:
        packages.append(Package(PackageType.GOLANG, info.main.path, info.main.version))
    for dep in info.deps:
        module = dep
        if dep.replaced_by is not None and not dep.replaced_by.path.startswith((".", "/")):
            module = dep.replaced_by  # a module replacement; a local directory keeps the name
        packages.append(Package(PackageType.GOLANG, module.path, module.version))
    if version := stdlib_version(info.go_version):
        packages.append(Package(PackageType.GOLANG, STDLIB, version))
        if info.path == "cmd/go" and info.main is None:  # only GOROOT code is named cmd/...
            packages.append(Package(PackageType.GOLANG, TOOLCHAIN, version))
    return tuple(packages)


def _call_graph(view: Buffer, elf: _Elf, table: gosymbols.LineTable) -> gocalls.Graph | str:
    """The binary's call graph, or why it was not read: a reason, never a failed scan (the
    linked functions stand without it, as ``present``)."""
    program = gocalls.Program(elf.machine, elf.entry, elf.little, elf.is64, elf.section_list)
    try:
        return gocalls.read(view, program, table)
    except (ParseError, limits.LimitError, struct.error, ValueError, IndexError) as e:
        return f"its code could not be read ({e})"


class GoBinaryAnalyzer(Analyzer):
    name: ClassVar[str] = "go-binary"
    version: ClassVar[int] = 4  # 3: the linked functions of each package; 4: the call tree
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.BINARY
    size_cap = limits.cap(
        "scan.go_binary_bytes",
        256 << 20,
        Unit.BYTES,
        "an executable searched for Go build information",
    )

    def required(self, path: str, mode: int) -> bool:
        return stat.S_ISREG(mode) and bool(mode & 0o111)

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        check_size(inp, self.size_cap)
        with inp.open() as fh:
            head = fh.read(4)
            if head != _ELF_MAGIC:
                return AnalysisResult()  # scripts and other executables are not Go programs
            try:  # a file on disk is mapped, so only the pages searched are read
                view: Buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError, AttributeError):  # a stream (e.g. a tar member)
                limit = self.size_limit
                view = head + fh.read(limit)
                if len(view) > limit:
                    raise InputTooLargeError(f"{inp.path}: more than {limit} bytes") from None
            try:
                info = parse_buildinfo(view)
                names, why = None, ""
                graph: gocalls.Graph | str = "its function table was not read"
                table: gosymbols.LineTable | None = None
                if info is not None:
                    try:
                        elf = _parse_elf(view)
                        pcln = elf.sections.get(".gopclntab")
                        table = gosymbols.read_table(
                            view,
                            little=elf.little,
                            section=pcln[1:] if pcln else None,
                            segments=[(s.vaddr, s.offset, s.filesz) for s in elf.segments],
                        )
                        names = table.all_names() if table is not None else None
                    except (ParseError, limits.LimitError) as e:
                        why = str(e)
                    if names is not None and table is not None:
                        graph = _call_graph(view, elf, table)
            finally:
                if isinstance(view, mmap.mmap):
                    view.close()
        if info is None:
            return AnalysisResult()
        unknowns: list[Unknown] = []
        if stdlib_version(info.go_version) is None:
            unknowns.append(
                Unknown(
                    inp.path,
                    f"built by Go {info.go_version[:80]!r}, which names no Go release: the "
                    "standard library it embeds cannot be matched against Go vulndb",
                    self.name,
                )
            )
        packages = packages_from_buildinfo(info)
        encoded: dict[str, str] = {}
        trees: dict[str, str] = {}
        if why:  # a table that is there but unreadable; with none, findings say "unknown"
            unknowns.append(
                Unknown(
                    inp.path,
                    f"its Go function table cannot be read ({why}): which vulnerable "
                    "functions it links stays unknown",
                    self.name,
                )
            )
        if names is not None:
            modules = [p.name for p in packages if p.name not in (STDLIB, TOOLCHAIN)]
            parts = gosymbols.partition(gosymbols.symbols(names), modules)
            built = dict(info.settings)
            goos, goarch = built.get("GOOS", ""), built.get("GOARCH", "")
            encoded = {m: gosymbols.encode(parts.get(m, ()), goos, goarch) for m in ("", *modules)}
            trees = {m: gocalls.encode(graph, parts.get(m, ())) for m in ("", *modules)}
        return AnalysisResult(
            packages=tuple(
                Package(
                    p.type,
                    p.name,
                    p.version,
                    locations=(inp.path,),
                    symbols=encoded.get("" if p.name in (STDLIB, TOOLCHAIN) else p.name, ""),
                    calls=trees.get("" if p.name in (STDLIB, TOOLCHAIN) else p.name, ""),
                )
                for p in packages
            ),
            unknowns=tuple(unknowns),
        )
