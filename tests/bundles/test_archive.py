"""The bundle archive: deterministic bytes, and a reader that refuses every unsafe member."""

from __future__ import annotations

import io
import os
import random
import tarfile

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from bundles.archive import (
    ArchiveError,
    ArchiveReader,
    MemberRefusedError,
    MemberSource,
    MemberSpec,
    check_member_name,
    write_archive,
)
from bundles.digest import Digest
from bundles.errors import DigestError
from bundles.limits import LimitError

FIRST = "statement.dsse.json"


def build(members: dict[str, bytes], *, threads: int = 1) -> tuple[bytes, dict[str, MemberSpec]]:
    first = MemberSource.from_bytes(FIRST, b'{"signed":true}')
    sources = [MemberSource.from_bytes(n, d) for n, d in members.items()]
    out = io.BytesIO()
    write_archive(out, first, sources, threads=threads)
    return out.getvalue(), {s.spec.name: s.spec for s in sources}


def read_all(data: bytes, expected: dict[str, MemberSpec]) -> dict[str, bytes]:
    reader = ArchiveReader(io.BytesIO(data), source="b.stella.tar.zst")
    assert reader.read_first(FIRST) == b'{"signed":true}'
    return {m.name: m.read_all() for m in reader.members(expected)}


def raw_archive(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A zstd tar stream with arbitrary (hostile) headers, bypassing the safe writer."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return zstandard.ZstdCompressor().compress(tar_bytes.getvalue())


def reg(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


MEMBERS = {
    "datasets/osv-pypi.jsonl": b'{"id":"PYSEC-1"}\n' * 1000,
    "images/blobs/sha256/" + "a" * 64: os.urandom(70_000),
    "manifest.json": b'{"datasets":[]}',
}


def test_round_trip() -> None:
    data, expected = build(MEMBERS)
    assert read_all(data, expected) == MEMBERS


def test_same_members_same_bytes_whatever_order_or_threads() -> None:
    a, _ = build(MEMBERS, threads=1)
    b, _ = build(dict(reversed(list(MEMBERS.items()))), threads=2)
    assert a == b
    assert Digest.of_bytes(a) == Digest.of_bytes(b)


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z]{1,8}(/[a-z0-9]{1,8}){0,2}", fullmatch=True),
        st.binary(max_size=2000),
        min_size=1,
        max_size=6,
    ).filter(lambda d: all(not any(o != k and o.startswith(k + "/") for o in d) for k in d)),
    st.randoms(),
)
def test_determinism_property(members: dict[str, bytes], rnd: random.Random) -> None:
    items = list(members.items())
    rnd.shuffle(items)
    assert build(members)[0] == build(dict(items), threads=3)[0]
    data, expected = build(members)
    assert read_all(data, expected) == members


def test_member_headers_are_fixed() -> None:
    data, _ = build(MEMBERS)
    raw = io.BytesIO(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    with tarfile.open(fileobj=raw) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == [FIRST, *sorted(MEMBERS)]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {
        (0, 0, 0, "", "", 0o644)
    }


def test_a_source_that_changes_during_export_aborts() -> None:
    spec = MemberSpec("a", Digest.of_bytes(b"before"), 6)
    with pytest.raises(ArchiveError, match="changed while it was being exported"):
        write_archive(
            io.BytesIO(),
            MemberSource.from_bytes(FIRST, b"{}"),
            [MemberSource(spec, data=b"after!")],
        )


def test_tampered_member_is_refused_by_digest() -> None:
    _, expected = build(MEMBERS)
    forged = dict(MEMBERS, **{"manifest.json": b'{"datasets":[1]}'})
    forged["manifest.json"] = forged["manifest.json"][: len(MEMBERS["manifest.json"])]
    data, _ = build(forged)
    with pytest.raises(DigestError, match="manifest.json: digest .* does not match the signed"):
        read_all(data, expected)


def test_truncated_stream_is_refused() -> None:
    data, expected = build(MEMBERS)
    with pytest.raises(ArchiveError, match="truncated"):
        read_all(data[: len(data) // 2], expected)


def test_missing_member_is_named() -> None:
    data, expected = build({k: v for k, v in MEMBERS.items() if k != "manifest.json"})
    expected["manifest.json"] = MemberSpec("manifest.json", Digest.of_bytes(b"x"), 1)
    with pytest.raises(ArchiveError, match=r"ends before 1 declared member\(s\): manifest.json"):
        read_all(data, expected)


def test_unlisted_member_is_refused() -> None:
    data, expected = build(MEMBERS)
    del expected["manifest.json"]
    with pytest.raises(MemberRefusedError, match="'manifest.json' is not listed in the signed"):
        read_all(data, expected)


def test_first_member_must_be_the_statement() -> None:
    data = raw_archive([reg("manifest.json", b"{}"), reg(FIRST, b"{}")])
    reader = ArchiveReader(io.BytesIO(data), source="b")
    with pytest.raises(ArchiveError, match="first member is 'manifest.json', expected"):
        reader.read_first(FIRST)


def test_oversized_statement_is_refused_before_reading() -> None:
    data = raw_archive([reg(FIRST, b"x" * 100)])
    with pytest.raises(LimitError, match="over the bundle.statement_bytes cap of 10 bytes"):
        ArchiveReader(io.BytesIO(data)).read_first(FIRST, limit=10)


def _hostile(
    info: tarfile.TarInfo, payload: bytes | None = None
) -> tuple[bytes, dict[str, MemberSpec]]:
    payload = payload if payload is not None else b""
    data = raw_archive([reg(FIRST, b'{"signed":true}'), (info, payload if info.isreg() else None)])
    spec = MemberSpec(info.name, Digest.of_bytes(payload), len(payload))
    return data, {info.name: spec}


def _info(
    name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.linkname = link
    return info


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (_info("../escape"), "has a '..', '.' or empty path component"),
        (_info("a/../../escape"), "has a '..', '.' or empty path component"),
        (_info("/etc/passwd"), "has an absolute path"),
        (_info("link", tarfile.SYMTYPE, link="/etc/passwd"), "'link' is a link"),
        (_info("hard", tarfile.LNKTYPE, link=FIRST), "'hard' is a link"),
        (_info("dev", tarfile.CHRTYPE), "'dev' is a device or fifo"),
        (_info("fifo", tarfile.FIFOTYPE), "'fifo' is a device or fifo"),
        (_info("dir", tarfile.DIRTYPE), "'dir' is not a regular file"),
    ],
)
def test_unsafe_members_are_refused(info: tarfile.TarInfo, message: str) -> None:
    data, expected = _hostile(info)
    with pytest.raises(MemberRefusedError, match=message):
        read_all(data, expected)


def test_duplicate_members_are_refused() -> None:
    data = raw_archive([reg(FIRST, b'{"signed":true}'), reg("a", b"1"), reg("a", b"1")])
    expected = {"a": MemberSpec("a", Digest.of_bytes(b"1"), 1)}
    with pytest.raises(MemberRefusedError, match="'a' appears twice"):
        read_all(data, expected)


def test_member_expanding_past_its_declared_size_is_refused_before_reading() -> None:
    bomb = b"\0" * (1 << 20)
    data = raw_archive([reg(FIRST, b'{"signed":true}'), reg("datasets/x", bomb)])
    expected = {"datasets/x": MemberSpec("datasets/x", Digest.of_bytes(b"small"), 5)}
    with pytest.raises(ArchiveError, match="header says 1048576 bytes, the statement declares 5"):
        read_all(data, expected)


def test_data_after_the_archive_end_is_refused() -> None:
    data, expected = build(MEMBERS)
    smuggled = data + zstandard.ZstdCompressor().compress(b"extra payload")
    with pytest.raises(ArchiveError, match="data after the end of the archive"):
        read_all(smuggled, expected)


@pytest.mark.parametrize(
    "blob", [b"", b"not zstd at all", zstandard.ZstdCompressor().compress(b"x" * 700)]
)
def test_garbage_is_refused(blob: bytes) -> None:
    with pytest.raises(ArchiveError):
        ArchiveReader(io.BytesIO(blob), source="junk").read_first(FIRST)


def test_members_cannot_be_read_before_the_statement() -> None:
    data, expected = build(MEMBERS)
    with pytest.raises(ArchiveError, match="read and verify the first member"):
        next(ArchiveReader(io.BytesIO(data)).members(expected))


@pytest.mark.parametrize("name", ["a/./b", "a//b", "a\\b", "", "x\x00y"])
def test_member_name_check(name: str) -> None:
    with pytest.raises(MemberRefusedError):
        check_member_name(name)
