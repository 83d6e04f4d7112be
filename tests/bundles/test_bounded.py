"""The bounded readers every untrusted read goes through: sections, caps, JSON depth, lines."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from bundles import canonical
from bundles.bounded import (
    JSON_BYTES,
    JSON_DEPTH,
    Section,
    TruncatedError,
    capped_lines,
    check_json,
    json_depth,
    read_capped,
    read_exact,
)
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, DigestError
from bundles.limits import Cap, LimitError, Unit

LINE = Cap("test.line_bytes", 10, Unit.BYTES, "a line")
TOTAL = Cap("test.total_bytes", 100, Unit.BYTES, "the output")


def test_section_reads_exactly_its_bytes_and_leaves_the_rest() -> None:
    source = io.BytesIO(b"0123456789abc")
    section = Section(source, 10, expected=Digest.of_bytes(b"0123456789"))
    assert section.buffered(4).read() == b"0123456789"
    assert source.read() == b"abc"
    assert section.digest() == Digest.of_bytes(b"0123456789")


def test_section_refuses_a_short_source_and_a_wrong_digest() -> None:
    with pytest.raises(TruncatedError, match="after 3 of its 10 bytes"):
        Section(io.BytesIO(b"abc"), 10).buffered().read()
    with pytest.raises(DigestError, match="expected sha256:"):
        Section(io.BytesIO(b"abc"), 3, expected=Digest.of_bytes(b"abd")).buffered().read()
    custom = Section(
        io.BytesIO(b"ab"), 5, short=lambda got, size: ValueError(f"{got}/{size}")
    ).buffered()
    with pytest.raises(ValueError, match="2/5"):
        custom.read()


def test_section_to_eof_refuses_a_longer_source() -> None:
    with pytest.raises(TruncatedError, match="more than its 3 bytes"):
        Section(io.BytesIO(b"abcd"), 3, to_eof=True).buffered().read()
    assert Section(io.BytesIO(b"abc"), 3, to_eof=True).buffered().read() == b"abc"


def test_section_skip_verifies() -> None:
    section = Section(io.BytesIO(b"x" * 3_000_000), 3_000_000, expected=Digest.of_bytes(b"y"))
    with pytest.raises(DigestError):
        section.skip()


def test_read_exact_and_read_capped() -> None:
    assert read_exact(io.BytesIO(b"x" * (3 << 20)), 3 << 20) == b"x" * (3 << 20)
    with pytest.raises(TruncatedError):
        read_exact(io.BytesIO(b"x" * 10), 3 << 20)
    assert read_capped(io.BytesIO(b"y" * 100), TOTAL, "f") == b"y" * 100
    with pytest.raises(LimitError) as e:
        read_capped(io.BytesIO(b"y" * 101), TOTAL, "f")
    assert e.value.cap is TOTAL


def test_read_capped_never_holds_more_than_the_cap() -> None:
    class Endless(io.RawIOBase):
        asked = 0

        def read(self, n: int = -1) -> bytes:
            self.asked = max(self.asked, n)
            return b"\0" * n

    endless = Endless()
    with pytest.raises(LimitError):
        read_capped(endless, TOTAL, "f")
    assert endless.asked <= 101


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"1", 0),
        (b"[]", 1),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'["[[[[[[", "]]]"]', 1),
        (b'["\\"[[[["]', 1),
        (b"[[],[[]],[]]", 3),
    ],
)
def test_json_depth(text: bytes, depth: int) -> None:
    assert json_depth(text) == depth


def test_deep_json_is_refused_before_parsing() -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(LimitError) as e:
        canonical.loads(deep, source="x.json")
    assert e.value.cap is JSON_DEPTH
    assert e.value.diagnostics() == (
        "x.json: the nesting of arrays and objects in a JSON document is over the json.depth "
        "cap of 128 (found 200,000) (if this input is trusted and that large, raise the cap "
        "with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))"
    )
    unclosed = b'{"a":' * 5000
    with pytest.raises(LimitError):
        canonical.loads(unclosed, source="x.json")
    ok = b"[" * 128 + b"]" * 128
    assert check_json(ok, source="x") == ok
    assert json.loads(ok) == canonical.loads(ok)


def test_json_depth_cap_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = b"[" * 200 + b"]" * 200
    with pytest.raises(LimitError):
        canonical.loads(doc)
    monkeypatch.setenv(JSON_DEPTH.env, "300")
    assert canonical.loads(doc) is not None


def test_json_size_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JSON_BYTES.env, "16")
    with pytest.raises(LimitError, match="json.document_bytes cap of 16 bytes"):
        canonical.loads(b'{"a": "0123456789"}', source="y.json")
    with pytest.raises(CanonicalJSONError):
        canonical.loads(b"[", source="y.json")


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("size", [1, 3, 7, 64])
def test_capped_lines_pass_short_lines(size: int) -> None:
    data = b"0123456789\nabc\n\n0123456789\n"
    assert b"".join(capped_lines(_chunks(data, size), LINE, "d")) == data


@pytest.mark.parametrize("size", [1, 3, 7, 64])
@pytest.mark.parametrize(
    "data", [b"0123456789A\n", b"ab\n0123456789A\nc\n", b"ab\ncd\n0123456789AB"]
)
def test_capped_lines_refuse_a_long_line_wherever_it_falls(size: int, data: bytes) -> None:
    with pytest.raises(LimitError) as e:
        b"".join(capped_lines(_chunks(data, size), LINE, "d"))
    assert e.value.cap is LINE


def test_capped_lines_stop_an_endless_line_at_the_cap() -> None:
    passed: list[bytes] = []

    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 4

    with pytest.raises(LimitError):
        passed.extend(capped_lines(endless(), LINE, "d"))
    assert passed == [b"x" * 4, b"x" * 4]
