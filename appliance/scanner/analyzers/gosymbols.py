"""The functions linked into a Go executable, read from its line table (``pclntab``).

Every Go program carries the runtime's function table, whether or not it was stripped: the
runtime needs it for stack traces and garbage collection. It sits in the ELF section
``.gopclntab``; where the section headers are gone, it is found by its header's magic, as the
standard library's ``debug/gosym`` and govulncheck's binary mode do. Four header formats:

=========  ==========  ==================================================================
magic      Go          layout
=========  ==========  ==================================================================
fffffffb   1.2-1.15    ``nfunc`` then the function table right after the 8+ptr header;
                       names are offsets from the table's start
fffffffa   1.16-1.17   header words: nfunc, nfiles, funcname, cu, file, pc, pcln offsets;
                       function table entries are two pointer-size words
fffffff0   1.18-1.19   one more word (text start) before the offsets; function table
                       entries are two 32-bit words
fffffff1   1.20+       as 1.18
=========  ==========  ==================================================================

Each function table entry points at a ``_func`` record whose second field is the offset of the
function's name in the name table. Here only names and entry addresses are read; the call
graph (:mod:`appliance.scanner.analyzers.gocalls`) disassembles the code between them.

A function the compiler inlined at every call site has no entry of its own: it lives in its
callers' inline trees. For Go 1.18+ tables those are read as well, found through the runtime's
module data (the record that points at this table), so no symbol table is needed. Older tables
and binaries whose module data is not found give the function table only; docs/reachability.md
says what the states claim.
"""

from __future__ import annotations

import base64
import hashlib
import mmap
import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from appliance.scanner.analyzers.interface import ParseError
from bundles import limits
from bundles.limits import Unit

MAGIC_12: Final = 0xFFFFFFFB
MAGIC_116: Final = 0xFFFFFFFA
MAGIC_118: Final = 0xFFFFFFF0
MAGIC_120: Final = 0xFFFFFFF1
_MAGICS: Final = (MAGIC_12, MAGIC_116, MAGIC_118, MAGIC_120)
Buffer = bytes | bytearray | mmap.mmap
_NAME_MAX: Final = 4096  # one function's name; longer is a corrupt table, not a Go name

FUNCTIONS_CAP: Final = limits.cap(
    "scan.go_functions",
    2_000_000,
    Unit.COUNT,
    "the functions read from one Go executable's line table",
)


def _header_ok(data: Buffer, at: int) -> bool:
    if at + 16 > len(data):
        return False
    return (
        data[at + 4] == 0
        and data[at + 5] == 0
        and data[at + 6] in (1, 2, 4)
        and (data[at + 7] in (4, 8))
    )


def _candidates(data: Buffer, little: bool, section: tuple[int, int] | None) -> Iterable[int]:
    """File offsets where a line table header may start: the section, else every magic."""
    if section is not None and section[1] > 0:
        yield section[0]
        return
    for magic in _MAGICS:
        pattern = struct.pack("<I" if little else ">I", magic) + b"\0\0"
        at = data.find(pattern)
        while at >= 0:
            if _header_ok(data, at):
                yield at
            at = data.find(pattern, at + 1)


class _Table:
    """One line table, read in place from ``data`` at ``base``."""

    def __init__(self, data: Buffer, base: int, little: bool) -> None:
        self.data, self.base = data, base
        self.e = "<" if little else ">"
        if not _header_ok(data, base):
            raise ParseError(f"Go line table at offset {base}: header is not valid")
        self.magic = self._u32(base)
        if self.magic not in _MAGICS:
            raise ParseError(f"Go line table at offset {base}: unknown magic {self.magic:#x}")
        self.ptr = data[base + 7]

    def _u32(self, at: int) -> int:
        try:
            return int(struct.unpack_from(self.e + "I", self.data, at)[0])
        except struct.error as e:
            raise ParseError(f"Go line table: 4 bytes at offset {at} are past the end") from e

    def _word(self, at: int) -> int:
        try:
            code = self.e + ("I" if self.ptr == 4 else "Q")
            return int(struct.unpack_from(code, self.data, at)[0])
        except struct.error as e:
            raise ParseError(f"Go line table: a word at offset {at} is past the end") from e

    def _header_word(self, index: int) -> int:
        return self._word(self.base + 8 + index * self.ptr)

    def names(self) -> list[str]:
        b = self.base
        nfunc = self._header_word(0)
        limits.check(FUNCTIONS_CAP, nfunc, "a Go executable's function table")
        if self.magic == MAGIC_12:
            functab, funcdata, nametab, field = b + 8 + self.ptr, b, b, self.ptr
            name_at_in_func = self.ptr
        elif self.magic == MAGIC_116:
            nametab = b + self._header_word(2)
            functab = funcdata = b + self._header_word(6)
            field, name_at_in_func = self.ptr, self.ptr
        else:
            nametab = b + self._header_word(3)
            functab = funcdata = b + self._header_word(7)
            field, name_at_in_func = 4, 4
        if functab + 2 * nfunc * field > len(self.data):
            raise ParseError(f"Go line table: {nfunc} functions run past the end of the file")
        read = self._u32 if field == 4 else self._word
        out = []
        self.funcs: list[int] = []
        # entry addresses, and the end of the last function: Go 1.18+ tables keep offsets
        # from the text start (header word 2), older ones the addresses themselves
        start = self._header_word(2) if self.magic in (MAGIC_118, MAGIC_120) else 0
        self.text_start = start
        self.entries: list[int] = []
        for i in range(nfunc):
            self.entries.append(start + read(functab + 2 * i * field))
            func = funcdata + read(functab + (2 * i + 1) * field)
            self.funcs.append(func)
            out.append(self._name(nametab, self._u32(func + name_at_in_func), f"function {i}"))
        self.entries.append(start + read(functab + 2 * nfunc * field))
        if self.entries and not start:
            self.text_start = self.entries[0]
        self.nametab = nametab
        return out

    def _name(self, nametab: int, name_off: int, what: str) -> str:
        start = nametab + name_off
        end = self.data.find(b"\0", start, start + _NAME_MAX)
        if name_off >= 0x80000000 or end < 0:
            raise ParseError(f"Go line table: {what} has no readable name")
        return bytes(self.data[start:end]).decode("utf-8", "replace")

    def _gofunc(self, segments: Iterable[tuple[int, int, int]]) -> int | None:
        """File offset of ``go:func.*``, the base of the functions' data (inline trees), from
        the runtime's module data: the record that points at this table and at its name
        table (Go 1.18+; ``gofunc`` follows ``rodata`` there)."""
        spans = list(segments)

        def vaddr(offset: int) -> int | None:
            for addr, start, size in spans:
                if start <= offset < start + size:
                    return addr + offset - start
            return None

        def offset(addr: int) -> int | None:
            for start_addr, start, size in spans:
                if start_addr <= addr < start_addr + size:
                    return start + addr - start_addr
            return None

        table = vaddr(self.base)
        if table is None:
            return None
        names = table + self._header_word(3)
        pattern = struct.pack(self.e + ("I" if self.ptr == 4 else "Q"), table)
        index = 38 if self.magic == MAGIC_118 else 40  # 1.20 added covctrs, ecovctrs
        at, tries = self.data.find(pattern), 0
        while at >= 0 and tries < 64:
            tries += 1
            try:
                if self._word(at + self.ptr) == names:
                    rodata = self._word(at + (index - 1) * self.ptr)
                    gofunc = self._word(at + index * self.ptr)
                    found = offset(gofunc) if rodata <= gofunc else None
                    if found is not None:
                        return found
            except ParseError:
                pass
            at = self.data.find(pattern, at + 1)
        return None

    def _max_value(self, at: int) -> int:
        """The largest value of a pc-value table (``runtime.pcvalue``), -1 when empty."""
        value, best, first = -1, -1, True
        for _ in range(1 << 20):
            delta, at = uvarint(self.data, at)
            if delta == 0 and not first:
                return best
            first = False
            value += ~(delta >> 1) if delta & 1 else delta >> 1
            best = max(best, value)
            _, at = uvarint(self.data, at)  # the pc delta
        raise ParseError("Go line table: a pc-value table does not end")

    def inlined(self, segments: Iterable[tuple[int, int, int]]) -> dict[int, set[str]]:
        """Names of the functions inlined into others (Go 1.18+ tables), by the index of the
        function they are inlined into, from each function's inline tree:
        ``FUNCDATA_InlTree`` entries counted by ``PCDATA_InlTreeIndex``. Empty when the
        module data (hence the trees) cannot be found."""
        if self.magic not in (MAGIC_118, MAGIC_120) or not self.funcs:
            return {}
        gofunc = self._gofunc(segments)
        if gofunc is None:
            return {}
        pctab = self.base + self._header_word(6)
        fixed, nfuncdata_at = (40, 39) if self.magic == MAGIC_118 else (44, 43)
        entry, name_at = (20, 12) if self.magic == MAGIC_118 else (16, 4)
        out: dict[int, set[str]] = {}
        total = 0
        for index, func in enumerate(self.funcs):
            npcdata = self._u32(func + 28)
            if func + nfuncdata_at >= len(self.data):
                raise ParseError("Go line table: a function record runs past the end")
            nfuncdata = self.data[func + nfuncdata_at]
            if npcdata <= 2 or nfuncdata <= 3:
                continue
            tree = self._u32(func + fixed + 4 * npcdata + 4 * 3)
            index_table = self._u32(func + fixed + 4 * 2)
            if tree == 0xFFFFFFFF or index_table == 0:
                continue
            count = self._max_value(pctab + index_table) + 1
            total += max(count, 0)
            limits.check(FUNCTIONS_CAP, total, "a Go executable's inlined calls")
            for k in range(count):
                name_off = self._u32(gofunc + tree + k * entry + name_at)
                out.setdefault(index, set()).add(
                    self._name(self.nametab, name_off, "an inlined call")
                )
        return out


def uvarint(
    data: Buffer, at: int, *, what: str = "Go line table", width: int = 5
) -> tuple[int, int]:
    """A Go unsigned varint at ``at`` (at most ``width`` bytes): its value and the offset past
    it; ``what`` names the table in the error."""
    value = shift = 0
    for index in range(width):
        if at + index >= len(data):
            break
        byte = data[at + index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at + index + 1
        shift += 7
    raise ParseError(f"{what}: malformed varint at offset {at}")


@dataclass(frozen=True, slots=True)
class LineTable:
    """What the call graph needs of a line table: each function's name and entry address in
    table order (``entries`` has one more item, the end of the last function), the text
    start method tables count from, and the names inlined into each function (by index)."""

    names: tuple[str, ...]
    entries: tuple[int, ...]
    text_start: int
    inlined: Mapping[int, frozenset[str]]
    #: the table's file offset: the call graph must not read its offsets as references
    offset: int

    def all_names(self) -> list[str]:
        """The function names, then the names only inlined into others, sorted."""
        extra = {n for names in self.inlined.values() for n in names}.difference(self.names)
        return [*self.names, *sorted(extra)]


def read_table(
    data: Buffer,
    *,
    little: bool = True,
    section: tuple[int, int] | None = None,
    segments: Iterable[tuple[int, int, int]] = (),
) -> LineTable | None:
    """The function table of a Go executable; None when no line table is found. ``section``
    is the ``.gopclntab`` section's (file offset, size) when the ELF headers name it; without
    it the file is searched for a header. A table found but unreadable raises
    :class:`ParseError`. With the loaded ``segments`` (virtual address, file offset, size),
    the inline trees are read too (Go 1.18+)."""
    error: ParseError | None = None
    for at in _candidates(data, little, section):
        try:
            table = _Table(data, at, little)
            names = table.names()
        except ParseError as e:
            error = error or e  # a magic inside other data: try the next one
            continue
        if names:
            inlined = {i: frozenset(n) for i, n in table.inlined(segments).items()}
            return LineTable(tuple(names), tuple(table.entries), table.text_start, inlined, at)
    if error is not None:
        raise error
    return None


def function_names(
    data: Buffer,
    *,
    little: bool = True,
    section: tuple[int, int] | None = None,
    segments: Iterable[tuple[int, int, int]] = (),
) -> list[str] | None:
    """The names in the function table of a Go executable, in table order; None when no line
    table is found (:func:`read_table`). With the loaded ``segments``, the functions inlined
    into others (Go 1.18+) follow, sorted."""
    table = read_table(data, little=little, section=section, segments=segments)
    return None if table is None else table.all_names()


_GENERIC: Final = re.compile(r"\[[^\[\]]*\]")


def split_name(name: str) -> tuple[str, str] | None:
    """``net/http.(*Client).Do`` -> (``net/http``, ``Client.Do``), the form Go vulndb's
    ``imports[].symbols`` use; generic shapes (``[...]``) are dropped. A closure keeps its
    enclosing function's symbol (``F.func1`` -> ``F``), as its code is that function's code.
    None for names with no package (linker-made ``type:``/``go:`` symbols)."""
    while "[" in name:
        stripped = _GENERIC.sub("", name)
        if stripped == name:
            break
        name = stripped
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot <= 0:
        return None
    package, rest = name[:dot], name[dot + 1 :]
    if package.startswith(("type:", "go:", "type.")) or not rest:
        return None
    parts = []
    for part in rest.split("."):
        part = part.strip("(*)")
        if re.fullmatch(r"func[0-9]+|gowrap[0-9]+|deferwrap[0-9]+|[0-9]+", part):
            break  # a closure or wrapper: the function that encloses it
        parts.append(part)
    if not parts or not parts[0]:
        return None
    return package, ".".join(parts[:2])


def symbols(names: Iterable[str]) -> tuple[str, ...]:
    """Each function name as ``package.Symbol`` (``net/http.Client.Do``), sorted, unique."""
    out = set()
    for name in names:
        split = split_name(name)
        if split is not None:
            out.add(f"{split[0]}.{split[1]}")
    return tuple(sorted(out))


#: The prefix of an encoded symbol set; an empty :attr:`Package.symbols` means "not read".
ENCODING: Final = "gosym1:"


def _key(symbol: str) -> bytes:
    return hashlib.sha256(symbol.encode("utf-8")).digest()[:4]


def encode(symbols: Iterable[str], goos: str = "", goarch: str = "") -> str:
    """A compact, deterministic set of the symbols and their import paths, with the platform
    the binary was built for (``""`` when the build information does not say):
    ``gosym1:GOOS/GOARCH:`` and the sorted first four bytes of each name's SHA-256, base64.
    A lookup can be wrong only one way (a 1 in 2**32 chance per symbol asked of
    calling an absent symbol present), never by calling a linked symbol absent."""
    members = set()
    for symbol in symbols:
        members.add(symbol)
        split = split_name(symbol)
        if split is not None:
            members.add(split[0])  # the import path: a record may name a path, no symbols
    keys = sorted({_key(s) for s in members})
    body = base64.b64encode(b"".join(keys)).decode("ascii")
    return f"{ENCODING}{goos}/{goarch}:{body}"


class SymbolSet:
    """A decoded :func:`encode` set."""

    def __init__(self, encoded: str) -> None:
        if not encoded.startswith(ENCODING):
            raise ValueError(f"symbol set does not start with {ENCODING!r}")
        platform, colon, body = encoded[len(ENCODING) :].partition(":")
        if not colon or "/" not in platform:
            raise ValueError("symbol set has no GOOS/GOARCH: part")
        self.goos, _, self.goarch = platform.partition("/")
        raw = base64.b64decode(body, validate=True)
        if len(raw) % 4:
            raise ValueError("symbol set length is not a multiple of 4")
        self._keys = frozenset(raw[i : i + 4] for i in range(0, len(raw), 4))

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and _key(symbol) in self._keys

    def __len__(self) -> int:
        return len(self._keys)


def is_stdlib_path(package: str) -> bool:
    """A standard library import path: its first element has no dot (``net/http``, not
    ``example.com/x``); ``main`` is the program's own package."""
    return package != "main" and "." not in package.partition("/")[0]


def partition(symbols: Iterable[str], modules: Iterable[str]) -> dict[str, list[str]]:
    """Each ``package.Symbol`` under the module that holds its package (the longest module
    path that is the package path or a prefix of it at a ``/``), or under ``""`` for the
    standard library. Symbols of no listed module (``main``, vendored code) are dropped."""
    ordered = sorted(set(modules), key=len, reverse=True)
    out: dict[str, list[str]] = {}
    for symbol in symbols:
        split = split_name(symbol)
        if split is None:
            continue
        package = split[0]
        if is_stdlib_path(package):
            out.setdefault("", []).append(symbol)
            continue
        for module in ordered:
            if package == module or package.startswith(module + "/"):
                out.setdefault(module, []).append(symbol)
                break
    return out
