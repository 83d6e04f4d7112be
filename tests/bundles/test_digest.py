"""The Digest value type and streaming hashing."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from bundles.digest import Digest, DigestReader, Hasher
from bundles.errors import DigestError, SizeLimitError

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parse_and_format() -> None:
    d = Digest.parse(f"sha256:{EMPTY}")
    assert str(d) == f"sha256:{EMPTY}"
    assert d.encoded == EMPTY
    assert d.short() == EMPTY[:12]
    assert d == Digest.of_bytes(b"")
    assert len({d, Digest.parse(f"sha256:{EMPTY}")}) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (EMPTY, "malformed digest"),
        (f"sha512:{EMPTY}", "unsupported digest algorithm 'sha512'"),
        (f"sha256:{EMPTY.upper()}", "malformed sha256 digest value"),
        (f"sha256:{EMPTY[:-1]}", "malformed sha256 digest value"),
        (f"sha256:{EMPTY}0", "malformed sha256 digest value"),
        ("", "malformed digest ''"),
    ],
)
def test_parse_refuses_malformed_digests(text: str, message: str) -> None:
    with pytest.raises(DigestError, match=message):
        Digest.parse(text)


def test_stream_and_file_hashing(tmp_path: Path) -> None:
    data = b"x" * (3 << 20) + b"tail"
    path = tmp_path / "blob"
    path.write_bytes(data)
    expected = Digest(hashlib.sha256(data).hexdigest())
    assert Digest.of_stream(io.BytesIO(data)) == (expected, len(data))
    assert Digest.of_file(path) == (expected, len(data))


def test_stream_hashing_enforces_its_limit() -> None:
    with pytest.raises(SizeLimitError, match="size limit of 10 bytes"):
        Digest.of_stream(io.BytesIO(b"0123456789A"), limit=10)
    assert Digest.of_stream(io.BytesIO(b"0123456789"), limit=10)[1] == 10


def test_verify() -> None:
    Digest.of_bytes(b"abc").verify(b"abc")
    with pytest.raises(DigestError, match="content digest mismatch"):
        Digest.of_bytes(b"abc").verify(b"abd")


def test_hasher_counts_bytes() -> None:
    h = Hasher()
    h.update(b"ab")
    h.update(b"c")
    assert h.size == 3
    assert h.digest() == Digest.of_bytes(b"abc")


def test_digest_reader_checks_digest_and_size() -> None:
    data = b"hello world"
    reader = DigestReader(io.BytesIO(data), expected=Digest.of_bytes(data), size=len(data))
    assert reader.read() == data
    assert reader.check() == Digest.of_bytes(data)

    short = DigestReader(io.BytesIO(data[:5]), expected=Digest.of_bytes(data), size=len(data))
    short.read()
    with pytest.raises(SizeLimitError, match="5 bytes, expected 11"):
        short.check()

    wrong = DigestReader(io.BytesIO(b"hello wxrld"), expected=Digest.of_bytes(data))
    wrong.read()
    with pytest.raises(DigestError, match="mismatch"):
        wrong.check()

    too_long = DigestReader(io.BytesIO(data + b"!"), size=len(data))
    with pytest.raises(SizeLimitError):
        too_long.read()
