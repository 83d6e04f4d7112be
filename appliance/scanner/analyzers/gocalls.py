"""The call graph of a Go executable, read from its machine code: which linked functions
``main`` reaches, and which nothing reaches even under a generous assumption about indirect
calls.

Function boundaries come from the line table (:mod:`appliance.scanner.analyzers.gosymbols`);
each function's body is disassembled (capstone; amd64 and arm64) and three kinds of edge are
kept:

* **call**: a direct ``CALL`` (``BL``), or a ``JMP``/``Jcc`` (``B``, ``B.cond``, ``CBZ``,
  ``TBZ``) that leaves the function (a tail call), to the function holding the target;
* **address**: the function materialises another function's address (``LEA``; ``ADR`` or
  ``ADRP`` then ``ADD``; of its entry or of a function value holding it): a closure, a ``go``
  or ``defer`` statement, a callback;
* **inline**: the line table's inline tree says the function's code contains an inlined copy of
  another function.

Indirect calls (interface methods, function values, reflection, the runtime's callbacks) have
no static target. They are over-approximated: every function whose entry is *address-taken*
is a root that any indirect call may reach. Address-taken means its entry appears as an
8-byte word in any loaded data section (function values, interface tables, ``.init_array``,
exported dynamic symbols), as a 4-byte offset from the text start in any loaded data section
(type method tables, which the runtime builds interface tables and ``reflect`` calls from),
as a relocation addend (position-independent executables), or is referenced from code that is
not Go (cgo's C code, between the Go functions' ranges). A 4-byte or 8-byte word that only
happens to equal an entry is treated the same way: the error adds roots, never removes one.

The nodes are ordered by two breadth-first searches, which is also their proof:

1. from ``main.main``, then each package initialiser (``pkg.init``, ``pkg.init.N``), along
   call, address and inline edges: a node found here is **reached from main**, and its chain
   of parents is the path;
2. then from every other root (the ELF entry point, the address-taken functions, code that
   is not Go): a node first found here is reached only if an indirect call lands on it.

A function in neither is **not reached**: no chain of direct calls, inlining or address-taking
from any root leads to it. Deterministic: roots and edges are visited in table order.
"""

from __future__ import annotations

import array
import bisect
import ctypes
import itertools
import re
import struct
import sys
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from appliance.scanner.analyzers.gosymbols import Buffer, LineTable, split_name
from bundles import limits
from bundles.limits import Unit

CODE_CAP: Final = limits.cap(
    "scan.go_code_bytes",
    64 << 20,
    Unit.BYTES,
    "the machine code disassembled from one Go executable to read its call graph",
)

#: the prefix of an encoded call tree (:func:`encode`); ``gocall1:!`` starts a reason instead
ENCODING: Final = "gocall1:"
EM_X86_64: Final = 62
EM_AARCH64: Final = 183
_SHF_ALLOC, _SHF_EXECINSTR = 0x2, 0x4
_SHT_NOBITS, _SHT_RELA = 8, 4
_R_X86_64_RELATIVE: Final = 8

# root kinds (upper case) and edge kinds (lower case), one character each in the encoding
MAIN, INIT, ENTRY, DATA, CONSTANT, METHOD, FOREIGN = "M", "I", "E", "D", "K", "T", "X"
CALL, ADDRESS, INLINE = "c", "a", "n"
FROM_MAIN: Final = frozenset({MAIN, INIT})
ROOT_WORDS: Final = {
    MAIN: "main.main",
    INIT: "package initialiser",
    ENTRY: "the ELF entry point",
    DATA: "address stored in data (function value, interface table)",
    CONSTANT: "address written in code as a constant",
    METHOD: "in a type's method table (interface or reflect call)",
    FOREIGN: "referenced from non-Go code",
}
_INIT: Final = re.compile(r"init(\.[0-9]+)?")
_MACHINES: Final = {3: "386", 40: "arm", 8: "mips", 21: "ppc64", 22: "s390x"}


@dataclass(frozen=True, slots=True)
class Section:
    """One ELF section header: name, type, flags, address, file offset, size."""

    name: str
    kind: int
    flags: int
    addr: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Program:
    """What the call graph reads of an executable besides its line table."""

    machine: int
    entry: int
    little: bool
    is64: bool
    sections: tuple[Section, ...]


@dataclass(frozen=True, slots=True)
class Node:
    """One function (or symbol) of the tree: its name, its parent's index (-1 for a root),
    and how it was found: a root kind, or the kind of the edge from its parent."""

    name: str
    parent: int
    kind: str


@dataclass(frozen=True, slots=True)
class Graph:
    """The search's result: reached functions in the order found (parents first)."""

    nodes: tuple[Node, ...]


class _Functions:
    def __init__(self, table: LineTable) -> None:
        self.names = list(table.names)
        self.entries = list(table.entries)
        self.index = {e: i for i, e in enumerate(self.entries[:-1])}
        self.count = len(self.names)

    def holding(self, address: int) -> int | None:
        i = bisect.bisect_right(self.entries, address) - 1
        return i if 0 <= i < self.count else None


def _hex(text: str) -> int | None:
    """An operand's number as capstone prints it: ``0x1f``, ``+ 0x1f``, ``- 0x1f``, ``12``."""
    text = text.replace(" ", "").removeprefix("+")
    try:
        return int(text, 0)
    except ValueError:
        return None


class _Reader:
    """Virtual addresses to file bytes, over the sections that occupy the file."""

    def __init__(self, data: Buffer, program: Program) -> None:
        self.data = data
        self.spans = sorted(
            (s.addr, s.offset, s.size)
            for s in program.sections
            if s.flags & _SHF_ALLOC and s.kind != _SHT_NOBITS and s.addr
        )
        self.starts = [s[0] for s in self.spans]
        self.word = ("<" if program.little else ">") + ("Q" if program.is64 else "I")
        self.width = 8 if program.is64 else 4

    def word_at(self, address: int) -> int | None:
        i = bisect.bisect_right(self.starts, address) - 1
        if i < 0:
            return None
        addr, offset, size = self.spans[i]
        if address + self.width > addr + size:
            return None
        at = offset + address - addr
        if at + self.width > len(self.data):
            return None
        return int(struct.unpack_from(self.word, self.data, at)[0])


_BRANCH, _LEA = 1, 2
_CHUNK: Final = 1 << 16  # instructions decoded per call into capstone


class _Disassembler:
    """capstone's decoder. For amd64 it yields only the instructions that can reference
    another function: (address, size, what, operands) with ``what`` a branch (``call``,
    ``jmp``, ``jcc``) or ``lea`` (an absolute address carried as an immediate is found by
    :func:`_absolute` instead, over the raw bytes); arm64 code is read through ``md`` by
    :func:`_references_arm64`.

    capstone's own Python loop builds four Python objects per instruction, most of which are
    dropped here at once. Within the pinned 5.0 series the decoded instructions are instead
    read as one block of memory (the ``cs_insn`` array ``cs_disasm`` returns) and only the
    wanted ones are turned into Python values; without those names, the public loop is used.
    """

    def __init__(self, machine: int = EM_X86_64) -> None:
        import capstone  # imported here: only Go executables pay for loading it
        from capstone import x86_const as x86

        self.machine = machine
        self.error: type[Exception] = capstone.CsError
        if machine == EM_AARCH64:
            self.md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
            self.md.skipdata = True
            return
        self.md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self.md.skipdata = True  # data between functions (padding, jump tables) is stepped over
        jumps = [getattr(x86, n) for n in dir(x86) if n.startswith("X86_INS_J")]
        self.kinds: dict[int, int] = {i: _BRANCH for i in (*jumps, x86.X86_INS_CALL)}
        self.kinds[x86.X86_INS_LEA] = _LEA
        self.names = {"call": _BRANCH, "lea": _LEA}
        try:
            insn = capstone._cs_insn
            self.lib, self.insn = capstone._cs, insn
            self.stride = ctypes.sizeof(insn)
            self.offsets = (insn.address.offset, insn.size.offset, insn.op_str.offset)
        except AttributeError:
            self.lib = None

    def instructions(self, code: bytes, start: int) -> Iterator[tuple[int, int, int, str]]:
        if self.lib is None:
            for address, size, mnemonic, operands in self.md.disasm_lite(code, start):
                what = _BRANCH if mnemonic[0] == "j" else self.names.get(mnemonic)
                if what:
                    yield address, size, what, operands
            return
        at_address, at_size, at_text = self.offsets
        kinds, stride, done = self.kinds, self.stride, 0
        while done < len(code):
            block = ctypes.POINTER(self.insn)()
            piece = code[done:]
            count = self.lib.cs_disasm(
                self.md.csh, piece, len(piece), start + done, _CHUNK, ctypes.byref(block)
            )
            if count <= 0:
                return
            try:
                raw = ctypes.string_at(block, count * stride)
            finally:
                self.lib.cs_free(block, count)
            ids = memoryview(raw).cast("I")[:: stride // 4].tolist()
            for n, ident in enumerate(ids):
                what = kinds.get(ident)
                if what:
                    base = n * stride
                    address = int.from_bytes(
                        raw[base + at_address : base + at_address + 8], "little"
                    )
                    size = raw[base + at_size] | raw[base + at_size + 1] << 8
                    text = raw[base + at_text : base + at_text + 160]
                    yield address, size, what, text[: text.find(b"\0")].decode("ascii")
            base = (count - 1) * stride
            last = int.from_bytes(raw[base + at_address : base + at_address + 8], "little")
            done = last + (raw[base + at_size] | raw[base + at_size + 1] << 8) - start


def _references(
    md: _Disassembler,
    code: bytes,
    start: int,
    own: tuple[int, int],
    funcs: _Functions,
    reader: _Reader,
) -> Iterable[tuple[int, str]]:
    """(function index, edge kind) for each reference the code at ``start`` makes to another
    function (amd64): direct branches leaving ``own``, and addresses it materialises."""
    lo, hi = own
    entries, holding = funcs.index, funcs.holding
    for address, size, what, operands in md.instructions(code, start):
        if what == _BRANCH:
            if operands[:2] == "0x":
                target = int(operands, 16)
                if not lo <= target < hi:
                    index = holding(target)
                    if index is not None:
                        yield index, CALL
        else:
            at = operands.find("[rip")
            if at >= 0:
                displacement = _hex(operands[at + 4 : -1]) if operands[at + 4 : -1] else 0
                if displacement is None:
                    continue
                target = address + size + displacement
                index = entries.get(target)
                if index is None:  # a function value: a word holding the entry
                    word = reader.word_at(target)
                    index = entries.get(word) if word is not None else None
                if index is not None:
                    yield index, ADDRESS


_ARM64_BRANCH: Final = ("b.", "cb", "tb")


def _references_arm64(
    md: _Disassembler,
    code: bytes,
    start: int,
    own: tuple[int, int],
    funcs: _Functions,
    reader: _Reader,
) -> Iterable[tuple[int, str]]:
    """As :func:`_references`, for arm64: ``bl``, ``b``, ``b.cond``, ``cbz``/``tbz`` leaving
    the function, and addresses made by ``adr`` or by ``adrp`` then ``add`` on its register
    (how Go's arm64 code takes an address)."""
    lo, hi = own
    entries, holding = funcs.index, funcs.holding
    pages: dict[str, int] = {}  # register -> the page an adrp put in it
    for _, _, mnemonic, operands in md.md.disasm_lite(code, start):
        first, _, rest = operands.partition(", ")
        if mnemonic in ("bl", "b") or mnemonic.startswith(_ARM64_BRANCH):
            target = _hex(operands.rpartition("#")[2]) if "#" in operands else None
            if target is not None and not lo <= target < hi:
                index = holding(target)
                if index is not None:
                    yield index, CALL
            continue
        made: int | None = None
        if mnemonic == "adrp" and rest.startswith("#"):
            page = _hex(rest[1:])
            if page is not None:
                pages[first] = page
                continue
        elif mnemonic == "adr" and rest.startswith("#"):
            made = _hex(rest[1:])
        elif mnemonic == "add":
            source, _, offset = rest.partition(", ")
            if source in pages and offset.startswith("#") and ", " not in offset:
                low = _hex(offset[1:])
                made = pages[source] + low if low is not None else None
        pages.pop(first, None)  # the register now holds something else
        if made is not None:
            index = entries.get(made)
            if index is None:  # a function value: a word holding the entry
                word = reader.word_at(made)
                index = entries.get(word) if word is not None else None
            if index is not None:
                yield index, ADDRESS


def _absolute(code: bytes, funcs: _Functions, little: bool) -> set[int]:
    """Functions whose entry address appears in ``code`` as 4 bytes at any offset: an
    absolute address as an immediate (``mov $f``, ``push $f`` in position-dependent code),
    found without decoding, so every encoding is covered; bytes that only happen to equal an
    entry add a root, never remove one. (Go's compiler addresses functions relative to the
    instruction pointer; this is for other code and hand-written assembly.)"""
    low = {e: i for e, i in funcs.index.items() if e < 1 << 32}
    out: set[int] = set()
    for shift in range(4):
        out.update(low[v] for v in _words(code, shift, len(code) - shift, 4, little, low))
    return out


def _words(
    data: Buffer, offset: int, size: int, width: int, little: bool, among: Iterable[int]
) -> set[int]:
    """The ``width``-byte words of ``data[offset:offset+size]`` (at multiples of ``width``
    from ``offset``) that are in ``among``."""
    size -= size % width
    if size <= 0 or offset + size > len(data):
        return set()
    words = array.array("Q" if width == 8 else "I", bytes(data[offset : offset + size]))
    if little != (sys.byteorder == "little"):
        words.byteswap()
    return set(among).intersection(words)


def _address_taken(
    data: Buffer, program: Program, table: LineTable, funcs: _Functions
) -> dict[int, str]:
    """Function index -> root kind for each function whose entry is stored as data."""
    entries = set(funcs.index)
    offsets = {e - table.text_start: i for e, i in funcs.index.items() if e >= table.text_start}
    out: dict[int, str] = {}
    width = 8 if program.is64 else 4
    for s in program.sections:
        if not s.flags & _SHF_ALLOC or s.flags & _SHF_EXECINSTR or s.kind == _SHT_NOBITS:
            continue
        if s.offset <= table.offset < s.offset + s.size or s.name == ".gopclntab":
            continue  # the line table's own offsets are not references
        if s.kind == _SHT_RELA and program.is64:
            rows = _rela(data, s, program.little)
            for value in rows & entries:
                out.setdefault(funcs.index[value], DATA)
            continue
        for value in _words(data, s.offset, s.size, width, program.little, entries):
            out.setdefault(funcs.index[value], DATA)
        for value in _words(data, s.offset, s.size, 4, program.little, offsets):
            out.setdefault(offsets[value], METHOD)
    return out


def _rela(data: Buffer, section: Section, little: bool) -> set[int]:
    """The addends of a relocation table's ``R_X86_64_RELATIVE`` rows (pointers a
    position-independent executable's loader writes)."""
    code = ("<" if little else ">") + "QQq"
    out = set()
    end = min(section.offset + section.size - section.size % 24, len(data))
    for at in range(section.offset, end, 24):
        _, info, addend = struct.unpack_from(code, data, at)
        if info & 0xFFFFFFFF == _R_X86_64_RELATIVE:
            out.add(addend)
    return out


@dataclass(frozen=True, slots=True)
class Edges:
    """What the code says: each function's references to others (function index, edge
    kind), in the order met, the functions code that is not Go refers to, and those whose
    entry address the code holds as a constant."""

    out: tuple[tuple[tuple[int, str], ...], ...]
    foreign: frozenset[int]
    constants: frozenset[int] = frozenset()


def references(data: Buffer, program: Program, table: LineTable) -> Edges | str:
    """The call and address edges of every function (module docstring), or the reason the
    code was not read."""
    if program.machine not in (EM_X86_64, EM_AARCH64) or not program.is64:
        arch = _MACHINES.get(program.machine, f"ELF machine {program.machine}")
        return f"its call graph is read for amd64 and arm64 code only; this binary is {arch}"
    if not program.sections:
        return "it has no section headers, so its code and data cannot be told apart"
    texts = [s for s in program.sections if s.flags & _SHF_EXECINSTR and s.kind != _SHT_NOBITS]
    total = sum(s.size for s in texts)
    if total > CODE_CAP.value():
        return f"its {total:,} bytes of code are over {CODE_CAP.name} ({CODE_CAP.value():,})"
    entries = table.entries
    if not entries or any(a > b for a, b in itertools.pairwise(entries)):
        return "its function table's entry addresses are not in order"
    try:
        md = _Disassembler(program.machine)
    except ImportError:
        return "the disassembler it needs (capstone) is not installed"
    funcs = _Functions(table)
    reader = _Reader(data, program)
    edges: list[list[tuple[int, str]]] = [[] for _ in range(funcs.count)]
    foreign: set[int] = set()
    constants: set[int] = set()
    try:
        _decode(data, program, texts, funcs, reader, md, edges, foreign, constants)
    except md.error as e:
        return f"its code could not be disassembled ({e})"
    return Edges(tuple(tuple(e) for e in edges), frozenset(foreign), frozenset(constants))


def _decode(
    data: Buffer,
    program: Program,
    texts: list[Section],
    funcs: _Functions,
    reader: _Reader,
    md: _Disassembler,
    edges: list[list[tuple[int, str]]],
    foreign: set[int],
    constants: set[int],
) -> None:
    refs = _references_arm64 if program.machine == EM_AARCH64 else _references
    lo, hi = funcs.entries[0], funcs.entries[-1]
    for s in texts:
        constants.update(
            _absolute(bytes(data[s.offset : s.offset + s.size]), funcs, program.little)
        )
        for start, end in ((s.addr, min(lo, s.addr + s.size)), (max(hi, s.addr), s.addr + s.size)):
            if end > start:  # code outside the Go functions' range: cgo's C code
                code = bytes(data[s.offset + start - s.addr : s.offset + end - s.addr])
                for target, _ in refs(md, code, start, (start, end), funcs, reader):
                    foreign.add(target)
        first = bisect.bisect_left(funcs.entries, s.addr)
        for i in range(first, funcs.count):
            start, end = funcs.entries[i], funcs.entries[i + 1]
            if end > s.addr + s.size:
                break
            code = bytes(data[s.offset + start - s.addr : s.offset + end - s.addr])
            seen: set[tuple[int, str]] = set()
            for edge in refs(md, code, start, (start, end), funcs, reader):
                if edge not in seen and edge[0] != i:
                    seen.add(edge)
                    edges[i].append(edge)


def read(data: Buffer, program: Program, table: LineTable) -> Graph | str:
    """The call graph's search (module docstring), or the reason it was not read."""
    found = references(data, program, table)
    if isinstance(found, str):
        return found
    funcs = _Functions(table)
    # inlined copies: names of their own when the function has no entry of its own
    extra: dict[str, int] = {}
    inline: dict[int, list[tuple[int, str]]] = {}
    by_name = {n: i for i, n in reversed(list(enumerate(funcs.names)))}
    for i in sorted(table.inlined):
        for name in sorted(table.inlined[i]):
            target = by_name.get(name)
            if target is None:
                target = extra.setdefault(name, funcs.count + len(extra))
            inline.setdefault(i, []).append((target, INLINE))
    names = funcs.names + list(extra)
    roots = _roots(funcs, program, data, table)
    for index in sorted(found.constants):
        roots.setdefault(index, CONSTANT)
    for index in sorted(found.foreign):
        roots.setdefault(index, FOREIGN)
    return Graph(tuple(_search(names, found.out, inline, roots)))


def _roots(funcs: _Functions, program: Program, data: Buffer, table: LineTable) -> dict[int, str]:
    roots: dict[int, str] = {}
    for i, name in enumerate(funcs.names):
        if name == "main.main":
            roots[i] = MAIN
        else:
            split = name.rsplit("/", 1)[-1].split(".", 1)
            if len(split) == 2 and _INIT.fullmatch(split[1]):
                roots[i] = INIT
    entry = funcs.holding(program.entry)
    if entry is not None:
        roots.setdefault(entry, ENTRY)
    for index, kind in _address_taken(data, program, table, funcs).items():
        roots.setdefault(index, kind)
    return roots


def _search(
    names: list[str],
    edges: Sequence[Sequence[tuple[int, str]]],
    inline: Mapping[int, list[tuple[int, str]]],
    roots: Mapping[int, str],
) -> list[Node]:
    order = "MIEDKTX"
    ranked = sorted(roots.items(), key=lambda r: (order.index(r[1]), r[0]))
    found: dict[int, int] = {}
    nodes: list[Node] = []
    for root, kind in ranked:
        if root in found:
            continue
        found[root] = len(nodes)
        nodes.append(Node(names[root], -1, kind))
        queue = deque([root])
        while queue:
            at = queue.popleft()
            here = found[at]
            out = edges[at] if at < len(edges) else ()
            for target, how in (*out, *inline.get(at, ())):
                if target not in found:
                    found[target] = len(nodes)
                    nodes.append(Node(names[target], here, how))
                    queue.append(target)
    return nodes


def symbol_of(name: str) -> str:
    """The node name a function has in an encoded tree: vulndb's ``path.Symbol`` form, or the
    raw name of linker-made code."""
    split = split_name(name)
    return f"{split[0]}.{split[1]}" if split else name


def encode(graph: Graph | str, keep: Iterable[str]) -> str:
    """The tree at symbol level, restricted to the symbols in ``keep`` and their ancestors:
    ``gocall1:`` then one ``symbol TAB parent TAB kind`` line per node, parents first; or
    ``gocall1:!`` and the reason the graph was not read. Same graph, same text."""
    if isinstance(graph, str):
        return f"{ENCODING}!{graph.replace(chr(10), ' ')}"
    index: dict[str, int] = {}
    symbols: list[tuple[str, int, str]] = []
    node_symbol: list[int] = []
    for node in graph.nodes:
        name = symbol_of(node.name).replace("\t", " ").replace("\n", " ")
        parent = node_symbol[node.parent] if node.parent >= 0 else -1
        if name not in index:
            index[name] = len(symbols)
            symbols.append((name, parent, node.kind))
        node_symbol.append(index[name])
    wanted: set[int] = set()
    for name in keep:
        at = index.get(name)
        while at is not None and at >= 0 and at not in wanted:
            wanted.add(at)
            at = symbols[at][1]
    renumber = {old: new for new, old in enumerate(sorted(wanted))}
    lines = [
        f"{symbols[old][0]}\t{renumber.get(symbols[old][1], -1)}\t{symbols[old][2]}"
        for old in sorted(wanted)
    ]
    return ENCODING + "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Reach:
    """One symbol's place in a decoded tree: whether it is reached from main, and the chain
    of symbols from its root (the root first) with each step's kind."""

    from_main: bool
    root: str
    chain: tuple[tuple[str, str], ...]  # (symbol, kind of the step into it)


class CallTree:
    """A decoded :func:`encode` text. ``reason`` is set when the graph was not read."""

    def __init__(self, encoded: str) -> None:
        if not encoded.startswith(ENCODING):
            raise ValueError(f"call tree does not start with {ENCODING!r}")
        body = encoded[len(ENCODING) :]
        self.reason = body[1:] if body.startswith("!") else ""
        self.nodes: list[tuple[str, int, str]] = []
        self.index: dict[str, int] = {}
        if self.reason or not body:
            return
        for number, line in enumerate(body.split("\n")):
            fields = line.split("\t")
            at = int(fields[1]) if len(fields) == 3 and fields[1].lstrip("-").isdigit() else -2
            kind = fields[-1]
            if not -1 <= at < number or len(kind) != 1:
                raise ValueError(f"call tree line {number + 1} is not valid")
            name = fields[0]
            self.nodes.append((name, at, kind))
            self.index.setdefault(name, number)

    def reach(self, symbol: str) -> Reach | None:
        """Where ``symbol`` (``path.Symbol`` or an import path's functions' form) sits in the
        tree; None when nothing reaches it."""
        at = self.index.get(symbol)
        if at is None:
            return None
        chain: list[tuple[str, str]] = []
        while at >= 0:
            name, parent, kind = self.nodes[at]
            chain.append((name, kind))
            at = parent
        chain.reverse()
        root = chain[0][1]
        return Reach(root in FROM_MAIN, root, tuple(chain))


def chain_text(reach: Reach) -> str:
    """``main.main -> a.F -> &b.G -> (inlined) c.H``: the path, each step by its kind."""
    parts = []
    for name, kind in reach.chain:
        if kind == ADDRESS:
            parts.append(f"&{name}")
        elif kind == INLINE:
            parts.append(f"(inlined) {name}")
        else:
            parts.append(name)
    head = "" if reach.root == MAIN else f"[{ROOT_WORDS.get(reach.root, reach.root)}] "
    return head + " -> ".join(parts)
