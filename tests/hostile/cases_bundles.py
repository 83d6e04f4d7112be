# ruff: noqa: E501  (the expected refusals are one line each, as the user sees them)
"""Hostile bundles, one builder each: what an attacker who can drop a file into the inbox (or
who holds the mirror's key) could hand ``stella import`` and ``stella-mirror verify``.

Each builder writes its bundle under ``dir`` and returns the paths to give the command."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import zstandard

from bundles import dsse
from bundles.archive import MemberSpec
from bundles.bundle import IMAGES_INDEX, STATEMENT_MEMBER
from bundles.digest import Digest
from bundles.intoto import PAYLOAD_TYPE
from bundles.keys import PrivateKey
from tests.hostile.bundlekit import (
    BLOCK,
    Entry,
    Kit,
    base256,
    ext,
    good_dataset,
    header,
    octal,
    pax,
    repeat,
    spec_of,
    tar_stream,
    write_zst,
)
from tests.hostile.bundleplay import Build, Case

NAME = "case.stella.tar.zst"
GiB = 1 << 30
MiB = 1 << 20


def _statement_entry(kit: Kit, **changes: object) -> Entry:
    members, snapshot = kit.knowledge(good_dataset())
    envelope = kit.statement([spec_of(str(m.name), m.chunks()) for m in members], snapshot=snapshot)
    entry = Entry(STATEMENT_MEMBER, envelope)
    for key, value in changes.items():
        setattr(entry, key, value)
    return entry


def _good_members(kit: Kit) -> tuple[list[Entry], Digest]:
    return kit.knowledge(good_dataset())


def before_statement(*blocks: bytes) -> Build:
    """The good bundle with raw blocks (extended headers, members) before its statement."""

    def build(kit: Kit, d: Path) -> list[Path]:
        members, snapshot = _good_members(kit)
        first = _statement_entry(kit, before=list(blocks))
        return [kit.bundle(d / NAME, members, snapshot=snapshot, statement=first)]

    return build


def statement_as(**changes: object) -> Build:
    """The good bundle with its statement's header (or data) changed."""

    def build(kit: Kit, d: Path) -> list[Path]:
        members, snapshot = _good_members(kit)
        return [
            kit.bundle(
                d / NAME, members, snapshot=snapshot, statement=_statement_entry(kit, **changes)
            )
        ]

    return build


def first_member(entry: Entry) -> Build:
    """A bundle whose first member is ``entry``; the real statement and members follow."""

    def build(kit: Kit, d: Path) -> list[Path]:
        members, snapshot = _good_members(kit)
        return [kit.bundle(d / NAME, members, snapshot=snapshot, before=[entry])]

    return build


def members_then(*extra: Entry, signed_extra: Sequence[MemberSpec] = ()) -> Build:
    """The good bundle with ``extra`` entries after its members; ``signed_extra`` adds
    statement subjects."""

    def build(kit: Kit, d: Path) -> list[Path]:
        members, snapshot = _good_members(kit)
        signed = [spec_of(str(m.name), m.chunks()) for m in members] + list(signed_extra)
        return [kit.bundle(d / NAME, [*members, *extra], snapshot=snapshot, signed=signed)]

    return build


def signed_members(members_of: Callable[[Kit], tuple[list[Entry], Digest | None]]) -> Build:
    def build(kit: Kit, d: Path) -> list[Path]:
        members, snapshot = members_of(kit)
        return [kit.bundle(d / NAME, members, snapshot=snapshot)]

    return build


def raw_zst(chunks: Callable[[Kit], list[bytes]]) -> Build:
    def build(kit: Kit, d: Path) -> list[Path]:
        return [write_zst(d / NAME, chunks(kit))]

    return build


def _truncated(kit: Kit, d: Path, name: str | bytes = NAME) -> list[Path]:
    whole = kit.good(d / "whole.stella.tar.zst").read_bytes()
    target = d / os.fsdecode(name)
    target.write_bytes(whole[: len(whole) // 2])
    return [target]


def _garbage(kit: Kit, d: Path) -> list[Path]:
    path = d / NAME
    path.write_bytes(b"this is not a bundle\n" * 100)
    return [path]


def _wide_window(kit: Kit, d: Path) -> list[Path]:
    params = zstandard.ZstdCompressionParameters(window_log=30, compression_level=1)
    data = b"".join(tar_stream([_statement_entry(kit)]))
    path = d / NAME
    with open(path, "wb") as out:
        writer = zstandard.ZstdCompressor(compression_params=params).stream_writer(
            out, closefd=False
        )
        writer.write(data)
        writer.flush(zstandard.FLUSH_FRAME)
    return [path]


def _untrusted(kit: Kit, d: Path) -> list[Path]:
    other = Kit(kit.root, PrivateKey.generate(), kit.trust_root, kit.now)
    return [other.good(d / NAME)]


def _envelope(kit: Kit, payload: bytes) -> bytes:
    return dsse.sign(payload, PAYLOAD_TYPE, kit.signer).to_json()


def _signed_payload(payload: bytes) -> Build:
    def build(kit: Kit, d: Path) -> list[Path]:
        members, snapshot = _good_members(kit)
        first = Entry(STATEMENT_MEMBER, _envelope(kit, payload))
        return [kit.bundle(d / NAME, members, snapshot=snapshot, statement=first)]

    return build


def _deep_manifest(kit: Kit) -> tuple[list[Entry], Digest | None]:
    deep = b'{"schema":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    return [Entry("knowledge.json", deep)], Digest.of_bytes(deep)


def _deep_index(kit: Kit) -> tuple[list[Entry], Digest | None]:
    deep = b'{"manifests":' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    return [Entry(IMAGES_INDEX, deep)], None


def _deep_line(kit: Kit) -> tuple[list[Entry], Digest | None]:
    line = b'{"id":"CVE-1","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"
    return kit.knowledge(line)


def _gib_line(kit: Kit) -> tuple[list[Entry], Digest | None]:
    return kit.knowledge(repeat(b"x", GiB, then=b"\n"))


def _no_newline(kit: Kit) -> tuple[list[Entry], Digest | None]:
    return kit.knowledge(good_dataset()[:-1], records=2)


def _zero_bomb_member(kit: Kit) -> tuple[list[Entry], Digest | None]:
    members, snapshot = kit.knowledge(good_dataset())
    return members, snapshot


def _sparse_headers(count: int) -> bytes:
    """An old GNU sparse header saying more follow, and ``count`` extensions that all say so."""
    head = bytearray(header(b"sparse", 0, typeflag=b"S"))
    head[482] = 1
    head[148:156] = b" " * 8
    head[148:156] = f"{sum(head):06o}\0 ".encode()
    extension = bytearray(BLOCK)
    extension[504] = 1
    return bytes(head) + bytes(extension) * count


def _truncated_member(kit: Kit, d: Path) -> list[Path]:
    """A bundle carrying a 2 MiB image blob, cut inside that blob."""
    blob = random.Random(7).randbytes(2 * MiB)  # incompressible, and the same each run
    name = "images/blobs/sha256/" + Digest.of_bytes(blob).hex
    path = kit.bundle(d / NAME, [Entry(name, blob)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    return [path]


BLOB = "images/blobs/sha256/" + Digest.of_bytes(b"abc").hex
HUGE_PAX = pax({"size": "9" * 19})

_BUILDS: list[tuple[str, Build]] = [
    # --- class 1: memory before authentication: headers that claim sizes ---------------------
    (
        "pax-header-1TiB-octal",
        before_statement(header(b"././@PaxHeader", 1 << 40, typeflag=b"x")),
    ),
    (
        "pax-header-base256-2^80",
        before_statement(header(b"././@PaxHeader", 0, typeflag=b"x", size_field=base256(1 << 80))),
    ),
    (
        "pax-header-negative-base256",
        before_statement(header(b"././@PaxHeader", 0, typeflag=b"x", size_field=base256(-1))),
    ),
    (
        "gnu-longname-2GiB",
        before_statement(header(b"././@LongLink", 2 * GiB, typeflag=b"L")),
    ),
    (
        "gnu-longlink-1GiB",
        before_statement(header(b"././@LongLink", GiB, typeflag=b"K")),
    ),
    (
        "pax-global-16MiB",
        before_statement(header(b"././@PaxHeader", 16 * MiB, typeflag=b"g")),
    ),
    (
        "pax-headers-add-up-past-the-cap",
        before_statement(
            ext(b"x", pax({"comment": "c" * (700 << 10)})),
            ext(b"x", pax({"comment": "d" * (700 << 10)})),
        ),
    ),
    ("pax-size-huge-on-statement", before_statement(ext(b"x", HUGE_PAX))),
    ("pax-size-negative", before_statement(ext(b"x", pax({"size": "-5"})))),
    ("pax-size-not-a-number", before_statement(ext(b"x", pax({"size": "1e9"})))),
    (
        "pax-record-runs-past-its-header",
        before_statement(ext(b"x", b"900 path=statement.dsse.json\n")),
    ),
    ("pax-record-length-zero", before_statement(ext(b"x", b"0 path=x\n"))),
    (
        "statement-negative-base256-then-zeros",
        statement_as(size_field=base256(-(1 << 40)), data=repeat(b"\0", 64 * MiB)),
    ),
    ("statement-base256-2^64", statement_as(size_field=base256(1 << 64))),
    ("statement-octal-64GiB", statement_as(size_field=b"777777777777")),
    ("statement-declares-17MiB", statement_as(size=17 * MiB)),
    (
        "statement-really-20MiB",
        statement_as(data=repeat(b" ", 20 * MiB)),
    ),
    ("statement-bad-octal", statement_as(size_field=b"12345678901x")),
    (
        "600MB-record-before-statement",
        first_member(Entry("records.jsonl", repeat(b"\0", 600 << 20))),
    ),
    (
        "1TiB-member-declared-before-statement",
        first_member(Entry("records.jsonl", b"", size=1 << 40)),
    ),
    ("directory-before-statement", first_member(Entry("data", typeflag=b"5"))),
    (
        "statement-is-a-symlink",
        statement_as(typeflag=b"2", linkname=b"/etc/passwd", data=b""),
    ),
    ("statement-is-a-fifo", statement_as(typeflag=b"6", data=b"")),
    ("sparse-member-first", first_member(Entry("sparse", b"x" * 10, typeflag=b"S"))),
    ("empty-archive", raw_zst(lambda kit: [b"\0" * 1024])),
    ("not-a-bundle", _garbage),
    ("truncated-half", _truncated),
    (
        "truncated-non-utf8-name",
        lambda kit, d: _truncated(kit, d, b"caf\xe9-\xff.stella.tar.zst"),
    ),
    ("zstd-window-1GiB", _wide_window),
    ("truncated-inside-a-member", _truncated_member),
    ("endless-sparse-headers", before_statement(_sparse_headers(8192))),
    (
        "zstd-bomb-after-the-end",
        lambda kit, d: [_bomb_tail(kit, d)],
    ),
    (
        "data-after-the-end",
        lambda kit, d: [_tail(kit, d, b"\0" * 1024 + b"smuggled" + b"\0" * 504)],
    ),
    # --- members the statement does not cover -----------------------------------------------
    ("unlisted-member", members_then(Entry("extra.bin", b"x" * 100))),
    (
        "unlisted-member-declares-1TiB",
        members_then(Entry("extra.bin", b"", size=1 << 40)),
    ),
    (
        "member-header-disagrees-with-statement",
        members_then(
            Entry("blob.bin", b"", size=1 << 40),
            signed_extra=[MemberSpec("blob.bin", Digest.of_bytes(b"abc"), 3)],
        ),
    ),
    (
        "duplicate-member",
        members_then(
            Entry("knowledge.json", b"{}"),
        ),
    ),
    (
        "declared-member-missing",
        members_then(signed_extra=[MemberSpec("zz.bin", Digest.of_bytes(b"abc"), 3)]),
    ),
    (
        "member-digest-mismatch",
        members_then(
            Entry(BLOB, b"abd"),
            signed_extra=[MemberSpec(BLOB, Digest.of_bytes(b"abc"), 3)],
        ),
    ),
    (
        "traversal-member",
        members_then(
            Entry("../evil", b"abc"),
            signed_extra=[MemberSpec("../evil", Digest.of_bytes(b"abc"), 3)],
        ),
    ),
    (
        "pax-path-traversal",
        members_then(
            Entry("zz.bin", b"abc", before=[ext(b"x", pax({"path": "../../etc/passwd"}))]),
            signed_extra=[MemberSpec("zz.bin", Digest.of_bytes(b"abc"), 3)],
        ),
    ),
    (
        "non-utf8-member-name",
        members_then(Entry(b"caf\xe9.bin", b"abc")),
    ),
    (
        "hard-link-member",
        members_then(Entry("zz.bin", b"", typeflag=b"1", linkname=b"knowledge.json")),
    ),
    (
        "device-member",
        members_then(Entry("zz.bin", b"", typeflag=b"3")),
    ),
    # --- statements and documents --------------------------------------------------------------
    (
        "statement-200k-deep-json",
        statement_as(data=b"[" * 200_000 + b"]" * 200_000),
    ),
    (
        "signed-payload-200k-deep",
        _signed_payload(b'{"_type":' + b"[" * 200_000 + b"]" * 200_000 + b"}"),
    ),
    ("statement-not-json", statement_as(data=b"\xff\xfe not json")),
    ("statement-untrusted-signer", _untrusted),
    ("manifest-100k-deep", signed_members(_deep_manifest)),
    ("images-index-200k-deep", signed_members(_deep_index)),
    ("dataset-line-100k-deep", signed_members(_deep_line)),
    ("dataset-1GiB-line", signed_members(_gib_line)),
    ("dataset-without-final-newline", signed_members(_no_newline)),
]


def _tail(kit: Kit, d: Path, tail: bytes) -> Path:
    members, snapshot = _good_members(kit)
    return kit.bundle(d / NAME, members, snapshot=snapshot, tail=tail)


def _bomb_tail(kit: Kit, d: Path) -> Path:
    """A valid bundle whose end marker is followed by a small frame of 1 GiB of zeros."""
    members, snapshot = _good_members(kit)
    path = kit.bundle(d / NAME, members, snapshot=snapshot)
    with open(path, "ab") as out:
        writer = zstandard.ZstdCompressor(level=1).stream_writer(out, closefd=False)
        for chunk in repeat(b"\0", GiB)():
            writer.write(chunk)
        writer.flush(zstandard.FLUSH_FRAME)
    return path


__all__ = ["CASES", "NAME", "Case", "octal"]


EXPECTED: dict[str, tuple[str, str | None]] = {
    "pax-header-1TiB-octal": (
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1024 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1024 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md))",
    ),
    "pax-header-base256-2^80": (
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1125899906842624 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1125899906842624 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md))",
    ),
    "pax-header-negative-base256": (
        "case.stella.tar.zst: not a well-formed tar stream: a tar header declares a negative size (-1) (reason in {reason})",
        "case.stella.tar.zst: not a well-formed tar stream: a tar header declares a negative size (-1)",
    ),
    "gnu-longname-2GiB": (
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 2 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 2 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md))",
    ),
    "gnu-longlink-1GiB": (
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1 GiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md))",
    ),
    "pax-global-16MiB": (
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 16 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 16 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md))",
    ),
    "pax-headers-add-up-past-the-cap": (
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1,433,632 bytes) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1,433,632 bytes) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md))",
    ),
    "pax-size-huge-on-statement": (
        "case.stella.tar.zst: statement.dsse.json is 9,999,999,999,999,999,999 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: statement.dsse.json is 9,999,999,999,999,999,999 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md))",
    ),
    "pax-size-negative": (
        "case.stella.tar.zst: not a well-formed tar stream: bad PAX size '-5' (reason in {reason})",
        "case.stella.tar.zst: not a well-formed tar stream: bad PAX size '-5'",
    ),
    "pax-size-not-a-number": (
        "case.stella.tar.zst: not a well-formed tar stream: bad PAX size '1e9' (reason in {reason})",
        "case.stella.tar.zst: not a well-formed tar stream: bad PAX size '1e9'",
    ),
    "pax-record-runs-past-its-header": (
        "case.stella.tar.zst: not a well-formed tar stream: bad PAX record length (reason in {reason})",
        "case.stella.tar.zst: not a well-formed tar stream: bad PAX record length",
    ),
    "pax-record-length-zero": (
        "case.stella.tar.zst: not a well-formed tar stream: bad PAX record length (reason in {reason})",
        "case.stella.tar.zst: not a well-formed tar stream: bad PAX record length",
    ),
    "statement-negative-base256-then-zeros": (
        "case.stella.tar.zst: not a well-formed tar stream: a tar header declares a negative size (-1099511627776) (reason in {reason})",
        "case.stella.tar.zst: not a well-formed tar stream: a tar header declares a negative size (-1099511627776)",
    ),
    "statement-base256-2^64": (
        "case.stella.tar.zst: statement.dsse.json is 18,446,744,073,709,551,616 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: statement.dsse.json is 18,446,744,073,709,551,616 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md))",
    ),
    "statement-octal-64GiB": (
        "case.stella.tar.zst: statement.dsse.json is 68,719,476,735 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: statement.dsse.json is 68,719,476,735 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md))",
    ),
    "statement-declares-17MiB": (
        "case.stella.tar.zst: statement.dsse.json is 17,825,792 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: statement.dsse.json is 17,825,792 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md))",
    ),
    "statement-really-20MiB": (
        "case.stella.tar.zst: statement.dsse.json is 20,971,520 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: statement.dsse.json is 20,971,520 bytes, over the bundle.statement_bytes cap of 16 MiB (a bundle statement is far smaller; if this bundle is trusted, raise the cap with STELLA_LIMIT_BUNDLE_STATEMENT_BYTES=N (docs/limits.md))",
    ),
    "statement-bad-octal": (
        "case.stella.tar.zst: not a well-formed tar stream: bad number b'12345678901x' in a tar header (reason in {reason})",
        "case.stella.tar.zst: not a well-formed tar stream: bad number b'12345678901x' in a tar header",
    ),
    "600MB-record-before-statement": (
        "case.stella.tar.zst: first member is 'records.jsonl', expected 'statement.dsse.json' (this is not a Stella Ops bundle, or it was repacked; reason in {reason})",
        "case.stella.tar.zst: first member is 'records.jsonl', expected 'statement.dsse.json' (this is not a Stella Ops bundle, or it was repacked)",
    ),
    "1TiB-member-declared-before-statement": (
        "case.stella.tar.zst: first member is 'records.jsonl', expected 'statement.dsse.json' (this is not a Stella Ops bundle, or it was repacked; reason in {reason})",
        "case.stella.tar.zst: first member is 'records.jsonl', expected 'statement.dsse.json' (this is not a Stella Ops bundle, or it was repacked)",
    ),
    "directory-before-statement": (
        "case.stella.tar.zst: member 'data' is not a regular file (reason in {reason})",
        "case.stella.tar.zst: member 'data' is not a regular file",
    ),
    "statement-is-a-symlink": (
        "case.stella.tar.zst: member 'statement.dsse.json' is a link (reason in {reason})",
        "case.stella.tar.zst: member 'statement.dsse.json' is a link",
    ),
    "statement-is-a-fifo": (
        "case.stella.tar.zst: member 'statement.dsse.json' is a device or fifo (reason in {reason})",
        "case.stella.tar.zst: member 'statement.dsse.json' is a device or fifo",
    ),
    "sparse-member-first": (
        "case.stella.tar.zst: member 'sparse' is not a regular file (reason in {reason})",
        "case.stella.tar.zst: member 'sparse' is not a regular file",
    ),
    "empty-archive": (
        "case.stella.tar.zst: the archive is empty, or truncated before its first member (copy the bundle again; reason in {reason})",
        "case.stella.tar.zst: the archive is empty, or truncated before its first member (copy the bundle again)",
    ),
    "not-a-bundle": (
        "case.stella.tar.zst: not a zstd-compressed tar stream, or truncated or corrupt: zstd decompress error: Unknown frame descriptor (reason in {reason})",
        "case.stella.tar.zst: not a zstd-compressed tar stream, or truncated or corrupt: zstd decompress error: Unknown frame descriptor",
    ),
    "truncated-half": (
        "case.stella.tar.zst: the archive is empty, or truncated before its first member (copy the bundle again; reason in {reason})",
        "case.stella.tar.zst: the archive is empty, or truncated before its first member (copy the bundle again)",
    ),
    "truncated-non-utf8-name": (
        "caf\\xe9-\\xff.stella.tar.zst: the archive is empty, or truncated before its first member (copy the bundle again; reason in {reason})",
        "caf\\xe9-\\xff.stella.tar.zst: the archive is empty, or truncated before its first member (copy the bundle again)",
    ),
    "zstd-window-1GiB": (
        "case.stella.tar.zst: a zstd frame: the zstd window a bundle's frames ask the decoder to hold is over the bundle.zstd_window_bytes cap of 128 MiB (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_ZSTD_WINDOW_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: a zstd frame: the zstd window a bundle's frames ask the decoder to hold is over the bundle.zstd_window_bytes cap of 128 MiB (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_ZSTD_WINDOW_BYTES=N (docs/limits.md))",
    ),
    "truncated-inside-a-member": (
        "member images/blobs/sha256/26649717d226f4ae5b0fcd2a1265a0ae7a242270e03991c50a7139c32f217324: stream is truncated or corrupt: unexpected end of data inside a file (1397435 of 2097152 bytes) (reason in {reason})",
        "member images/blobs/sha256/26649717d226f4ae5b0fcd2a1265a0ae7a242270e03991c50a7139c32f217324: stream is truncated or corrupt: unexpected end of data inside a file (1397435 of 2097152 bytes)",
    ),
    "endless-sparse-headers": (
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1,049,088 bytes) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: a tar header: the size of the extended (PAX, GNU long-name and sparse) headers of one tar member is over the tar.extended_header_bytes cap of 1 MiB (found 1,049,088 bytes) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_TAR_EXTENDED_HEADER_BYTES=N (docs/limits.md))",
    ),
    "zstd-bomb-after-the-end": (
        "case.stella.tar.zst: the zero padding after a bundle's end-of-archive marker is over the bundle.trailing_bytes cap of 1 MiB (found 2 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_TRAILING_BYTES=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: the zero padding after a bundle's end-of-archive marker is over the bundle.trailing_bytes cap of 1 MiB (found 2 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_TRAILING_BYTES=N (docs/limits.md))",
    ),
    "data-after-the-end": (
        "case.stella.tar.zst: data after the end of the archive (reason in {reason})",
        "case.stella.tar.zst: data after the end of the archive",
    ),
    "unlisted-member": (
        "case.stella.tar.zst: member 'extra.bin' is not listed in the signed statement (reason in {reason})",
        "case.stella.tar.zst: member 'extra.bin' is not listed in the signed statement",
    ),
    "unlisted-member-declares-1TiB": (
        "case.stella.tar.zst: member 'extra.bin' is not listed in the signed statement (reason in {reason})",
        "case.stella.tar.zst: member 'extra.bin' is not listed in the signed statement",
    ),
    "member-header-disagrees-with-statement": (
        "case.stella.tar.zst: member 'blob.bin' header says 1099511627776 bytes, the statement declares 3 (reason in {reason})",
        "case.stella.tar.zst: member 'blob.bin' header says 1099511627776 bytes, the statement declares 3",
    ),
    "duplicate-member": (
        "case.stella.tar.zst: member 'knowledge.json' appears twice (reason in {reason})",
        "case.stella.tar.zst: member 'knowledge.json' appears twice",
    ),
    "declared-member-missing": (
        "case.stella.tar.zst: bundle ends before 1 declared member(s): zz.bin (the bundle is truncated; copy it again; reason in {reason})",
        "case.stella.tar.zst: bundle ends before 1 declared member(s): zz.bin (the bundle is truncated; copy it again)",
    ),
    "member-digest-mismatch": (
        "member images/blobs/sha256/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad: digest sha256:a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9 does not match the signed sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad (the bundle was modified after it was signed; do not use it; reason in {reason})",
        "member images/blobs/sha256/ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad: digest sha256:a52d159f262b2c6ddb724a61840befc36eb30c88877a4030b65cbe86298449c9 does not match the signed sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad (the bundle was modified after it was signed; do not use it)",
    ),
    "traversal-member": (
        "member '../evil' has a '..', '.' or empty path component (reason in {reason})",
        "member '../evil' has a '..', '.' or empty path component",
    ),
    "pax-path-traversal": (
        "member '../../etc/passwd' has a '..', '.' or empty path component (reason in {reason})",
        "member '../../etc/passwd' has a '..', '.' or empty path component",
    ),
    "non-utf8-member-name": (
        "member name 'caf\\udce9.bin' is not UTF-8 (reason in {reason})",
        "member name 'caf\\udce9.bin' is not UTF-8",
    ),
    "hard-link-member": (
        "case.stella.tar.zst: member 'zz.bin' is a link (reason in {reason})",
        "case.stella.tar.zst: member 'zz.bin' is a link",
    ),
    "device-member": (
        "case.stella.tar.zst: member 'zz.bin' is a device or fifo (reason in {reason})",
        "case.stella.tar.zst: member 'zz.bin' is a device or fifo",
    ),
    "statement-200k-deep-json": (
        "case.stella.tar.zst: statement.dsse.json: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 200,000) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: statement.dsse.json: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 200,000) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))",
    ),
    "signed-payload-200k-deep": (
        "case.stella.tar.zst: statement: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 200,001) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md); reason in {reason})",
        "case.stella.tar.zst: statement: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 200,001) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))",
    ),
    "statement-not-json": (
        "case.stella.tar.zst: statement.dsse.json: not valid JSON: 'utf-16-le' codec can't decode byte 0x6e in position 10: truncated data (expected a DSSE JSON envelope; reason in {reason})",
        "case.stella.tar.zst: statement.dsse.json: not valid JSON: 'utf-16-le' codec can't decode byte 0x6e in position 10: truncated data (expected a DSSE JSON envelope)",
    ),
    "statement-untrusted-signer": (
        "case.stella.tar.zst: envelope is signed only by keys that are not trusted: …",
        "case.stella.tar.zst: envelope is signed only by keys that are not trusted: …",
    ),
    "manifest-100k-deep": (
        "knowledge.json: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 100,001) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md); reason in {reason})",
        None,
    ),
    "images-index-200k-deep": (
        "images/index.json: the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 (found 200,001) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md); reason in {reason})",
        None,
    ),
    "dataset-line-100k-deep": (
        "dataset kev: a line is not JSON: depth limit exceeded: line 1 column 1043 (char 1042) (reason in {reason})",
        None,
    ),
    "dataset-1GiB-line": (
        "member knowledge/datasets/f9a108326e4009e4f98ea9c561f953e3feb59de2a5d9bf8b1e8eb5012e790075.jsonl: one record line of a dataset or patch member of a bundle is over the bundle.dataset_line_bytes cap of 16 MiB (found 17 MiB) (if this input is trusted and that large, raise the cap with STELLA_LIMIT_BUNDLE_DATASET_LINE_BYTES=N (docs/limits.md); reason in {reason})",
        None,
    ),
    "dataset-without-final-newline": (
        "dataset does not end with a newline (truncated?) (reason in {reason})",
        None,
    ),
}

CASES: list[Case] = [Case(i, build, *EXPECTED[i]) for i, build in _BUILDS]
