from __future__ import annotations

import io
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import pytest

from appliance.scanner.analyzers.gobinary import (
    BUILDINFO_MAGIC,
    GoBinaryAnalyzer,
    Module,
    parse_buildinfo,
    parse_modinfo,
    stdlib_version,
)
from appliance.scanner.analyzers.interface import AnalyzerInput, ParseError
from appliance.scanner.collect import run_analyzer
from tests.appliance.gobuild import GO_CACHE
from tests.appliance.scanner.helpers import run
from tests.conftest import require_tools

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

EXECUTABLE = 0o100755
START = bytes.fromhex("3077af0c9274080241e1c107e6d618e6")
END = bytes.fromhex("f932433186182072008242104116d8f2")
MODINFO = (
    "path\texample.com/tool/cmd/tool\n"
    "mod\texample.com/tool\tv1.2.3\th1:abc=\n"
    "dep\tgolang.org/x/text\tv0.3.7\th1:olddep=\n"
    "=>\tgolang.org/x/text\tv0.14.0\th1:newdep=\n"
    "dep\texample.com/local\tv0.0.0\n"
    "=>\t../local\t\n"
    "dep\tgithub.com/Masterminds/semver/v3\tv3.2.1+incompatible\th1:x=\n"
    "build\t-compiler=gc\n"
    "build\tGOOS=linux\n"
)
VADDR = 0x400000
DATA_OFFSET = 0x100


def _uvarint(n: int) -> bytes:
    out = b""
    while n >= 0x80:
        out += bytes([n & 0x7F | 0x80])
        n >>= 7
    return out + bytes([n])


def inline_payload(version: str = "go1.21.5", modinfo: str = MODINFO) -> bytes:
    """The Go >= 1.18 layout: header, then varint-prefixed version and module strings."""
    header = BUILDINFO_MAGIC + bytes([8, 0x2])
    header += b"\0" * (32 - len(header))
    mod = START + modinfo.encode() + END
    return header + _uvarint(len(version)) + version.encode() + _uvarint(len(mod)) + mod


def pointer_payload(is64: bool, little: bool, version: str = "go1.16.15") -> bytes:
    """The pre-1.18 layout: the header points at two Go string headers {ptr, len}."""
    size = 8 if is64 else 4
    e = ("<" if little else ">") + ("Q" if is64 else "I")
    mod = START + MODINFO.encode() + END
    version_at, mod_at = 64, 64 + len(version.encode())
    headers_at = (mod_at + len(mod) + 15) // 16 * 16
    payload = bytearray(headers_at + 4 * size)
    header = BUILDINFO_MAGIC + bytes([size, 0])
    payload[: len(header)] = header
    struct.pack_into(e, payload, 16, VADDR + headers_at)
    struct.pack_into(e, payload, 16 + size, VADDR + headers_at + 2 * size)
    payload[version_at:mod_at] = version.encode()
    payload[mod_at : mod_at + len(mod)] = mod
    string_headers = (VADDR + version_at, len(version), VADDR + mod_at, len(mod))
    struct.pack_into(e + e[1] * 3, payload, headers_at, *string_headers)
    return bytes(payload)


def make_elf(payload: bytes, *, sections: bool, is64: bool = True, little: bool = True) -> bytes:
    """A minimal ELF file: one read-write PT_LOAD segment holding ``payload`` and, if asked,
    a ``.go.buildinfo`` section over the same bytes."""
    e = "<" if little else ">"
    ehsize, phentsize, shentsize = (64, 56, 64) if is64 else (52, 32, 40)
    shstrtab = b"\0.go.buildinfo\0.shstrtab\0"
    strtab_at = DATA_OFFSET + len(payload)
    shoff = (strtab_at + len(shstrtab) + 7) // 8 * 8 if sections else 0
    shnum = 3 if sections else 0
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1 if little else 2, 1]) + b"\0" * 9
    if is64:
        header = ident + struct.pack(
            e + "HHIQQQIHHHHHH",
            2,
            62,
            1,
            0,
            ehsize,
            shoff,
            0,
            ehsize,
            phentsize,
            1,
            shentsize,
            shnum,
            2 if sections else 0,
        )
        phdr = struct.pack(
            e + "IIQQQQQQ", 1, 6, DATA_OFFSET, VADDR, VADDR, len(payload), len(payload), 0x1000
        )
    else:
        header = ident + struct.pack(
            e + "HHIIIIIHHHHHH",
            2,
            3,
            1,
            0,
            ehsize,
            shoff,
            0,
            ehsize,
            phentsize,
            1,
            shentsize,
            shnum,
            2 if sections else 0,
        )
        phdr = struct.pack(
            e + "8I", 1, DATA_OFFSET, VADDR, VADDR, len(payload), len(payload), 6, 0x1000
        )
    image = bytearray(header + phdr)
    image += b"\0" * (DATA_OFFSET - len(image))
    image += payload
    if sections:
        image += shstrtab
        image += b"\0" * (shoff - len(image))

        def shdr(name: int, kind: int, addr: int, offset: int, size: int) -> bytes:
            if is64:
                return struct.pack(e + "IIQQQQIIQQ", name, kind, 0, addr, offset, size, 0, 0, 1, 0)
            return struct.pack(e + "10I", name, kind, 0, addr, offset, size, 0, 0, 1, 0)

        image += shdr(0, 0, 0, 0, 0)
        image += shdr(1, 1, VADDR, DATA_OFFSET, len(payload))
        image += shdr(15, 3, 0, strtab_at, len(shstrtab))
    return bytes(image)


EXPECTED = [
    ("example.com/tool", "v1.2.3"),
    ("golang.org/x/text", "v0.14.0"),  # replaced by another version of a module
    ("example.com/local", "v0.0.0"),  # replaced by a directory: the name stays
    ("github.com/Masterminds/semver/v3", "v3.2.1+incompatible"),
]


@pytest.mark.parametrize("sections", [True, False], ids=["go.buildinfo-section", "data-segment"])
def test_inline_buildinfo(sections: bool) -> None:
    data = make_elf(inline_payload(), sections=sections)
    result = run(GoBinaryAnalyzer(), "usr/local/bin/tool", data, EXECUTABLE)
    assert result.unknowns == ()
    found = [(p.name, p.version) for p in result.packages]
    assert found == [*EXPECTED, ("stdlib", "v1.21.5")]
    assert all(p.locations == ("usr/local/bin/tool",) for p in result.packages)


@pytest.mark.parametrize(
    ("is64", "little"), [(True, True), (False, True), (True, False), (False, False)]
)
def test_pointer_buildinfo_before_go_1_18(is64: bool, little: bool) -> None:
    data = make_elf(pointer_payload(is64, little), sections=False, is64=is64, little=little)
    info = parse_buildinfo(data)
    assert info is not None
    assert info.go_version == "go1.16.15"
    assert info.path == "example.com/tool/cmd/tool"
    assert info.main == Module("example.com/tool", "v1.2.3", "h1:abc=")
    assert ("GOOS", "linux") in info.settings


def test_real_go_binary_docker_registry() -> None:
    require_tools("docker-registry")
    binary = Path(shutil.which("docker-registry") or "")
    info = parse_buildinfo(binary.read_bytes())
    assert info is not None
    assert re.fullmatch(r"go1\.\d+(\.\d+)?", info.go_version)
    assert info.path.endswith("/cmd/registry")
    st = binary.stat()
    inp = AnalyzerInput(
        "usr/bin/docker-registry", st.st_mode, st.st_size, lambda: binary.open("rb")
    )
    result = run_analyzer(GoBinaryAnalyzer(), inp)  # through the file: mapped, not read whole
    assert result.unknowns == ()
    stdlib = [p for p in result.packages if p.name == "stdlib"]
    assert [p.version for p in stdlib] == ["v" + info.go_version.removeprefix("go")]
    assert {p.name for p in result.packages} >= {"stdlib"}
    assert "toolchain" not in {p.name for p in result.packages}  # a program, not the go command


@pytest.mark.skipif(shutil.which("go") is None, reason="no Go toolchain installed")
def test_binary_built_by_the_go_toolchain(tmp_path: Path) -> None:
    (tmp_path / "greeting").mkdir()
    (tmp_path / "greeting/go.mod").write_text("module example.com/greeting\n\ngo 1.18\n")
    (tmp_path / "greeting/greeting.go").write_text(
        'package greeting\n\nfunc Hello() string { return "hello" }\n'
    )
    (tmp_path / "app").mkdir()
    (tmp_path / "app/go.mod").write_text(
        "module example.com/stella/app\n\ngo 1.18\n\nrequire example.com/greeting v1.4.0\n\n"
        "replace example.com/greeting v1.4.0 => ../greeting\n"
    )
    (tmp_path / "app/main.go").write_text(
        'package main\n\nimport (\n\t"fmt"\n\n\t"example.com/greeting"\n)\n\n'
        "func main() { fmt.Println(greeting.Hello()) }\n"
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GOPATH": str(tmp_path / "gopath"),
        "GOCACHE": str(GO_CACHE),
        "GOPROXY": "off",
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
    }
    subprocess.run(
        ["go", "build", "-o", str(tmp_path / "app.bin"), "."],
        cwd=tmp_path / "app",
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    go_version = subprocess.run(
        ["go", "env", "GOVERSION"], env=env, check=True, capture_output=True, text=True
    ).stdout.strip()
    data = (tmp_path / "app.bin").read_bytes()
    result = run(GoBinaryAnalyzer(), "app/app.bin", data, EXECUTABLE)
    assert result.unknowns == ()
    assert [(p.name, p.version) for p in result.packages] == [
        ("example.com/stella/app", "(devel)"),
        ("example.com/greeting", "v1.4.0"),
        ("stdlib", "v" + go_version.removeprefix("go")),
    ]


def test_not_go_programs_give_nothing() -> None:
    analyzer = GoBinaryAnalyzer()
    assert run(analyzer, "usr/bin/script", b"#!/bin/sh\necho hi\n", EXECUTABLE).is_empty()
    plain_elf = make_elf(b"\0" * 64, sections=True)
    assert run(analyzer, "usr/bin/c-program", plain_elf, EXECUTABLE).is_empty()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x7fELF\x03\x01" + b"\0" * 60, "ELF class 3 / data encoding 1 is not valid"),
        (b"\x7fELF\x02\x01" + b"\0" * 10, "not an ELF file"),
        (
            make_elf(BUILDINFO_MAGIC + bytes([8, 2]) + b"\0" * 16 + b"\xff" * 12, sections=True),
            "build info: malformed varint",
        ),
        (
            make_elf(
                BUILDINFO_MAGIC + bytes([8, 2]) + b"\0" * 16 + b"\x80\x80\x04abc", sections=True
            ),
            "build info: string of 65536 bytes runs past the end of the file",
        ),
        (
            make_elf(inline_payload(version="1.21"), sections=True),
            "build info Go version '1.21' is not a Go version",
        ),
        (
            make_elf(BUILDINFO_MAGIC + bytes([8, 0]) + b"\0" * 16 + b"\0" * 16, sections=False),
            "build info: address 0x0 is not in any loaded segment",
        ),
        (
            make_elf(BUILDINFO_MAGIC + bytes([3, 0]) + b"\0" * 32, sections=False),
            "pointer size 3 is neither 4 nor 8",
        ),
        (make_elf(inline_payload(modinfo="dep\t\n"), sections=True), "malformed dep line"),
    ],
    ids=[
        "bad-elf-class",
        "short-elf",
        "bad-varint",
        "string-past-end",
        "bad-go-version",
        "unmapped-pointer",
        "bad-pointer-size",
        "bad-dep-line",
    ],
)
def test_malformed_binaries_are_unknowns(data: bytes, message: str) -> None:
    result = run(GoBinaryAnalyzer(), "usr/bin/broken", data, EXECUTABLE)
    assert result.packages == ()
    assert [u.path for u in result.unknowns] == ["usr/bin/broken"]
    assert message in result.unknowns[0].reason


def test_modinfo_replacement_without_module_is_an_error() -> None:
    with pytest.raises(ParseError, match="replacement without a module"):
        parse_modinfo("path\tx\n=>\ty\tv1\n")


@pytest.mark.parametrize(
    ("mode", "wanted"),
    [(0o100755, True), (0o100700, True), (0o100644, False), (0o120777, False), (0o040755, False)],
)
def test_required_only_regular_executables(mode: int, wanted: bool) -> None:
    assert GoBinaryAnalyzer().required("usr/bin/x", mode) is wanted


class _Stream(io.RawIOBase):
    """A forward-only stream, like a member of a tar layer."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        return self._data.readinto(buffer)


def test_forward_only_streams_are_read_whole() -> None:
    data = make_elf(inline_payload(), sections=True)
    # a raw stream is what a tar member gives; BinaryIO is the nearest type the opener names
    inp = AnalyzerInput(
        "usr/bin/tool", EXECUTABLE, len(data), lambda: cast(BinaryIO, _Stream(data))
    )
    result = run_analyzer(GoBinaryAnalyzer(), inp)
    assert result.unknowns == ()
    assert len(result.packages) == len(EXPECTED) + 1


@pytest.mark.parametrize(
    ("go_version", "expected"),
    [
        ("go1.19.8", "v1.19.8"),
        ("go1.19", "v1.19.0"),  # the first release of a line had no patch number before 1.21
        ("go1", "v1.0.0"),
        ("go1.21.0", "v1.21.0"),
        ("go1.21rc2", "v1.21.0-rc.2"),  # Go vulndb writes 1.21.0-rc.4
        ("go1.19beta1", "v1.19.0-beta.1"),
        ("go1.22.0 X:boringcrypto", "v1.22.0"),  # GOEXPERIMENT, as the linker writes it
        ("go1.21.5 X:loopvar,boringcrypto", "v1.21.5"),
        ("go1.22.0-X:boringcrypto", "v1.22.0"),
        ("go1.16.15b7", "v1.16.15"),  # the BoringCrypto branch: go1.16.15 plus BoringSSL
        ("devel go1.23-2ea8d2b Tue Jan 2 15:04:05 2024 +0000", None),
        ("go1.23-devel_2ea8d2b", None),
        ("go1.019", None),
        ("gotip", None),
        ("", None),
    ],
)
def test_stdlib_version_as_go_vulndb_writes_it(go_version: str, expected: str | None) -> None:
    assert stdlib_version(go_version) == expected


def test_a_devel_toolchain_is_an_unknown_naming_the_binary() -> None:
    version = "devel go1.23-2ea8d2b Tue Jan 2 15:04:05 2024 +0000"
    data = make_elf(inline_payload(version=version), sections=True)
    result = run(GoBinaryAnalyzer(), "usr/local/bin/tool", data, EXECUTABLE)
    assert [(p.name, p.version) for p in result.packages] == EXPECTED  # modules still matched
    (unknown,) = result.unknowns
    assert unknown.path == "usr/local/bin/tool"
    assert unknown.analyzer == "go-binary"
    assert unknown.reason == (
        f"built by Go {version!r}, which names no Go release: the standard library it "
        "embeds cannot be matched against Go vulndb"
    )


# What the go command of Debian's golang-1.19-go 1.19.8-2 records (`go version -m`): the
# build path cmd/go, no main module, no dependencies.
GO_COMMAND = "path\tcmd/go\nbuild\t-compiler=gc\nbuild\tCGO_ENABLED=1\nbuild\tGOOS=linux\n"


@pytest.mark.parametrize(
    ("modinfo", "names"),
    [
        (GO_COMMAND, ["stdlib", "toolchain"]),
        (GO_COMMAND.replace("cmd/go", "cmd/gofmt"), ["stdlib"]),  # a tool, not the go command
        (GO_COMMAND.replace("cmd/go", "example.com/cmd/go"), ["stdlib"]),
    ],
    ids=["go-command", "gofmt", "a-program-named-go"],
)
def test_the_go_command_is_the_toolchain(modinfo: str, names: list[str]) -> None:
    data = make_elf(inline_payload(version="go1.19.8", modinfo=modinfo), sections=True)
    result = run(GoBinaryAnalyzer(), "usr/lib/go-1.19/bin/go", data, EXECUTABLE)
    assert result.unknowns == ()
    assert [(p.name, p.version) for p in result.packages] == [(n, "v1.19.8") for n in names]
