"""Request-body readers on raw bytes as a client sends them: framing that ``int()`` would
accept but HTTP does not is refused, so a body never reads into the next request."""

from __future__ import annotations

import io

import pytest

from appliance.registry.bodies import BodyError, body_stream

CHUNKED = {"Transfer-Encoding": "chunked"}


def _read(headers: dict[str, str], raw: bytes) -> bytes:
    stream, _ = body_stream(headers, io.BufferedReader(io.BytesIO(raw)))
    return stream.read()


def test_chunked_body_is_decoded_up_to_its_last_chunk() -> None:
    raw = b"2\r\nab\r\nA;ext=1\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT REQUEST"
    assert _read(CHUNKED, raw) == b"ab0123456789"


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (b"-2", "b'-2'"),
        (b"0x2", "b'0x2'"),
        (b"+2", "b'+2'"),
        (b"1_0", "b'1_0'"),
        (b"", "b''"),
        (b"1" * 17, repr(b"1" * 17)),
    ],
)
def test_chunk_size_that_is_not_plain_hex_is_refused(size: bytes, shown: str) -> None:
    raw = size + b"\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n" + b"GET /next HTTP/1.1\r\n" * 4
    with pytest.raises(BodyError) as caught:
        _read(CHUNKED, raw)
    assert str(caught.value) == f"chunked body: bad chunk size {shown}"


@pytest.mark.parametrize("length", ["3", "3 \t", "\t3"])
def test_content_length_body_is_exactly_its_length(length: str) -> None:
    assert _read({"Content-Length": length}, b"abcNEXT") == b"abc"


@pytest.mark.parametrize(
    ("length", "message"),
    [
        ("+3", "Content-Length '+3' is not a plain decimal number"),
        ("1_0", "Content-Length '1_0' is not a plain decimal number"),
        ("3\v", "Content-Length '3\\x0b' is not a plain decimal number"),
        ("-3", "Content-Length -3 is negative"),
        ("three", "Content-Length 'three' is not a number"),
    ],
)
def test_content_length_that_is_not_plain_decimal_is_refused(length: str, message: str) -> None:
    with pytest.raises(BodyError) as caught:
        _read({"Content-Length": length}, b"abcdefghij")
    assert str(caught.value) == message


def test_body_shorter_than_its_length_is_refused() -> None:
    with pytest.raises(BodyError, match="request body ended 2 bytes early"):
        _read({"Content-Length": "5"}, b"abc")


def test_endless_trailers_are_refused() -> None:
    raw = b"2\r\nab\r\n0\r\n" + b"X-Trailer: x\r\n" * 65 + b"\r\n"
    with pytest.raises(BodyError) as caught:
        _read(CHUNKED, raw)
    assert str(caught.value) == "chunked body: more than 64 trailer lines"
    assert _read(CHUNKED, b"2\r\nab\r\n0\r\n" + b"X-Trailer: x\r\n" * 64 + b"\r\n") == b"ab"
