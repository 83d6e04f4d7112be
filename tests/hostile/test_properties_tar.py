"""Properties of the parsers that see untrusted bytes first: whatever the input, the tar reader,
the bundle archive reader, the bounded JSON loader and the line cap raise only the project's
own errors (never IndexError, ValueError, MemoryError, RecursionError...), and within their caps
they agree with the reference behaviour."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bundles import canonical
from bundles.archive import ArchiveReader, MemberSpec
from bundles.bounded import capped_lines, json_depth
from bundles.bundle import STATEMENT_MEMBER
from bundles.digest import Digest
from bundles.errors import StellaError
from bundles.limits import Cap, LimitError, Unit
from bundles.tarstream import TarError, read_tar
from tests.hostile.bundlekit import BLOCK, base256, header, octal, pax

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LINE = Cap("test.property_line_bytes", 16, Unit.BYTES, "a line")

size_fields = st.one_of(
    st.integers(min_value=0, max_value=1 << 33).map(
        lambda n: octal(n) if n < 8**11 else base256(n)
    ),
    st.integers(min_value=-(1 << 80), max_value=1 << 80).map(base256),
    st.binary(min_size=12, max_size=12),
)
typeflags = st.sampled_from(
    [b"0", b"\0", b"1", b"2", b"3", b"5", b"6", b"7", b"x", b"g", b"L", b"K", b"S", b"Z"]
)
pax_records = st.dictionaries(
    st.sampled_from(["path", "linkpath", "size", "comment", "mtime"]),
    st.text(max_size=30),
    max_size=3,
)


@st.composite
def tar_entries(draw: st.DrawFn) -> bytes:
    """Headers with right checksums but any size fields, typeflags, PAX records and data."""
    out = b""
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        if draw(st.booleans()):
            records = pax(draw(pax_records))
            if draw(st.booleans()):
                records = draw(st.binary(max_size=64))
            out += header(b"././@PaxHeader", len(records), typeflag=b"x") + records
            out += b"\0" * (-len(records) % BLOCK)
        name = draw(st.binary(min_size=1, max_size=100))
        out += header(name, 0, typeflag=draw(typeflags), size_field=draw(size_fields))
        out += draw(st.binary(max_size=2 * BLOCK))
    if draw(st.booleans()):
        out += b"\0" * (2 * BLOCK)
    return out


def _walk(data: bytes) -> None:
    for _member, opener in read_tar(io.BytesIO(data), spool_limit=BLOCK):
        with opener() as fh:
            while fh.read(100):
                pass


@FAST
@given(tar_entries())
def test_read_tar_raises_only_tar_errors(data: bytes) -> None:
    with contextlib.suppress(TarError):
        _walk(data)


@FAST
@given(st.binary(max_size=3 * BLOCK))
def test_read_tar_on_noise(data: bytes) -> None:
    with contextlib.suppress(TarError):
        _walk(data)


@FAST
@given(tar_entries(), st.booleans())
def test_archive_reader_raises_only_project_errors(data: bytes, compress: bool) -> None:
    raw = zstandard.ZstdCompressor(level=1).compress(data) if compress else data
    reader = ArchiveReader(io.BytesIO(raw), source="p.stella.tar.zst")
    expected = {"a": MemberSpec("a", Digest.of_bytes(b""), 0)}
    try:
        reader.read_first(STATEMENT_MEMBER)
        for member in reader.members(expected):
            for _ in member.chunks():
                pass
    except StellaError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@FAST
@given(json_values)
def test_json_depth_is_the_nesting(value: Any) -> None:
    text = json.dumps(value)
    assert json_depth(text.encode()) == _depth(value)
    assert canonical.loads(text) == value


@FAST
@given(st.integers(min_value=0, max_value=5000), st.sampled_from(["[", '{"a":', '[{"b":']))
def test_deep_documents_are_refused_not_recursed(depth: int, opener: str) -> None:
    text = opener * depth
    refused = None
    try:
        canonical.loads(text)
    except LimitError as e:
        refused = e.cap.name
    except StellaError:
        refused = "malformed"
    levels = depth * (opener.count("[") + opener.count("{"))
    assert refused == ("json.depth" if levels > 128 else "malformed")


@FAST
@given(st.binary(max_size=300))
def test_json_loader_on_noise(data: bytes) -> None:
    with contextlib.suppress(StellaError):
        canonical.loads(data)


@FAST
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=8),
    st.integers(1, 9),
)
def test_capped_lines_refuse_exactly_the_long_lines(lines: list[bytes], step: int) -> None:
    data = b"".join(line + b"\n" for line in lines)
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    too_long = any(len(line) > 16 for line in lines)
    try:
        passed = b"".join(capped_lines(chunks, LINE, "d"))
    except LimitError:
        assert too_long
    else:
        assert not too_long
        assert passed == data
