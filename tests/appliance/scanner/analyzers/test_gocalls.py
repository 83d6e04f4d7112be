"""The call graph of a Go executable: edges compared with ``go tool objdump``'s CALL and JMP
lines on a program built here, the search's claims checked against the Go linker's own
dead-code elimination, and the cases where the graph is not read."""

from __future__ import annotations

import bisect
import re
import shutil
import struct
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from appliance.match.model import Reachability
from appliance.match.symbols import judge
from appliance.scanner import cache
from appliance.scanner.analyzers import gocalls
from appliance.scanner.analyzers.gobinary import GoBinaryAnalyzer, _parse_elf
from appliance.scanner.analyzers.gocalls import (
    CALL,
    MAIN,
    CallTree,
    Edges,
    Graph,
    Node,
    Program,
    chain_text,
    encode,
    references,
)
from appliance.scanner.analyzers.gosymbols import LineTable, read_table
from appliance.scanner.analyzers.gosymbols import encode as encode_symbols
from appliance.scanner.analyzers.interface import AnalyzerInput
from appliance.scanner.collect import run_analyzer
from appliance.scanner.layers import LayerRecord
from appliance.scanner.model import AnalysisResult, Package, PackageType
from tests.appliance.gobuild import build_hello
from tests.conftest import require_tools

REGISTRY = Path("/usr/bin/docker-registry")
PEM_DECODE = [
    {"ecosystem_specific": {"imports": [{"path": "encoding/pem", "symbols": ["Decode"]}]}}
]


@pytest.fixture(scope="session")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello(tmp_path_factory.mktemp("go"))


@pytest.fixture(scope="session")
def hello_arm64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello(tmp_path_factory.mktemp("go-arm64"), "arm64")


def _binary(name: str, request: pytest.FixtureRequest) -> Path:
    if name == "registry":
        require_tools("docker-registry")
        return REGISTRY
    path: Path = request.getfixturevalue(name)
    return path


def _read(path: Path) -> tuple[bytes, Program, LineTable]:
    data = path.read_bytes()
    elf = _parse_elf(data)
    pcln = elf.sections.get(".gopclntab")
    segments = [(s.vaddr, s.offset, s.filesz) for s in elf.segments]
    table = read_table(data, section=pcln[1:] if pcln else None, segments=segments)
    assert table is not None
    return data, Program(elf.machine, elf.entry, elf.little, elf.is64, elf.section_list), table


def _stdlib(path: Path) -> Package:
    size = path.stat().st_size
    inp = AnalyzerInput(str(path).lstrip("/"), 0o100755, size, lambda: path.open("rb"))
    packages = run_analyzer(GoBinaryAnalyzer(), inp).packages
    return next(p for p in packages if p.name == "stdlib")


# amd64: CALL, JMP, Jcc; arm64: CALL (bl), JMP (b), Bcc, CBZ/CBNZ, TBZ/TBNZ
# a target is a symbol, an address (amd64), or a count of instructions from here (arm64)
_BRANCH = re.compile(
    r"^(CALL|J[A-Z]+|B[A-Z]+|CBN?Z|TBN?Z) (?:.*, )?"
    r"(?:(.+)\(SB\)|0x([0-9a-f]+)|(-?[0-9]+)\(PC\))$"
)


def _name(symbol: str) -> str:
    """A symbol table name as the line table writes it: no ABI suffix, array lengths of
    linker-made equality functions as ``[...]``."""
    return re.sub(r"\[[0-9]+\]", "[...]", symbol.removesuffix(".abi0"))


def _objdump_edges(binary: Path) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(caller, callee) for each direct ``CALL`` that ``go tool objdump`` prints, and for each
    branch to another function (``JMP``, ``Jcc``, the calls too). A target inside a function
    (``runtime.duffzero``'s entry points) is printed as an address: it is placed by the
    functions' start addresses objdump prints."""
    text = subprocess.run(
        ["go", "tool", "objdump", str(binary)], check=True, capture_output=True, text=True
    ).stdout
    starts: list[tuple[int, str]] = []
    raw: list[tuple[str, str, str | int]] = []
    caller = ""
    for line in text.splitlines():
        if line.startswith("TEXT "):
            caller = _name(line.removeprefix("TEXT ").rpartition("(SB)")[0])
            starts.append((-1, caller))
            continue
        fields = [f.strip() for f in line.split("\t") if f.strip()]
        if len(fields) < 4:
            continue
        if starts and starts[-1][0] < 0:
            starts[-1] = (int(fields[1], 16), caller)
        m = _BRANCH.match(fields[3])
        if m is not None:
            target: str | int
            if m[2]:
                target = _name(re.sub(r"\+[0-9]+$", "", m[2]))
            elif m[3]:
                target = int(m[3], 16)
            else:
                target = int(fields[1], 16) + 4 * int(m[4])
            raw.append((m[1], caller, target))
    starts.sort()
    addresses = [a for a, _ in starts]
    calls, branches = set(), set()
    for op, caller, target in raw:
        if isinstance(target, int):
            target = starts[bisect.bisect_right(addresses, target) - 1][1]
        if target != caller:
            branches.add((caller, target))
            if op == "CALL":
                calls.add((caller, target))
    return calls, branches


@pytest.mark.parametrize("name", ["hello", "hello_arm64"])
def test_direct_calls_match_go_tool_objdump(name: str, request: pytest.FixtureRequest) -> None:
    """Every direct call objdump decodes is an edge here; every call edge here is a call or
    branch objdump decodes to that function (amd64 and arm64 code)."""
    require_tools("go")
    hello = _binary(name, request)
    data, program, table = _read(hello)
    found = references(data, program, table)
    assert isinstance(found, Edges)
    names = table.names
    ours = {
        (names[i], names[target])
        for i, out in enumerate(found.out)
        for target, kind in out
        if kind == CALL and names[i] != names[target]  # not an ABI wrapper to its function
    }
    calls, branches = _objdump_edges(hello)
    assert len(calls) > 5000
    assert calls <= ours, sorted(calls - ours)[:10]
    assert ours <= branches, sorted(ours - branches)[:10]


@pytest.mark.parametrize("binary", ["hello", "hello_arm64", "registry"])
def test_the_linker_kept_nothing_the_search_calls_unreached(
    binary: str, request: pytest.FixtureRequest
) -> None:
    """Go's linker drops every function its own reachability analysis (over the same kinds of
    reference) does not reach. So a sound search finds every function of the table: one it
    missed would mean a lost edge, and a false ``present-not-reached``."""
    data, program, table = _read(_binary(binary, request))
    graph = gocalls.read(data, program, table)
    assert isinstance(graph, Graph)
    reached = {n.name for n in graph.nodes}
    assert set(table.names) <= reached
    from_main = [n for n in graph.nodes if n.parent < 0 and n.kind == MAIN]
    assert [n.name for n in from_main] == ["main.main"]
    assert graph.nodes[0] == Node("main.main", -1, MAIN)


@pytest.mark.parametrize("name", ["hello", "hello_arm64"])
def test_chains_name_the_path(name: str, request: pytest.FixtureRequest) -> None:
    stdlib = _stdlib(_binary(name, request))
    tree = CallTree(stdlib.calls)
    execute = tree.reach("html/template.Template.Execute")
    assert execute is not None
    assert execute.from_main
    assert chain_text(execute) == "main.main -> html/template.Template.Execute"
    decode = tree.reach("encoding/pem.Decode")
    assert decode is not None
    assert not decode.from_main
    assert chain_text(decode) == (
        "[in a type's method table (interface or reflect call)] "
        "main.Block.Decode -> encoding/pem.Decode"
    )
    assert tree.reach("net/http.Client.Do") is None  # not linked at all


def test_same_binary_same_tree(hello: Path, tmp_path: Path) -> None:
    copy = tmp_path / "again"
    shutil.copyfile(hello, copy)
    assert _stdlib(hello).calls == _stdlib(copy).calls


def _patched(hello: Path, tmp_path: Path, patch: str) -> Path:
    data = bytearray(hello.read_bytes())
    if patch == "arm":
        struct.pack_into("<H", data, 0x12, 40)  # e_machine: an architecture not read
    else:  # no section headers: e_shoff, e_shnum, e_shstrndx = 0
        struct.pack_into("<Q", data, 0x28, 0)
        struct.pack_into("<HH", data, 0x3C, 0, 0)
    out = tmp_path / patch
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("patch", "why"),
    [
        ("arm", "its call graph is read for amd64 and arm64 code only; this binary is arm"),
        ("noshdr", "it has no section headers, so its code and data cannot be told apart"),
    ],
)
def test_graph_not_read_stays_present_with_the_reason(
    hello: Path, tmp_path: Path, patch: str, why: str
) -> None:
    stdlib = _stdlib(_patched(hello, tmp_path, patch))
    assert stdlib.symbols  # the function table is still read
    assert stdlib.calls == f"gocall1:!{why}"
    verdict = judge(stdlib, PEM_DECODE)
    assert verdict is not None
    assert verdict.state is Reachability.PRESENT
    assert verdict.note.endswith(f"(calls from main not analysed: {why})")


def test_code_over_the_cap_is_not_read(hello: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STELLA_LIMIT_SCAN_GO_CODE_BYTES", "1000")
    stdlib = _stdlib(hello)
    assert stdlib.calls.startswith("gocall1:!its ")
    assert "bytes of code are over scan.go_code_bytes (1,000)" in stdlib.calls


def test_not_in_the_tree_is_present_not_reached() -> None:
    """The one state the search proves by absence: linked, and in no chain from any root."""
    graph = Graph((Node("main.main", -1, MAIN), Node("fmt.Println", 0, CALL)))
    linked = ["encoding/pem.Decode", "fmt.Println"]
    package = Package(
        PackageType.GOLANG,
        "stdlib",
        "v1.19.8",
        locations=("usr/bin/x",),
        symbols=encode_symbols(linked, "linux", "amd64"),
        calls=encode(graph, linked),
    )
    verdict = judge(package, PEM_DECODE)
    assert verdict is not None
    assert verdict.state is Reachability.PRESENT_NOT_REACHED
    assert verdict.note.startswith("/usr/bin/x links encoding/pem.Decode, but its call graph")


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("gocall1:x\t5\tc", "call tree line 1 is not valid"),
        ("gocall1:x\t0\tc", "call tree line 1 is not valid"),
        ("gocall1:x\t-1\tc\ny\t-1", "call tree line 2 is not valid"),
        ("gocall1:x\t-1\tcc", "call tree line 1 is not valid"),
        ("x", "call tree does not start with 'gocall1:'"),
    ],
)
def test_corrupt_tree_is_refused(bad: str, error: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(error)}$"):
        CallTree(bad)


def test_entries_out_of_order_are_not_read(hello: Path) -> None:
    """A function table whose entries are not sorted (a damaged or hostile binary) gives a
    reason, not a graph built on wrong boundaries."""
    data, program, table = _read(hello)
    shuffled = replace(table, entries=(table.entries[1], table.entries[0], *table.entries[2:]))
    assert gocalls.read(data, program, shuffled) == (
        "its function table's entry addresses are not in order"
    )


def test_the_tree_survives_the_layer_cache(hello: Path) -> None:
    """The tree is part of the analyzer's per-layer result: a cached layer gives the same
    verdicts without the binary."""
    stdlib = _stdlib(hello)
    record = LayerRecord(results={"bin": {"go-binary": AnalysisResult((stdlib,))}})
    [again] = cache.decode(cache.encode(record)).results["bin"]["go-binary"].packages
    assert again == stdlib
    assert judge(again, PEM_DECODE) == judge(stdlib, PEM_DECODE)
