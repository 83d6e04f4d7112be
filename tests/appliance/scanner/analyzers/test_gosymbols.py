"""The functions a Go executable links, read from its line table: a program built here with
the machine's Go toolchain (compared with ``go tool nm``) and Debian's stripped
``docker-registry`` (no symbol table at all: only the line table names its functions)."""

from __future__ import annotations

import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from appliance.scanner.analyzers.gobinary import GoBinaryAnalyzer
from appliance.scanner.analyzers.gosymbols import (
    FUNCTIONS_CAP,
    SymbolSet,
    encode,
    function_names,
    partition,
    split_name,
    symbols,
)
from appliance.scanner.analyzers.interface import AnalyzerInput, ParseError
from appliance.scanner.collect import run_analyzer
from appliance.scanner.model import Package
from bundles.limits import LimitError
from tests.appliance.gobuild import build_hello, go_nm
from tests.conftest import require_tools

EXECUTABLE = 0o100755
REGISTRY = Path("/usr/bin/docker-registry")


@pytest.fixture(scope="session")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_hello(tmp_path_factory.mktemp("go"))


def _analyze(path: Path) -> tuple[Package, ...]:
    size = path.stat().st_size
    inp = AnalyzerInput(str(path).lstrip("/"), EXECUTABLE, size, lambda: path.open("rb"))
    return run_analyzer(GoBinaryAnalyzer(), inp).packages


def test_names_match_go_tool_nm(hello: Path) -> None:
    names = function_names(hello.read_bytes())
    assert names is not None
    # nm marks assembly (ABI0) functions with a suffix the line table does not carry
    # and lists the linker's text-segment markers, which are not functions
    listed = {n.removesuffix(".abi0") for n in go_nm(hello)} - {"runtime.text", "runtime.etext"}
    assert symbols(names) == symbols(listed)
    assert "html/template.(*Template).Execute" in names
    assert not [n for n in names if n.startswith("net/http.")]


def test_stripped_binary_keeps_its_line_table(hello: Path, tmp_path: Path) -> None:
    require_tools("strip")
    stripped = tmp_path / "stripped"
    shutil.copyfile(hello, stripped)
    subprocess.run(["strip", str(stripped)], check=True)
    assert go_nm_fails(stripped)
    assert function_names(stripped.read_bytes()) == function_names(hello.read_bytes())


def go_nm_fails(binary: Path) -> bool:
    try:
        return not go_nm(binary)
    except subprocess.CalledProcessError:
        return True


def test_found_by_magic_without_section_headers(hello: Path) -> None:
    data = bytearray(hello.read_bytes())
    # drop the section header table: e_shoff, e_shnum, e_shstrndx = 0
    struct.pack_into("<Q", data, 0x28, 0)
    struct.pack_into("<HH", data, 0x3C, 0, 0)
    assert function_names(bytes(data)) == function_names(hello.read_bytes())


def test_go120_magic_reads_the_same_layout(hello: Path) -> None:
    data = bytearray(hello.read_bytes())
    at = data.find(struct.pack("<I", 0xFFFFFFF0) + b"\0\0")
    assert at > 0
    struct.pack_into("<I", data, at, 0xFFFFFFF1)
    struct.pack_into("<Q", data, 0x28, 0)  # force the search by magic
    struct.pack_into("<HH", data, 0x3C, 0, 0)
    assert function_names(bytes(data)) == function_names(hello.read_bytes())


def test_truncated_table_is_a_parse_error(hello: Path) -> None:
    data = hello.read_bytes()
    at = data.find(struct.pack("<I", 0xFFFFFFF0) + b"\0\0")
    with pytest.raises(ParseError, match="Go line table"):
        function_names(data[: at + 200])


def test_function_count_is_capped(hello: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FUNCTIONS_CAP.env, "100")
    with pytest.raises(Exception, match="scan.go_functions|STELLA_LIMIT_SCAN_GO_FUNCTIONS"):
        function_names(hello.read_bytes())


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("net/http.(*Client).Do", ("net/http", "Client.Do")),
        ("net/http.Get", ("net/http", "Get")),
        ("net/http.(*conn).serve.func1", ("net/http", "conn.serve")),
        ("html/template.appendCmd", ("html/template", "appendCmd")),
        ("golang.org/x/net/html.Parse", ("golang.org/x/net/html", "Parse")),
        ("sort.Slice[...]", ("sort", "Slice")),
        ("example.com/m.Map[go.shape.int].Get", ("example.com/m", "Map.Get")),
        ("type:.eq.[2]interface {}", None),
        ("go:buildid", None),
    ],
)
def test_split_name(name: str, split: tuple[str, str] | None) -> None:
    assert split_name(name) == split


def test_symbol_set_encoding_is_deterministic() -> None:
    one = encode(["net/http.Client.Do", "sort.Slice"])
    assert one == encode(["sort.Slice", "net/http.Client.Do", "sort.Slice"])
    linked = SymbolSet(one)
    assert "net/http.Client.Do" in linked
    assert "net/http" in linked
    assert "sort" in linked
    assert "net/http.Get" not in linked
    with pytest.raises(ValueError, match="gosym1"):
        SymbolSet("abc")


def test_partition_by_module() -> None:
    parts = partition(
        ["net/http.Get", "example.com/a/sub.F", "example.com/a/v2.G", "main.main", "x.org/n.H"],
        ["example.com/a", "example.com/a/v2"],
    )
    assert parts == {
        "": ["net/http.Get"],
        "example.com/a": ["example.com/a/sub.F"],
        "example.com/a/v2": ["example.com/a/v2.G"],
    }


def test_analyzer_records_linked_functions(hello: Path) -> None:
    packages = {p.name: p for p in _analyze(hello)}
    assert set(packages) == {"example.com/hello", "stdlib"}
    linked = SymbolSet(packages["stdlib"].symbols)
    assert "html/template.Template.Execute" in linked
    assert "net/http.Client.Do" not in linked
    assert "net/http" not in linked
    assert len(SymbolSet(packages["example.com/hello"].symbols)) == 0  # main is main
    assert packages["stdlib"] == Package.from_dict(packages["stdlib"].to_dict())


def test_analyzer_reads_debian_docker_registry() -> None:
    require_tools("docker-registry")
    packages = {p.name: p for p in _analyze(REGISTRY)}
    assert go_nm_fails(REGISTRY)  # Debian strips the symbol table
    stdlib = SymbolSet(packages["stdlib"].symbols)
    assert "net/http.Client.Do" in stdlib
    assert "net/http.Server.Serve" in stdlib
    assert "html/template.Template.Execute" not in stdlib  # the registry renders no HTML
    assert set(packages) == {"stdlib"}  # built in GOPATH mode: no module information


def test_unreadable_table_is_an_unknown(hello: Path, tmp_path: Path) -> None:
    data = bytearray(hello.read_bytes())
    at = data.find(struct.pack("<I", 0xFFFFFFF0) + b"\0\0")
    struct.pack_into("<Q", data, at + 8, 1 << 40)  # nfunc past any file
    broken = tmp_path / "broken"
    broken.write_bytes(bytes(data))
    inp = AnalyzerInput("broken", EXECUTABLE, len(data), lambda: broken.open("rb"))
    result = run_analyzer(GoBinaryAnalyzer(), inp)
    assert {p.name for p in result.packages} == {"example.com/hello", "stdlib"}
    assert all(p.symbols == "" for p in result.packages)
    assert [u.analyzer for u in result.unknowns] == ["go-binary"]
    assert "function table cannot be read" in result.unknowns[0].reason


def _segments(data: bytes) -> list[tuple[int, int, int]]:
    from appliance.scanner.analyzers.gobinary import _parse_elf

    return [(s.vaddr, s.offset, s.filesz) for s in _parse_elf(data).segments]


def test_inlined_functions_come_from_the_inline_trees(hello: Path) -> None:
    """A function inlined at every call site has no table entry and no symbol (``go tool nm``
    does not list it); the inline trees of its callers name it."""
    data = hello.read_bytes()
    table = function_names(data)
    names = function_names(data, segments=_segments(data))
    assert table is not None
    assert names is not None
    assert names[: len(table)] == table
    inlined = set(names[len(table) :])
    listed = set(go_nm(hello))
    assert "bytes.(*Buffer).empty" in inlined
    assert "bytes.(*Buffer).empty" not in listed
    assert not inlined & set(table)
    linked = SymbolSet(next(p for p in _analyze(hello) if p.name == "stdlib").symbols)
    assert "bytes.Buffer.empty" in linked


def test_inline_trees_of_a_stripped_binary() -> None:
    require_tools("docker-registry")
    data = REGISTRY.read_bytes()
    table = function_names(data)
    names = function_names(data, segments=_segments(data))
    assert table is not None
    assert names is not None
    assert len(names) > len(table) + 1000  # the module data is found without symbols


def test_inline_trees_need_the_module_data(hello: Path) -> None:
    """Without the loaded segments (or with module data that is not found) only the function
    table is read: never fewer names."""
    data = hello.read_bytes()
    assert function_names(data, segments=[]) == function_names(data)


def test_corrupt_tables_fail_cleanly(hello: Path) -> None:
    """Bytes flipped across the line table and the module data: a name list or a ParseError
    (or a cap), never another exception."""
    data = hello.read_bytes()
    segments = _segments(data)
    base = data.find(struct.pack("<I", 0xFFFFFFF0) + b"\0\0")
    rng = random.Random(25)
    outcomes = set()
    for _ in range(25):
        broken = bytearray(data)
        for _ in range(8):
            at = base + rng.randrange(0, 1 << 16)
            broken[at] = rng.randrange(256)
        try:
            function_names(bytes(broken), segments=segments)
            outcomes.add("read")
        except (ParseError, LimitError):
            outcomes.add("refused")
    assert outcomes  # every run ended in one of the two


def test_function_cap_in_a_scan_is_an_unknown(hello: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FUNCTIONS_CAP.env, "100")
    size = hello.stat().st_size
    inp = AnalyzerInput("usr/bin/hello", EXECUTABLE, size, lambda: hello.open("rb"))
    result = run_analyzer(GoBinaryAnalyzer(), inp)
    assert {p.name for p in result.packages} == {"example.com/hello", "stdlib"}
    assert all(p.symbols == "" for p in result.packages)
    [unknown] = result.unknowns
    assert "scan.go_functions" in unknown.reason or FUNCTIONS_CAP.env in unknown.reason
    assert "which vulnerable functions it links stays unknown" in unknown.reason
