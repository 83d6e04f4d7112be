from __future__ import annotations

import sqlite3
import struct
import zlib
from pathlib import Path

import pytest

from appliance.scanner.analyzers.interface import ParseError
from appliance.scanner.analyzers.rpm import RpmAnalyzer, parse_blobs, split_source_rpm
from appliance.scanner.analyzers.rpmdb import sqlite_blobs
from appliance.scanner.analyzers.rpmheader import HEADER_MAGIC, EntryType, Tag, parse_header
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import by_name, fixture_bytes, run

SQLITE = "var/lib/rpm/rpmdb.sqlite"


def make_header(entries: list[tuple[int, EntryType, object]]) -> bytes:
    """Build a header blob the way rpm lays one out (big-endian index + data store)."""
    index, store = b"", b""
    for tag, kind, value in entries:
        if kind in (EntryType.INT32,):
            while len(store) % 4:
                store += b"\0"
            values = value if isinstance(value, list) else [value]
            data, count = struct.pack(f">{len(values)}I", *values), len(values)
        elif kind is EntryType.STRING:
            assert isinstance(value, str)
            data, count = value.encode() + b"\0", 1
        else:
            assert isinstance(value, list)
            data, count = b"".join(v.encode() + b"\0" for v in value), len(value)
        index += struct.pack(">IIII", tag, kind, len(store), count)
        store += data
    return struct.pack(">II", len(entries), len(store)) + index + store


def test_real_rpmdb_sqlite() -> None:
    result = run(RpmAnalyzer(), SQLITE, fixture_bytes("rpm-sqlite", SQLITE))
    assert result.unknowns == ()
    packages = by_name(result)
    assert sorted(packages) == ["stella-base", "stella-hello"]
    hello = packages["stella-hello"]
    assert hello.type is PackageType.RPM
    assert (hello.version, hello.release, hello.epoch, hello.arch) == (
        "1.2.3",
        "4.el9",
        2,
        "x86_64",
    )
    assert hello.full_version == "2:1.2.3-4.el9"
    assert (hello.source_name, hello.source_version) == ("stella-hello", "1.2.3-4.el9")
    assert hello.licenses == ("MIT AND Apache-2.0",)
    assert hello.installed_files == (
        "usr/bin/stella-hello",
        "usr/share/stella-hello",
        "usr/share/stella-hello/README",
    )
    assert hello.dependencies == ("stella-base",)  # Requires: stella-base, resolved
    base = packages["stella-base"]
    assert (base.version, base.release, base.epoch, base.arch) == ("0.9", "1", None, "noarch")
    assert base.locations == (SQLITE,)


def test_rhel9_rpmdb_epochs_source_rpms_and_module_streams() -> None:
    result = run(RpmAnalyzer(), SQLITE, fixture_bytes("rhel9", SQLITE))
    assert result.unknowns == ()
    packages = by_name(result)
    assert len(packages) == 16
    libs = packages["openssl-libs"]
    assert (libs.epoch, libs.version, libs.release) == (1, "3.0.1", "43.el9_0")
    assert libs.full_version == "1:3.0.1-43.el9_0"
    # the source rpm's file name carries no epoch
    assert (libs.source_name, libs.source_version) == ("openssl", "3.0.1-43.el9_0")
    assert packages["curl-minimal"].source_name == "curl"
    assert packages["python3-libs"].source_name == "python3.9"
    nodejs = packages["nodejs"]
    assert nodejs.qualifiers == (("modularitylabel", "nodejs:18:9020020230301063216:rhel9"),)
    assert packages["mysql-common"].qualifiers == (
        ("modularitylabel", "mysql:8.4:9050020240618084521:rhel9"),
    )
    assert sorted(p.name for p in packages.values() if p.qualifiers) == [
        "mysql",
        "mysql-common",
        "nodejs",
    ]


def test_sqlite_reader_leaves_input_alone() -> None:
    data = fixture_bytes("rpm-sqlite", SQLITE)
    assert data[18:20] == b"\x02\x02"  # rpm leaves the database in WAL mode
    blobs, problems = sqlite_blobs(data)
    assert (len(blobs), problems) == (2, [])
    assert data[18:20] == b"\x02\x02"


def test_hand_built_header_with_old_file_list_and_gpg_key(tmp_path: Path) -> None:
    blob = make_header(
        [
            (Tag.NAME, EntryType.STRING, "legacy"),
            (Tag.VERSION, EntryType.STRING, "1.0"),
            (Tag.RELEASE, EntryType.STRING, "7"),
            (Tag.EPOCH, EntryType.INT32, 3),
            (Tag.OLDFILENAMES, EntryType.STRING_ARRAY, ["/etc/legacy.conf", "/usr/bin/legacy"]),
            (Tag.SOURCERPM, EntryType.STRING, "legacy-src-1.0-7.src.rpm"),
            (Tag.MODULARITYLABEL, EntryType.STRING, "legacy:1:2:abc"),
        ]
    )
    key = make_header(
        [(Tag.NAME, EntryType.STRING, "gpg-pubkey"), (Tag.VERSION, EntryType.STRING, "fd431d51")]
    )
    packages, problems = parse_blobs([HEADER_MAGIC + blob, key])
    assert problems == []
    assert len(packages) == 1  # imported signing keys are not packages
    legacy = packages[0]
    assert legacy.installed_files == ("etc/legacy.conf", "usr/bin/legacy")
    assert (legacy.epoch, legacy.source_name, legacy.source_version) == (3, "legacy-src", "1.0-7")
    assert legacy.qualifiers == (("modularitylabel", "legacy:1:2:abc"),)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\0\0\0", "shorter than its 8-byte preamble"),
        (struct.pack(">II", 0, 0), "claims 0 entries"),
        (struct.pack(">II", 2, 10) + b"\0" * 16, "needs 50 bytes"),
        (
            struct.pack(">II", 1, 4) + struct.pack(">IIII", 1000, 6, 0, 1) + b"abcd",
            "tag 1000: string at data offset 0 is not NUL-terminated",
        ),
        (
            struct.pack(">II", 1, 4) + struct.pack(">IIII", 1000, 42, 0, 1) + b"abc\0",
            "tag 1000: unknown entry type 42",
        ),
        (
            struct.pack(">II", 1, 4) + struct.pack(">IIII", 1116, 4, 0, 2) + b"\0\0\0\1",
            "tag 1116: 2 integers at offset 0 run past the data",
        ),
        (
            struct.pack(">II", 1, 4) + struct.pack(">IIII", 1000, 6, 9, 1) + b"abc\0",
            "tag 1000: offset 9/count 1 outside 4 data bytes",
        ),
    ],
)
def test_malformed_headers(blob: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_header(blob)


def test_inconsistent_file_list() -> None:
    blob = make_header(
        [
            (Tag.NAME, EntryType.STRING, "x"),
            (Tag.VERSION, EntryType.STRING, "1"),
            (Tag.BASENAMES, EntryType.STRING_ARRAY, ["a", "b"]),
            (Tag.DIRNAMES, EntryType.STRING_ARRAY, ["/usr/"]),
            (Tag.DIRINDEXES, EntryType.INT32, [0]),
        ]
    )
    packages, problems = parse_blobs([blob, make_header([(Tag.NAME, EntryType.STRING, "y")])])
    assert packages == []
    assert problems == [
        "header #1: header file list is inconsistent: 2 basenames, 1 dir indexes, 1 dirnames",
        "header #2: rpm header has no NAME or VERSION",
    ]


def test_one_bad_header_does_not_hide_the_others(tmp_path: Path) -> None:
    good = make_header([(Tag.NAME, EntryType.STRING, "ok"), (Tag.VERSION, EntryType.STRING, "1")])
    db = tmp_path / "rpmdb.sqlite"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE Packages (hnum INTEGER PRIMARY KEY, blob BLOB NOT NULL)")
        connection.executemany(
            "INSERT INTO Packages VALUES (?, ?)", [(1, b"\0\0\0\1garbage"), (2, good)]
        )
    connection.close()
    result = run(RpmAnalyzer(), SQLITE, db.read_bytes())
    assert [p.name for p in result.packages] == ["ok"]
    assert [u.reason for u in result.unknowns] == [
        "header #1: rpm header claims 1 entries and 1734439522 data bytes; out of range"
    ]


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        (SQLITE, b"not sqlite", "rpmdb.sqlite does not start with the SQLite header"),
        (
            SQLITE,
            b"SQLite format 3\0" + b"\0" * 200,
            "rpmdb.sqlite cannot be read as the rpm database",
        ),
        ("var/lib/rpm/Packages", b"\0" * 64, "Berkeley DB file is 64 bytes, too short"),
        ("var/lib/rpm/Packages", b"\0" * 4096, "not a Berkeley DB hash database"),
        ("usr/lib/sysimage/rpm/Packages.db", b"\0" * 64, "not an rpm ndb database"),
        ("usr/lib/sysimage/rpm/Packages.db", b"\0" * 65, "not a whole number of 16-byte"),
    ],
)
def test_unreadable_databases_are_unknowns(path: str, data: bytes, message: str) -> None:
    result = run(RpmAnalyzer(), path, data)
    assert result.packages == ()
    assert [u.path for u in result.unknowns] == [path]
    assert message in result.unknowns[0].reason


def test_split_source_rpm() -> None:
    assert split_source_rpm("glibc-2.34-60.el9.src.rpm") == ("glibc", "2.34", "60.el9")
    assert split_source_rpm("a-b-c-1-2.nosrc.rpm") == ("a-b-c", "1", "2")
    with pytest.raises(ParseError, match="does not end in .src.rpm"):
        split_source_rpm("glibc-2.34-60.el9.x86_64.rpm")
    with pytest.raises(ParseError, match="is not name-version-release"):
        split_source_rpm("glibc-2.34.src.rpm")


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("var/lib/rpm/rpmdb.sqlite", True),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite", True),
        ("var/lib/rpm/Packages", True),
        ("usr/lib/sysimage/rpm/Packages.db", True),
        ("var/lib/rpm/rpmdb.sqlite-wal", False),
        ("home/user/var/lib/rpm/Packages", False),
    ],
)
def test_required(path: str, wanted: bool) -> None:
    assert RpmAnalyzer().required(path, 0o100644) is wanted


def _expected() -> list[tuple[str, str, str | None, tuple[str, ...]]]:
    result = run(RpmAnalyzer(), SQLITE, fixture_bytes("rpm-sqlite", SQLITE))
    return sorted((p.name, p.full_version, p.arch, p.installed_files) for p in result.packages)


@pytest.mark.parametrize("case", ["rpm-bdb", "rpm-bdb-be"])
def test_berkeley_db_packages(case: str) -> None:
    """Little-endian 4 KiB pages (headers on overflow pages) and big-endian 8 KiB pages (one
    header stored on the hash page itself)."""
    path = "var/lib/rpm/Packages"
    result = run(RpmAnalyzer(), path, fixture_bytes(case, path))
    assert result.unknowns == ()
    assert sorted((p.name, p.full_version, p.arch, p.installed_files) for p in result.packages) == (
        _expected()
    )
    assert all(p.locations == (path,) for p in result.packages)


def test_berkeley_db_damaged_overflow_chain_loses_one_package() -> None:
    path = "var/lib/rpm/Packages"
    data = bytearray(fixture_bytes("rpm-bdb", path))
    page_size = 4096
    assert data[3 * page_size + 25] == 7  # page 3 is an overflow page holding one header
    struct.pack_into("<H", data, 3 * page_size + 22, 100)  # claims fewer bytes than it holds
    result = run(RpmAnalyzer(), path, bytes(data))
    assert len(result.packages) == 1
    assert [u.reason for u in result.unknowns] == [
        "Berkeley DB overflow item from page 3 has 100 bytes, expected 1288"
    ]


def make_ndb(blobs: list[bytes]) -> bytes:
    """An ndb Packages.db laid out as rpm's rpmpkg.c writes one: header, one slot page, then
    each blob (head, bytes, zero padding, tail with Adler-32) in 16-byte blocks."""
    slot_page = bytearray(4096)
    struct.pack_into("<5I", slot_page, 0, *struct.unpack("<I", b"RpmP"), 0, 7, 1, len(blobs) + 1)
    for at in range(32, 4096, 16):
        slot_page[at : at + 4] = b"Slot"
    area = bytearray()
    for index, blob in enumerate(blobs, 1):
        block = (4096 + len(area)) // 16
        count = -(-(16 + len(blob) + 12) // 16)
        head = b"BlbS" + struct.pack("<3I", index, 7, len(blob))
        body = head + blob + b"\0" * (count * 16 - 16 - len(blob) - 12)
        area += body + struct.pack("<2I", zlib.adler32(body), len(blob)) + b"BlbE"
        struct.pack_into("<3I", slot_page, 32 + 16 * (index - 1) + 4, index, block, count)
    return bytes(slot_page + area)


NDB = "usr/lib/sysimage/rpm/Packages.db"


def test_ndb_packages() -> None:
    blobs, _ = sqlite_blobs(fixture_bytes("rpm-sqlite", SQLITE))
    result = run(RpmAnalyzer(), NDB, make_ndb(blobs))
    assert result.unknowns == ()
    assert sorted((p.name, p.full_version, p.arch, p.installed_files) for p in result.packages) == (
        _expected()
    )


def test_ndb_damaged_blob_loses_one_package() -> None:
    blobs, _ = sqlite_blobs(fixture_bytes("rpm-sqlite", SQLITE))
    data = bytearray(make_ndb(blobs))
    data[4096 + 16 + 100] ^= 0xFF  # inside the first header
    result = run(RpmAnalyzer(), NDB, bytes(data))
    assert [p.name for p in result.packages] == ["stella-hello"]
    assert [u.reason for u in result.unknowns] == [
        "ndb blob of package 1 at block 256: Adler-32 checksum mismatch (the blob is damaged)"
    ]


def test_ndb_bad_slot() -> None:
    data = bytearray(make_ndb([]))
    struct.pack_into("<3I", data, 36, 1, 9999, 2)  # a slot pointing past the end of the file
    result = run(RpmAnalyzer(), NDB, bytes(data))
    assert [u.reason for u in result.unknowns] == [
        "no package could be read: ndb slot at byte 32 (package 1) points outside the blobs"
    ]
